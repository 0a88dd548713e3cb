/* The SSH front-end (clone serve). */
#ifndef SSHD_SERVER_H
#define SSHD_SERVER_H

#include "common/sandbox.h"
#include "config/config.h"

/* The front-end's seccomp allow-list (frontend_seccomp.c). */
extern const struct sandbox_rule sshd_frontend_rules[];
extern const size_t sshd_frontend_nrules;
/* The keys monitor's (keys_seccomp.c). */
extern const struct sandbox_rule sshd_keys_rules[];
extern const size_t sshd_keys_nrules;

/* Serve until SIGTERM/SIGINT; then suspend running VMs to disk and return
 * 0 (1 if they did not all go down). Start-up failures exit. */
int sshd_serve(struct cfg *cfg);

#endif
