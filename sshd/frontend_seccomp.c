/* The SSH front-end's seccomp allow-list, installed once it has its
 * listening socket, its host key, the manager and the keys monitor
 * (frontend_confine() in server.c). It is the process every network client
 * talks to before authenticating; anything not below kills it.
 *
 * No entry allows exec, new processes, new sockets other than accepted
 * connections, ptrace or reading other processes' memory, new executable
 * memory, or ioctls; signals go only to workers, only SIGKILL (no fcntl
 * that would aim SIGIO anywhere). Files: only through the directories it
 * was given. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>

#include "sshd/server.h"

#define ALLOW SANDBOX_ALLOW
#define ALLOW1 SANDBOX_ALLOW1

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
	/* Files: the status table in run/, suspended VMs' directories. */
	ALLOW(openat, "run/status.tmp (relative to a directory fd)"),
	ALLOW(renameat, "run/status.tmp to run/status"),
	ALLOW(mkdirat, "suspended/<user> for a worker to write in"),
	ALLOW(unlinkat, "suspended/<user> of a VM that is gone"),
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
	/* Workers (same user): only ever killed, when they do not stop. */
	ALLOW1(kill, SANDBOX_ARG(1, SCMP_CMP_EQ, SIGKILL, 0),
	       "SIGKILL a worker that does not stop (worker_destroy)"),
	ALLOW(wait4, "worker_destroy: waitpid (workers are not ours: ECHILD)"),
	ALLOW(clock_nanosleep, "worker_destroy: waiting for a worker"),
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
