/* Where VM workers keep their files, as the root manager handles them.
 *
 *  <state_dir>/vm/<uid>/        one per live worker: owned by its uid,
 *                               0700, its chroot; made afresh for each
 *                               worker, removed once it is reaped
 *  <state_dir>/suspended/<user>/ a suspended VM (state, pages): root's,
 *                               0700; no worker can enter it
 *
 * vm/ and suspended/ are root's (0700). A worker writes its suspended VM
 * into its own directory; once it is reaped (no process of its uid is
 * left to change anything), the manager moves the files to
 * suspended/<user> (jail_stash()), and for a resume moves them into the
 * new worker's directory (jail_unstash()). What a worker leaves in its
 * directory was written by a process its guest may have taken over: every
 * name there is opened one component at a time without following any
 * link (openat2 RESOLVE_NO_SYMLINKS), only regular files with no other
 * name (a hard link) are moved, and they are chowned through the fd that
 * was checked. Nothing outside vm/<uid> and suspended/<user> is ever
 * moved, chowned or removed, whatever was planted there. */
#ifndef VMM_JAIL_DIR_H
#define VMM_JAIL_DIR_H

#include <stddef.h>
#include <sys/types.h>

#define JAIL_DIR_MODE 0700

/* vm/<uid> (vm_fd: vm/) made afresh: whatever was there removed, then a
 * new directory, mode 0700, owned by owner:group (the worker's uid, or
 * ours when not root). 0, or -errno with err saying why. */
int jail_dir_make(int vm_fd, uid_t uid, uid_t owner, gid_t group, char *err,
		  size_t errlen);
/* Remove vm/<uid> and all in it, following no link. 0 or -errno. */
int jail_dir_remove(int vm_fd, uid_t uid);
/* Remove everything in the directory dfd (vm/ at start: no worker is
 * alive, and what dead ones left is nobody's). 0 or -errno. */
int jail_clear(int dfd);

/* The suspended VM a reaped worker left in vm/<uid> (state, and pages if
 * any) becomes suspended/<user> (susp_fd: suspended/), owned by
 * owner:group (root), replacing any older copy. 0, or -errno with err:
 * -EINVAL a user name that is none (agent_valid_user), -ENOENT no state,
 * -EPERM a part that is not a regular file of one name. On an error
 * suspended/<user> is left absent, never half made. */
int jail_stash(int vm_fd, uid_t uid, int susp_fd, const char *user,
	       uid_t owner, gid_t group, char *err, size_t errlen);
/* suspended/<user>'s state and pages into vm/<uid>, given to owner:group
 * (the worker's uid), never over a file there; suspended/<user> is then
 * removed. 0, or -errno with err, as jail_stash(). */
int jail_unstash(int susp_fd, const char *user, int vm_fd, uid_t uid,
		 uid_t owner, gid_t group, char *err, size_t errlen);
/* Remove suspended/<user> (the VM is gone), nothing outside it. 0, 0 if
 * there was none, or -errno (-EINVAL: not a user name). */
int jail_drop(int susp_fd, const char *user);

#endif
