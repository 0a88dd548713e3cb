/* The VM manager's seccomp allow-list, installed once the template is open
 * (manager_serve()). The manager stays root: it forks workers, which make
 * their VMs before they confine themselves, and the keys monitor, which
 * reads authorized_keys files as root. A forked child inherits this
 * filter and stacks its own on it, so everything a worker or the keys
 * monitor does, before and after confining itself, must be allowed here
 * too (tests/unit/test_manager.c checks the worker's table is covered).
 *
 * No entry allows exec, sockets other than AF_UNIX pairs, namespaces,
 * mounts, ptrace, modules, new executable memory, or signals other than
 * SIGKILL to whole processes.
 * fcntl as every table has it (SANDBOX_FCNTL_RULES): nothing that could
 * aim SIGIO at a process (F_SETOWN, F_SETSIG, O_ASYNC). */
#include "vmm/manager.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#define ALLOW SANDBOX_ALLOW
#define ALLOW1 SANDBOX_ALLOW1
#define IOCTL(req, reason) \
	ALLOW1(ioctl, SANDBOX_ARG(1, SCMP_CMP_EQ, req, 0), reason)
#define PRCTL(op, reason) \
	ALLOW1(prctl, SANDBOX_ARG(0, SCMP_CMP_EQ, op, 0), reason)
#define CLONE_NEW_ANY (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | \
		       CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | \
		       CLONE_NEWNET)

