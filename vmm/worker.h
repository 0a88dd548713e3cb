/* VM worker processes: one VM per process, so a crash or a hostile guest
 * takes down that VM alone. A worker is forked ahead of need and at once
 * creates its KVM VM, vCPU, irqchip and devices, maps the template's
 * memory copy-on-write and restores its state: none of that depends on who
 * connects. When the parent says go, it hands the agent the identity and
 * starts the vCPU.
 *
 * Parent and worker talk over a SOCK_SEQPACKET socket pair in the messages
 * of vmm/ctl_proto.h; the worker sends its terminal's and its sessions'
 * host ends with SCM_RIGHTS. The parent's side below checks every message
 * against the table and against what it asked (a session opened that was
 * not asked for, a second STARTED): such a worker is hostile, and
 * worker_recv() says so with -EPROTO; the caller drops it. */
#ifndef VMM_WORKER_H
#define VMM_WORKER_H

#include <stdint.h>
#include <sys/types.h>

#include "common/sandbox.h"
#include "vmm/ctl_proto.h"
#include "vmm/template.h"

/* Where a worker is confined once its VM is made (see worker_main()).
 * Workers always run under the seccomp filter vmm_worker_rules; with a
 * jail they also run as uid/gid (the manager gives each its own), with no
 * supplementary groups, chrooted into root (its own directory, which it
 * enters while still root). A jailed worker suspends into and resumes
 * from root itself: the text of WORKER_SUSPEND and WORKER_GO_RESUME only
 * names the user, for its log lines; no name from the parent is taken as
 * a path. Without a jail the text is the directory. */
struct worker_jail {
	uid_t uid;
	gid_t gid;
	const char *root;	/* the worker's own directory; must exist */
};

extern const struct sandbox_rule vmm_worker_rules[];
extern const size_t vmm_worker_nrules;

#define WORKER_SESSIONS_MAX 64	/* asked for or open, per worker (a VM has
				 * fewer ports than that) */

struct worker_sess {
	uint32_t id;
	uint8_t st;		/* 0 free, 1 asked for, 2 open */
	bool pty;		/* one fd comes, not three */
};

struct worker {
	pid_t pid;
	int ctl;		/* our end of the control socket */
	int term_fd;		/* host end of the guest's terminal, once started */
	int sess_fd[3];		/* last WORKER_SESSION_OPENED: stdout (or the
				 * terminal), stderr, stdin */
	enum worker_state state;
	bool acked;
	bool overflow;		/* its queue overflowed: socket shut down */
	enum ctl_err why;	/* why worker_recv() last said -EPROTO */
	uint32_t why_type;	/* of which message type */
	struct ctl_asked asked;
	struct ctl_queue out;	/* what its socket did not take yet */
	struct worker_sess sess[WORKER_SESSIONS_MAX];
};

/* A worker record that holds nothing (pid and fds -1). */
void worker_init(struct worker *w);
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
/* Take on a worker someone else spawned and saw READY (the manager): our
 * end of its control socket, ctl, is now w's. */
void worker_adopt(struct worker *w, pid_t pid, int ctl);
/* Send a message, never blocking: what the socket does not take waits in
 * w->out (worker_flush() on POLLOUT). 0; -EINVAL (not a message for the
 * worker's state: nothing sent); -ENOSPC (too many sessions asked for:
 * nothing sent); -EPIPE (it is gone); -ENOBUFS (the queue is full: the
 * worker does not read). On -ENOBUFS the control socket is shut down, so
 * that the caller's next poll wakes for it (POLLHUP) and worker_recv()
 * says -ENOBUFS: drop the worker there, not in the middle of whatever
 * was sending. */
int worker_send(struct worker *w, const struct worker_msg *m);
/* Whether messages wait for the socket to take them (poll for POLLOUT). */
bool worker_pending(const struct worker *w);
/* Send what waits. 0 all sent, 1 some still waits, or -errno (gone). */
int worker_flush(struct worker *w);
/* Receive the next message within timeout_ms (-1: no limit); what waits
 * to be sent is sent meanwhile. Passed fds land in w->term_fd
 * (WORKER_STARTED) or w->sess_fd (the caller takes them). 0, -ETIMEDOUT,
 * -EPIPE (the worker is gone), -ENOBUFS (it stopped reading: see
 * worker_send()) or -EPROTO: a message that its table, its state or what
 * we asked does not allow (w->why, w->why_type say which); the worker is
 * hostile. */
int worker_recv(struct worker *w, struct worker_msg *m, int timeout_ms);
/* Wait for a message of the given type, skipping none: anything else is
 * -EPROTO (with m holding it). */
int worker_expect(struct worker *w, uint32_t type, struct worker_msg *m,
		  int timeout_ms);
/* Let go of the worker without waiting for it: close the control socket
 * (it stops its VM and exits) and the terminal fd, drop what waits to be
 * sent (sess_fd are the caller's). For a process that is not the worker's parent (the front-end:
 * the manager reaps it). Accepts an unspawned worker. */
void worker_close(struct worker *w);
/* End a worker we forked: worker_close(), then reap it; SIGKILL after
 * timeout_ms. Accepts an unspawned worker. */
void worker_destroy(struct worker *w, int timeout_ms);

#endif
