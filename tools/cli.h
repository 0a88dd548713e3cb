/* Subcommands of the clone binary that run a VM in this process. */
#ifndef VMM_CLI_H
#define VMM_CLI_H

#include <getopt.h>

/* Their options, for the program entry to find -c before they run (it
 * checks the config's template command line first). */
extern const struct option cli_boot_opts[];
extern const char cli_boot_shortopts[];
extern const struct option cli_bench_opts[];
extern const char cli_bench_shortopts[];

/* `clone boot [-c FILE] [--serial] [-v]`. Returns the exit status. */
int vmm_cmd_boot(int argc, char **argv);
/* `clone template [-c FILE]`: build or check the template; prints its dir. */
int vmm_cmd_template(int argc, char **argv);
/* `clone run [-c FILE] [-u USER] [--uid N]`: a clone on this terminal. */
int vmm_cmd_run(int argc, char **argv);
/* `clone bench-clones`: clone benchmarks on worker processes. */
int vmm_cmd_bench_clones(int argc, char **argv);

#endif
