/* <state_dir> and the host key on disk, as the root parts of `clone serve`
 * see them: state_dir itself, templates/ and the host key are root's;
 * suspended/ (where workers write suspended VMs) and run/ (the status
 * table) belong to the clone user, so everything found in them is treated
 * as written by a hostile process. */
#ifndef SSHD_STATE_DIR_H
#define SSHD_STATE_DIR_H

#include <stddef.h>
#include <sys/types.h>

/* Make state_dir and its folders, or check and fix the ones there:
 * suspended/ and run/ are given to uid:gid (the clone user). 0 with
 * *susp_fd and *run_fd open (the caller closes them), or -errno with err
 * saying "PATH: reason". */
int sdir_setup(const char *state_dir, uid_t uid, gid_t gid, int *susp_fd,
	       int *run_fd, char *err, size_t errlen);

/* The host key at path: made if missing; an existing one must be safe to
 * use. 0, or -errno with err saying "PATH: reason". */
int sdir_host_key(const char *path, char *err, size_t errlen);

/* Every VM an earlier run left suspended under susp_fd
 * (suspended/<user>/state): its files are given to uid:gid, for the
 * worker that resumes it, and found(user, arg) is called. */
void sdir_load_suspended(int susp_fd, uid_t uid, gid_t gid,
			 void (*found)(const char *user, void *arg),
			 void *arg);

/* Remove suspended/<user>: the VM runs again or is gone. */
void sdir_suspend_remove(int susp_fd, const char *user);

#endif
