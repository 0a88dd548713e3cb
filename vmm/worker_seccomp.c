/* The VM worker's seccomp allow-list, installed once the worker has made
 * its VM, mapped the template and dropped root (worker_main()). From then
 * on the guest is running and the worker is the process a hostile guest
 * would attack; anything not below kills it, and only it.
 *
 * No entry allows exec, new sockets other than AF_UNIX pairs, new
 * executable memory, process creation other than threads, signals to
 * other processes (no kill, no tgkill but to ourselves, no fcntl that
 * would aim SIGIO elsewhere), or ioctls other than the KVM requests listed. */
#include "vmm/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>

#define ALLOW SANDBOX_ALLOW
#define ALLOW1 SANDBOX_ALLOW1
#define IOCTL(req, reason) \
	ALLOW1(ioctl, SANDBOX_ARG(1, SCMP_CMP_EQ, req, 0), reason)

const struct sandbox_rule vmm_worker_rules[] = {
	/* I/O */
	ALLOW(read, "port sockets, eventfds, the control socket, snapshots"),
	ALLOW(write, "port sockets, eventfds, log lines, snapshot files"),
	ALLOW(readv, "stdio (log lines) may gather"),
	ALLOW(writev, "stdio (log lines) may scatter"),
	ALLOW(pread64, "resume from disk: pages; suspend: /proc/self/pagemap"),
	ALLOW(pwrite64, "suspend to disk: private pages at their offsets"),
	ALLOW(lseek, "snapshot files"),
	ALLOW(poll, "the control loop and the I/O thread wait on their fds"),
	ALLOW(ppoll, "glibc may implement poll() with ppoll"),
	ALLOW(recvfrom, "recv() on the control socket"),
	ALLOW(sendto, "send() on port sockets"),
	ALLOW(recvmsg, "control messages from the front-end"),
	ALLOW(sendmsg, "replies, with session fds (SCM_RIGHTS)"),
	ALLOW(shutdown, "the guest closed a port: EOF to the client"),
	ALLOW1(socketpair, SANDBOX_ARG(0, SCMP_CMP_EQ, AF_UNIX, 0),
	       "a new session's ports (AF_UNIX only)"),
	/* O_NONBLOCK on a session socket; no F_SETOWN, F_SETSIG, O_ASYNC. */
	SANDBOX_FCNTL_RULES,
	ALLOW(close, "session fds passed on, snapshot files done with"),
	/* Files: suspend to disk and resume from it, in the VM's own
	 * directory: the worker runs as a uid of its own, chrooted into
	 * vm/<uid>/, where nothing but its own files is. */
	ALLOW(openat, "suspend/resume: the VM's state and pages files"),
	ALLOW(fstat, "resume: snapshot file sizes"),
	ALLOW(newfstatat, "glibc's fstat() on recent versions"),
	ALLOW(ftruncate, "suspend: sizing the pages file"),
	ALLOW(fsync, "suspend: the files reach disk before we say so"),
	ALLOW(fdatasync, "suspend: as fsync"),
	ALLOW(rename, "suspend: the state file replaces the old atomically"),
	ALLOW(renameat, "glibc's rename() may use renameat"),
	ALLOW(unlink, "suspend failed: remove the temporary file"),
	ALLOW(unlinkat, "glibc's unlink() may use unlinkat"),
	/* Memory, never executable; also mmap of a resumed VM's RAM, and
	 * madvise dropping guest pages the balloon reports free. */
	SANDBOX_MEMORY_RULES,
	/* KVM: running the vCPU, interrupts, save and restore. */
	IOCTL(KVM_RUN, "run the vCPU"),
	IOCTL(KVM_IRQ_LINE, "virtio-console and UART interrupts"),
	IOCTL(KVM_CHECK_EXTENSION, "suspend: XSAVE2 size"),
	IOCTL(KVM_GET_MSR_INDEX_LIST, "suspend: which MSRs to save"),
	IOCTL(KVM_GET_MSRS, "suspend: vCPU MSRs"),
	IOCTL(KVM_SET_MSRS, "resume: vCPU MSRs"),
	IOCTL(KVM_GET_REGS, "suspend: vCPU registers"),
	IOCTL(KVM_SET_REGS, "resume: vCPU registers; PVM completions"),
	IOCTL(KVM_GET_SREGS, "suspend: vCPU segment registers; PVM completions"),
	IOCTL(KVM_SET_SREGS, "resume: segment registers; PVM: a fault's CR2"),
	IOCTL(KVM_GET_FPU, "suspend: FPU state"),
	IOCTL(KVM_SET_FPU, "resume: FPU state"),
	IOCTL(KVM_GET_XSAVE, "suspend: XSAVE state; PVM: MXCSR"),
	IOCTL(KVM_GET_XSAVE2, "suspend: XSAVE state (large)"),
	IOCTL(KVM_SET_XSAVE, "resume: XSAVE state; PVM: ldmxcsr"),
	IOCTL(KVM_GET_XCRS, "suspend: XCR0"),
	IOCTL(KVM_SET_XCRS, "resume: XCR0"),
	IOCTL(KVM_GET_LAPIC, "suspend: local APIC"),
	IOCTL(KVM_SET_LAPIC, "resume: local APIC"),
	IOCTL(KVM_GET_VCPU_EVENTS, "suspend: pending events; PVM completions"),
	IOCTL(KVM_SET_VCPU_EVENTS, "resume: pending events; PVM: inject faults"),
	IOCTL(KVM_GET_MP_STATE, "suspend: halted or running"),
	IOCTL(KVM_SET_MP_STATE, "resume: halted or running"),
	IOCTL(KVM_GET_DEBUGREGS, "suspend: debug registers; PVM: single step"),
	IOCTL(KVM_SET_DEBUGREGS, "resume: debug registers; PVM: #DB after a step"),
	IOCTL(KVM_GET_IRQCHIP, "suspend: PIC and IOAPIC"),
	IOCTL(KVM_SET_IRQCHIP, "resume: PIC and IOAPIC"),
	IOCTL(KVM_GET_PIT2, "suspend: PIT"),
	IOCTL(KVM_SET_PIT2, "resume: PIT"),
	IOCTL(KVM_GET_CLOCK, "suspend: kvmclock"),
	IOCTL(KVM_SET_CLOCK, "resume: kvmclock"),
	/* Threads: the vCPU and I/O threads, and how they wait and wake. */
	ALLOW1(clone, SANDBOX_ARG(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD,
				  CLONE_THREAD),
	       "vm_start(): threads only, never a process"),
	{ SCMP_SYS(clone3), "flags unfilterable: ENOSYS makes glibc use clone",
	  ENOSYS, 0, { { 0 } } },
	ALLOW(set_robust_list, "glibc, in every new thread"),
	ALLOW(rseq, "glibc, in every new thread"),
	ALLOW(futex, "mutex and condition variable between the threads"),
	ALLOW(rt_sigaction, "the vCPU kick signal's handler"),
	ALLOW(rt_sigprocmask, "threads start with signals blocked"),
	ALLOW(rt_sigreturn, "return from the kick signal's handler"),
	ALLOW1(tgkill, SANDBOX_ARG(0, SCMP_CMP_EQ, SANDBOX_SELF_PID, 0),
	       "kick our own vCPU thread out of KVM_RUN (own pid only)"),
	ALLOW(getpid, "tgkill's argument; log lines"),
	ALLOW(gettid, "glibc's pthread_kill"),
	ALLOW(clock_gettime, "timestamps when the vDSO cannot answer"),
	ALLOW(clock_nanosleep, "usleep() while a thread starts or stops"),
	ALLOW(nanosleep, "usleep() on older glibc"),
	ALLOW(sched_yield, "glibc spin locks"),
	ALLOW(exit, "a thread ends"),
	ALLOW(exit_group, "the worker ends"),
};

const size_t vmm_worker_nrules =
	sizeof(vmm_worker_rules) / sizeof(vmm_worker_rules[0]);
