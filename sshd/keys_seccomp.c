/* The keys monitor's seccomp allow-list (keys_main() in server.c). It stays
 * root, to read authorized_keys files wherever they are, and takes requests
 * from the front-end, which a client may have taken over: it may read and
 * write files, and nothing else. */
#include <errno.h>
#include <sys/mman.h>

#include "sshd/server.h"

#define ALLOW(name, reason) { SCMP_SYS(name), reason, 0, 0, { { 0 } } }
#define ALLOW1(name, a0, reason) { SCMP_SYS(name), reason, 0, 1, { a0 } }
#define NO_EXEC(n) SANDBOX_ARG(n, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)

const struct sandbox_rule sshd_keys_rules[] = {
	ALLOW(recvfrom, "requests from the front-end"),
	ALLOW(sendto, "answers to the front-end"),
	ALLOW(read, "authorized_keys files"),
	ALLOW(write, "a signed-up user's keys file; log lines"),
	ALLOW(openat, "authorized_keys files; a new one's temporary file"),
	ALLOW(close, "files done with"),
	ALLOW(fstat, "a keys file's size"),
	ALLOW(newfstatat, "glibc's fstat() on recent versions"),
	ALLOW(lseek, "stdio reading a keys file"),
	ALLOW(mkdir, "sign-up: the keys file's directory"),
	ALLOW(link, "sign-up: the keys file appears whole, or not at all"),
	ALLOW(unlink, "sign-up: the temporary file"),
	ALLOW(fsync, "sign-up: the keys file reaches disk"),
	ALLOW(getpid, "sign-up: the temporary file's name; log lines"),
	ALLOW1(mmap, NO_EXEC(2), "malloc (no exec)"),
	ALLOW1(mprotect, NO_EXEC(2), "malloc arenas (no exec)"),
	ALLOW(munmap, "malloc"),
	ALLOW(mremap, "realloc of large blocks"),
	ALLOW(madvise, "malloc returns memory"),
	ALLOW(brk, "malloc"),
	ALLOW(futex, "OpenSSL's locks (key parsing)"),
	ALLOW(getrandom, "OpenSSL may seed itself when parsing a key"),
	ALLOW(clock_gettime, "timestamps when the vDSO cannot answer"),
	ALLOW(restart_syscall, "a sleep resumed after SIGSTOP/SIGCONT"),
	ALLOW(exit_group, "the front-end is gone"),
};

const size_t sshd_keys_nrules =
	sizeof(sshd_keys_rules) / sizeof(sshd_keys_rules[0]);
