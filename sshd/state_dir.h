/* <state_dir> and the host key on disk, as the root parts of `clone serve`
 * see them: state_dir itself, templates/, suspended/ (suspended VMs), vm/
 * (each VM worker's own directory: vmm/jail_dir.h) and the host key are
 * root's; run/ (the status table) belongs to the clone user. What is in
 * suspended/ was written by workers (and, before this layout, by the
 * clone user), so everything found there is treated as written by a
 * hostile process. */
#ifndef SSHD_STATE_DIR_H
#define SSHD_STATE_DIR_H

#include <stddef.h>
#include <sys/types.h>

/* Make state_dir and its folders, or check and fix the ones there (mode
 * and owner; a log line for each fixed): state_dir, templates/,
 * suspended/ and vm/ ours, 0700; run/ (0755) given to uid:gid, the clone
 * user. A state_dir, suspended/, vm/ or run/ that is a symbolic link or
 * not a directory is refused. 0 with *susp_fd and *run_fd open (the
 * caller closes them), or -errno with both -1 and err saying "PATH:
 * reason". */
int sdir_setup(const char *state_dir, uid_t uid, gid_t gid, int *susp_fd,
	       int *run_fd, char *err, size_t errlen);

/* The host key at path. Missing: a new Ed25519 key is written there, 0600
 * from the start whatever the umask. Present: it must be a regular file
 * (not a link), ours, with no group or other permission bit. 0, or -errno
 * with err saying "PATH: reason". The umask is left as it was. */
int sdir_host_key(const char *path, char *err, size_t errlen);

/* Every VM an earlier run left suspended under susp_fd
 * (suspended/<user>/state): if its directory is a real one and its state
 * and pages regular files with one link each (found without following any
 * symbolic link), they are given to us (root: an older layout left them
 * to the clone user) and found(user, arg) is called; anything else is
 * logged and left alone. Run as root, before the front-end drops; the
 * manager moves them for the worker that resumes one. */
void sdir_load_suspended(int susp_fd,
			 void (*found)(const char *user, void *arg),
			 void *arg);

#endif
