/* A VM's threads: the vCPU thread (KVM_RUN, each exit handed to the
 * device its address is registered to on the buses, pause and park) and
 * the I/O thread (the agent link and the console's host ends), started
 * and stopped together. */
#include "vmm/vm_impl.h"

#include <errno.h>
#include <linux/kvm.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/clock.h"
#include "vmm/x86/pvm.h"

/* ---- the vCPU thread --------------------------------------------------- */

static void pio(struct vm *vm, struct kvm_run *run)
{
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool write = run->io.direction != KVM_EXIT_IO_IN;

	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size)
		if (bus_access(&vm->pio, run->io.port, data, run->io.size,
			       write) < 0 && !write)
			memset(data, 0xff, run->io.size);	/* nothing here */
}

static void mmio(struct vm *vm, struct kvm_run *run)
{
	uint64_t a = run->mmio.phys_addr;
	uint32_t len = run->mmio.len;

	if (len > sizeof(run->mmio.data))
		return;
	if (bus_access(&vm->mmio, a, run->mmio.data, len,
		       run->mmio.is_write) == 0)
		return;
	if (!run->mmio.is_write)
		memset(run->mmio.data, 0xff, len);
	log_limit_debug(&vm->glog, "vm: MMIO %s of %u bytes at 0x%llx: "
			"nothing there", run->mmio.is_write ? "write" : "read",
			len, (unsigned long long)a);
}

static void emulation_failure(struct vm *vm)
{
	char desc[160];
	int r;

	r = pvm_complete_emulation(vm->vcpu_fd, vm->run, &vm->mem,
				   &vm->stats.emul, desc, sizeof(desc));
	if (r == 0)
		return;
	if (r == -EOPNOTSUPP)
		vm_end(vm, VM_EXIT_ERROR, "KVM could not emulate the guest's "
		       "%s", desc);
	else
		vm_end(vm, VM_EXIT_ERROR, "completing the guest's %s: %s",
		       desc, strerror(-r));
}

void vm_park(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->pause_req && !vm->stopping) {
		vm->parked = true;
		pthread_cond_broadcast(&vm->cond);
		while (vm->pause_req && !vm->stopping)
			pthread_cond_wait(&vm->cond, &vm->lock);
		vm->parked = false;
	}
	pthread_mutex_unlock(&vm->lock);
}

static void *vcpu_main(void *arg)
{
	struct vm *vm = arg;
	struct kvm_run *run = vm->run;

	vm->stats.first_entry_ns = clock_mono_ns();
	__atomic_store_n(&vm->vcpu_tid, gettid(), __ATOMIC_RELEASE);
	while (!vm->stopping) {
		int r;

		/* A pause first lets KVM finish a pending I/O completion
		 * (immediate exit), so the state we save is whole. */
		if (__atomic_load_n(&vm->pause_req, __ATOMIC_ACQUIRE))
			run->immediate_exit = 1;
		__atomic_store_n(&vm->last_entry_ns, clock_mono_ns(), __ATOMIC_RELEASE);
		r = ioctl(vm->vcpu_fd, KVM_RUN, 0);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				vm->stats.exits_intr++;
				run->immediate_exit = 0;
				vm_park(vm);
				continue;
			}
			vm_end(vm, VM_EXIT_ERROR, "KVM_RUN: %s",
			       strerror(errno));
			break;
		}
		vm->stats.exits++;
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			vm->stats.exits_io++;
			pio(vm, run);
			break;
		case KVM_EXIT_MMIO:
			vm->stats.exits_mmio++;
			mmio(vm, run);
			break;
		case KVM_EXIT_INTERNAL_ERROR:
			vm->stats.exits_other++;
			if (run->internal.suberror ==
			    KVM_INTERNAL_ERROR_EMULATION)
				emulation_failure(vm);
			else
				vm_end(vm, VM_EXIT_ERROR, "KVM internal error, "
				       "suberror %u", run->internal.suberror);
			break;
		case KVM_EXIT_SHUTDOWN:
			vm_end(vm, vm->power_intent == AGENT_POWER_REBOOT ?
			       VM_EXIT_REBOOT : VM_EXIT_RESET,
			       "guest %s", vm->power_intent ==
			       AGENT_POWER_REBOOT ? "rebooted" :
			       "reset (triple fault)");
			break;
		case KVM_EXIT_SYSTEM_EVENT:
			if (run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN)
				vm_end(vm, VM_EXIT_POWEROFF,
				       "guest powered off");
			else
				vm_end(vm, VM_EXIT_RESET, "guest system event "
				       "%u", run->system_event.type);
			break;
		case KVM_EXIT_HLT:
			vm_end(vm, VM_EXIT_POWEROFF, "guest halted");
			break;
		case KVM_EXIT_FAIL_ENTRY:
			vm_end(vm, VM_EXIT_ERROR, "KVM entry failed, reason "
			       "0x%llx", (unsigned long long)run->fail_entry
			       .hardware_entry_failure_reason);
			break;
		case KVM_EXIT_INTR:
			vm->stats.exits_intr++;
			break;
		default:
			vm_end(vm, VM_EXIT_ERROR, "unexpected KVM exit %u",
			       run->exit_reason);
			break;
		}
	}
	if (vm->serial)
		uart_flush(&vm->uart);
	return NULL;
}

