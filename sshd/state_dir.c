#include "sshd/state_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libssh/libssh.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "sshd/authkeys.h"

static int own_dir(const char *state_dir, const char *name, mode_t mode,
		   uid_t uid, gid_t gid, char *err, size_t errlen)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", state_dir, name);
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		goto fail;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		goto fail;
	if (fchown(fd, uid, gid) < 0 || fchmod(fd, mode) < 0) {
		close(fd);
		goto fail;
	}
	return fd;
fail:
	snprintf(err, errlen, "%s: %s", path, strerror(errno));
	return -errno;
}

int sdir_setup(const char *state_dir, uid_t uid, gid_t gid, int *susp_fd,
	       int *run_fd, char *err, size_t errlen)
{
	if (mkdir(state_dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", state_dir, strerror(errno));
		return -errno;
	}
	*susp_fd = own_dir(state_dir, "suspended", 0700, uid, gid, err,
			   errlen);
	if (*susp_fd < 0)
		return *susp_fd;
	*run_fd = own_dir(state_dir, "run", 0755, uid, gid, err, errlen);
	if (*run_fd < 0) {
		close(*susp_fd);
		*susp_fd = -1;
		return *run_fd;
	}
	return 0;
}

int sdir_host_key(const char *path, char *err, size_t errlen)
{
	ssh_key key = NULL;
	int r;

	if (access(path, R_OK) == 0)
		return 0;
	if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK)
		goto fail;
	r = ssh_pki_export_privkey_file(key, NULL, NULL, NULL, path);
	ssh_key_free(key);
	if (r != SSH_OK)
		goto fail;
	chmod(path, 0600);
	log_info("host key created: %s", path);
	return 0;
fail:
	snprintf(err, errlen, "%s: cannot create the host key", path);
	return -EIO;
}

static void own_suspended(int susp_fd, const char *user, uid_t uid,
			  gid_t gid)
{
	static const char *const name[] = { "", "/state", "/pages" };
	char p[300];

	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s%s", user, name[i]);
		if (fchownat(susp_fd, p, uid, gid, AT_SYMLINK_NOFOLLOW) < 0 &&
		    errno != ENOENT)
			log_warn("suspended/%s", p);
	}
}

void sdir_load_suspended(int susp_fd, uid_t uid, gid_t gid,
			 void (*found)(const char *user, void *arg),
			 void *arg)
{
	int fd = openat(susp_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;

	while (d && (e = readdir(d))) {
		char st[300];

		snprintf(st, sizeof(st), "%s/state", e->d_name);
		if (!sshd_valid_user(e->d_name) ||
		    faccessat(susp_fd, st, R_OK, 0) != 0)
			continue;
		/* Written by an earlier run, perhaps as another user: the
		 * worker that resumes it runs as the clone user. */
		own_suspended(susp_fd, e->d_name, uid, gid);
		found(e->d_name, arg);
	}
	if (d)
		closedir(d);
	else if (fd >= 0)
		close(fd);
}

/* A suspended VM's copy on disk is dropped once the VM runs again (its
 * pages are in the worker's memory by then) or is gone: a restart after a
 * crash must not bring back a state older than the one lost with it. */
void sdir_suspend_remove(int susp_fd, const char *user)
{
	char p[64];

	snprintf(p, sizeof(p), "%s/state", user);
	unlinkat(susp_fd, p, 0);
	snprintf(p, sizeof(p), "%s/pages", user);
	unlinkat(susp_fd, p, 0);
	unlinkat(susp_fd, user, AT_REMOVEDIR);
}
