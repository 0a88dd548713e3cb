/* Workers' jails as the manager keeps them (manager_jail.h). */
#include "vmm/manager_jail.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "console/agent_proto.h"
#include "vmm/jail_dir.h"

/* <state_dir>/name, a directory of ours that nobody else may enter:
 * sdir_setup() made it so, but it is checked again before root puts
 * anything of a user's in it. */
static int own_dir(const char *state_dir, const char *name, char *path,
		   size_t len)
{
	struct stat st;
	int fd;

	snprintf(path, len, "%s/%s", state_dir, name);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		fatal("manager: %s", path);
	if (fstat(fd, &st) < 0 || st.st_uid != geteuid() ||
	    (st.st_mode & 077))
		fatalx("manager: %s: not ours, or open to others", path);
	return fd;
}

void mjail_open(const char *state_dir, struct manager_jail *j,
		char *vm_path, size_t len)
{
	char susp_path[4096];
	int r;

	j->vm_path = vm_path;
	j->vm_fd = own_dir(state_dir, "vm", vm_path, len);
	j->susp_fd = own_dir(state_dir, "suspended", susp_path,
			     sizeof(susp_path));
	/* A VM they suspended and we kept is in suspended/. XXX one the
	 * server was killed with between its worker's write and our move
	 * (the few ms until the reap) is lost here: whose it was is only
	 * known in memory. */
	if ((r = jail_clear(j->vm_fd)) < 0)
		log_warnx("%s: emptying it: %s", vm_path, strerror(-r));
}

int mjail_take(const struct manager_jail *j, struct jail_uids *uids,
	       struct mjail *mj, struct worker_jail *wj, char *path,
	       size_t len, char *why, size_t whylen)
{
	bool root = geteuid() == 0;
	char err[256];
	uid_t uid;
	int r;

	if ((r = jail_uid_get(uids, &uid, why, whylen)) < 0) {
		log_warnx("%s", why);
		return r;
	}
	/* Not root: we cannot give it away, nor can the worker drop. */
	*wj = (struct worker_jail){ .uid = root ? uid : getuid(),
				    .gid = root ? uid : getgid(),
				    .root = path };
	r = jail_dir_make(j->vm_fd, uid, wj->uid, wj->gid, err, sizeof(err));
	if (r < 0) {
		log_warnx("%s", err);
		snprintf(why, whylen, "could not make its directory");
		jail_uid_put(uids, uid);
		return r;
	}
	snprintf(path, len, "%s/%u", j->vm_path, (unsigned)uid);
	*mj = (struct mjail){ .held = true, .uid = uid };
	return 0;
}

void mjail_release(const struct manager_jail *j, struct jail_uids *uids,
		   struct mjail *mj)
{
	int r;

	if (!mj->held)
		return;
	r = jail_dir_remove(j->vm_fd, mj->uid);
	if (r < 0)
		log_warnx("vm/%u: removing it: %s", (unsigned)mj->uid,
			  strerror(-r));
	jail_uid_put(uids, mj->uid);
	*mj = (struct mjail){ 0 };
}

const char *mjail_refused(const struct manager_jail *j, const char *user,
			  bool has_worker)
{
	if (!j)
		return "no worker directories";
	if (!agent_valid_user(user))
		return "not a user name";
	if (!has_worker)
		return "not a worker you hold";
	return NULL;
}

int mjail_stash(const struct manager_jail *j, const struct mjail *mj,
		pid_t pid)
{
	char err[256];
	int r = jail_stash(j->vm_fd, mj->uid, j->susp_fd, mj->stash,
			   geteuid(), getegid(), err, sizeof(err));

	if (r < 0)
		log_warnx("worker %d: keeping %s's suspended VM: %s",
			  (int)pid, mj->stash, err);
	return r;
}

int mjail_unstash(const struct manager_jail *j, struct mjail *mj, pid_t pid,
		  const char *user)
{
	bool root = geteuid() == 0;
	char err[256];
	int r;

	mj->unstashed = true;
	r = jail_unstash(j->susp_fd, user, j->vm_fd, mj->uid,
			 root ? mj->uid : getuid(), root ? mj->uid : getgid(),
			 err, sizeof(err));
	if (r < 0)
		log_warnx("worker %d: resuming %s's suspended VM: %s",
			  (int)pid, user, err);
	return r;
}

void mjail_drop(const struct manager_jail *j, const char *user)
{
	int r = j ? jail_drop(j->susp_fd, user) : -ENOENT;

	if (r < 0 && ctl_log_ok())
		log_warnx("suspended/%s: removing it: %s",
			  agent_valid_user(user) ? user : "?", strerror(-r));
}
