/* Workers' directories and the suspended VMs the manager moves between
 * them and suspended/ (vmm/jail_dir.c), on real temporary directories, as
 * root like the manager. A worker taken over by its guest may plant
 * anything in its own directory before it is reaped (links to root's
 * files, hard links, FIFOs), and an older layout left suspended/ to the
 * clone user: nothing outside vm/<uid> and suspended/<user> is ever
 * moved, chowned or removed, and what is moved is a regular file of one
 * name. Also under the manager's seccomp filter, which must allow all of
 * it. */
#include "vmm/jail_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "vmm/manager.h"

#define UID 200007		/* a worker's */
#define OTHER 200008		/* another worker's */

static char top[64];
static int vm_fd = -1, susp_fd = -1;

static char *at(const char *rel)
{
	static char buf[4][512];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", top, rel);
	return buf[i];
}

static void put(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void assert_file(const char *path, const char *text, uid_t uid)
{
	char buf[256] = { 0 };
	struct stat st;
	int fd;

	if (lstat(path, &st) < 0)
		fail_msg("%s: %s", path, strerror(errno));
	assert_true(S_ISREG(st.st_mode));
	if (st.st_uid != uid)
		fail_msg("%s: owner %u, not %u", path, (unsigned)st.st_uid,
			 (unsigned)uid);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_true(read(fd, buf, sizeof(buf) - 1) >= 0);
	close(fd);
	assert_string_equal(buf, text);
}

static void assert_dir(const char *path, mode_t mode, uid_t uid)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		fail_msg("%s: %s", path, strerror(errno));
	assert_true(S_ISDIR(st.st_mode));
	if ((st.st_mode & 07777) != mode || st.st_uid != uid ||
	    st.st_gid != uid)
		fail_msg("%s: mode %04o owner %u:%u, not %04o %u:%u", path,
			 st.st_mode & 07777, (unsigned)st.st_uid,
			 (unsigned)st.st_gid, mode, (unsigned)uid,
			 (unsigned)uid);
}

static void assert_gone(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0 || errno != ENOENT)
		fail_msg("%s: still there", path);
}

/* state/{vm,suspended} (root's, 0700) and etc/ with root's files, which
 * must come through every test untouched. */
static int setup(void **state)
{
	(void)state;
	if (geteuid() != 0)
		return 0;
	snprintf(top, sizeof(top), "/tmp/clone-jail-XXXXXX");
	assert_non_null(mkdtemp(top));
	assert_int_equal(mkdir(at("state"), 0700), 0);
	assert_int_equal(mkdir(at("state/vm"), 0700), 0);
	assert_int_equal(mkdir(at("state/suspended"), 0700), 0);
	assert_int_equal(mkdir(at("etc"), 0755), 0);
	put(at("etc/shadow"), "root:secret", 0600);
	put(at("etc/state"), "root's state", 0600);
	put(at("etc/pages"), "root's pages", 0600);
	vm_fd = open(at("state/vm"), O_RDONLY | O_DIRECTORY);
	susp_fd = open(at("state/suspended"), O_RDONLY | O_DIRECTORY);
	assert_true(vm_fd >= 0 && susp_fd >= 0);
	return 0;
}

