/* The seccomp allow-lists: every entry has its reason, none lets a process
 * exec, fork, trace or read another, or signal one through fcntl's SIGIO
 * (F_SETOWN, F_SETOWN_EX, F_SETSIG, O_ASYNC), and an installed filter does
 * what it says (in a forked child: it cannot be removed again). */
#include "common/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "sshd/server.h"
#include "vmm/manager.h"
#include "vmm/worker.h"

static const int never[] = {
	SCMP_SYS(execve), SCMP_SYS(execveat), SCMP_SYS(fork),
	SCMP_SYS(vfork), SCMP_SYS(ptrace), SCMP_SYS(process_vm_readv),
	SCMP_SYS(process_vm_writev), SCMP_SYS(socket), SCMP_SYS(connect),
	SCMP_SYS(bind), SCMP_SYS(setuid), SCMP_SYS(setresuid),
	SCMP_SYS(mount), SCMP_SYS(chroot), SCMP_SYS(bpf),
	SCMP_SYS(perf_event_open), SCMP_SYS(init_module), SCMP_SYS(kexec_load),
	SCMP_SYS(userfaultfd), SCMP_SYS(keyctl), SCMP_SYS(unshare),
	SCMP_SYS(setns), SCMP_SYS(seccomp), SCMP_SYS(prctl),
};

static void check_table(const struct sandbox_rule *r, size_t n)
{
	assert_true(n > 10);
	for (size_t i = 0; i < n; i++) {
		assert_true(r[i].nr >= 0);
		assert_non_null(r[i].why);
		assert_true(strlen(r[i].why) > 5);
		assert_null(strchr(r[i].why, '\n'));
		for (size_t j = 0; j < sizeof(never) / sizeof(never[0]); j++)
			if (r[i].nr == never[j])
				fail_msg("rule %zu allows syscall %d", i,
					 r[i].nr);
	}
}

static bool holds(const struct scmp_arg_cmp *c, const uint64_t *args)
{
	uint64_t v = args[c->arg];

	if (c->op == SCMP_CMP_NE)
		return v != c->datum_a;
	if (c->op == SCMP_CMP_LT)
		return v < c->datum_a;
	if (c->op == SCMP_CMP_LE)
		return v <= c->datum_a;
	if (c->op == SCMP_CMP_EQ)
		return v == c->datum_a;
	if (c->op == SCMP_CMP_GE)
		return v >= c->datum_a;
	if (c->op == SCMP_CMP_GT)
		return v > c->datum_a;
	if (c->op == SCMP_CMP_MASKED_EQ)
		return (v & c->datum_a) == c->datum_b;
	return true;	/* unknown: count it as allowing */
}

/* Whether the table lets system call nr with these arguments through, as
 * the filter built from it would. */
static bool allows(const struct sandbox_rule *r, size_t n, int nr,
		   const uint64_t args[6])
{
	for (size_t i = 0; i < n; i++) {
		bool all = true;

		if (r[i].nr != nr || r[i].err)
			continue;
		for (unsigned j = 0; j < r[i].nargs; j++)
			all = all && holds(&r[i].arg[j], args);
		if (all)
			return true;
	}
	return false;
}

/* Every way fcntl (or an ioctl) could aim SIGIO, or another signal, at a
 * pid: the owner, the signal, and O_ASYNC; with the command's upper bits
 * set too, which the kernel ignores. */
