/* The state directory and the host key on disk (sshd/state_dir.c), on real
 * temporary directories. Run as root, like `clone serve`: what a worker (or,
 * in the older layout, the clone user) planted in suspended/ must not make
 * root chown or read anything outside it, the front-end can no longer touch
 * suspended/ at all, and no private key is ever readable by others, not
 * even for a moment. */
#include "sshd/state_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libssh/libssh.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "sshd/server.h"

/* the clone user, as far as these tests go */
#define CLONE_UID 12345
#define CLONE_GID 12346

static char top[64];		/* this test's temporary directory */

static char *at(const char *rel)
{
	static char buf[4][512];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", top, rel);
	return buf[i];
}

static int setup(void **state)
{
	(void)state;
	snprintf(top, sizeof(top), "/tmp/clone-sdir-XXXXXX");
	assert_non_null(mkdtemp(top));
	return 0;
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
	nftw(top, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	umask(022);
	return 0;
}

static void need_root(void)
{
	if (geteuid() != 0) {
		print_message("SKIP: needs root (chown to the clone user)\n");
		skip();
	}
}

static void put(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void assert_file(const char *path, const char *text, uid_t uid)
{
	char buf[256] = { 0 };
	struct stat st;
	int fd;

	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_uid, uid);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_true(read(fd, buf, sizeof(buf) - 1) >= 0);
	close(fd);
	assert_string_equal(buf, text);
}

static void assert_dir(const char *path, mode_t mode, uid_t uid, gid_t gid)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	if ((st.st_mode & 07777) != mode)
		fail_msg("%s: mode %04o, not %04o", path, st.st_mode & 07777,
			 mode);
	assert_int_equal(st.st_uid, uid);
	assert_int_equal(st.st_gid, gid);
}

/* ---- the host key ------------------------------------------------------ */

/* A good key file (0600, ours) at path. */
static void make_key(const char *path)
{
	char err[256];

	assert_int_equal(sdir_host_key(path, err, sizeof(err)), 0);
}

static void assert_key_refused(const char *path, const char *why)
{
	char err[256] = "";

	assert_true(sdir_host_key(path, err, sizeof(err)) < 0);
	/* "PATH: reason", as OpenSSH's UNPROTECTED PRIVATE KEY FILE */
	if (strncmp(err, path, strlen(path)) != 0 || !strstr(err, why))
		fail_msg("message \"%s\": not \"%s: ...%s...\"", err, path,
			 why);
}

/* The mode of every file opened in dir while fn runs in a child, seen at
 * the moment it is opened (a fanotify permission event holds the opener
 * until we answer): the mode a file is created with, before anything can
 * chmod it. Returns how many opens were seen; -1: no fanotify here. */
static int modes_at_open(const char *dir, void (*fn)(void), mode_t *modes,
			 int max)
{
	int fan, n = 0, st;
	pid_t pid;

	fan = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC,
			    O_RDONLY | O_CLOEXEC);
	if (fan < 0)
		return -1;
	if (fanotify_mark(fan, FAN_MARK_ADD, FAN_OPEN_PERM | FAN_EVENT_ON_CHILD,
			  AT_FDCWD, dir) < 0) {
		close(fan);
		return -1;
	}
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		fn();
		_exit(0);
	}
	for (;;) {
		struct pollfd p = { .fd = fan, .events = POLLIN };
		struct fanotify_event_metadata ev[8];
		ssize_t len;

		if (waitpid(pid, &st, WNOHANG) == pid)
			break;
		if (poll(&p, 1, 100) <= 0)
			continue;
		len = read(fan, ev, sizeof(ev));
		for (struct fanotify_event_metadata *e = ev;
		     len > 0 && FAN_EVENT_OK(e, len);
		     e = FAN_EVENT_NEXT(e, len)) {
			struct fanotify_response r = { .fd = e->fd,
						       .response = FAN_ALLOW };
			struct stat fst;

			if (e->fd < 0)
				continue;
			if (fstat(e->fd, &fst) == 0 && S_ISREG(fst.st_mode) &&
			    n < max)
				modes[n++] = fst.st_mode & 07777;
			assert_int_equal(write(fan, &r, sizeof(r)),
					 (ssize_t)sizeof(r));
			close(e->fd);
		}
	}
	close(fan);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	return n;
}

static void create_key_umask0(void)
{
	char err[256];

	/* The least careful caller: whatever the umask, the key is 0600. */
	umask(0);
	if (sdir_host_key(at("keys/k"), err, sizeof(err)) < 0)
		_exit(1);
}

