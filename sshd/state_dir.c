/* <state_dir> and the host key on disk, for the parts of `clone serve`
 * that run as root. state_dir, templates/, suspended/, vm/ and the host
 * key are root's. What lies in suspended/ was written by VM workers (a
 * worker taken over by its guest may have written anything into its own
 * directory before the manager moved it here), and by the clone user in
 * an older layout where suspended/ was its. Root therefore never resolves
 * a path through it: every name below suspended/ is opened one component
 * at a time, refusing symbolic links (openat2 RESOLVE_NO_SYMLINKS),
 * checked for its type, and then acted on through the fd that was checked
 * (fchownat AT_EMPTY_PATH), never by name again. */
#include "sshd/state_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libssh/libssh.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/log.h"
#include "sshd/authkeys.h"

/* ---- state_dir and its folders ------------------------------------------ */

struct folder {
	const char *name;
	mode_t mode;
	bool clone_user;	/* owned by the clone user, else by us (root) */
	bool nofollow;		/* never a link: it holds users' VMs */
};

/* state_dir itself is 0700: nobody but root needs to pass through it.
 * Workers enter their own vm/<uid>/ by path while still root (chdir,
 * chroot, then drop: vmm/worker_proc.c confine()), so vm/ is 0700 too:
 * no worker ever looks a name up above its own root. The front-end
 * reaches run/ through an fd opened here before it drops. 0711 would only
 * let other users reach run/status (`clone status` not as root) and probe
 * names. */
enum { F_TEMPLATES, F_SUSPENDED, F_VM, F_RUN, F_COUNT };
static const struct folder folders[F_COUNT] = {
	/* template snapshots, guest RAM */
	[F_TEMPLATES] = { "templates", 0700, false, false },
	/* suspended VMs, moved here by the manager */
	[F_SUSPENDED] = { "suspended", 0700, false, true },
	/* each VM worker's own directory */
	[F_VM] = { "vm", 0700, false, true },
	/* the status table */
	[F_RUN] = { "run", 0755, true, true },
};

/* Why fd (path) cannot be used, or 0; else make its mode and owner what
 * they must be, with a log line when one we did not just make was wrong. */
static int fix_dir(int fd, const char *path, mode_t mode, uid_t uid,
		   gid_t gid, bool fresh, char *err, size_t errlen)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		goto fail;
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: not a directory", path);
		return -ENOTDIR;
	}
	if ((st.st_mode & 07777) == mode && st.st_uid == uid &&
	    st.st_gid == gid)
		return 0;
	/* chown first: it may clear set-id bits that chmod then sets right */
	if (fchown(fd, uid, gid) < 0 || fchmod(fd, mode) < 0)
		goto fail;
	if (!fresh)
		log_info("%s: mode %04o, owner %u:%u; made %04o, %u:%u", path,
			 (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid,
			 (unsigned)st.st_gid, (unsigned)mode, (unsigned)uid,
			 (unsigned)gid);
	return 0;
fail:
	snprintf(err, errlen, "%s: %s", path, strerror(errno));
	return -errno;
}

/* The message for a directory that could not be opened (errno e): a link
 * or a file says so, rather than "Too many levels of symbolic links". */
static int dir_open_error(int dfd, const char *name, const char *path, int e,
			  char *err, size_t errlen)
{
	struct stat st;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISLNK(st.st_mode)) {
		snprintf(err, errlen, "%s: a symbolic link; it must be a "
			 "directory of its own", path);
		return -ELOOP;
	}
	if (e == ENOTDIR) {
		snprintf(err, errlen, "%s: not a directory", path);
		return -ENOTDIR;
	}
	snprintf(err, errlen, "%s: %s", path, strerror(e));
	return -e;
}