/* ---- the I/O thread ---------------------------------------------------- */

static void *io_main(void *arg)
{
	struct vm *vm = arg;
	struct pollfd pfd[3 + 2 * VCON_MAX_PORTS];

	while (!vm->stopping) {
		int n = 0;

		pfd[n++] = (struct pollfd){ .fd = vm->stop_fd, .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = vm->con.kick_fd,
					    .events = POLLIN };
		pfd[n++] = (struct pollfd){ .fd = vm->agent_fd, .events = POLLIN };
		n += vcon_pollfds(&vm->con, pfd + n,
				  (int)(sizeof(pfd) / sizeof(pfd[0])) - n);
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			vm_end(vm, VM_EXIT_ERROR, "poll: %s", strerror(errno));
			break;
		}
		if (pfd[0].revents)
			break;
		if (pfd[2].revents)
			vm_agent_input(vm);
		vcon_process(&vm->con);
	}
	return NULL;
}

/* ---- start, pause, stop ------------------------------------------------ */

static void kick_handler(int sig)
{
	(void)sig;	/* only to interrupt KVM_RUN */
}

int vm_kick_install(void)
{
	struct sigaction sa = { .sa_handler = kick_handler };

	sigemptyset(&sa.sa_mask);
	if (sigaction(VM_KICK_SIGNAL, &sa, NULL) < 0)
		return -errno;
	return 0;
}

int vm_start(struct vm *vm)
{
	sigset_t all, old;
	int r;

	if (vm->state != VM_CREATED)
		return -EINVAL;
	r = vm_kick_install();
	if (r < 0)
		return r;
	clock_gettime(CLOCK_MONOTONIC, &vm->started);
	vm->state = VM_RUNNING;
	if (vm->time_sync)
		vm_agent_send_time(vm);
	/* Our threads take no process signals (SIGWINCH, SIGTERM...): those
	 * are the owner's, whatever it blocks later. Only the kick reaches
	 * the vCPU thread. */
	sigfillset(&all);
	sigdelset(&all, VM_KICK_SIGNAL);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&vm->io_thread, NULL, io_main, vm);
	if (r == 0) {
		r = pthread_create(&vm->vcpu_thread, NULL, vcpu_main, vm);
		if (r) {
			uint64_t one = 1;

			vm->stopping = 1;
			if (write(vm->stop_fd, &one, sizeof(one)) < 0)
				log_warn("vm: stop");
			pthread_join(vm->io_thread, NULL);
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r)
		return -r;
	vm->threads = true;
	return 0;
}

int vm_pause(struct vm *vm)
{
	int r = 0;

	if (!vm->threads)
		return -EINVAL;
	pthread_mutex_lock(&vm->lock);
	vm->pause_req = true;
	pthread_mutex_unlock(&vm->lock);
	vm->run->immediate_exit = 1;
	pthread_kill(vm->vcpu_thread, VM_KICK_SIGNAL);
	pthread_mutex_lock(&vm->lock);
	while (!vm->parked && !vm->stopping)
		pthread_cond_wait(&vm->cond, &vm->lock);
	if (!vm->parked)
		r = -ESRCH;
	pthread_mutex_unlock(&vm->lock);
	return r;
}

uint64_t vm_wait_running(struct vm *vm)
{
	/* After vm_resume: the vCPU is back in KVM_RUN once it is no longer
	 * parked and has stamped a new entry. */
	uint64_t since = clock_mono_ns(), t;

	while ((t = __atomic_load_n(&vm->last_entry_ns, __ATOMIC_ACQUIRE)) <
		       since && !vm->stopping)
		sched_yield();
	return t;
}

void vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->pause_req = false;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

void vm_stop(struct vm *vm)
{
	if (!vm || !vm->threads) {
		if (vm && vm->state == VM_RUNNING)
			vm->state = VM_STOPPED;
		return;
	}
	vm_end(vm, VM_EXIT_STOPPED, "stopped by the VMM");
	pthread_join(vm->vcpu_thread, NULL);
	pthread_join(vm->io_thread, NULL);
	vm->threads = false;
	vm->state = VM_STOPPED;
}
