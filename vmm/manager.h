/* The VM manager: the VMM's privileged parent (OpenBSD vmd's vmm.c). The
 * front-end forks it at start, before it takes any client; it stays root,
 * holds the template and /dev/kvm, and does on request what the front-end
 * (uid clone, confined, talking to the network) may not:
 *  - MGR_SPAWN: fork a worker, wait (without blocking anything else) for
 *    its READY, and pass its control socket up in MGR_WORKER; at most
 *    MANAGER_FORKS_MAX restoring at once, the others wait their turn; at
 *    most [vm] max_vms workers alive, beyond that MGR_FAILED "at capacity".
 *    Answers come in the order asked. Each worker runs as a uid of its own
 *    ([vm] worker_uids, vmm/jail_uids.h), chrooted into a directory of its
 *    own, <state_dir>/vm/<uid>, made afresh for it (vmm/jail_dir.h).
 *  - MGR_END pid: that worker's control socket is closed; SIGKILL it if it
 *    has not exited MANAGER_GRACE_MS later, reap it, and say MGR_GONE. Only
 *    then is it no longer counted, here or in the front-end, and only then
 *    are its uid and directory free for another.
 *  - MGR_STASH pid user (before MGR_END): once that worker is reaped, the
 *    VM it suspended into its directory becomes suspended/<user>, root's;
 *    MGR_STASHED says whether (before MGR_GONE).
 *  - MGR_UNSTASH pid user: suspended/<user> moves into that live worker's
 *    directory, given to its uid, before the front-end says GO_RESUME;
 *    MGR_UNSTASHED says whether. MGR_DROP user: suspended/<user> goes.
 *  - MGR_KEYS: (re)start the keys monitor (the hook below) and pass its
 *    socket up in MGR_KEYS_READY.
 * Workers are its children: it alone kills and reaps them, and alone
 * touches suspended/ and vm/. It runs under the seccomp filter of
 * manager_seccomp.c from the moment the template is open; workers and the
 * keys monitor inherit that filter and stack their own on it. It trusts
 * nothing the front-end says: pids must be its own live workers, user
 * names are checked again, and no link in vm/ or suspended/ is followed. */
#ifndef VMM_MANAGER_H
#define VMM_MANAGER_H

#include <stdbool.h>
#include <sys/types.h>

#include "common/sandbox.h"
#include "config/config.h"
#include "vmm/ctl_proto.h"
#include "vmm/jail_uids.h"
#include "vmm/worker.h"

#define MANAGER_FORKS_MAX 4	/* workers restoring at once: a restore is
				 * CPU work, and this machine has few cores */
#define MANAGER_GRACE_MS 5000	/* a worker's time to stop after its control
				 * socket closed, before SIGKILL */

/* Given by sshd/ (vmm/ does not depend on it): the keys monitor's main,
 * run as root in a child of the manager with only sock and stderr open;
 * it never returns. NULL: MGR_KEYS is refused. */
struct manager_hooks {
	void (*keys_main)(int sock, void *arg);
	void *arg;
};

/* Where the manager confines its workers (manager_serve()). vm_fd is
 * <state_dir>/vm (vm_path its path, for workers' chdir), susp_fd
 * <state_dir>/suspended: both root's, 0700. Workers get uids (and the
 * same gids) from [uid_first, uid_first + uid_count). Not root (a
 * developer's own account): workers keep our uid, and are not chrooted
 * but still chdir into their directory. */
struct manager_jail {
	int vm_fd, susp_fd;
	const char *vm_path;
	uid_t uid_first;
	uint32_t uid_count;
};

extern const struct sandbox_rule vmm_manager_rules[];
extern const size_t vmm_manager_nrules;

/* The front-end's side of the manager's socket. */
struct manager {
	pid_t pid;
	int sock;
	struct ctl_asked asked;
	struct ctl_queue out;
	pid_t *ending;		/* workers asked to end, not yet gone */
	unsigned nending, cap;
};

/* Fork the manager for cfg's template, max_vms, state_dir and
 * worker_uids (state_dir's vm/ and suspended/ must exist: sdir_setup()),
 * the keys monitor from hooks (may be NULL). Exits (fatal) in the child
 * if the template or those directories cannot be opened. 0 or -errno. */
int manager_start(const struct cfg *cfg, const struct manager_hooks *hooks,
		  struct manager *mg);

/* Requests, never blocking (ctl_send()). 0, or -errno: -ENOBUFS the
 * manager is not reading. manager_end() counts pid as ending (see
 * manager_ending()) until its MGR_GONE; a pid already asked is -EALREADY. */
int manager_spawn(struct manager *mg);
int manager_end(struct manager *mg, pid_t pid);
int manager_keys(struct manager *mg);
/* MGR_STASH, MGR_UNSTASH, MGR_DROP for user (-EINVAL: not a user name).
 * A stash is asked before that worker's manager_end(). */
int manager_stash(struct manager *mg, pid_t pid, const char *user);
int manager_unstash(struct manager *mg, pid_t pid, const char *user);
int manager_drop(struct manager *mg, const char *user);

/* The next message from the manager, checked (ctl_from_manager, and that
 * it answers something asked). 0 with m (and *fd: MGR_WORKER's or
 * MGR_KEYS_READY's descriptor, now the caller's, else -1); -EAGAIN
 * nothing yet; -EPIPE the manager is gone; -EPROTO a message that makes
 * no sense (logged). */
int manager_recv(struct manager *mg, struct worker_msg *m, int *fd);

/* Workers asked to end and not yet gone: they still count against
 * max_vms. */
unsigned manager_ending(const struct manager *mg);
bool manager_pending(const struct manager *mg);
/* On POLLOUT. 0 all sent, 1 some still waits, or -errno. */
int manager_flush(struct manager *mg);
void manager_close(struct manager *mg);

/* The manager process: opens vm/ and suspended/ (emptying vm/: no worker
 * is alive), the template, then manager_serve(). Never returns. */
void manager_main(int sock, const struct cfg *cfg,
		  const struct manager_hooks *hooks)
	__attribute__((noreturn));
/* Serve requests on sock with template t (NULL: MGR_SPAWN is refused, for
 * tests), at most max_vms workers, confined by jail (NULL: seccomp only,
 * our uid, no directory; stash requests refused); confine: under
 * vmm_manager_rules. Returns (exits) when the front-end is gone. */
void manager_serve(int sock, const struct template *t, unsigned max_vms,
		   const struct manager_jail *jail,
		   const struct manager_hooks *hooks, bool confine)
	__attribute__((noreturn));

#endif
