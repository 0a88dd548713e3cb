/* Confinement shared by the VM workers and the SSH front-end: a seccomp
 * allow-list (libseccomp; anything not listed kills the process) and the
 * switch to an unprivileged user. Firecracker's model: every allowed system
 * call, and every ioctl request where the request can be narrowed, is one
 * table entry with a one-line reason. */
#ifndef COMMON_SANDBOX_H
#define COMMON_SANDBOX_H

#include <seccomp.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Stands for the caller's own pid in an argument comparison: filled in when
 * the filter is installed (tgkill may signal our own threads only). */
#define SANDBOX_SELF_PID 0xffffffff5e1f0000ULL

#define SANDBOX_ARG(n, cmp, a, b) \
	{ .arg = (n), .op = (cmp), .datum_a = (a), .datum_b = (b) }

/* Table entries: allowed as is, or with one argument comparison. */
#define SANDBOX_ALLOW(name, reason) { SCMP_SYS(name), reason, 0, 0, { { 0 } } }
#define SANDBOX_ALLOW1(name, a0, reason) \
	{ SCMP_SYS(name), reason, 0, 1, { a0 } }
#define SANDBOX_ALLOW2(name, a0, a1, reason) \
	{ SCMP_SYS(name), reason, 0, 2, { a0, a1 } }
/* PROT_EXEC clear in argument n (needs <sys/mman.h>). */
#define SANDBOX_NO_EXEC(n) SANDBOX_ARG(n, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)

/* What every confined process needs of memory (malloc, thread stacks; never
 * new executable memory), and of being stopped and continued. */
#define SANDBOX_MEMORY_RULES \
	SANDBOX_ALLOW1(mmap, SANDBOX_NO_EXEC(2), "malloc, stacks (no exec)"), \
	SANDBOX_ALLOW1(mprotect, SANDBOX_NO_EXEC(2), \
		       "malloc arenas, stack guard pages (no exec)"), \
	SANDBOX_ALLOW(munmap, "malloc, thread stacks"), \
	SANDBOX_ALLOW(mremap, "realloc of large blocks"), \
	SANDBOX_ALLOW(madvise, "malloc and glibc give memory back"), \
	SANDBOX_ALLOW(brk, "malloc"), \
	SANDBOX_ALLOW(restart_syscall, "a sleep resumed after SIGSTOP/SIGCONT")

/* fcntl for every table that needs it, and no other fcntl rule: only these
 * commands, compared whole (the kernel reads a 32-bit command, so an
 * allow-list of exact values is the only safe shape), and F_SETFL only
 * without O_ASYNC. F_SETOWN/F_SETOWN_EX would point SIGIO at any pid of
 * our uid, F_SETSIG make it any signal, and O_ASYNC start it: a way round
 * the own-pid tgkill rule. Needs <fcntl.h>. */
#define SANDBOX_FCNTL_RULES \
	SANDBOX_ALLOW1(fcntl, SANDBOX_ARG(1, SCMP_CMP_EQ, F_GETFL, 0), \
		       "F_GETFL: libraries read flags before setting them"), \
	SANDBOX_ALLOW2(fcntl, SANDBOX_ARG(1, SCMP_CMP_EQ, F_SETFL, 0), \
		       SANDBOX_ARG(2, SCMP_CMP_MASKED_EQ, O_ASYNC, 0), \
		       "F_SETFL: O_NONBLOCK on sockets; never O_ASYNC (SIGIO)"), \
	SANDBOX_ALLOW1(fcntl, SANDBOX_ARG(1, SCMP_CMP_EQ, F_GETFD, 0), \
		       "F_GETFD: libraries check close-on-exec"), \
	SANDBOX_ALLOW1(fcntl, SANDBOX_ARG(1, SCMP_CMP_EQ, F_SETFD, 0), \
		       "F_SETFD: libraries set close-on-exec"), \
	SANDBOX_ALLOW1(fcntl, SANDBOX_ARG(1, SCMP_CMP_EQ, F_DUPFD_CLOEXEC, 0), \
		       "F_DUPFD_CLOEXEC: fds queued with a control message")

struct sandbox_rule {
	int nr;			/* SCMP_SYS(name) */
	const char *why;	/* one line: what needs it */
	int err;		/* 0: allow; else fail with this errno */
	unsigned nargs;		/* comparisons, all of which must hold */
	struct scmp_arg_cmp arg[2];
};

/* Install a filter allowing exactly rules[0..n) (no_new_privs is set
 * first); every other system call kills the whole process. Applies to the
 * calling thread and the threads it creates later, so call it before
 * creating any. 0 or -errno (the filter is then not installed). */
int sandbox_install(const struct sandbox_rule *rules, size_t n);

/* The uid and gid of user name. 0, -ENOENT (no such user) or -errno. */
int sandbox_user(const char *name, uid_t *uid, gid_t *gid);

/* Become uid/gid for good: no supplementary groups, real, effective and
 * saved ids all changed, and checked that root cannot be regained. A
 * process that is not root (uid == getuid() already) is left as it is.
 * 0 or -errno. */
int sandbox_drop(uid_t uid, gid_t gid);

/* No core dumps, no ptrace by the same uid, /proc/PID not readable by it:
 * the process holds a user's memory or the server's keys. */
void sandbox_no_dumps(void);

#endif
