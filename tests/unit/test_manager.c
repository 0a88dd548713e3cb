/* The VM manager (issue 9 item 5): its seccomp table (a reason per entry,
 * nothing that execs, mounts, traces or opens the network; every call of
 * the worker's and the keys monitor's tables allowed, since theirs stack
 * on it), the filter stacking for real, and the manager itself with no
 * template: it lives through whatever the front-end sends, ends only its
 * own workers, and forks the keys monitor through the hook. */
#include "vmm/manager.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "sshd/server.h"

static const int never[] = {
	SCMP_SYS(execve), SCMP_SYS(execveat), SCMP_SYS(fork),
	SCMP_SYS(vfork), SCMP_SYS(ptrace), SCMP_SYS(process_vm_readv),
	SCMP_SYS(process_vm_writev), SCMP_SYS(socket), SCMP_SYS(connect),
	SCMP_SYS(bind), SCMP_SYS(listen), SCMP_SYS(mount),
	SCMP_SYS(umount2), SCMP_SYS(pivot_root), SCMP_SYS(bpf),
	SCMP_SYS(perf_event_open), SCMP_SYS(init_module),
	SCMP_SYS(finit_module), SCMP_SYS(delete_module),
	SCMP_SYS(kexec_load), SCMP_SYS(userfaultfd), SCMP_SYS(keyctl),
	SCMP_SYS(unshare), SCMP_SYS(setns), SCMP_SYS(reboot),
	SCMP_SYS(swapon), SCMP_SYS(open_by_handle_at),
};

/* 0 if every entry has a one-line reason and none is in never[]. */
static int table_ok(const struct sandbox_rule *r, size_t n, char *why,
		    size_t len)
{
	for (size_t i = 0; i < n; i++) {
		if (!r[i].why || strlen(r[i].why) <= 5 ||
		    strchr(r[i].why, '\n')) {
			snprintf(why, len, "rule %zu (syscall %d): no reason",
				 i, r[i].nr);
			return -1;
		}
		for (size_t j = 0; j < sizeof(never) / sizeof(never[0]); j++)
			if (r[i].nr == never[j]) {
				snprintf(why, len, "rule %zu allows syscall %d",
					 i, r[i].nr);
				return -1;
			}
	}
	return 0;
}

static void test_table(void **state)
{
	char why[128];

	(void)state;
	assert_true(vmm_manager_nrules > 20);
	if (table_ok(vmm_manager_rules, vmm_manager_nrules, why,
		     sizeof(why)) < 0)
		fail_msg("%s", why);
}

/* The check catches an entry with no reason, or a bad call. */
static void test_table_check_catches(void **state)
{
	const struct sandbox_rule no_reason[] = {
		SANDBOX_ALLOW(read, "a reason here"),
		{ SCMP_SYS(write), NULL, 0, 0, { { 0 } } },
	};
	const struct sandbox_rule short_reason[] = {
		SANDBOX_ALLOW(read, "why"),
	};
	const struct sandbox_rule exec[] = {
		SANDBOX_ALLOW(execve, "run a helper"),
	};
	char why[128];

	(void)state;
	assert_int_equal(table_ok(no_reason, 2, why, sizeof(why)), -1);
	assert_int_equal(table_ok(short_reason, 1, why, sizeof(why)), -1);
	assert_int_equal(table_ok(exec, 1, why, sizeof(why)), -1);
}

/* Whether rule m admits argument value x (one comparison). */
static bool admits(const struct sandbox_rule *m, uint64_t x)
{
	const struct scmp_arg_cmp *a = &m->arg[0];

	if (m->nargs != 1)
		return m->nargs == 0;
	if (a->op == SCMP_CMP_EQ)
		return x == a->datum_a;
	if (a->op == SCMP_CMP_MASKED_EQ)
		return (x & a->datum_a) == a->datum_b;
	return false;
}

/* A child's filter stacks on the manager's: each of its entries must be
 * allowed here too, as broadly (or the same comparison, or one that
 * admits what the child's admits: clone's thread flags). */
