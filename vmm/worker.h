/* VM worker processes: one VM per process, so a crash or a hostile guest
 * takes down that VM alone. A worker is forked ahead of need and at once
 * creates its KVM VM, vCPU, irqchip and devices, maps the template's
 * memory copy-on-write and restores its state: none of that depends on who
 * connects. When the parent says go, it hands the agent the identity and
 * starts the vCPU.
 *
 * Parent and worker talk over a SOCK_SEQPACKET socket pair in fixed-size
 * messages; the worker sends its terminal's host end with SCM_RIGHTS. */
#ifndef VMM_WORKER_H
#define VMM_WORKER_H

#include <stdint.h>
#include <sys/types.h>

#include "common/sandbox.h"
#include "vmm/template.h"

enum worker_msg_type {
	WORKER_READY = 1,	/* worker: VM created and restored (a = ns the
				 * restore took), waiting for go */
	WORKER_GO,		/* parent: identity; restore and run */
	WORKER_STARTED,		/* worker: running (a = first KVM_RUN, ns) + fd */
	WORKER_ACKED,		/* worker: the agent applied the identity */
	WORKER_PAUSE,		/* parent: stop the vCPU */
	WORKER_PAUSED,		/* worker: stopped */
	WORKER_RESUME,		/* parent: run again */
	WORKER_RESUMED,		/* worker: running (a = vCPU back in KVM_RUN) */
	WORKER_SUSPEND,		/* parent: to disk, into directory text */
	WORKER_SUSPENDED,	/* worker: written (a = pages); it then exits */
	WORKER_GO_RESUME,	/* parent: instead of go, resume from directory
				 * text (a VM suspended from this template) */
	WORKER_SESSION_OPEN,	/* parent: spawn (a = session id) */
	WORKER_SESSION_OPENED,	/* worker: a = session id, b = 0 or -errno;
				 * fds: stdout (or terminal), stderr, stdin */
	WORKER_SESSION_RESIZE,	/* parent: a = session, spawn.rows/cols */
	WORKER_SESSION_SIGNAL,	/* parent: a = session, b = signal */
	WORKER_SESSION_EXIT,	/* worker: a = session, b = (how << 8) | code */
	WORKER_EXITED,		/* worker: the VM ended; text says why */
	WORKER_FAILED,		/* worker: could not do what was asked; text */
	WORKER_STAT,		/* parent: how much memory is yours? */
	WORKER_STATS,		/* worker: a = Private_Dirty KiB (-1: unknown) */
};

struct worker_msg {
	uint32_t type;
	uint32_t pad;
	uint64_t a, b;
	struct agent_identity id;
	struct agent_spawn spawn;
	char text[160];
};

/* Where a worker is confined once its VM is made (see worker_main()).
 * Workers always run under the seccomp filter vmm_worker_rules; with a
 * jail they also run as uid/gid, chrooted into root, and the directory
 * names in WORKER_SUSPEND and WORKER_GO_RESUME are taken inside root. */
struct worker_jail {
	uid_t uid;
	gid_t gid;
	const char *root;	/* directory of suspended VMs; must exist */
};

extern const struct sandbox_rule vmm_worker_rules[];
extern const size_t vmm_worker_nrules;

struct worker {
	pid_t pid;
	int ctl;		/* our end of the control socket */
	int term_fd;		/* host end of the guest's terminal, once started */
	int sess_fd[3];		/* last WORKER_SESSION_OPENED: stdout (or the
				 * terminal), stderr, stdin */
};

/* Fork a worker for clones of t, confined by jail (NULL: seccomp only, as
 * the caller's user, no chroot). It reports WORKER_READY when its VM is
 * created and it is confined. 0 or -errno. */
int worker_spawn(const struct template *t, const struct worker_jail *jail,
		 struct worker *w);
/* worker_spawn() and wait for WORKER_READY; *restore_ns (may be NULL) gets
 * how long its restore took. 0, or -errno (logged, worker reaped). */
int worker_spawn_ready(const struct template *t,
		       const struct worker_jail *jail, struct worker *w,
		       uint64_t *restore_ns);
/* Send a message. 0 or -errno. */
int worker_send(struct worker *w, const struct worker_msg *m);
/* Receive the next message within timeout_ms (-1: no limit); passed fds
 * land in w->term_fd (WORKER_STARTED) or w->sess_fd (the caller takes
 * them). 0, -ETIMEDOUT, -EPIPE (the worker is gone) or
 * -EPROTO (a malformed message). */
int worker_recv(struct worker *w, struct worker_msg *m, int timeout_ms);
/* Wait for a message of the given type, skipping none: anything else is
 * -EPROTO (with m holding it). */
int worker_expect(struct worker *w, uint32_t type, struct worker_msg *m,
		  int timeout_ms);
/* End the worker: close the control socket (it stops its VM and exits),
 * then reap it; SIGKILL after timeout_ms. Accepts an unspawned worker. */
void worker_destroy(struct worker *w, int timeout_ms);

uint64_t worker_now_ns(void);

#endif
