/* Inside a VM: the struct the vmm/ layers that make up a VM share (vm.c
 * machine creation, vcpu.c threads, agent_link.c the agent and sessions,
 * persist.c save and restore), and what they call of each other. Not for
 * use outside those files (the unit tests of their static parts aside). */
#ifndef VMM_VM_IMPL_H
#define VMM_VM_IMPL_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/log.h"
#include "vmm/bus.h"
#include "vmm/gmem.h"
#include "vmm/virtio/console.h"
#include "vmm/vm.h"
#include "vmm/x86/uart.h"

#define VM_VIRTIO_BASE 0xd0000000ULL	/* above RAM (at most 3 GiB) */
#define VM_VIRTIO_CONSOLE_GSI 5
#define VM_KICK_SIGNAL SIGUSR1
/* How long a save waits for the console to finish what is in flight: a
 * Linux guest takes its control messages as soon as its driver's work
 * item runs, which under PVM's emulator (guest kernel code at ~1M
 * instructions/s) takes far longer than on hardware. Generous, since what
 * follows may end the VM: this is for guests that never will. */
#define VM_QUIET_NS 5000000000ULL

struct vm {
	int kvm_fd, vm_fd, vcpu_fd, mem_fd;
	int pagemap_fd;		/* /proc/self/pagemap, opened while we may */
	/* Every log line the guest can cause, whatever its kind (agent
	 * messages, device errors, stray MMIO): one budget, so that no mix
	 * of kinds floods the host's log. */
	struct log_limit glog;
	uint64_t quiet_ns;		/* capture(): how long the console may
					 * stay busy before it is settled */
	struct kvm_run *run;
	size_t run_size;
	struct gmem mem;
	bool pvm;
	struct bus pio, mmio;		/* what each device answers */

	struct vcon con;
	struct uart uart;
	bool serial;
	int port_fd[VCON_MAX_PORTS];	/* the device's ends of socket pairs */
	int agent_fd;			/* our end of the agent port */
	struct agent_dec dec;
	struct agent_msg msg;

	pthread_t vcpu_thread, io_thread;
	pid_t vcpu_tid;
	uint64_t last_entry_ns;		/* when the vCPU last entered KVM_RUN */
	bool threads;
	int stop_fd;			/* eventfd: tells the I/O thread to stop */
	int event_fd;			/* eventfd: state changes, for the owner */
	volatile sig_atomic_t stopping;

	pthread_mutex_t lock;		/* the fields below */
	pthread_cond_t cond;		/* pause_req and parked changes */
	bool pause_req, parked;
	enum vm_state state;
	enum vm_exit exit;
	char detail[256];
	bool agent_ready;
	bool have_identity, identity_sent, identity_acked;
	bool time_sync;			/* tell the agent the time at start */
	struct agent_identity identity;
	int power_intent;		/* -1, or AGENT_POWER_* the agent announced */
	/* Sessions: port n (>= 2) carries session port_session[n] (0: free;
	 * reusable once the guest has closed it). */
	uint32_t port_session[VCON_MAX_PORTS];
	struct { uint32_t id; uint16_t status; } exits[64];
	unsigned nexits;
	struct vm_stats stats;
	struct timespec started;
};

/* vm.c: record why the VM ends (first reason wins) and make everything
 * stop. */
void vm_end(struct vm *vm, enum vm_exit why, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* vm.c: tell the owner the state changed (its event fd). */
void vm_notify(struct vm *vm);
/* vm.c: give KVM the guest RAM in vm->mem (slot 0). 0 or -errno. */
int vm_map_memory(struct vm *vm);

/* vcpu.c: the vCPU thread, out of KVM_RUN: wait while a pause is asked
 * for. */
void vm_park(struct vm *vm);
/* vcpu.c: the handler of VM_KICK_SIGNAL (it only interrupts KVM_RUN).
 * 0 or -errno. */
int vm_kick_install(void);

/* agent_link.c: read and handle what the agent sent (the I/O thread). */
void vm_agent_input(struct vm *vm);
/* agent_link.c: the guest's clock stood still while it was on disk: tell
 * the agent the time. */
void vm_agent_send_time(struct vm *vm);

#endif