/* What glibc's pthread_create passes to clone. */
#define THREAD_FLAGS (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | \
		      CLONE_THREAD | CLONE_SYSVSEM | CLONE_SETTLS | \
		      CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID)

static void covered(const struct sandbox_rule *r, size_t n, const char *who)
{
	for (size_t i = 0; i < n; i++) {
		bool ok = false;

		for (size_t j = 0; j < vmm_manager_nrules && !ok; j++) {
			const struct sandbox_rule *m = &vmm_manager_rules[j];

			if (m->nr != r[i].nr || m->err != r[i].err)
				continue;
			ok = m->nargs == 0 ||
			     (m->nargs == r[i].nargs &&
			      memcmp(m->arg, r[i].arg,
				     m->nargs * sizeof(m->arg[0])) == 0) ||
			     /* a pid filled in at install: theirs */
			     (r[i].nargs == 1 &&
			      r[i].arg[0].datum_a == SANDBOX_SELF_PID &&
			      m->nargs == 0) ||
			     (r[i].nr == SCMP_SYS(clone) &&
			      m->arg[0].arg == r[i].arg[0].arg &&
			      admits(m, r[i].arg[0].datum_b | THREAD_FLAGS));
		}
		if (!ok) {
			char *name = seccomp_syscall_resolve_num_arch(
				SCMP_ARCH_NATIVE, r[i].nr);

			fail_msg("%s rule %zu (%s) is not allowed by the "
				 "manager's table", who, i, name ? name : "?");
		}
	}
}

static void test_children_covered(void **state)
{
	(void)state;
	covered(vmm_worker_rules, vmm_worker_nrules, "worker");
	covered(sshd_keys_rules, sshd_keys_nrules, "keys monitor");
}

#ifdef __SANITIZE_ADDRESS__
#define UNDER_ASAN 1
#else
#define UNDER_ASAN 0
#endif

/* In a child: the manager's filter, then fn; its wait status. */
static int under_manager(int (*fn)(void))
{
	int st;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (sandbox_install(vmm_manager_rules, vmm_manager_nrules) < 0)
			_exit(100);
		_exit(fn());
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static int stack_worker(void)
{
	int fds[2];
	char b;

	/* what confine() does, stacked */
	if (sandbox_install(vmm_worker_rules, vmm_worker_nrules) < 0)
		return 1;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0 ||
	    write(fds[0], "x", 1) != 1 || read(fds[1], &b, 1) != 1)
		return 2;
	return 0;
}

static int stack_keys(void)
{
	return sandbox_install(sshd_keys_rules, sshd_keys_nrules) < 0;
}

static int forks(void)
{
	pid_t pid = fork();
	int st;

	if (pid == 0)
		_exit(7);
	return pid > 0 && waitpid(pid, &st, 0) == pid &&
	       WIFEXITED(st) && WEXITSTATUS(st) == 7 ? 0 : 1;
}

static int call_exec(void)
{
	syscall(SYS_execve, "/bin/true", NULL, NULL);
	return 0;
}

static int call_inet(void) { return syscall(SYS_socket, AF_INET, 1, 0) & 0; }
static int call_ptrace(void) { return (int)syscall(SYS_ptrace, 0, 0, 0, 0) & 0; }
static int call_sigterm(void) { return (int)syscall(SYS_kill, 1, SIGTERM) & 0; }
static int call_unshare(void) { return (int)syscall(SYS_unshare, 0) & 0; }
static int call_exec_mem(void)
{
	mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS,
	     -1, 0);
	return 0;
}

static void test_filter(void **state)
{
	int (*const forbidden[])(void) = {
		call_exec, call_inet, call_ptrace, call_sigterm, call_unshare,
		call_exec_mem,
	};
	int st;

	(void)state;
	if (UNDER_ASAN) {
		print_message("SKIP test_filter: under ASan, whose runtime "
			      "makes system calls the filter does not allow\n");
		skip();
	}
	st = under_manager(stack_worker);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	st = under_manager(stack_keys);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	st = under_manager(forks);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]);
	     i++) {
		st = under_manager(forbidden[i]);
		if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSYS)
			fail_msg("case %zu: status 0x%x, not SIGSYS", i, st);
	}
}

