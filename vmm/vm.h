/* A virtual machine: KVM VM and vCPU, guest RAM in a memfd, the boot of a
 * Linux kernel, the devices (virtio-console on virtio-mmio, optional 8250
 * UART), a vCPU thread and an I/O thread. One VM per process. */
#ifndef VMM_VM_H
#define VMM_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "console/agent_proto.h"
#include "vmm/x86/pvm.h"

#define VM_AGENT_PORT 1
#define VM_AGENT_PORT_NAME "clone.agent"
#define VM_MIN_MEMORY_MB 64
#define VM_MAX_MEMORY_MB 3072	/* RAM stays below the 32-bit device hole */

struct vm_config {
	const char *kernel;	/* bzImage or ELF vmlinux */
	const char *initrd;	/* may be NULL */
	const char *cmdline;	/* appended to the VMM's own arguments */
	unsigned memory_mb;
	unsigned vcpus;
	bool serial;		/* 8250 UART with console=ttyS0 */
	int serial_fd;		/* where the UART's output goes */
};

enum vm_state { VM_CREATED, VM_RUNNING, VM_STOPPED };

/* Why a VM stopped. */
enum vm_exit {
	VM_EXIT_NONE,
	VM_EXIT_POWEROFF,	/* the guest powered off */
	VM_EXIT_REBOOT,		/* the guest rebooted (after saying so) */
	VM_EXIT_RESET,		/* reset/triple fault, no word from the agent */
	VM_EXIT_STOPPED,	/* vm_stop() */
	VM_EXIT_ERROR,		/* VMM or KVM error: see vm_exit_detail() */
};

struct vm_stats {
	uint64_t exits, exits_io, exits_mmio, exits_intr, exits_other;
	struct pvm_emul_stats emul;
	uint64_t ready_ns;	/* start to agent ready; 0 if not yet */
	uint64_t ack_ns;	/* start to identity acknowledged; 0 if not yet */
	uint64_t first_entry_ns;	/* CLOCK_MONOTONIC at the first KVM_RUN */
};

struct vm;

/* Create the VM and load the guest; nothing runs yet. On failure returns
 * -errno and a one-line reason naming the file or cause in err. */
int vm_create(const struct vm_config *cfg, struct vm **out, char *err,
	      size_t errlen);

/* The parts of vm_create, for clones: vm_new() makes the KVM VM, vCPU,
 * irqchip, PIT and devices (no RAM yet: work a pool can do before anyone
 * asks); then either vm_boot_setup() (RAM in a memfd, load the kernel) or
 * vm_restore_setup() (the template's RAM mapped copy-on-write, its state
 * restored; add the same terminals first). 0 or -errno with err set. */
int vm_new(struct vm **out, char *err, size_t errlen);
int vm_boot_setup(struct vm *vm, const struct vm_config *cfg, char *err,
		  size_t errlen);
struct vm_snapshot;
int vm_restore_setup(struct vm *vm, const struct vm_snapshot *snap,
		     int mem_fd, char *err, size_t errlen);

/* Stop the vCPU (out of KVM_RUN, parked) and let it go on. vm_pause
 * returns 0, or -ESRCH if the VM stopped instead. */
int vm_pause(struct vm *vm);
void vm_resume(struct vm *vm);
/* After vm_resume(): wait until the vCPU is back in KVM_RUN; returns the
 * CLOCK_MONOTONIC time (ns) it entered. */
uint64_t vm_wait_running(struct vm *vm);
/* Snapshot a running VM into dir (files "state" and "memory"). The VM is
 * left paused. 0 or -errno with err set. */
int vm_save(struct vm *vm, const char *dir, char *err, size_t errlen);

/* Suspend to disk: pause, then write the state and only the pages this
 * clone owns (those differing from the template) into dir. The VM stays
 * paused; free it after. *pages gets the number of pages written. */
int vm_suspend_to_disk(struct vm *vm, const char *dir, uint64_t *pages,
		       char *err, size_t errlen);
/* On a VM set up from the same template (vm_restore_setup), not yet run:
 * lay the suspended pages over the template and restore that state. The
 * agent gets the time when the VM starts. 0 or -errno with err set. */
int vm_resume_disk_setup(struct vm *vm, const char *dir, char *err,
			 size_t errlen);

/* Attach a terminal port: nr 0 is the guest's console (hvc0), others are
 * further terminals (hvcN). Returns the host end of a socket pair the
 * caller owns (bytes to and from the guest), or -errno. Before vm_start. */
int vm_add_terminal(struct vm *vm, unsigned nr);

/* Start the vCPU and I/O threads. 0 or -errno. */
int vm_start(struct vm *vm);

/* An eventfd that becomes readable whenever the VM's state changes (the
 * agent is ready, the VM stopped). Owned by the VM. */
int vm_event_fd(const struct vm *vm);
bool vm_agent_ready(const struct vm *vm);
enum vm_state vm_state(const struct vm *vm);
enum vm_exit vm_exit_reason(const struct vm *vm);
/* One line saying why the VM stopped, e.g. "guest powered off". */
const char *vm_exit_detail(const struct vm *vm);
void vm_get_stats(const struct vm *vm, struct vm_stats *st);
/* Thread id of the vCPU thread (0 before it started). */
pid_t vm_vcpu_tid(const struct vm *vm);

/* Fill id for a new clone: fresh entropy and machine id (libsodium), the
 * wall-clock time now, and the given user, uid, home and hostname.
 * 0 or -EINVAL (a field the agent would refuse). */
int vm_identity_make(struct agent_identity *id, const char *user,
		     uint32_t uid, const char *home, const char *hostname);

/* The identity the agent gets: sent as soon as the agent is ready (at
 * once if it already is). The VM keeps a copy and wipes it once sent. */
int vm_set_identity(struct vm *vm, const struct agent_identity *id);
/* Whether the agent acknowledged the identity (then the user's shell is
 * starting on the console). */
bool vm_identity_acked(const struct vm *vm);

/* Sessions: a process in the guest as the clone's user (after the
 * identity), with its own virtio-console port(s). sp names the session (a
 * non-zero id chosen by the caller), pty or not, size, TERM and command;
 * the ports are filled in here. The caller gets the host ends and owns
 * them: *io_fd stdout (or the terminal, both ways), *err_fd stderr and
 * *in_fd stdin (both -1 with a pty; closing *in_fd is stdin's EOF). EOF
 * from the guest arrives as EOF on them. 0 or -errno (-EBUSY: no port). */
int vm_session_open(struct vm *vm, struct agent_spawn *sp, int *in_fd,
		    int *io_fd, int *err_fd);
int vm_session_resize(struct vm *vm, uint32_t id, uint16_t rows,
		      uint16_t cols);
int vm_session_signal(struct vm *vm, uint32_t id, int sig);
/* The next session that ended: true with *status = (how << 8) | code, how
 * 0 for an exit code, 1 for a signal. The event fd fires for each. */
bool vm_session_exit(struct vm *vm, uint32_t *id, uint16_t *status);

/* Resize terminal port nr. */
void vm_resize(struct vm *vm, unsigned nr, uint16_t rows, uint16_t cols);

/* Stop the VM (if running), join its threads. Idempotent. */
void vm_stop(struct vm *vm);
/* Stop and free everything. Accepts NULL. */
void vm_free(struct vm *vm);

/* A readable name for an exit reason. */
const char *vm_exit_name(enum vm_exit e);

#endif
