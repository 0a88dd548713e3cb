/* The seccomp allow-lists: every entry has its reason, none lets a process
 * exec, fork, trace or read another, and an installed filter does what it
 * says (in a forked child: it cannot be removed again). */
#include "common/sandbox.h"

#include <errno.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "sshd/server.h"
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

static void test_tables(void **state)
{
	(void)state;
	check_table(vmm_worker_rules, vmm_worker_nrules);
	check_table(sshd_frontend_rules, sshd_frontend_nrules);
	check_table(sshd_keys_rules, sshd_keys_nrules);
}

/* Run fn in a child under the worker's filter; its wait status. */
static int confined(void (*fn)(void))
{
	int st;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (sandbox_install(vmm_worker_rules, vmm_worker_nrules) < 0)
			_exit(100);
		fn();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

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

static void test_worker_filter(void **state)
{
	void (*const forbidden[])(void) = {
		call_getppid, call_fork, call_exec_mem, call_kill_other,
		call_inet, call_kvm_create,
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tables),
		cmocka_unit_test(test_worker_filter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
