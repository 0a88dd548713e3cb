/* The keys monitor's seccomp allow-list (keys_monitor.c). It stays
 * root, to read authorized_keys files wherever they are, and takes requests
 * from the front-end, which a client may have taken over: it may read and
 * write files, and nothing else (not even fcntl: it never needs
 * SANDBOX_FCNTL_RULES, so it has none). */
#include <errno.h>
#include <sys/mman.h>

#include "sshd/server.h"

#define ALLOW SANDBOX_ALLOW
#define ALLOW1 SANDBOX_ALLOW1

const struct sandbox_rule sshd_keys_rules[] = {
	ALLOW(recvfrom, "requests from the front-end"),
	ALLOW(sendto, "answers to the front-end"),
	ALLOW(read, "authorized_keys files"),
	ALLOW(write, "a signed-up user's keys file; log lines"),
	ALLOW(openat, "keys files and each directory on their path; "
		      "/etc/passwd; a new one's temporary file"),
	ALLOW(close, "files done with"),
	ALLOW(fstat, "a keys file's and its directories' owner and mode"),
	ALLOW(newfstatat, "glibc's fstat() on recent versions"),
	ALLOW(mkdirat, "sign-up: the keys file's directory"),
	ALLOW(linkat, "sign-up: the keys file appears whole, or not at all"),
	ALLOW(unlinkat, "sign-up: the temporary file"),
	ALLOW(fsync, "sign-up: the keys file and its directory reach disk"),
	ALLOW(getpid, "sign-up: the temporary file's name; log lines"),
	SANDBOX_MEMORY_RULES,
	ALLOW(futex, "OpenSSL's locks (key parsing)"),
	ALLOW(getrandom, "OpenSSL may seed itself when parsing a key"),
	ALLOW(clock_gettime, "timestamps when the vDSO cannot answer"),
	ALLOW(exit_group, "the front-end is gone"),
};

const size_t sshd_keys_nrules =
	sizeof(sshd_keys_rules) / sizeof(sshd_keys_rules[0]);
