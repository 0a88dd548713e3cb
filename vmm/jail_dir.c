/* Workers' directories and suspended VMs (jail_dir.h). Root acts here on
 * names a hostile process may have planted: each is opened as one
 * component beneath a directory fd, refusing links, checked, and then
 * acted on through the checked fd wherever the kernel lets us. */
#include "vmm/jail_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"
#include "console/agent_proto.h"

#define DEPTH_MAX 8		/* a worker cannot mkdir at all (its filter
				 * has no mkdir): deeper is not ours */

static const char *const part_name[2] = { "state", "pages" };

static int empty_dir(int fd, int depth);

/* Remove name in dfd: a directory with all in it, anything else (a link
 * too: the link, not what it names) by unlink. 0 (also: nothing there) or
 * -errno. */
static int remove_at(int dfd, const char *name, int depth)
{
	int fd = fs_open_beneath(dfd, name, O_RDONLY | O_DIRECTORY), r;

	if (fd == -ENOENT)
		return 0;
	if (fd == -ENOTDIR || fd == -ELOOP) {
		if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
			return -errno;
		return 0;
	}
	if (fd < 0)
		return fd;
	if (depth <= 0) {
		close(fd);
		return -ELOOP;
	}
	r = empty_dir(fd, depth - 1);
	if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && !r)
		r = -errno;
	return r;
}

/* Everything in the directory fd, which is consumed. */
static int empty_dir(int fd, int depth)
{
	DIR *d = fdopendir(fd);
	struct dirent *e;
	int r = 0;
	bool more = true;

	if (!d) {
		r = -errno;
		close(fd);
		return r;
	}
	/* Entries removed while reading may shift what readdir() has yet
	 * to return: read again until a pass finds nothing. */
	for (int pass = 0; more && pass < 4; pass++) {
		more = false;
		rewinddir(d);
		while ((e = readdir(d))) {
			int k;

			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			more = true;
			k = 0;
			if (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN) {
				if (unlinkat(dirfd(d), e->d_name, 0) < 0 &&
				    errno != ENOENT)
					k = -errno;
			} else {
				k = remove_at(dirfd(d), e->d_name, depth);
			}
			if (k < 0 && !r)
				r = k;
		}
		if (r)
			break;
	}
	closedir(d);
	return r;
}

static void uid_name(char *buf, size_t len, uid_t uid)
{
	snprintf(buf, len, "%u", (unsigned)uid);
}

int jail_dir_make(int vm_fd, uid_t uid, uid_t owner, gid_t group, char *err,
		  size_t errlen)
{
	char name[16];
	const char *what = "removing what was there";
	int fd = -1, r;

	uid_name(name, sizeof(name), uid);
	r = remove_at(vm_fd, name, DEPTH_MAX);
	if (r == 0) {
		what = "mkdir";
		r = mkdirat(vm_fd, name, JAIL_DIR_MODE) < 0 ? -errno : 0;
	}
	if (r == 0) {
		what = "open";
		fd = r = fs_open_beneath(vm_fd, name, O_RDONLY | O_DIRECTORY);
	}
	/* chown first: it may clear set-id bits that chmod then sets right;
	 * chmod too, since mkdir's mode went through the umask */
	if (r >= 0) {
		what = "chown";
		r = fchown(fd, owner, group) < 0 ? -errno : 0;
	}
	if (r == 0) {
		what = "chmod";
		r = fchmod(fd, JAIL_DIR_MODE) < 0 ? -errno : 0;
	}
	if (fd >= 0)
		close(fd);
	if (r < 0) {
		snprintf(err, errlen, "vm/%s: %s: %s", name, what,
			 strerror(-r));
		remove_at(vm_fd, name, DEPTH_MAX);
		return r;
	}
	return 0;
}

int jail_dir_remove(int vm_fd, uid_t uid)
{
	char name[16];

	uid_name(name, sizeof(name), uid);
	return remove_at(vm_fd, name, DEPTH_MAX);
}

int jail_clear(int dfd)
{
	/* a new open file description: readdir must not move dfd's */
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	return fd < 0 ? -errno : empty_dir(fd, DEPTH_MAX);
}

/* part of a suspended VM in dfd (where) as an O_PATH fd, if it is what a
 * worker writes: a regular file with no other name (a hard link to a file
 * of someone else's would give that file away when chowned). fd, -ENOENT,
 * or -EPERM/-errno with err saying why. */
static int open_part(int dfd, const char *where, const char *part,
		     char *err, size_t errlen)
{
	struct stat st;
	const char *why = NULL;
	int fd = fs_open_beneath(dfd, part, O_PATH);

	if (fd == -ENOENT) {
		snprintf(err, errlen, "%s/%s: none", where, part);
		return fd;
	}
	if (fd < 0)
		why = fd == -ELOOP ? "a symbolic link" : strerror(-fd);
	else if (fstat(fd, &st) < 0)
		why = strerror(errno);
	else if (!S_ISREG(st.st_mode))
		why = "not a regular file";
	else if (st.st_nlink != 1)
		why = "a file with other names (hard links)";
	if (!why)
		return fd;
	snprintf(err, errlen, "%s/%s: %s", where, part, why);
	if (fd >= 0)
		close(fd);
	return -EPERM;
}

/* The parts of the suspended VM in dfd, checked: state must be there,
 * pages may not (a VM with no pages of its own). 0 or -errno. */