/* folder f of state_dir (open at sfd): made if missing, fixed, opened. */
static int open_folder(int sfd, const char *state_dir,
		       const struct folder *f, uid_t uid, gid_t gid,
		       char *err, size_t errlen)
{
	char path[4096];
	int fd, r, flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
	bool fresh = mkdirat(sfd, f->name, f->mode) == 0;

	snprintf(path, sizeof(path), "%s/%s", state_dir, f->name);
	if (!fresh && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	/* A folder given to the clone user, or holding users' VMs, is never
	 * a link: its target would be chowned to that user, or get them.
	 * templates/ may be: a link there was made by root (the tests share
	 * one template cache that way). */
	if (f->nofollow)
		flags |= O_NOFOLLOW;
	fd = openat(sfd, f->name, flags);
	if (fd < 0)
		return dir_open_error(sfd, f->name, path, errno, err, errlen);
	r = fix_dir(fd, path, f->mode, f->clone_user ? uid : geteuid(),
		    f->clone_user ? gid : getegid(), fresh, err, errlen);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

int sdir_setup(const char *state_dir, uid_t uid, gid_t gid, int *susp_fd,
	       int *run_fd, char *err, size_t errlen)
{
	int fds[F_COUNT] = { -1, -1, -1, -1 };
	int sfd, r = 0;
	bool fresh = mkdir(state_dir, 0700) == 0;

	*susp_fd = *run_fd = -1;
	if (!fresh && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", state_dir, strerror(errno));
		return -errno;
	}
	sfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0)
		return dir_open_error(AT_FDCWD, state_dir, state_dir, errno,
				      err, errlen);
	r = fix_dir(sfd, state_dir, 0700, geteuid(), getegid(), fresh, err,
		    errlen);
	for (int i = 0; r == 0 && i < F_COUNT; i++) {
		fds[i] = open_folder(sfd, state_dir, &folders[i], uid, gid,
				     err, errlen);
		if (fds[i] < 0)
			r = fds[i];
	}
	close(sfd);
	/* templates/ and vm/: the manager opens them by path */
	for (int i = 0; i < F_COUNT; i++)
		if (fds[i] >= 0 && (r < 0 || i == F_TEMPLATES || i == F_VM))
			close(fds[i]);
	if (r < 0)
		return r;
	*susp_fd = fds[F_SUSPENDED];
	*run_fd = fds[F_RUN];
	return 0;
}

/* ---- the host key -------------------------------------------------------- */

/* Like OpenSSH's sshkey_perm_ok(): a key others could have read is
 * refused, not quietly chmod'ed, since it may have leaked already. */
static int key_check(const char *path, const struct stat *st, char *err,
		     size_t errlen)
{
	if (S_ISLNK(st->st_mode)) {
		snprintf(err, errlen, "%s: a symbolic link; the host key must "
			 "be a regular file", path);
		return -ELOOP;
	}
	if (!S_ISREG(st->st_mode)) {
		snprintf(err, errlen, "%s: not a regular file; refusing it "
			 "as the host key", path);
		return -EINVAL;
	}
	if (st->st_uid != geteuid()) {
		snprintf(err, errlen, "%s: owned by uid %u, not uid %u; "
			 "refusing it as the host key", path,
			 (unsigned)st->st_uid, (unsigned)geteuid());
		return -EPERM;
	}
	if (st->st_mode & 077) {
		snprintf(err, errlen, "%s: UNPROTECTED PRIVATE KEY FILE: mode "
			 "%04o lets others read it; refusing it (chmod 600 "
			 "it if it cannot have leaked, else delete it)", path,
			 (unsigned)(st->st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

/* A new key, written by us rather than by ssh_pki_export_privkey_file(),
 * which creates the file with the default mode and leaves us to chmod it
 * after the key is in it: the file is 0600 from its first moment. */
static int key_create(const char *path, char *err, size_t errlen)
{
	ssh_key key = NULL;
	char *b64 = NULL;
	mode_t old = umask(077);
	size_t len = 0, off = 0;
	int fd = -1, r = 0;

	if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK ||
	    ssh_pki_export_privkey_base64(key, NULL, NULL, NULL, &b64) !=
		    SSH_OK) {
		snprintf(err, errlen, "%s: cannot generate a host key", path);
		r = -EIO;
		goto out;
	}
	len = strlen(b64);
	/* O_EXCL: we never write through a link or into a file someone
	 * else made (and maybe holds open) since we looked. */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	while (off < len) {
		ssize_t n = write(fd, b64 + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			break;
		}
		off += (size_t)n;
	}
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r < 0) {
		snprintf(err, errlen, "%s: writing the host key: %s", path,
			 strerror(-r));
		unlink(path);
		goto out;
	}
	log_info("host key created: %s", path);
out:
	umask(old);
	if (b64) {
		sodium_memzero(b64, len);
		ssh_string_free_char(b64);
	}
	ssh_key_free(key);
	return r;
}

int sdir_host_key(const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (lstat(path, &st) == 0)
		return key_check(path, &st, err, errlen);
	if (errno != ENOENT) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	return key_create(path, err, errlen);
}

/* ---- suspended/, written by workers ------------------------------------- */

/* suspended/<user>/<name> (name "": the directory itself) as an O_PATH
 * fd, if it is what a worker writes there: a real directory, a regular
 * file with no other name (a hard link to a file of root's would give
 * that file away when chowned). fd, -ENOENT, or another -errno, logged. */
static int open_part(int dfd, const char *user, const char *name)
{
	bool dir = !name[0];
	struct stat st;
	const char *why = NULL;
	int fd;

	fd = fs_open_beneath(dfd, dir ? user : name,
			  O_PATH | (dir ? O_DIRECTORY : 0));
	if (fd == -ENOENT)
		return fd;
	if (fd < 0) {
		why = fd == -ELOOP ? "a symbolic link" : strerror(-fd);
	} else if (fstat(fd, &st) < 0) {
		why = strerror(errno);
	} else if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
		why = dir ? "not a directory" : "not a regular file";
	} else if (!dir && st.st_nlink != 1) {
		why = "a file with other names (hard links)";
	}
	if (!why)
		return fd;
	log_warnx("suspended/%s%s%s: %s; the suspended VM there is ignored",
		  user, dir ? "" : "/", name, why);
	if (fd >= 0)
		close(fd);
	return -EPERM;
}

/* user's suspended VM, if genuine: 0 with its files given to uid:gid. */
static int own_suspended(int susp_fd, const char *user, uid_t uid,
			 gid_t gid)
{
	static const char *const name[] = { "state", "pages" };
	int fd[3] = { -1, -1, -1 };
	int r;

	r = fd[0] = open_part(susp_fd, user, "");
	for (int i = 0; r >= 0 && i < 2; i++) {
		r = fd[i + 1] = open_part(fd[0], user, name[i]);
		if (r == -ENOENT && i == 1)
			r = 0;	/* a VM with no pages of its own */
	}
	/* Written by an earlier run, perhaps as another user (the clone
	 * user, or a worker's uid): suspended/ holds root's files only, and
	 * the manager gives them to the worker that resumes the VM. Nothing
	 * is chowned until every part has been checked. */
	for (int i = 0; r >= 0 && i < 3; i++)
		if (fd[i] >= 0 && fchownat(fd[i], "", uid, gid,
					   AT_EMPTY_PATH) < 0) {
			log_warn("suspended/%s%s%s", user, i ? "/" : "",
				 i ? name[i - 1] : "");
			r = -errno;
		}
	for (int i = 0; i < 3; i++)
		if (fd[i] >= 0)
			close(fd[i]);
	return r < 0 ? r : 0;
}

void sdir_load_suspended(int susp_fd,
			 void (*found)(const char *user, void *arg),
			 void *arg)
{
	/* a new open file description: readdir must not move susp_fd's */
	int fd = openat(susp_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;

	if (!d) {
		log_warn("suspended/");
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((e = readdir(d)))
		if (sshd_valid_user(e->d_name) &&
		    own_suspended(susp_fd, e->d_name, geteuid(), getegid()) ==
			    0)
			found(e->d_name, arg);
	closedir(d);
}
