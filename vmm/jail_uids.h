/* The uids VM workers run as ([vm] worker_uids): one of its own for every
 * live worker, as Firecracker's jailer gives each microVM, so that a
 * worker taken over by its guest is nobody else's peer: it cannot signal
 * the front-end or another worker, nor open what they own. The manager
 * hands them out; a uid is free again only once its worker is reaped, so
 * no two processes ever share one. Each uid is also the worker's gid. */
#ifndef VMM_JAIL_UIDS_H
#define VMM_JAIL_UIDS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct jail_uids {
	uid_t first;
	uint32_t count;
	uint32_t next;		/* where the next search starts */
	uint32_t used;		/* how many are handed out */
	uint8_t *map;		/* a bit per uid: handed out */
};

/* count uids from first. 0, or -EINVAL (empty, or reaching (uid_t)-1 or
 * including 0), -ENOMEM. */
int jail_uids_init(struct jail_uids *u, uid_t first, uint32_t count);
void jail_uids_free(struct jail_uids *u);

/* A uid nobody holds, now the caller's. The search starts after the last
 * one handed out, so a uid just freed comes back only once the search has
 * gone round the range (log lines about different workers keep apart).
 * 0 with *uid, or -EAGAIN: every one is held (err, if not NULL, says so
 * in a line). */
int jail_uid_get(struct jail_uids *u, uid_t *uid, char *err, size_t errlen);
/* Give uid back: only once the worker that had it is reaped. A uid not
 * handed out is ignored (-ENOENT). */
int jail_uid_put(struct jail_uids *u, uid_t uid);

/* Whether an account already has a uid in the range (passwd, e.g.
 * "/etc/passwd") or a group a gid in it (group, "/etc/group"): workers
 * would then share its files' ownership. 0 if none; -EEXIST with err
 * "PATH: user NAME has uid N, inside [vm] worker_uids FIRST-LAST ..."; or
 * -errno (the file cannot be read, with err saying so). For start-up. */
int jail_uids_check(const char *passwd, const char *group, uid_t first,
		    uint32_t count, char *err, size_t errlen);

#endif
