/* clone: one binary, several subcommands. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/log.h"
#include "config/config.h"
#include "sshd/server.h"
#include "tools/cli.h"
#include "vmm/x86/boot.h"
#include "vmm/x86/cmdline.h"
#include "vmm/x86/pvm.h"

static int load(int argc, char **argv, struct cfg *cfg)
{
	char err[CFG_ERRLEN];
	const char *path = NULL;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			path = argv[++i];
		else if (strcmp(argv[i], "-v") == 0)
			log_init("clone", LOG_DEBUG);
		else {
			fprintf(stderr, "usage: clone %s [-c clone.ini] [-v]\n",
				argv[0]);
			return -1;
		}
	}
	if ((path ? cfg_load(cfg, path, err, sizeof(err))
		  : cfg_defaults(cfg)) < 0) {
		fprintf(stderr, "clone: %s\n", path ? err : "out of memory");
		return -1;
	}
	return 0;
}

/* The template's command line checked as the VMM will build it (vmm/vm.c
 * runs the same merge on the same lists), but here, before anything
 * starts, and with the config line it came from: deeper down no line is
 * known. */
static int check_cmdline(const struct cfg *cfg)
{
	char out[BOOT_CMDLINE_MAX], why[256];

	if (cmdline_merge(cmdline_own_clearcpuid(pvm_detect()),
			  cfg->template.cmdline, out, sizeof(out), why,
			  sizeof(why)) == 0)
		return 0;
	if (cfg->path && cfg->template.cmdline_line)
		fprintf(stderr, "clone: %s:%u: cmdline: %s\n", cfg->path,
			cfg->template.cmdline_line, why);
	else
		fprintf(stderr, "clone: cmdline: %s\n", why);
	return -1;
}

/* The -c of a subcommand that parses its own options; NULL if none. On a
 * copy of argv (getopt_long permutes it), and getopt's state reset after,
 * so that the subcommand's own parse starts afresh. */
static const char *config_arg(int argc, char **argv, const char *shortopts,
			      const struct option *longopts)
{
	const char *path = NULL;
	char **copy = calloc((size_t)argc + 1, sizeof(*copy));
	int c;

	if (!copy)
		return NULL;
	memcpy(copy, argv, (size_t)argc * sizeof(*copy));
	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, copy, shortopts, longopts, NULL)) != -1)
		if (c == 'c')
			path = optarg;
	opterr = 1;
	optind = 0;
	free(copy);
	return path;
}

/* For the subcommands that build or boot the template: its command line
 * checked before they start. A config that does not load is left to the
 * subcommand, which says why in its own words. */
static int precheck(int argc, char **argv, bool bench)
{
	const char *path = bench ? config_arg(argc, argv, cli_bench_shortopts,
					      cli_bench_opts)
				 : config_arg(argc, argv, cli_boot_shortopts,
					      cli_boot_opts);
	struct cfg cfg = { 0 };
	char err[CFG_ERRLEN];
	int r;

	if ((path ? cfg_load(&cfg, path, err, sizeof(err))
		  : cfg_defaults(&cfg)) < 0)
		return 0;
	r = check_cmdline(&cfg);
	cfg_free(&cfg);
	return r;
}

static int cmd_serve(int argc, char **argv)
{
	struct cfg cfg = { 0 };
	int r;

	if (load(argc, argv, &cfg) < 0)
		return 1;
	if (check_cmdline(&cfg) < 0) {
		cfg_free(&cfg);
		return 1;
	}
	r = sshd_serve(&cfg);
	cfg_free(&cfg);
	return r;
}

static int cmd_status(int argc, char **argv)
{
	struct cfg cfg = { 0 };
	char path[4096], buf[4096];
	size_t n;
	FILE *f;

	if (load(argc, argv, &cfg) < 0)
		return 1;
	snprintf(path, sizeof(path), "%s/run/status", cfg.server.state_dir);
	cfg_free(&cfg);
	f = fopen(path, "re");
	if (!f) {
		fprintf(stderr, "clone: %s: no status (is clone serve "
			"running?)\n", path);
		return 1;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stdout);
	fclose(f);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: clone COMMAND [ARGS]\n"
		   "  serve [-c clone.ini]             the SSH server\n"
		   "  status [-c clone.ini]            its VMs: user, state, "
		   "uptime, sessions, memory\n"
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
	if (strcmp(argv[1], "serve") == 0)
		return cmd_serve(argc - 1, argv + 1);
	if (strcmp(argv[1], "status") == 0)
		return cmd_status(argc - 1, argv + 1);
	if (strcmp(argv[1], "boot") == 0)
		return precheck(argc - 1, argv + 1, false) < 0 ? 1 :
		       vmm_cmd_boot(argc - 1, argv + 1);
	if (strcmp(argv[1], "template") == 0)
		return precheck(argc - 1, argv + 1, false) < 0 ? 1 :
		       vmm_cmd_template(argc - 1, argv + 1);
	if (strcmp(argv[1], "run") == 0)
		return precheck(argc - 1, argv + 1, false) < 0 ? 1 :
		       vmm_cmd_run(argc - 1, argv + 1);
	if (strcmp(argv[1], "bench-clones") == 0)
		return precheck(argc - 1, argv + 1, true) < 0 ? 1 :
		       vmm_cmd_bench_clones(argc - 1, argv + 1);
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "clone: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
