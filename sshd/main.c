/* clone: one binary, several subcommands. */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "common/log.h"
#include "vmm/cli.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: clone COMMAND [ARGS]\n"
		   "  boot [-c clone.ini] [--serial]   boot the guest image "
		   "on this terminal\n"
		   "  template [-c clone.ini]          build the warm template "
		   "snapshot\n"
		   "  run [-c clone.ini] [-u USER]     a clone of the template "
		   "on this terminal\n");
}

int main(int argc, char **argv)
{
	log_init("clone", LOG_INFO);
	if (sodium_init() < 0) {
		fprintf(stderr, "clone: libsodium failed to initialise\n");
		return 1;
	}
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "boot") == 0)
		return vmm_cmd_boot(argc - 1, argv + 1);
	if (strcmp(argv[1], "template") == 0)
		return vmm_cmd_template(argc - 1, argv + 1);
	if (strcmp(argv[1], "run") == 0)
		return vmm_cmd_run(argc - 1, argv + 1);
	if (strcmp(argv[1], "bench-clones") == 0)
		return vmm_cmd_bench_clones(argc - 1, argv + 1);
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "clone: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