const struct sandbox_rule vmm_manager_rules[] = {
	/* Its own loop: the front-end, SIGCHLD, restoring workers. */
	ALLOW(poll, "the manager's loop; workers' and keys monitor's loops"),
	ALLOW(ppoll, "glibc may implement poll() with ppoll"),
	ALLOW(read, "signalfd; workers' ports; keys files"),
	ALLOW(write, "log lines; workers' ports; a signed-up user's keys"),
	ALLOW(readv, "stdio (log lines) may gather"),
	ALLOW(writev, "stdio (log lines) may scatter"),
	ALLOW(recvmsg, "requests; workers' READY; fds from workers"),
	ALLOW(sendmsg, "answers with control sockets (SCM_RIGHTS)"),
	ALLOW(recvfrom, "recv(): workers' control loop, the keys monitor"),
	ALLOW(sendto, "send(): workers' ports, the keys monitor's answers"),
	ALLOW1(socketpair, SANDBOX_ARG(0, SCMP_CMP_EQ, AF_UNIX, 0),
	       "a worker's or the keys monitor's socket; session ports"),
	ALLOW(shutdown, "workers: a guest closed a port"),
	ALLOW(close, "fds passed on or done with"),
	ALLOW(close_range, "a new child keeps only its own socket"),
	ALLOW(dup2, "the keys monitor's socket at fd 3, stdio on /dev/null"),
	SANDBOX_FCNTL_RULES,
	ALLOW(eventfd2, "a worker's VM: its stop and event fds"),
	/* Processes: workers and the keys monitor are forks, never execs. */
	ALLOW1(clone, SANDBOX_ARG(0, SCMP_CMP_MASKED_EQ, CLONE_NEW_ANY, 0),
	       "fork a worker or the keys monitor; workers' threads"),
	{ SCMP_SYS(clone3), "flags unfilterable: ENOSYS makes glibc use clone",
	  ENOSYS, 0, { { 0 } } },
	ALLOW(wait4, "reap workers and the keys monitor"),
	ALLOW1(kill, SANDBOX_ARG(1, SCMP_CMP_EQ, SIGKILL, 0),
	       "SIGKILL a worker that does not stop, an old keys monitor"),
	ALLOW(tgkill, "a worker kicks its vCPU thread (own pid: its filter)"),
	ALLOW(getpid, "tgkill's argument; sign-up's temporary file name"),
	ALLOW(gettid, "glibc's pthread_kill in workers"),
	ALLOW(set_robust_list, "glibc, in every new thread and fork"),
	ALLOW(rseq, "glibc, in every new thread"),
	ALLOW(futex, "workers' threads; OpenSSL's locks in the keys monitor"),
	ALLOW(rt_sigaction, "workers' vCPU kick handler"),
	ALLOW(rt_sigprocmask, "threads start with signals blocked; children"),
	ALLOW(rt_sigreturn, "return from the kick signal's handler"),
	ALLOW(sched_yield, "glibc spin locks"),
	ALLOW(clock_gettime, "deadlines when the vDSO cannot answer"),
	ALLOW(clock_nanosleep, "usleep() while a vCPU thread starts"),
	ALLOW(nanosleep, "usleep() on older glibc"),
	ALLOW(exit, "a worker's thread ends"),
	ALLOW(exit_group, "a worker, the keys monitor or the manager ends"),
	/* A new child's own confinement (worker_proc.c's confine(), the keys
	 * monitor's filter): it can only narrow what this table allows. */
	PRCTL(PR_SET_PDEATHSIG, "children die with the manager"),
	PRCTL(PR_SET_DUMPABLE, "children are not dumpable"),
	PRCTL(PR_SET_NO_NEW_PRIVS, "children install their own filter"),
	ALLOW(seccomp, "children stack their filter (libseccomp probes too)"),
	ALLOW(prlimit64, "children: no core dumps (RLIMIT_CORE)"),
	ALLOW(chdir, "a worker enters its own vm/<uid>/ before chroot"),
	ALLOW(chroot, "a worker's jail: its own vm/<uid>/"),
	ALLOW(setgroups, "a worker drops root: no groups"),
	ALLOW(setresgid, "a worker drops root: a gid of its own"),
	ALLOW(setresuid, "a worker drops root: a uid of its own; seteuid(0) "
			 "fails after"),
	ALLOW(setuid, "a worker checks setuid(0) fails after the drop"),
	ALLOW(getuid, "a worker: already the uid it drops to?"),
	ALLOW(geteuid, "a worker: chroot only as root"),
	ALLOW(getgid, "a worker: already the gid it drops to?"),
	ALLOW(getegid, "a kept suspended VM's files: given to our group"),
	/* Files: /dev/kvm, /proc/self for workers; keys files; suspend and
	 * resume files in a worker's jail; workers' directories and the
	 * suspended VMs moved between them and suspended/ (jail_dir.c). */
	ALLOW(openat, "/dev/kvm, /proc/self/*, keys files, suspended VMs"),
	ALLOW(openat2, "vm/ and suspended/: one name, no link followed"),
	ALLOW(getdents64, "emptying a worker's directory once it is reaped"),
	ALLOW(fchown, "a worker's directory given to its uid"),
	ALLOW(fchownat, "a suspended VM's files: to root, to the next uid"),
	ALLOW(fchmod, "a worker's directory and suspended/<user>: 0700"),
	ALLOW(renameat2, "a suspended VM's files moved, never over a file"),
	ALLOW(access, "a worker: is this the PVM flavour of KVM"),
	ALLOW(fstat, "keys files; snapshot files"),
	ALLOW(newfstatat, "glibc's fstat() on recent versions"),
	ALLOW(lseek, "snapshot files"),
	ALLOW(pread64, "a worker: pages, /proc/self/pagemap, smaps_rollup"),
	ALLOW(pwrite64, "a worker suspends: pages at their offsets"),
	ALLOW(ftruncate, "a worker suspends: sizing the pages file"),
	ALLOW(fsync, "a suspend, a kept VM, a signed-up user's keys reach "
		     "disk"),
	ALLOW(fdatasync, "a suspend: as fsync"),
	ALLOW(mkdirat, "sign-up: the keys file's directory; vm/<uid>/"),
	ALLOW(linkat, "sign-up: the keys file appears whole"),
	ALLOW(rename, "a suspend: the state file replaces the old"),
	ALLOW(renameat, "glibc's rename() may use renameat"),
	ALLOW(unlink, "a failed suspend's temporary file"),
	ALLOW(unlinkat, "sign-up's temporary file; glibc's unlink(); "
			"workers' leftovers, dropped suspended VMs"),
	ALLOW(getrandom, "OpenSSL in the keys monitor; libsodium"),
	/* Memory, never executable (also a worker's guest RAM: the template
	 * mapped private, the vCPU's run area). */
	SANDBOX_MEMORY_RULES,
	/* KVM: a worker makes its VM before it confines itself, and runs it
	 * after (worker_seccomp.c has those, stacked on these). */
	IOCTL(KVM_GET_API_VERSION, "a worker: KVM version check"),
	IOCTL(KVM_CHECK_EXTENSION, "a worker: capabilities; XSAVE2 size"),
	IOCTL(KVM_CREATE_VM, "a worker: its VM"),
	IOCTL(KVM_SET_TSS_ADDR, "a worker: VM set-up"),
	IOCTL(KVM_CREATE_IRQCHIP, "a worker: in-kernel PIC and IOAPIC"),
	IOCTL(KVM_CREATE_PIT2, "a worker: in-kernel PIT"),
	IOCTL(KVM_CREATE_VCPU, "a worker: its vCPU"),
	IOCTL(KVM_GET_VCPU_MMAP_SIZE, "a worker: the vCPU's run area"),
	IOCTL(KVM_GET_SUPPORTED_CPUID, "a worker: CPUID to filter"),
	IOCTL(KVM_SET_CPUID2, "a worker: the guest's CPUID"),
	IOCTL(KVM_SET_USER_MEMORY_REGION, "a worker: guest RAM"),
	IOCTL(KVM_RUN, "a worker runs its vCPU"),
	IOCTL(KVM_IRQ_LINE, "a worker: device interrupts"),
	IOCTL(KVM_TRANSLATE, "a worker: PVM completions"),
	IOCTL(KVM_GET_MSR_INDEX_LIST, "a worker suspends: which MSRs"),
	IOCTL(KVM_GET_MSRS, "a worker suspends: vCPU MSRs"),
	IOCTL(KVM_SET_MSRS, "a worker restores: vCPU MSRs"),
	IOCTL(KVM_GET_REGS, "a worker suspends: registers"),
	IOCTL(KVM_SET_REGS, "a worker restores: registers"),
	IOCTL(KVM_GET_SREGS, "a worker suspends: segment registers"),
	IOCTL(KVM_SET_SREGS, "a worker restores: segment registers"),
	IOCTL(KVM_GET_FPU, "a worker suspends: FPU state"),
	IOCTL(KVM_SET_FPU, "a worker restores: FPU state"),
	IOCTL(KVM_GET_XSAVE, "a worker suspends: XSAVE state"),
	IOCTL(KVM_GET_XSAVE2, "a worker suspends: XSAVE state (large)"),
	IOCTL(KVM_SET_XSAVE, "a worker restores: XSAVE state"),
	IOCTL(KVM_GET_XCRS, "a worker suspends: XCR0"),
	IOCTL(KVM_SET_XCRS, "a worker restores: XCR0"),
	IOCTL(KVM_GET_LAPIC, "a worker suspends: local APIC"),
	IOCTL(KVM_SET_LAPIC, "a worker restores: local APIC"),
	IOCTL(KVM_GET_VCPU_EVENTS, "a worker suspends: pending events"),
	IOCTL(KVM_SET_VCPU_EVENTS, "a worker restores: pending events"),
	IOCTL(KVM_GET_MP_STATE, "a worker suspends: halted or running"),
	IOCTL(KVM_SET_MP_STATE, "a worker restores: halted or running"),
	IOCTL(KVM_GET_DEBUGREGS, "a worker suspends: debug registers"),
	IOCTL(KVM_SET_DEBUGREGS, "a worker restores: debug registers"),
	IOCTL(KVM_GET_IRQCHIP, "a worker suspends: PIC and IOAPIC"),
	IOCTL(KVM_SET_IRQCHIP, "a worker restores: PIC and IOAPIC"),
	IOCTL(KVM_GET_PIT2, "a worker suspends: PIT"),
	IOCTL(KVM_SET_PIT2, "a worker restores: PIT"),
	IOCTL(KVM_GET_CLOCK, "a worker suspends: kvmclock"),
	IOCTL(KVM_SET_CLOCK, "a worker restores: kvmclock"),
};

const size_t vmm_manager_nrules =
	sizeof(vmm_manager_rules) / sizeof(vmm_manager_rules[0]);