static int open_parts(int dfd, const char *where, int fd[2], char *err,
		      size_t errlen)
{
	for (int i = 0; i < 2; i++) {
		fd[i] = open_part(dfd, where, part_name[i], err, errlen);
		if (fd[i] == -ENOENT && i == 1)
			continue;
		if (fd[i] < 0)
			return fd[i];
	}
	return 0;
}

/* Each checked part (fd) given to owner:group, then moved from src to
 * dst under the same name, never over a file there; then checked that the
 * name in dst is the file we checked. 0 or -errno with err. */
static int move_parts(const int fd[2], int src, int dst, const char *where,
		      uid_t owner, gid_t group, char *err, size_t errlen)
{
	for (int i = 0; i < 2; i++) {
		const char *what = "chown";
		struct stat a, b;
		int r = 0;

		if (fd[i] < 0)
			continue;
		if (fchownat(fd[i], "", owner, group, AT_EMPTY_PATH) < 0)
			goto fail;
		what = "rename";
		if (renameat2(src, part_name[i], dst, part_name[i],
			      RENAME_NOREPLACE) < 0)
			goto fail;
		what = "check";
		if (fstat(fd[i], &a) < 0 ||
		    fstatat(dst, part_name[i], &b, AT_SYMLINK_NOFOLLOW) < 0)
			goto fail;
		if (a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			continue;
		errno = ESTALE;		/* cannot be: nobody else writes */
fail:
		r = -errno;
		snprintf(err, errlen, "%s/%s: %s: %s", where, part_name[i],
			 what, strerror(-r));
		return r;
	}
	return 0;
}

/* suspended/<user>, a directory of root's, made afresh. fd or -errno. */
static int user_dir_make(int susp_fd, const char *user, uid_t owner,
			 gid_t group)
{
	int fd, r;

	r = remove_at(susp_fd, user, DEPTH_MAX);
	if (r < 0)
		return r;
	if (mkdirat(susp_fd, user, JAIL_DIR_MODE) < 0)
		return -errno;
	fd = fs_open_beneath(susp_fd, user, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return fd;
	if (fchown(fd, owner, group) < 0 || fchmod(fd, JAIL_DIR_MODE) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

static void close_all(int *fd, int n)
{
	for (int i = 0; i < n; i++)
		if (fd[i] >= 0)
			close(fd[i]);
}

int jail_stash(int vm_fd, uid_t uid, int susp_fd, const char *user,
	       uid_t owner, gid_t group, char *err, size_t errlen)
{
	char name[16], where[32];
	int fd[2] = { -1, -1 }, wfd = -1, ufd = -1, r;

	if (!agent_valid_user(user)) {
		snprintf(err, errlen, "not a user name");
		return -EINVAL;
	}
	uid_name(name, sizeof(name), uid);
	snprintf(where, sizeof(where), "vm/%s", name);
	wfd = r = fs_open_beneath(vm_fd, name, O_RDONLY | O_DIRECTORY);
	if (r < 0) {
		snprintf(err, errlen, "%s: %s", where, r == -ELOOP ?
			 "a symbolic link" : strerror(-r));
		goto out;
	}
	r = open_parts(wfd, where, fd, err, errlen);
	if (r < 0)
		goto out;
	ufd = r = user_dir_make(susp_fd, user, owner, group);
	if (r < 0) {
		snprintf(err, errlen, "suspended/%s: %s", user, strerror(-r));
		goto out;
	}
	r = move_parts(fd, wfd, ufd, where, owner, group, err, errlen);
	/* The worker synced its files; the names moved are in ufd now. */
	if (r == 0 && fsync(ufd) < 0) {
		r = -errno;
		snprintf(err, errlen, "suspended/%s: fsync: %s", user,
			 strerror(errno));
	}
	if (r < 0)
		jail_drop(susp_fd, user);
out:
	close_all(fd, 2);
	if (wfd >= 0)
		close(wfd);
	if (ufd >= 0)
		close(ufd);
	return r;
}

int jail_unstash(int susp_fd, const char *user, int vm_fd, uid_t uid,
		 uid_t owner, gid_t group, char *err, size_t errlen)
{
	char name[16], where[48];
	int fd[2] = { -1, -1 }, wfd = -1, ufd = -1, r;

	if (!agent_valid_user(user)) {
		snprintf(err, errlen, "not a user name");
		return -EINVAL;
	}
	snprintf(where, sizeof(where), "suspended/%s", user);
	ufd = r = fs_open_beneath(susp_fd, user, O_RDONLY | O_DIRECTORY);
	if (r < 0) {
		snprintf(err, errlen, "%s: %s", where, r == -ENOENT ?
			 "no suspended VM" : r == -ELOOP ? "a symbolic link" :
			 strerror(-r));
		goto out;
	}
	r = open_parts(ufd, where, fd, err, errlen);
	if (r < 0)
		goto out;
	uid_name(name, sizeof(name), uid);
	wfd = r = fs_open_beneath(vm_fd, name, O_RDONLY | O_DIRECTORY);
	if (r < 0) {
		snprintf(err, errlen, "vm/%s: %s", name, strerror(-r));
		goto out;
	}
	r = move_parts(fd, ufd, wfd, where, owner, group, err, errlen);
	if (r == 0)
		jail_drop(susp_fd, user);	/* what else was there */
out:
	close_all(fd, 2);
	if (wfd >= 0)
		close(wfd);
	if (ufd >= 0)
		close(ufd);
	return r;
}

int jail_drop(int susp_fd, const char *user)
{
	if (!agent_valid_user(user))
		return -EINVAL;
	return remove_at(susp_fd, user, DEPTH_MAX);
}
