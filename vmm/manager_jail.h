/* Workers' jails as the manager keeps them (manager.c): for each worker a
 * uid of its own and its directory vm/<uid>, taken before it is forked
 * and released only once it is reaped; and the requests that move a
 * suspended VM between a worker's directory and suspended/<user>. The
 * files themselves are vmm/jail_dir.c's; the uids vmm/jail_uids.c's. */
#ifndef VMM_MANAGER_JAIL_H
#define VMM_MANAGER_JAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "vmm/jail_uids.h"
#include "vmm/manager.h"
#include "vmm/worker.h"

/* One worker's, in its manager slot. Zeroed: holds nothing. */
struct mjail {
	bool held;		/* uid and vm/<uid> are its, until released */
	bool unstashed;		/* MGR_UNSTASH done (once per worker) */
	uid_t uid;
	char stash[33];		/* MGR_STASH: whose VM to keep once reaped */
};

/* <state_dir>/vm and /suspended into j (vm_path: buffer for vm/'s path),
 * checked to be ours and closed to others, and vm/ emptied (no worker is
 * alive: what earlier ones left is nobody's). For start-up: exits (fatal)
 * on error. */
void mjail_open(const char *state_dir, struct manager_jail *j,
		char *vm_path, size_t len);

/* A uid and a fresh vm/<uid> for a worker about to be forked: *wj (its
 * root in path) for worker_spawn(). 0, or -errno with why (a line for the
 * front-end) and a log line. */
int mjail_take(const struct manager_jail *j, struct jail_uids *uids,
	       struct mjail *mj, struct worker_jail *wj, char *path,
	       size_t len, char *why, size_t whylen);
/* Its worker is reaped (or was never forked): vm/<uid> removed, the uid
 * free for another. Accepts one that holds nothing. */
void mjail_release(const struct manager_jail *j, struct jail_uids *uids,
		   struct mjail *mj);

/* Why the front-end may not have user's files moved for this worker
 * (has_worker: the pid is a worker of ours it holds), or NULL. */
const char *mjail_refused(const struct manager_jail *j, const char *user,
			  bool has_worker);
/* The reaped worker pid's suspended VM kept as mj->stash's (logged if
 * not). 0 or -errno. */
int mjail_stash(const struct manager_jail *j, const struct mjail *mj,
		pid_t pid);
/* user's suspended VM into the live worker pid's directory, given to its
 * uid; once per worker. 0 or -errno (logged). */
int mjail_unstash(const struct manager_jail *j, struct mjail *mj, pid_t pid,
		  const char *user);
/* suspended/<user> removed; a failure logged (rate-limited). */
void mjail_drop(const struct manager_jail *j, const char *user);

#endif