static void assert_etc_untouched(void)
{
	struct stat st;

	assert_int_equal(lstat(at("etc"), &st), 0);
	assert_true(S_ISDIR(st.st_mode) && st.st_uid == 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_file(at("etc/shadow"), "root:secret", 0);
	assert_file(at("etc/state"), "root's state", 0);
	assert_file(at("etc/pages"), "root's pages", 0);
}

static int rm_one(const char *p, const struct stat *st, int flag,
		  struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static int teardown(void **state)
{
	(void)state;
	if (geteuid() != 0)
		return 0;
	assert_etc_untouched();
	close(vm_fd);
	close(susp_fd);
	nftw(top, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static void need_root(void)
{
	if (geteuid() != 0) {
		print_message("SKIP: needs root (chown to workers' uids)\n");
		skip();
	}
}

static void make_ok(uid_t uid)
{
	char err[256] = "";

	if (jail_dir_make(vm_fd, uid, uid, uid, err, sizeof(err)) < 0)
		fail_msg("jail_dir_make: %s", err);
}

/* A worker suspended into its directory: what it writes there. */
static void worker_wrote(const char *state, const char *pages)
{
	make_ok(UID);
	put(at("state/vm/200007/state"), state, 0600);
	if (pages)
		put(at("state/vm/200007/pages"), pages, 0600);
	assert_int_equal(chown(at("state/vm/200007/state"), UID, UID), 0);
	if (pages)
		assert_int_equal(chown(at("state/vm/200007/pages"), UID, UID),
				 0);
}

/* ---- a worker's own directory ------------------------------------------ */

static void test_make_fresh(void **state)
{
	(void)state;
	need_root();
	make_ok(UID);
	assert_dir(at("state/vm/200007"), 0700, UID);
	/* the umask does not make it wider or narrower */
	umask(0);
	make_ok(OTHER);
	umask(077);
	assert_int_equal(jail_dir_remove(vm_fd, OTHER), 0);
	make_ok(OTHER);
	umask(022);
	assert_dir(at("state/vm/200008"), 0700, OTHER);
}

/* What an earlier worker of that uid left, links to root's files and a
 * nested directory among it, is gone; what the links name is not. */
static void test_make_empties(void **state)
{
	(void)state;
	need_root();
	make_ok(UID);
	put(at("state/vm/200007/state"), "old", 0600);
	assert_int_equal(symlink(at("etc"), at("state/vm/200007/etc")), 0);
	assert_int_equal(symlink(at("etc/shadow"),
				 at("state/vm/200007/pages")), 0);
	assert_int_equal(link(at("etc/state"), at("state/vm/200007/hard")), 0);
	assert_int_equal(mkfifo(at("state/vm/200007/fifo"), 0600), 0);
	assert_int_equal(mkdir(at("state/vm/200007/d"), 0700), 0);
	assert_int_equal(symlink(at("etc"), at("state/vm/200007/d/up")), 0);
	make_ok(UID);
	assert_dir(at("state/vm/200007"), 0700, UID);
	assert_gone(at("state/vm/200007/state"));
	assert_gone(at("state/vm/200007/d"));
	assert_gone(at("state/vm/200007/fifo"));
	assert_etc_untouched();
}

/* vm/<uid> planted as a link to etc: the link goes, etc stays root's. */
static void test_make_over_link(void **state)
{
	(void)state;
	need_root();
	assert_int_equal(symlink(at("etc"), at("state/vm/200007")), 0);
	make_ok(UID);
	assert_dir(at("state/vm/200007"), 0700, UID);
	assert_etc_untouched();
	assert_int_equal(jail_dir_remove(vm_fd, UID), 0);
	assert_gone(at("state/vm/200007"));
}

/* At the manager's start: everything in vm/ goes, nothing it names. */
static void test_clear(void **state)
{
	(void)state;
	need_root();
	make_ok(UID);
	make_ok(OTHER);
	put(at("state/vm/200007/state"), "x", 0600);
	assert_int_equal(symlink(at("etc"), at("state/vm/200008/e")), 0);
	assert_int_equal(symlink(at("etc"), at("state/vm/link")), 0);
	assert_int_equal(jail_clear(vm_fd), 0);
	assert_gone(at("state/vm/200007"));
	assert_gone(at("state/vm/200008"));
	assert_gone(at("state/vm/link"));
	assert_dir(at("state/vm"), 0700, 0);
}

/* ---- stash: a reaped worker's suspended VM kept as the user's ----------- */

static int stash(const char *user, char *err, size_t len)
{
	return jail_stash(vm_fd, UID, susp_fd, user, 0, 0, err, len);
}

static void test_stash(void **state)
{
	char err[256] = "";

	(void)state;
	need_root();
	/* an older copy is replaced, not merged */
	assert_int_equal(mkdir(at("state/suspended/alice"), 0755), 0);
	put(at("state/suspended/alice/stale"), "old", 0600);
	worker_wrote("alice state", "alice pages");
	put(at("state/vm/200007/state.tmp"), "junk", 0600);
	if (stash("alice", err, sizeof(err)) < 0)
		fail_msg("stash: %s", err);
	/* root's now, in a directory of root's no worker can enter */
	assert_dir(at("state/suspended/alice"), 0700, 0);
	assert_file(at("state/suspended/alice/state"), "alice state", 0);
	assert_file(at("state/suspended/alice/pages"), "alice pages", 0);
	assert_gone(at("state/suspended/alice/stale"));
	assert_gone(at("state/suspended/alice/state.tmp"));
	assert_gone(at("state/vm/200007/state"));
	/* the rest goes with the worker's directory */
	assert_int_equal(jail_dir_remove(vm_fd, UID), 0);
	assert_gone(at("state/vm/200007"));
}

/* A VM with no pages of its own is kept too; no state is not a VM. */
static void test_stash_parts(void **state)
{
	char err[256] = "";

	(void)state;
	need_root();
	worker_wrote("bob state", NULL);
	assert_int_equal(stash("bob", err, sizeof(err)), 0);
	assert_file(at("state/suspended/bob/state"), "bob state", 0);
	make_ok(UID);
	assert_int_equal(stash("carol", err, sizeof(err)), -ENOENT);
	assert_gone(at("state/suspended/carol"));
	/* not a user name: nothing done */
	worker_wrote("x", "y");
	assert_int_equal(stash("../etc", err, sizeof(err)), -EINVAL);
	assert_int_equal(stash("", err, sizeof(err)), -EINVAL);
	assert_file(at("state/vm/200007/state"), "x", UID);
}

/* What a hostile worker plants instead of its state: a link to root's
 * file, a hard link to it, a FIFO, a directory. Refused; nothing outside
 * chowned or moved; suspended/<user> not made. */
static void stash_refused(void (*plant)(void), const char *why)
{
	char err[256] = "";

	worker_wrote("evil", "evil");
	plant();
	assert_int_equal(stash("mallory", err, sizeof(err)), -EPERM);
	if (!strstr(err, why))
		fail_msg("\"%s\": not \"...%s...\"", err, why);
	assert_gone(at("state/suspended/mallory"));
	assert_etc_untouched();
}

static void plant_symlink(void)
{
	unlink(at("state/vm/200007/state"));
	assert_int_equal(symlink(at("etc/shadow"),
				 at("state/vm/200007/state")), 0);
}

static void plant_hard_link(void)
{
	unlink(at("state/vm/200007/pages"));
	assert_int_equal(link(at("etc/pages"), at("state/vm/200007/pages")),
			 0);
}

static void plant_fifo(void)
{
	unlink(at("state/vm/200007/pages"));
	assert_int_equal(mkfifo(at("state/vm/200007/pages"), 0600), 0);
}

static void plant_dir(void)
{
	unlink(at("state/vm/200007/state"));
	assert_int_equal(mkdir(at("state/vm/200007/state"), 0700), 0);
}

static void test_stash_hostile(void **state)
{
	(void)state;
	need_root();
	stash_refused(plant_symlink, "state: a symbolic link");
	stash_refused(plant_hard_link, "pages: a file with other names");
	stash_refused(plant_fifo, "pages: not a regular file");
	stash_refused(plant_dir, "state: not a regular file");
}

/* vm/<uid> itself a link (only root could make one: still refused). */
static void test_stash_dir_link(void **state)
{
	char err[256] = "";

	(void)state;
	need_root();
	assert_int_equal(symlink(at("etc"), at("state/vm/200007")), 0);
	assert_true(stash("mallory", err, sizeof(err)) < 0);
	assert_gone(at("state/suspended/mallory"));
}

/* ---- unstash: a suspended VM into the worker that resumes it ----------- */

static int unstash(const char *user, uid_t uid, char *err, size_t len)
{
	return jail_unstash(susp_fd, user, vm_fd, uid, uid, uid, err, len);
}

static void suspended(const char *user, const char *state,
		      const char *pages)
{
	char p[128];

	snprintf(p, sizeof(p), "state/suspended/%s", user);
	assert_int_equal(mkdir(at(p), 0700), 0);
	snprintf(p, sizeof(p), "state/suspended/%s/state", user);
	put(at(p), state, 0600);
	snprintf(p, sizeof(p), "state/suspended/%s/pages", user);
	if (pages)
		put(at(p), pages, 0600);
}

static void test_unstash(void **state)
{
	char err[256] = "";

	(void)state;
	need_root();
	suspended("alice", "alice state", "alice pages");
	make_ok(OTHER);
	if (unstash("alice", OTHER, err, sizeof(err)) < 0)
		fail_msg("unstash: %s", err);
	/* the worker's, in its own directory; suspended/alice gone */
	assert_file(at("state/vm/200008/state"), "alice state", OTHER);
	assert_file(at("state/vm/200008/pages"), "alice pages", OTHER);
	assert_gone(at("state/suspended/alice"));
	/* none there (any more) */
	assert_int_equal(unstash("alice", OTHER, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "suspended/alice: no suspended VM"));
	assert_int_equal(unstash("../vm", OTHER, err, sizeof(err)), -EINVAL);
}

/* Never over a file in the worker's directory. */
static void test_unstash_no_replace(void **state)
{
	char err[256] = "";

	(void)state;
	need_root();
	suspended("alice", "alice state", NULL);
	make_ok(OTHER);
	put(at("state/vm/200008/state"), "mine", 0600);
	assert_int_equal(unstash("alice", OTHER, err, sizeof(err)), -EEXIST);
	assert_file(at("state/vm/200008/state"), "mine", 0);
}

/* suspended/ as an older layout left it, the clone user's: a link or a
 * hard link planted there is refused, and nothing outside is chowned to
 * the worker. */
static void test_unstash_hostile(void **state)
{
	char err[256] = "";

	(void)state;
	need_root();
	make_ok(OTHER);
	assert_int_equal(mkdir(at("state/suspended/bob"), 0700), 0);
	assert_int_equal(symlink(at("etc/shadow"),
				 at("state/suspended/bob/state")), 0);
	assert_int_equal(unstash("bob", OTHER, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "a symbolic link"));
	assert_int_equal(unlink(at("state/suspended/bob/state")), 0);
	assert_int_equal(link(at("etc/state"), at("state/suspended/bob/state")),
			 0);
	assert_int_equal(unstash("bob", OTHER, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "hard links"));
	assert_int_equal(unlink(at("state/suspended/bob/state")), 0);
	assert_int_equal(rmdir(at("state/suspended/bob")), 0);
	assert_int_equal(symlink(at("etc"), at("state/suspended/bob")), 0);
	assert_int_equal(unstash("bob", OTHER, err, sizeof(err)), -ELOOP);
	assert_gone(at("state/vm/200008/state"));
}

/* ---- drop: a suspended VM that is gone --------------------------------- */

static void test_drop(void **state)
{
	(void)state;
	need_root();
	suspended("alice", "a", "b");
	assert_int_equal(symlink(at("etc"), at("state/suspended/bob")), 0);
	assert_int_equal(jail_drop(susp_fd, "bob"), 0);
	assert_gone(at("state/suspended/bob"));
	assert_int_equal(jail_drop(susp_fd, "alice"), 0);
	assert_gone(at("state/suspended/alice"));
	assert_int_equal(jail_drop(susp_fd, "nobody-here"), 0);
	assert_int_equal(jail_drop(susp_fd, ".."), -EINVAL);
	assert_int_equal(jail_drop(susp_fd, "a/b"), -EINVAL);
}

/* ---- all of it under the manager's filter ------------------------------- */

static int all_steps(void)
{
	char err[256];

	if (jail_dir_make(vm_fd, UID, UID, UID, err, sizeof(err)) < 0)
		return 1;
	put(at("state/vm/200007/state"), "s", 0600);
	put(at("state/vm/200007/pages"), "p", 0600);
	if (jail_stash(vm_fd, UID, susp_fd, "alice", 0, 0, err,
		       sizeof(err)) < 0 ||
	    jail_dir_remove(vm_fd, UID) < 0)
		return 2;
	if (jail_dir_make(vm_fd, OTHER, OTHER, OTHER, err, sizeof(err)) < 0 ||
	    jail_unstash(susp_fd, "alice", vm_fd, OTHER, OTHER, OTHER, err,
			 sizeof(err)) < 0)
		return 3;
	if (jail_drop(susp_fd, "bob") < 0 || jail_clear(vm_fd) < 0)
		return 4;
	return 0;
}

static void test_under_manager_filter(void **state)
{
	pid_t pid;
	int st;

	(void)state;
	need_root();
#ifdef __SANITIZE_ADDRESS__
	print_message("SKIP test_under_manager_filter: under ASan, whose "
		      "runtime makes system calls the filter does not "
		      "allow\n");
	skip();
#endif
	suspended("bob", "s", NULL);	/* mkdir: not the manager's call */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (sandbox_install(vmm_manager_rules, vmm_manager_nrules) < 0)
			_exit(100);
		_exit(all_steps());
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("status 0x%x", st);
	assert_gone(at("state/vm/200008"));
	assert_gone(at("state/suspended/alice"));
	assert_gone(at("state/suspended/bob"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_make_fresh),
		T(test_make_empties),
		T(test_make_over_link),
		T(test_clear),
		T(test_stash),
		T(test_stash_parts),
		T(test_stash_hostile),
		T(test_stash_dir_link),
		T(test_unstash),
		T(test_unstash_no_replace),
		T(test_unstash_hostile),
		T(test_drop),
		T(test_under_manager_filter),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
