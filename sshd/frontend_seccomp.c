/* The SSH front-end's seccomp allow-list, installed once it has its
 * listening socket, its host key, the manager and the keys monitor
 * (frontend_confine() in server.c). It is the process every network client
 * talks to before authenticating; anything not below kills it.
 *
 * No entry allows exec, new processes, signals to other processes, new
 * sockets other than accepted connections, ptrace or reading other
 * processes' memory, new executable memory, ioctls, or an fcntl that
 * would aim SIGIO anywhere. Files: only the status table, through the
 * run/ fd it was given; suspended VMs are the manager's to move and
 * remove, and workers the manager's to kill. */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>

#include "sshd/server.h"

#define ALLOW SANDBOX_ALLOW

const struct sandbox_rule sshd_frontend_rules[] = {
	/* Network and the sockets to workers, manager and keys monitor. */
	ALLOW(accept, "new SSH connections"),
	ALLOW(accept4, "new SSH connections (glibc)"),
	ALLOW(read, "SSH connections, guest ports"),
	ALLOW(write, "SSH connections, guest ports, log lines"),
	ALLOW(readv, "stdio (log lines) may gather"),
	ALLOW(writev, "stdio (log lines) may scatter"),
	ALLOW(recvfrom, "recv() from SSH connections, the keys monitor"),
	ALLOW(sendto, "send() to SSH connections, manager, keys monitor"),
	ALLOW(recvmsg, "worker sockets and fds (SCM_RIGHTS) from workers"),
	ALLOW(sendmsg, "worker control messages"),
	ALLOW(poll, "the event loop (ssh_event)"),
	ALLOW(ppoll, "glibc may implement poll() with ppoll"),
	ALLOW(shutdown, "EOF from the client to a guest port"),
	ALLOW(close, "connections and fds done with"),
	ALLOW(dup, "a pty session: one fd for the guest's input and output"),
	/* Non-blocking sockets; no F_SETOWN, F_SETSIG, O_ASYNC. */
	SANDBOX_FCNTL_RULES,
	ALLOW(setsockopt, "TCP_NODELAY etc. on accepted connections"),
	ALLOW(getsockopt, "libssh: pending socket errors"),
	ALLOW(getsockname, "libssh: the local address of a connection"),
	ALLOW(getpeername, "libssh: the client's address for log lines"),
	/* Files: the status table in run/. */
	ALLOW(openat, "run/status.tmp (relative to a directory fd)"),
	ALLOW(renameat, "run/status.tmp to run/status"),
	ALLOW(fstat, "stdio buffers"),
	ALLOW(newfstatat, "glibc's fstat() on recent versions"),
	ALLOW(lseek, "stdio on the status file"),
	/* Memory: never executable. */
	SANDBOX_MEMORY_RULES,
	/* Crypto and time. */
	ALLOW(getrandom, "key exchange, libsodium, OpenSSL"),
	ALLOW(clock_gettime, "timeouts when the vDSO cannot answer"),
	ALLOW(gettimeofday, "timestamps when the vDSO cannot answer"),
	ALLOW(futex, "OpenSSL's locks"),
	/* Time. */
	ALLOW(clock_nanosleep, "the event loop backs off when out of memory"),
	ALLOW(nanosleep, "usleep() on older glibc"),
	ALLOW(getpid, "log lines"),
	ALLOW(rt_sigaction, "SIGTERM handling"),
	ALLOW(rt_sigprocmask, "glibc blocks signals in places"),
	ALLOW(rt_sigreturn, "return from the SIGTERM handler"),
	ALLOW(exit_group, "the server ends"),
	ALLOW(exit, "the server ends (a lone thread)"),
};

const size_t sshd_frontend_nrules =
	sizeof(sshd_frontend_rules) / sizeof(sshd_frontend_rules[0]);
