/* Subcommands of the clone binary that run a VM in this process. */
#ifndef VMM_CLI_H
#define VMM_CLI_H

/* `clone boot [-c FILE] [--serial] [-v]`. Returns the exit status. */
int vmm_cmd_boot(int argc, char **argv);

#endif