static void check_no_sigio(const struct sandbox_rule *r, size_t n)
{
	const uint64_t cmds[] = { F_SETOWN, F_SETOWN_EX, F_SETSIG, F_SETLEASE,
				  F_NOTIFY, 1ULL << 32 | F_SETOWN,
				  1ULL << 32 | F_SETSIG };
	const uint64_t vals[] = { 0, 1, (uint64_t)getpid(), SIGKILL, SIGIO,
				  O_ASYNC, ~0ULL };
	const uint64_t async[] = { O_ASYNC, O_ASYNC | O_NONBLOCK, ~0ULL,
				   1ULL << 32 | O_ASYNC };
	const uint64_t ioctls[] = { FIOASYNC, FIOSETOWN, SIOCSPGRP };

	for (size_t c = 0; c < sizeof(cmds) / sizeof(cmds[0]); c++)
		for (size_t v = 0; v < sizeof(vals) / sizeof(vals[0]); v++) {
			uint64_t a[6] = { 3, cmds[c], vals[v] };

			if (allows(r, n, SCMP_SYS(fcntl), a))
				fail_msg("fcntl command 0x%llx allowed",
					 (unsigned long long)cmds[c]);
		}
	for (size_t v = 0; v < sizeof(async) / sizeof(async[0]); v++) {
		uint64_t a[6] = { 3, F_SETFL, async[v] };

		if (allows(r, n, SCMP_SYS(fcntl), a))
			fail_msg("F_SETFL 0x%llx allowed",
				 (unsigned long long)async[v]);
	}
	for (size_t i = 0; i < sizeof(ioctls) / sizeof(ioctls[0]); i++) {
		uint64_t a[6] = { 3, ioctls[i], 1 };

		if (allows(r, n, SCMP_SYS(ioctl), a))
			fail_msg("ioctl 0x%llx allowed",
				 (unsigned long long)ioctls[i]);
	}
	/* Any fcntl a table allows comes from the shared rules. */
	for (size_t i = 0; i < n; i++) {
		static const struct sandbox_rule shared[] = {
			SANDBOX_FCNTL_RULES
		};
		bool found = false;

		if (r[i].nr != SCMP_SYS(fcntl))
			continue;
		for (size_t j = 0; j < sizeof(shared) / sizeof(shared[0]); j++)
			found = found || (r[i].nargs == shared[j].nargs &&
					  memcmp(r[i].arg, shared[j].arg,
						 sizeof(r[i].arg)) == 0);
		if (!found)
			fail_msg("rule %zu: fcntl not from SANDBOX_FCNTL_RULES",
				 i);
	}
}

static void test_tables(void **state)
{
	(void)state;
	check_table(vmm_worker_rules, vmm_worker_nrules);
	check_table(sshd_frontend_rules, sshd_frontend_nrules);
	check_table(sshd_keys_rules, sshd_keys_nrules);
}

static void test_tables_no_sigio(void **state)
{
	uint64_t nonblock[6] = { 3, F_SETFL, O_NONBLOCK };

	(void)state;
	check_no_sigio(vmm_worker_rules, vmm_worker_nrules);
	check_no_sigio(sshd_frontend_rules, sshd_frontend_nrules);
	check_no_sigio(sshd_keys_rules, sshd_keys_nrules);
	check_no_sigio(vmm_manager_rules, vmm_manager_nrules);
	/* What they need still passes. */
	assert_true(allows(vmm_worker_rules, vmm_worker_nrules,
			   SCMP_SYS(fcntl), nonblock));
	assert_true(allows(sshd_frontend_rules, sshd_frontend_nrules,
			   SCMP_SYS(fcntl), nonblock));
}

/* In the confined child: a socket of its own, made before the filter (the
 * front-end's may not make one), and the test's pid, which it may not ask
 * for (getppid is not allowed). */
static int sock = -1;
static pid_t parent;

/* Run fn in a child under a filter; its wait status. */
static int confined_by(const struct sandbox_rule *rules, size_t n,
		       void (*fn)(void))
{
	int st, sv[2];
	pid_t pid;

	parent = getpid();
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
			_exit(101);
		sock = sv[0];
		if (sandbox_install(rules, n) < 0)
			_exit(100);
		fn();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static int confined(void (*fn)(void))
{
	return confined_by(vmm_worker_rules, vmm_worker_nrules, fn);
}

static void nonblock(void);

static void allowed(void)
{
	char b[1];
	int fds[2];

	if (getpid() <= 0 || write(STDERR_FILENO, "", 0) < 0)
		_exit(1);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0 ||
	    write(fds[0], "x", 1) != 1 || read(fds[1], b, 1) != 1)
		_exit(2);
	/* clone3's flags cannot be filtered: it says ENOSYS, and glibc
	 * falls back to clone, whose flags can. */
	if (syscall(SYS_clone3, NULL, 0) != -1 || errno != ENOSYS)
		_exit(3);
	if (mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED)
		_exit(4);
	nonblock();
}