/* ---- the manager itself, with no template -------------------------- */

/* A keys monitor that says what it holds: how many fds, and which. */
static void fake_keys(int sock, void *arg)
{
	char buf[64];
	int n = 0, hi = -1;

	for (int fd = 0; fd < 256; fd++)
		if (fcntl(fd, F_GETFD) >= 0) {
			n++;
			hi = fd;
		}
	snprintf(buf, sizeof(buf), "%s fds=%d hi=%d sock=%d",
		 (const char *)arg, n, hi, sock);
	while (recv(sock, buf + 40, 1, 0) == 1)
		if (send(sock, buf, strlen(buf) + 1, 0) < 0)
			break;
	_exit(0);
}

static char keys_tag[] = "keys-ok";
static const struct manager_hooks hooks = { fake_keys, keys_tag };

struct mgr {
	struct manager mg;
	pid_t pid;
};

static void mgr_start_jail(struct mgr *t, const struct manager_jail *jail)
{
	int sv[2];

	memset(t, 0, sizeof(*t));
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
				    sv), 0);
	t->pid = fork();
	assert_true(t->pid >= 0);
	if (t->pid == 0) {
		close(sv[0]);
		manager_serve(sv[1], NULL, 4, jail, &hooks, !UNDER_ASAN);
	}
	close(sv[1]);
	t->mg.sock = sv[0];
	t->mg.pid = t->pid;
}

static void mgr_start_test(struct mgr *t)
{
	mgr_start_jail(t, NULL);
}

static int mgr_wait(struct mgr *t, struct worker_msg *m, int *fd)
{
	struct pollfd p = { .fd = t->mg.sock, .events = POLLIN };
	int r;

	do {
		if (manager_pending(&t->mg))
			manager_flush(&t->mg);
		assert_int_equal(poll(&p, 1, 5000), 1);
		r = manager_recv(&t->mg, m, fd);
	} while (r == -EAGAIN);
	return r;
}

static pid_t keys(struct mgr *t, int *fd)
{
	struct worker_msg m;
	char buf[64];

	assert_int_equal(manager_keys(&t->mg), 0);
	assert_int_equal(mgr_wait(t, &m, fd), 0);
	assert_int_equal(m.type, MGR_KEYS_READY);
	assert_true(*fd >= 0);
	assert_int_equal(send(*fd, "?", 1, 0), 1);
	assert_true(recv(*fd, buf, sizeof(buf), 0) > 0);
	/* its socket at 3 and stdio: nothing of the manager's */
	assert_string_equal(buf, "keys-ok fds=4 hi=3 sock=3");
	return (pid_t)m.a;
}