static void test_key_created_0600(void **state)
{
	mode_t modes[8];
	struct stat st;
	ssh_key key = NULL;
	int n;

	(void)state;
	assert_int_equal(mkdir(at("keys"), 0700), 0);
	n = modes_at_open(at("keys"), create_key_umask0, modes, 8);
	if (n < 0) {
		print_message("SKIP test_key_created_0600: no fanotify "
			      "permission events here (not root?)\n");
		skip();
	}
	assert_true(n >= 1);
	for (int i = 0; i < n; i++)
		if (modes[i] != 0600)
			fail_msg("the key was opened with mode %04o", modes[i]);
	assert_int_equal(lstat(at("keys/k"), &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_uid, geteuid());
	assert_int_equal(ssh_pki_import_privkey_file(at("keys/k"), NULL, NULL,
						     NULL, &key), SSH_OK);
	assert_int_equal(ssh_key_type(key), SSH_KEYTYPE_ED25519);
	ssh_key_free(key);
}

/* The process umask is the caller's again afterwards. */
static void test_key_umask_kept(void **state)
{
	(void)state;
	umask(027);
	make_key(at("k"));
	assert_int_equal(umask(022), 027);
}

static void test_key_existing_kept(void **state)
{
	char before[512] = { 0 }, after[512] = { 0 };
	int fd;

	(void)state;
	make_key(at("k"));
	fd = open(at("k"), O_RDONLY);
	assert_true(read(fd, before, sizeof(before) - 1) > 0);
	close(fd);
	make_key(at("k"));
	fd = open(at("k"), O_RDONLY);
	assert_true(read(fd, after, sizeof(after) - 1) > 0);
	close(fd);
	assert_string_equal(before, after);
}

/* Any group or other bit: refused, not quietly fixed (it may have leaked
 * already). */
static void key_mode_refused(mode_t mode, const char *text)
{
	struct stat st;

	make_key(at("k"));
	assert_int_equal(chmod(at("k"), mode), 0);
	assert_key_refused(at("k"), text);
	assert_int_equal(stat(at("k"), &st), 0);
	assert_int_equal(st.st_mode & 07777, mode);
}

static void test_key_0644_refused(void **state)
{
	(void)state;
	key_mode_refused(0644, "mode 0644");
}

static void test_key_0640_refused(void **state)
{
	(void)state;
	key_mode_refused(0640, "mode 0640");
}

static void test_key_symlink_refused(void **state)
{
	(void)state;
	make_key(at("real"));
	assert_int_equal(symlink(at("real"), at("k")), 0);
	assert_key_refused(at("k"), "symbolic link");
}

static void test_key_fifo_refused(void **state)
{
	(void)state;
	assert_int_equal(mkfifo(at("k"), 0600), 0);
	alarm(10);		/* opening a FIFO would hang: fail instead */
	assert_key_refused(at("k"), "not a regular file");
	alarm(0);
}

static void test_key_other_owner_refused(void **state)
{
	(void)state;
	need_root();
	make_key(at("k"));
	assert_int_equal(chown(at("k"), CLONE_UID, CLONE_GID), 0);
	assert_key_refused(at("k"), "owned by uid 12345");
}

/* ---- state_dir and its folders ------------------------------------------ */

static void assert_setup_ok(const char *dir, int *susp, int *run)
{
	char err[256] = "";

	if (sdir_setup(dir, CLONE_UID, CLONE_GID, susp, run, err,
		       sizeof(err)) < 0)
		fail_msg("sdir_setup: %s", err);
}

static void assert_same(int fd, const char *path)
{
	struct stat a, b;

	assert_int_equal(fstat(fd, &a), 0);
	assert_int_equal(lstat(path, &b), 0);
	assert_true(a.st_dev == b.st_dev && a.st_ino == b.st_ino);
}

static void test_setup_fresh(void **state)
{
	int susp = -1, run = -1;

	(void)state;
	need_root();
	assert_setup_ok(at("state"), &susp, &run);
	assert_dir(at("state"), 0700, 0, 0);
	assert_dir(at("state/templates"), 0700, 0, 0);
	/* root's: workers have directories of their own in vm/, and only
	 * the manager moves suspended VMs in and out */
	assert_dir(at("state/suspended"), 0700, 0, 0);
	assert_dir(at("state/vm"), 0700, 0, 0);
	assert_dir(at("state/run"), 0755, CLONE_UID, CLONE_GID);
	assert_same(susp, at("state/suspended"));
	assert_same(run, at("state/run"));
	close(susp);
	close(run);
}

/* Folders left 0777, or owned by the wrong user, are fixed at start. */
static void test_setup_fixes_modes(void **state)
{
	static const char *const sub[] = { "templates", "suspended", "run",
					   "vm" };
	int susp = -1, run = -1;

	(void)state;
	need_root();
	assert_int_equal(mkdir(at("state"), 0777), 0);
	assert_int_equal(chmod(at("state"), 0777), 0);
	assert_int_equal(chown(at("state"), CLONE_UID, CLONE_GID), 0);
	/* suspended/ as the older layout left it: the clone user's */
	for (int i = 0; i < 4; i++) {
		char rel[64];
		bool clone = i != 2;

		snprintf(rel, sizeof(rel), "state/%s", sub[i]);
		assert_int_equal(mkdir(at(rel), 0777), 0);
		assert_int_equal(chmod(at(rel), 0777), 0);
		assert_int_equal(chown(at(rel), clone ? CLONE_UID : 0,
				       clone ? CLONE_GID : 0), 0);
	}
	assert_setup_ok(at("state"), &susp, &run);
	assert_dir(at("state"), 0700, 0, 0);
	assert_dir(at("state/templates"), 0700, 0, 0);
	assert_dir(at("state/suspended"), 0700, 0, 0);
	assert_dir(at("state/vm"), 0700, 0, 0);
	assert_dir(at("state/run"), 0755, CLONE_UID, CLONE_GID);
	close(susp);
	close(run);
}

/* sdir_setup(dir) fails with "PATH: ...why..." */
static void assert_setup_refused(const char *dir, const char *path,
				 const char *why)
{
	char err[256] = "";
	int susp = -1, run = -1;

	assert_true(sdir_setup(dir, CLONE_UID, CLONE_GID, &susp, &run, err,
			       sizeof(err)) < 0);
	assert_int_equal(susp, -1);
	assert_int_equal(run, -1);
	if (strncmp(err, path, strlen(path)) != 0 || !strstr(err, why))
		fail_msg("message \"%s\": not \"%s: ...%s...\"", err, path,
			 why);
}

static void test_setup_symlink_refused(void **state)
{
	(void)state;
	need_root();
	assert_int_equal(mkdir(at("elsewhere"), 0755), 0);
	assert_int_equal(symlink(at("elsewhere"), at("state")), 0);
	assert_setup_refused(at("state"), at("state"), "symbolic link");
	/* nothing was made or changed where the link points */
	assert_dir(at("elsewhere"), 0755, 0, 0);
	assert_int_equal(access(at("elsewhere/suspended"), F_OK), -1);
}

static void test_setup_file_refused(void **state)
{
	(void)state;
	need_root();
	put(at("state"), "", 0600);
	assert_setup_refused(at("state"), at("state"), "not a directory");
}

/* suspended/ and run/ are given to the clone user: a link there (which
 * only root could have made) is refused rather than its target chowned. */
static void test_setup_symlinked_folder_refused(void **state)
{
	(void)state;
	need_root();
	assert_int_equal(mkdir(at("state"), 0700), 0);
	assert_int_equal(mkdir(at("etc"), 0755), 0);
	assert_int_equal(symlink(at("etc"), at("state/suspended")), 0);
	assert_setup_refused(at("state"), at("state/suspended"),
			     "symbolic link");
	assert_dir(at("etc"), 0755, 0, 0);
	/* vm/ holds workers' directories: never a link either */
	assert_int_equal(unlink(at("state/suspended")), 0);
	assert_int_equal(symlink(at("etc"), at("state/vm")), 0);
	assert_setup_refused(at("state"), at("state/vm"), "symbolic link");
	assert_dir(at("etc"), 0755, 0, 0);
}

/* ---- suspended/, written by workers ------------------------------------ */

struct found {
	char users[8][33];
	int n;
};

static void found_cb(const char *user, void *arg)
{
	struct found *f = arg;

	if (f->n < 8)
		snprintf(f->users[f->n++], sizeof(f->users[0]), "%s", user);
}

static bool was_found(const struct found *f, const char *user)
{
	for (int i = 0; i < f->n; i++)
		if (strcmp(f->users[i], user) == 0)
			return true;
	return false;
}

/* state/ with its folders made, alice suspended by an earlier run (in the
 * older layout, as the clone user), and files of root's outside
 * suspended/: etc/shadow. */
static int make_state(void)
{
	int susp = -1, run = -1;

	need_root();
	assert_setup_ok(at("state"), &susp, &run);
	close(run);
	assert_int_equal(mkdir(at("state/suspended/alice"), 0700), 0);
	put(at("state/suspended/alice/state"), "alice state", 0600);
	put(at("state/suspended/alice/pages"), "alice pages", 0600);
	assert_int_equal(chown(at("state/suspended/alice/state"), CLONE_UID,
			       CLONE_GID), 0);
	assert_int_equal(chown(at("state/suspended/alice/pages"), CLONE_UID,
			       CLONE_GID), 0);
	assert_int_equal(mkdir(at("etc"), 0755), 0);
	put(at("etc/shadow"), "root:secret", 0600);
	put(at("etc/state"), "root's state", 0600);
	put(at("etc/pages"), "root's pages", 0600);
	return susp;
}

static void assert_etc_untouched(void)
{
	assert_dir(at("etc"), 0755, 0, 0);
	assert_file(at("etc/shadow"), "root:secret", 0);
	assert_file(at("etc/state"), "root's state", 0);
	assert_file(at("etc/pages"), "root's pages", 0);
}

static void load(int susp, struct found *f)
{
	memset(f, 0, sizeof(*f));
	sdir_load_suspended(susp, found_cb, f);
	/* the genuine one is found and made root's: the manager gives it
	 * to the worker that resumes it */
	assert_true(was_found(f, "alice"));
	assert_file(at("state/suspended/alice/state"), "alice state", 0);
	assert_file(at("state/suspended/alice/pages"), "alice pages", 0);
}

/* suspended/bob -> etc: not a VM, and nothing in etc is chowned. */
static void test_load_user_dir_link(void **state)
{
	struct found f;
	int susp;

	(void)state;
	susp = make_state();
	assert_int_equal(symlink(at("etc"), at("state/suspended/bob")), 0);
	load(susp, &f);
	assert_false(was_found(&f, "bob"));
	assert_etc_untouched();
	close(susp);
}

/* suspended/bob/state -> etc/shadow: not a VM, etc/shadow not chowned. */
static void test_load_state_link(void **state)
{
	struct found f;
	int susp;

	(void)state;
	susp = make_state();
	assert_int_equal(mkdir(at("state/suspended/bob"), 0700), 0);
	assert_int_equal(symlink(at("etc/shadow"),
				 at("state/suspended/bob/state")), 0);
	assert_int_equal(symlink(at("etc/pages"),
				 at("state/suspended/bob/pages")), 0);
	load(susp, &f);
	assert_false(was_found(&f, "bob"));
	assert_etc_untouched();
	close(susp);
}

/* suspended/bob/state, a hard link to etc/shadow (possible where
 * fs.protected_hardlinks is 0): chowning it would chown etc/shadow. */
static void test_load_state_hard_link(void **state)
{
	struct found f;
	int susp;

	(void)state;
	susp = make_state();
	assert_int_equal(mkdir(at("state/suspended/bob"), 0700), 0);
	assert_int_equal(link(at("etc/shadow"),
			      at("state/suspended/bob/state")), 0);
	load(susp, &f);
	assert_false(was_found(&f, "bob"));
	assert_etc_untouched();
	close(susp);
}

/* A state that is no regular file (a FIFO would hang whoever reads it). */
static void test_load_state_fifo(void **state)
{
	struct found f;
	int susp;

	(void)state;
	susp = make_state();
	assert_int_equal(mkdir(at("state/suspended/bob"), 0700), 0);
	assert_int_equal(mkfifo(at("state/suspended/bob/state"), 0600), 0);
	load(susp, &f);
	assert_false(was_found(&f, "bob"));
	close(susp);
}

/* The front-end is confined with no way to touch suspended/ (the manager
 * moves and removes suspended VMs) nor to signal anyone (workers have uids
 * of their own; the manager kills them): mkdirat, unlinkat and kill kill
 * it. */
static void test_frontend_filter_no_suspended(void **state)
{
	static const char *const what[] = { "mkdirat", "unlinkat", "kill" };
	int susp, st;

	(void)state;
#ifdef __SANITIZE_ADDRESS__
	print_message("SKIP test_frontend_filter_no_suspended: under ASan, "
		      "whose runtime makes system calls the filter does not "
		      "allow\n");
	skip();
#endif
	susp = make_state();
	for (int i = 0; i < 3; i++) {
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			if (sandbox_install(sshd_frontend_rules,
					    sshd_frontend_nrules) < 0)
				_exit(100);
			if (i == 0)
				mkdirat(susp, "mallory", 0700);
			else if (i == 1)
				unlinkat(susp, "alice", AT_REMOVEDIR);
			else
				kill(INT32_MAX, SIGKILL);	/* nobody */
			_exit(0);
		}
		assert_int_equal(waitpid(pid, &st, 0), pid);
		if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSYS)
			fail_msg("%s under the front-end's filter: status "
				 "0x%x, not SIGSYS", what[i], st);
	}
	assert_int_equal(access(at("state/suspended/mallory"), F_OK), -1);
	assert_file(at("state/suspended/alice/state"), "alice state",
		    CLONE_UID);
	close(susp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_key_created_0600),
		T(test_key_umask_kept),
		T(test_key_existing_kept),
		T(test_key_0644_refused),
		T(test_key_0640_refused),
		T(test_key_symlink_refused),
		T(test_key_fifo_refused),
		T(test_key_other_owner_refused),
		T(test_setup_fresh),
		T(test_setup_fixes_modes),
		T(test_setup_symlink_refused),
		T(test_setup_file_refused),
		T(test_setup_symlinked_folder_refused),
		T(test_load_user_dir_link),
		T(test_load_state_link),
		T(test_load_state_hard_link),
		T(test_load_state_fifo),
		T(test_frontend_filter_no_suspended),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