/* What the worker and the front-end do to their sockets. */
static void nonblock(void)
{
	int fl = fcntl(sock, F_GETFL);

	if (fl < 0 || fcntl(sock, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    !(fcntl(sock, F_GETFL) & O_NONBLOCK))
		_exit(5);
	if (fcntl(sock, F_SETFD, FD_CLOEXEC) < 0 ||
	    !(fcntl(sock, F_GETFD) & FD_CLOEXEC))
		_exit(6);
}

static void call_getppid(void) { syscall(SYS_getppid); }
static void call_fork(void) { syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0); }
static void call_exec_mem(void)
{
	mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS,
	     -1, 0);
}
static void call_kill_other(void) { syscall(SYS_tgkill, 1, 1, 0); }
static void call_inet(void) { syscall(SYS_socketpair, AF_INET, 1, 0, 0); }
static void call_kvm_create(void) { syscall(SYS_ioctl, 0, 0xae01, 0); }
/* SIGIO (or any signal) to another process of our uid, through fcntl. */
static void call_setown(void) { fcntl(sock, F_SETOWN, parent); }
static void call_setown_ex(void)
{
	struct f_owner_ex o = { .type = F_OWNER_PID, .pid = parent };

	fcntl(sock, F_SETOWN_EX, &o);
}
static void call_setsig(void) { fcntl(sock, F_SETSIG, SIGKILL); }
static void call_async(void) { fcntl(sock, F_SETFL, O_ASYNC | O_NONBLOCK); }
static void call_setown_high(void)
{
	/* The kernel reads the command as 32 bits: the filter must not. */
	syscall(SYS_fcntl, sock, 1ULL << 32 | F_SETOWN, parent);
}
static void call_fioasync(void)
{
	int on = 1;

	ioctl(sock, FIOASYNC, &on);
}

static void test_worker_filter(void **state)
{
	void (*const forbidden[])(void) = {
		call_getppid, call_fork, call_exec_mem, call_kill_other,
		call_inet, call_kvm_create, call_setown, call_setown_ex,
		call_setsig, call_async, call_setown_high, call_fioasync,
	};
	int st;

	(void)state;
#ifdef __SANITIZE_ADDRESS__
	/* ASan's runtime makes system calls of its own (sigaltstack, its
	 * shadow mappings): the filter is tested in the plain build. */
	print_message("SKIP test_worker_filter: under ASan, whose runtime "
		      "makes system calls the filter does not allow\n");
	skip();
#endif
	st = confined(allowed);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]);
	     i++) {
		st = confined(forbidden[i]);
		if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSYS)
			fail_msg("case %zu: status 0x%x, not SIGSYS", i, st);
	}
}

/* The front-end's and the keys monitor's filters refuse them too; the
 * front-end still sets O_NONBLOCK. */
static void test_other_filters_no_sigio(void **state)
{
	void (*const forbidden[])(void) = {
		call_setown, call_setown_ex, call_setsig, call_async,
		call_setown_high,
	};
	const struct {
		const struct sandbox_rule *r;
		size_t n;
	} tables[] = {
		{ sshd_frontend_rules, sshd_frontend_nrules },
		{ sshd_keys_rules, sshd_keys_nrules },
	};
	int st;

	(void)state;
#ifdef __SANITIZE_ADDRESS__
	print_message("SKIP test_other_filters_no_sigio: under ASan, whose "
		      "runtime makes system calls the filters do not allow\n");
	skip();
#endif
	st = confined_by(sshd_frontend_rules, sshd_frontend_nrules, nonblock);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
		for (size_t i = 0; i < sizeof(forbidden) / sizeof(forbidden[0]);
		     i++) {
			st = confined_by(tables[t].r, tables[t].n,
					 forbidden[i]);
			if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGSYS)
				fail_msg("table %zu case %zu: status 0x%x, "
					 "not SIGSYS", t, i, st);
		}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tables),
		cmocka_unit_test(test_tables_no_sigio),
		cmocka_unit_test(test_worker_filter),
		cmocka_unit_test(test_other_filters_no_sigio),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