static void test_keys_hook(void **state)
{
	struct mgr t;
	struct worker_msg m;
	char buf[64];
	pid_t k1, k2;
	int fd1, fd2, st;

	(void)state;
	mgr_start_test(&t);
	k1 = keys(&t, &fd1);
	/* a new one replaces the old: it is killed, its socket ends */
	k2 = keys(&t, &fd2);
	assert_true(k1 != k2);
	assert_int_equal(recv(fd1, buf, sizeof(buf), 0), 0);
	close(fd1);
	/* no template: a spawn is refused, with a reason */
	assert_int_equal(manager_spawn(&t.mg), 0);
	assert_int_equal(mgr_wait(&t, &m, &fd1), 0);
	assert_int_equal(m.type, MGR_FAILED);
	assert_int_equal(m.a, MGR_SPAWN);
	assert_string_equal(m.text, "no template");
	/* the front-end goes: the manager ends, and the keys monitor with
	 * it */
	manager_close(&t.mg);
	assert_int_equal(waitpid(t.pid, &st, 0), t.pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(recv(fd2, buf, sizeof(buf), 0), 0);
	close(fd2);
}

/* A front-end taken over: garbage, unknown types, fds, a pid that is not
 * the manager's to kill. The manager refuses each and carries on. */
static void test_hostile_front_end(void **state)
{
	struct mgr t;
	struct worker_msg m = { .type = MGR_END };
	uint8_t buf[CTL_MSG_MAX];
	uint32_t h[2] = { 99, 0 };
	pid_t victim;
	int fd, st, devnull = open("/dev/null", O_RDONLY);
	ssize_t n;
	union {
		char c[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u = { 0 };
	struct iovec iov;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = u.c, .msg_controllen = sizeof(u.c) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	(void)state;
	victim = fork();
	if (victim == 0) {
		pause();
		_exit(0);
	}
	mgr_start_test(&t);
	assert_int_equal(send(t.mg.sock, "zz", 2, 0), 2);
	assert_int_equal(send(t.mg.sock, h, sizeof(h), 0), (ssize_t)sizeof(h));
	h[0] = MGR_END;		/* END without its pid */
	assert_int_equal(send(t.mg.sock, h, sizeof(h), 0), (ssize_t)sizeof(h));
	h[0] = MGR_WORKER;	/* the manager's own message */
	assert_int_equal(send(t.mg.sock, h, sizeof(h), 0), (ssize_t)sizeof(h));
	h[0] = MGR_KEYS;	/* with an fd it does not take */
	iov = (struct iovec){ .iov_base = h, .iov_len = sizeof(h) };
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &devnull, sizeof(int));
	assert_int_equal(sendmsg(t.mg.sock, &mh, 0), (ssize_t)sizeof(h));
	/* not its worker: refused, and not killed */
	m.a = (uint64_t)victim;
	n = ctl_encode(&ctl_to_manager, &m, buf, sizeof(buf));
	assert_int_equal(send(t.mg.sock, buf, (size_t)n, 0), n);
	ctl_asked_sent(&t.mg.asked, MGR_END);
	t.mg.ending = calloc(1, sizeof(pid_t));
	t.mg.ending[0] = victim;
	t.mg.nending = t.mg.cap = 1;
	assert_int_equal(mgr_wait(&t, &m, &fd), 0);
	assert_int_equal(m.type, MGR_FAILED);
	assert_int_equal(m.a, MGR_END);
	assert_int_equal(manager_ending(&t.mg), 0);
	usleep(100000);
	assert_int_equal(waitpid(victim, &st, WNOHANG), 0);	/* alive */
	/* and it still serves */
	keys(&t, &fd);
	close(fd);
	manager_close(&t.mg);
	assert_int_equal(waitpid(t.pid, &st, 0), t.pid);
	assert_true(WIFEXITED(st));
	kill(victim, SIGKILL);
	waitpid(victim, &st, 0);
	close(devnull);
}

/* A request as a hostile front-end would send it: any pid, any text. */
static void send_raw(struct mgr *t, uint32_t type, uint64_t a,
		     const char *text)
{
	struct worker_msg m = { .type = type, .a = a };
	uint8_t buf[CTL_MSG_MAX];
	ssize_t n;

	snprintf(m.text, sizeof(m.text), "%s", text);
	n = ctl_encode(&ctl_to_manager, &m, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(send(t->mg.sock, buf, (size_t)n, 0), n);
	if (type != MGR_DROP)
		ctl_asked_sent(&t->mg.asked, type);
}

static void expect_files_answer(struct mgr *t, uint32_t type, uint64_t pid,
				const char *user, bool ok)
{
	struct worker_msg m;
	int fd;

	assert_int_equal(mgr_wait(t, &m, &fd), 0);
	assert_int_equal(m.type, type);
	assert_int_equal(m.a, pid);
	assert_string_equal(m.text, user);
	if (ok)
		assert_int_equal((int64_t)m.b, 0);
	else
		assert_true((int64_t)m.b < 0);
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* Moving suspended VMs on the front-end's word: only for a worker of the
 * manager's own, only for a user name, never twice, never through a
 * link. A front-end taken over gets refusals, and nothing moves. */
static void test_files_requests(void **state)
{
	char top[] = "/tmp/clone-mgr-XXXXXX", p[256], q[256];
	struct manager_jail jail = { .uid_first = 200000, .uid_count = 8 };
	struct mgr t;
	pid_t victim;
	int fd, st;

	(void)state;
	assert_non_null(mkdtemp(top));
	snprintf(p, sizeof(p), "%s/vm", top);
	assert_int_equal(mkdir(p, 0700), 0);
	jail.vm_path = p;
	jail.vm_fd = open(p, O_RDONLY | O_DIRECTORY);
	snprintf(p, sizeof(p), "%s/suspended", top);
	assert_int_equal(mkdir(p, 0700), 0);
	jail.susp_fd = open(p, O_RDONLY | O_DIRECTORY);
	snprintf(p, sizeof(p), "%s/suspended/alice", top);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(q, sizeof(q), "%s/suspended/alice/state", top);
	fd = open(q, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	victim = fork();
	if (victim == 0) {
		pause();
		_exit(0);
	}
	mgr_start_jail(&t, &jail);
	/* not its worker: refused, alice's VM stays where it is */
	assert_int_equal(manager_unstash(&t.mg, victim, "alice"), 0);
	expect_files_answer(&t, MGR_UNSTASHED, (uint64_t)victim, "alice",
			    false);
	assert_int_equal(manager_stash(&t.mg, victim, "alice"), 0);
	expect_files_answer(&t, MGR_STASHED, (uint64_t)victim, "alice",
			    false);
	assert_true(exists(q));
	/* not a user name: refused, and not echoed */
	send_raw(&t, MGR_UNSTASH, (uint64_t)victim, "../suspended/alice");
	expect_files_answer(&t, MGR_UNSTASHED, (uint64_t)victim, "", false);
	send_raw(&t, MGR_STASH, 1, "..");
	expect_files_answer(&t, MGR_STASHED, 1, "", false);
	assert_int_equal(manager_unstash(&t.mg, victim, "../x"), -EINVAL);
	/* a drop of a name that is none removes nothing; alice's goes */
	send_raw(&t, MGR_DROP, 0, "..");
	send_raw(&t, MGR_DROP, 0, "alice/state");
	keys(&t, &fd);		/* answered after the drops: they are done */
	close(fd);
	assert_true(exists(q));
	assert_int_equal(manager_drop(&t.mg, "alice"), 0);
	keys(&t, &fd);
	close(fd);
	assert_false(exists(p));
	assert_int_equal(waitpid(victim, &st, WNOHANG), 0);	/* alive */
	manager_close(&t.mg);
	assert_int_equal(waitpid(t.pid, &st, 0), t.pid);
	assert_true(WIFEXITED(st));
	kill(victim, SIGKILL);
	waitpid(victim, &st, 0);
	close(jail.vm_fd);
	close(jail.susp_fd);
	snprintf(p, sizeof(p), "rm -rf %s", top);
	assert_int_equal(system(p), 0);
}

/* Without a jail (tests): refused, whoever asks. */
static void test_files_no_jail(void **state)
{
	struct mgr t;
	int st;

	(void)state;
	mgr_start_test(&t);
	assert_int_equal(manager_unstash(&t.mg, getpid(), "alice"), 0);
	expect_files_answer(&t, MGR_UNSTASHED, (uint64_t)getpid(), "alice",
			    false);
	manager_close(&t.mg);
	assert_int_equal(waitpid(t.pid, &st, 0), t.pid);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_table_check_catches),
		cmocka_unit_test(test_children_covered),
		cmocka_unit_test(test_filter),
		cmocka_unit_test(test_keys_hook),
		cmocka_unit_test(test_hostile_front_end),
		cmocka_unit_test(test_files_requests),
		cmocka_unit_test(test_files_no_jail),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
