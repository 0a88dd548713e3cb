/* The SSH front-end (clone serve). */
#ifndef SSHD_SERVER_H
#define SSHD_SERVER_H

#include "config/config.h"

/* Serve until SIGTERM/SIGINT; then suspend running VMs to disk and return
 * 0 (1 if they did not all go down). Start-up failures exit. */
int sshd_serve(struct cfg *cfg);

#endif
