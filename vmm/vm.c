#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "common/log.h"
#include "vmm/x86/boot.h"
#include "vmm/snapshot.h"
#include "vmm/x86/uart.h"
#include "vmm/virtio/console.h"

#define KVM_API_VERSION_EXPECTED 12
#define VIRTIO_BASE 0xd0000000ULL	/* above RAM (at most 3 GiB) */
#define VIRTIO_CONSOLE_GSI 5
#define MAX_FILE (512ULL << 20)		/* kernel/initrd size sanity bound */
#define KICK_SIGNAL SIGUSR1
/* How long a save waits for the console to finish what is in flight: a
 * Linux guest takes its control messages as soon as its driver's work
 * item runs, which under PVM's emulator (guest kernel code at ~1M
 * instructions/s) takes far longer than on hardware. Generous, since what
 * follows may end the VM: this is for guests that never will. */
#define VM_QUIET_NS 5000000000ULL
#define CMDLINE_BASE "reboot=k panic=-1 pci=off nomodule no_timer_check " \
		     "random.trust_cpu=on"

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

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void notify_owner(struct vm *vm)
{
	uint64_t one = 1;

	/* Guest messages (READY, ACK, EXITED) land here as often as it
	 * sends them. */
	if (write(vm->event_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_limit_warn(&vm->glog, "vm: event");
}

/* Record why the VM ends (first reason wins) and make everything stop. */
static void vm_end(struct vm *vm, enum vm_exit why, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void vm_end(struct vm *vm, enum vm_exit why, const char *fmt, ...)
{
	va_list ap;
	uint64_t one = 1;

	pthread_mutex_lock(&vm->lock);
	if (vm->exit == VM_EXIT_NONE) {
		vm->exit = why;
		va_start(ap, fmt);
		vsnprintf(vm->detail, sizeof(vm->detail), fmt, ap);
		va_end(ap);
	}
	vm->stopping = 1;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	if (vm->run)
		vm->run->immediate_exit = 1;
	if (write(vm->stop_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("vm: stop");
	if (vm->threads && !pthread_equal(pthread_self(), vm->vcpu_thread))
		pthread_kill(vm->vcpu_thread, KICK_SIGNAL);
	notify_owner(vm);
}

static void vm_irq(void *opaque, uint32_t gsi)
{
	struct vm *vm = opaque;
	struct kvm_irq_level l = { .irq = gsi, .level = 1 };

	/* An edge: the virtio-mmio and UART lines are edge-triggered ISA
	 * interrupts on the in-kernel PIC/IOAPIC. */
	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0)	/* per guest kick */
		log_limit_warn(&vm->glog, "vm: KVM_IRQ_LINE %u", gsi);
	l.level = 0;
	ioctl(vm->vm_fd, KVM_IRQ_LINE, &l);
}

/* ---- creation ---------------------------------------------------------- */

static int read_file(const char *path, const char *what, uint8_t **buf,
		     size_t *len, char *err, size_t errlen)
{
	struct stat st;
	ssize_t n;
	size_t off = 0;
	int fd, r = 0;

	*buf = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return r;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    (uint64_t)st.st_size > MAX_FILE) {
		r = S_ISREG(st.st_mode) ? -EFBIG : -EINVAL;
		snprintf(err, errlen, "%s %s: %s", what, path,
			 !S_ISREG(st.st_mode) ? "not a regular file" :
			 st.st_size <= 0 ? "empty file" : "too large");
		if (st.st_size == 0)
			r = -ENOEXEC;
		goto out;
	}
	*len = (size_t)st.st_size;
	*buf = malloc(*len);
	if (!*buf) {
		r = -ENOMEM;
		snprintf(err, errlen, "%s %s: out of memory", what, path);
		goto out;
	}
	while (off < *len) {
		n = read(fd, *buf + off, *len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			snprintf(err, errlen, "%s %s: read failed", what, path);
			goto out;
		}
		off += (size_t)n;
	}
out:
	if (r < 0) {
		free(*buf);
		*buf = NULL;
	}
	close(fd);
	return r;
}

static int setup_memory(struct vm *vm, unsigned memory_mb, char *err,
			size_t errlen)
{
	struct kvm_userspace_memory_region region;

	vm->mem.size = (uint64_t)memory_mb << 20;
	vm->mem_fd = memfd_create("clone-guest-ram", MFD_CLOEXEC |
				  MFD_ALLOW_SEALING);
	if (vm->mem_fd < 0 || ftruncate(vm->mem_fd, (off_t)vm->mem.size) < 0)
		goto fail;
	vm->mem.host = mmap(NULL, vm->mem.size, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_NORESERVE, vm->mem_fd, 0);
	if (vm->mem.host == MAP_FAILED) {
		vm->mem.host = NULL;
		goto fail;
	}
	region = (struct kvm_userspace_memory_region){
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = vm->mem.size,
		.userspace_addr = (uintptr_t)vm->mem.host,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "guest memory (%u MiB): %s", memory_mb,
		 strerror(errno));
	return -errno;
}

static int setup_cpuid(struct vm *vm)
{
	struct kvm_cpuid2 *c;
	int nent = 256, r = 0;

	c = calloc(1, sizeof(*c) + (size_t)nent * sizeof(c->entries[0]));
	if (!c)
		return -ENOMEM;
	c->nent = (uint32_t)nent;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		r = -errno;
		goto out;
	}
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 1:
			e->ebx &= 0x00ffffff;	/* initial APIC id 0 */
			e->ecx |= 1U << 31;	/* hypervisor present */
			break;
		case 0xb:
		case 0x1f:
			e->edx = 0;		/* x2APIC id 0 */
			break;
		default:
			break;
		}
	}
	if (vm->pvm)
		pvm_filter_cpuid(c);
	if (ioctl(vm->vcpu_fd, KVM_SET_CPUID2, c) < 0)
		r = -errno;
out:
	free(c);
	return r;
}

static void set_seg(struct kvm_segment *s, uint16_t sel, uint8_t type,
		    bool code)
{
	*s = (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = sel, .type = type,
		.present = 1, .dpl = 0, .db = code ? 0 : 1, .s = 1,
		.l = code ? 1 : 0, .g = 1,
	};
}

static int setup_vcpu_regs(struct vm *vm, uint64_t entry)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_fpu fpu;
	struct kvm_lapic_state lapic;
	uint32_t *lvt;

	if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	set_seg(&sregs.cs, BOOT_CS, 0xb, true);
	set_seg(&sregs.ds, BOOT_DS, 0x3, false);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.tr = (struct kvm_segment){ .limit = 0x67, .type = 0xb,
					 .present = 1 };
	sregs.ldt = (struct kvm_segment){ .type = 2, .unusable = 1 };
	sregs.gdt.base = BOOT_GDT_ADDR;
	sregs.gdt.limit = 4 * 8 - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	sregs.cr0 = 0x80000031;		/* PG | NE | ET | PE */
	sregs.cr3 = BOOT_PML4_ADDR;
	sregs.cr4 = 0x20;		/* PAE */
	sregs.efer = 0x500;		/* LMA | LME */
	if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;

	memset(&regs, 0, sizeof(regs));
	regs.rflags = 2;
	regs.rip = entry;
	regs.rsp = regs.rbp = BOOT_STACK_ADDR;
	regs.rsi = BOOT_ZERO_PAGE_ADDR;	/* boot_params */
	if (ioctl(vm->vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return -errno;

	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	if (ioctl(vm->vcpu_fd, KVM_SET_FPU, &fpu) < 0)
		return -errno;

	/* LINT0 as ExtINT (the PIC's output), LINT1 as NMI: virtual wire. */
	if (ioctl(vm->vcpu_fd, KVM_GET_LAPIC, &lapic) < 0)
		return -errno;
	lvt = (uint32_t *)(void *)&lapic.regs[0x350];
	*lvt = (*lvt & ~0x700U) | 0x700U;
	lvt = (uint32_t *)(void *)&lapic.regs[0x360];
	*lvt = (*lvt & ~0x700U) | 0x400U;
	if (ioctl(vm->vcpu_fd, KVM_SET_LAPIC, &lapic) < 0)
		return -errno;
	return 0;
}

static int build_cmdline(const struct vm *vm, const char *extra, char *out,
			 size_t outlen)
{
	int n = snprintf(out, outlen, "%s %s virtio_mmio.device=4K@0x%llx:%u%s%s%s%s",
			 CMDLINE_BASE,
			 vm->serial ? "console=ttyS0 earlyprintk=serial,ttyS0"
				    : "quiet 8250.nr_uarts=0",
			 VIRTIO_BASE, VIRTIO_CONSOLE_GSI,
			 vm->pvm ? " " : "", vm->pvm ? PVM_CMDLINE : "",
			 extra && *extra ? " " : "", extra ? extra : "");

	return n < 0 || (size_t)n >= outlen ? -E2BIG : 0;
}

static int load_guest(struct vm *vm, const struct vm_config *cfg, char *err,
		      size_t errlen)
{
	struct boot_kernel k;
	uint8_t *kbuf = NULL, *ibuf = NULL;
	size_t klen = 0, ilen = 0;
	uint64_t initrd_gpa = 0;
	char cmdline[BOOT_CMDLINE_MAX], why[160];
	int r;

	r = read_file(cfg->kernel, "kernel", &kbuf, &klen, err, errlen);
	if (r < 0)
		goto out;
	if (cfg->initrd) {
		r = read_file(cfg->initrd, "initrd", &ibuf, &ilen, err, errlen);
		if (r < 0)
			goto out;
	}
	r = boot_load_kernel(&vm->mem, kbuf, klen, &k, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "kernel %s: %s", cfg->kernel, why);
		goto out;
	}
	if (ilen) {
		r = boot_load_initrd(&vm->mem, &k, ibuf, ilen, &initrd_gpa);
		if (r < 0) {
			snprintf(err, errlen, "initrd %s (%zu bytes) does not "
				 "fit in %u MiB of guest memory beside the "
				 "kernel", cfg->initrd, ilen, cfg->memory_mb);
			goto out;
		}
	}
	r = build_cmdline(vm, cfg->cmdline, cmdline, sizeof(cmdline));
	if (r == 0)
		r = boot_setup_params(&vm->mem, &k, cmdline, initrd_gpa, ilen);
	if (r < 0) {
		snprintf(err, errlen, "kernel command line longer than %d bytes",
			 BOOT_CMDLINE_MAX - 1);
		goto out;
	}
	log_debug("guest command line: %s", cmdline);
	r = boot_setup_longmode(&vm->mem);
	if (r == 0)
		r = setup_vcpu_regs(vm, k.entry);
	if (r < 0)
		snprintf(err, errlen, "vCPU set-up: %s", strerror(-r));
out:
	free(kbuf);
	free(ibuf);
	return r;
}

static int kvm_open(struct vm *vm, char *err, size_t errlen)
{
	static const struct { int cap; const char *name; } caps[] = {
		{ KVM_CAP_IRQCHIP, "in-kernel irqchip" },
		{ KVM_CAP_USER_MEMORY, "user memory" },
		{ KVM_CAP_PIT2, "in-kernel PIT" },
		{ KVM_CAP_IMMEDIATE_EXIT, "immediate exit" },
	};
	int v;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		v = -errno;
		snprintf(err, errlen, "/dev/kvm: %s%s", strerror(errno),
			 errno == ENOENT ? " (no KVM on this host)" : "");
		return v;
	}
	v = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (v != KVM_API_VERSION_EXPECTED) {
		snprintf(err, errlen, "/dev/kvm: API version %d, need %d", v,
			 KVM_API_VERSION_EXPECTED);
		return -ENOTSUP;
	}
	for (unsigned i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, caps[i].cap) <= 0) {
			snprintf(err, errlen, "/dev/kvm: no %s", caps[i].name);
			return -ENOTSUP;
		}
	}
	return 0;
}

static int create_machine(struct vm *vm, char *err, size_t errlen)
{
	struct kvm_pit_config pit = { .flags = 0 };
	int mmap_size;

	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		goto fail;
	/* Needed by VT-x for real mode only; harmless elsewhere, and some
	 * KVMs (PVM) refuse it. */
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000UL) < 0)
		log_debug("KVM_SET_TSS_ADDR: %s (ignored)", strerror(errno));
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		goto fail;
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		goto fail;
	vm->vcpu_fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, 0);
	if (vm->vcpu_fd < 0)
		goto fail;
	mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (mmap_size <= 0)
		goto fail;
	vm->run_size = (size_t)mmap_size;
	vm->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       vm->vcpu_fd, 0);
	if (vm->run == MAP_FAILED) {
		vm->run = NULL;
		goto fail;
	}
	return 0;
fail:
	snprintf(err, errlen, "KVM VM set-up: %s", strerror(errno));
	return -errno;
}

int vm_new(struct vm **out, char *err, size_t errlen)
{
	struct vm *vm;
	int sv[2], r;

	*out = NULL;
	vm = calloc(1, sizeof(*vm));
	if (!vm) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	vm->kvm_fd = vm->vm_fd = vm->vcpu_fd = vm->mem_fd = -1;
	vm->agent_fd = vm->stop_fd = vm->event_fd = -1;
	vm->pagemap_fd = -1;
	for (unsigned i = 0; i < VCON_MAX_PORTS; i++)
		vm->port_fd[i] = -1;
	vm->con.kick_fd = -1;
	vm->power_intent = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	log_limit_init(&vm->glog, "guest");
	vm->quiet_ns = VM_QUIET_NS;
	agent_dec_init(&vm->dec);
	vm->pvm = pvm_detect();
	uart_init(&vm->uart, -1, vm_irq, vm);

	vm->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	vm->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_fd < 0 || vm->event_fd < 0) {
		r = -errno;
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	/* For suspending to disk, later: a worker that has dropped root can
	 * no longer open its own pagemap (the file then belongs to root). */
	vm->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	r = kvm_open(vm, err, errlen);
	if (r < 0)
		goto fail;
	r = create_machine(vm, err, errlen);
	if (r < 0)
		goto fail;
	r = vcon_init(&vm->con, &vm->mem, VIRTIO_BASE, VIRTIO_CONSOLE_GSI,
		      vm_irq, vm);
	if (r < 0) {
		snprintf(err, errlen, "virtio-console: %s", strerror(-r));
		goto fail;
	}
	vcon_set_log_limit(&vm->con, &vm->glog);
	/* The agent's port: a socket pair, our end read by the I/O thread. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
		       sv) < 0) {
		r = -errno;
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		goto fail;
	}
	vm->agent_fd = sv[0];
	vm->port_fd[VM_AGENT_PORT] = sv[1];
	r = vcon_add_port(&vm->con, VM_AGENT_PORT, VM_AGENT_PORT_NAME, false,
			  sv[1], sv[1]);
	if (r < 0) {
		snprintf(err, errlen, "agent port: %s", strerror(-r));
		goto fail;
	}
	vm->state = VM_CREATED;
	*out = vm;
	return 0;
fail:
	vm_free(vm);
	return r;
}

int vm_boot_setup(struct vm *vm, const struct vm_config *cfg, char *err,
		  size_t errlen)
{
	int r;

	if (cfg->memory_mb < VM_MIN_MEMORY_MB ||
	    cfg->memory_mb > VM_MAX_MEMORY_MB) {
		snprintf(err, errlen, "memory_mb %u: need %u to %u",
			 cfg->memory_mb, VM_MIN_MEMORY_MB, VM_MAX_MEMORY_MB);
		return -EINVAL;
	}
	if (cfg->vcpus != 1) {
		snprintf(err, errlen, "vcpus %u: only 1 is supported",
			 cfg->vcpus);
		return -EINVAL;
	}
	vm->serial = cfg->serial;
	vm->uart.out_fd = cfg->serial ? cfg->serial_fd : -1;
	r = setup_memory(vm, cfg->memory_mb, err, errlen);
	if (r < 0)
		return r;
	r = setup_cpuid(vm);
	if (r < 0) {
		snprintf(err, errlen, "CPUID set-up: %s", strerror(-r));
		return r;
	}
	return load_guest(vm, cfg, err, errlen);
}

int vm_create(const struct vm_config *cfg, struct vm **out, char *err,
	      size_t errlen)
{
	struct vm *vm;
	int r;

	r = vm_new(&vm, err, errlen);
	if (r < 0)
		return r;
	if (vm->pvm)
		log_info("KVM is PVM (software virtualisation): completing "
			 "emulation failures, hiding CPU features");
	r = vm_boot_setup(vm, cfg, err, errlen);
	if (r < 0) {
		vm_free(vm);
		return r;
	}
	*out = vm;
	return 0;
}

int vm_add_terminal(struct vm *vm, unsigned nr)
{
	int sv[2], r;

	if (nr == VM_AGENT_PORT || nr >= VCON_MAX_PORTS ||
	    vm->state != VM_CREATED)
		return -EINVAL;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	/* The device side never blocks; the owner's side is up to it. */
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	r = vcon_add_port(&vm->con, nr, nr ? "clone.term" : NULL, true, sv[1],
			  sv[1]);
	if (r < 0) {
		close(sv[0]);
		close(sv[1]);
		return r;
	}
	vm->port_fd[nr] = sv[1];
	return sv[0];
}

/* ---- the vCPU thread --------------------------------------------------- */

static void pio(struct vm *vm, struct kvm_run *run)
{
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	uint16_t port = run->io.port;
	bool in = run->io.direction == KVM_EXIT_IO_IN;

	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
		if (vm->serial && port >= UART_COM1_BASE &&
		    port < UART_COM1_BASE + 8 && run->io.size == 1) {
			if (in)
				*data = uart_read(&vm->uart,
						  port - UART_COM1_BASE);
			else
				uart_write(&vm->uart, port - UART_COM1_BASE,
					   *data);
		} else if (port == 0x64 || port == 0x60) {
			/* No i8042; status reads 0 so that a reset request
			 * does not spin waiting for it. */
			if (in)
				memset(data, 0, run->io.size);
			else if (port == 0x64 && *data == 0xfe)
				vm_end(vm, vm->power_intent ==
					   AGENT_POWER_REBOOT ?
					   VM_EXIT_REBOOT : VM_EXIT_RESET,
				       "guest %s",
				       vm->power_intent == AGENT_POWER_REBOOT ?
				       "rebooted" : "reset without a shutdown: "
				       "kernel panic or forced reboot");
		} else if (in) {
			memset(data, 0xff, run->io.size);	/* nothing here */
		}
	}
}

static void mmio(struct vm *vm, struct kvm_run *run)
{
	uint64_t a = run->mmio.phys_addr;
	uint32_t len = run->mmio.len;

	if (len > sizeof(run->mmio.data))
		return;
	if (a >= VIRTIO_BASE && a - VIRTIO_BASE < VIRTIO_MMIO_SIZE) {
		if (run->mmio.is_write)
			virtio_mmio_write(&vm->con.t, a - VIRTIO_BASE,
					  run->mmio.data, len);
		else
			virtio_mmio_read(&vm->con.t, a - VIRTIO_BASE,
					 run->mmio.data, len);
		return;
	}
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

	r = x86_complete_emulation(vm->vcpu_fd, vm->run, &vm->mem,
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

/* vCPU thread, out of KVM_RUN: wait while a pause is asked for. */
static void park(struct vm *vm)
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

	vm->stats.first_entry_ns = now_ns();
	__atomic_store_n(&vm->vcpu_tid, gettid(), __ATOMIC_RELEASE);
	while (!vm->stopping) {
		int r;

		/* A pause first lets KVM finish a pending I/O completion
		 * (immediate exit), so the state we save is whole. */
		if (__atomic_load_n(&vm->pause_req, __ATOMIC_ACQUIRE))
			run->immediate_exit = 1;
		__atomic_store_n(&vm->last_entry_ns, now_ns(), __ATOMIC_RELEASE);
		r = ioctl(vm->vcpu_fd, KVM_RUN, 0);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				vm->stats.exits_intr++;
				run->immediate_exit = 0;
				park(vm);
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

static uint64_t since_start(const struct vm *vm)
{
	return now_ns() - ((uint64_t)vm->started.tv_sec * 1000000000ULL +
			   (uint64_t)vm->started.tv_nsec);
}

/* Lock held. Send the identity if we have one and the agent is ready. */
static void send_identity(struct vm *vm)
{
	uint8_t frame[AGENT_HDR_LEN + AGENT_MAX_PAYLOAD];
	uint8_t payload[AGENT_MAX_PAYLOAD];
	int n;

	if (!vm->have_identity || vm->identity_sent || !vm->agent_ready ||
	    vm->agent_fd < 0)
		return;
	n = agent_identity_encode(&vm->identity, payload, sizeof(payload));
	if (n >= 0)
		n = agent_encode(AGENT_MSG_IDENTITY, payload, (size_t)n, frame,
				 sizeof(frame));
	sodium_memzero(payload, sizeof(payload));
	sodium_memzero(&vm->identity, sizeof(vm->identity));
	vm->identity_sent = true;
	/* One small frame into an empty socket buffer: it fits. */
	if (n < 0 || send(vm->agent_fd, frame, (size_t)n, MSG_NOSIGNAL) != n)
		log_limit_warnx(&vm->glog, "agent: could not send the "
				"identity");
	sodium_memzero(frame, sizeof(frame));
}

/* Lock held. One frame to the agent; small, into a socket buffer that the
 * I/O thread keeps drained into the guest. */
static int agent_send(struct vm *vm, uint8_t type, const void *p, size_t len)
{
	uint8_t frame[AGENT_HDR_LEN + AGENT_MAX_PAYLOAD];
	int n = agent_encode(type, p, len, frame, sizeof(frame));

	if (n < 0)
		return n;
	if (vm->agent_fd < 0 ||
	    send(vm->agent_fd, frame, (size_t)n, MSG_NOSIGNAL) != n)
		return -EPIPE;
	return 0;
}

static void session_exited(struct vm *vm, const struct agent_msg *m)
{
	uint32_t id;

	if (m->len != 6) {
		log_limit_warnx(&vm->glog, "agent: bad exit message");
		return;
	}
	id = (uint32_t)agent_le_get(m->payload, 4);
	pthread_mutex_lock(&vm->lock);
	for (unsigned n = 0; n < VCON_MAX_PORTS; n++)
		if (vm->port_session[n] == id)
			vm->port_session[n] = 0;
	if (vm->nexits < sizeof(vm->exits) / sizeof(vm->exits[0])) {
		vm->exits[vm->nexits].id = id;
		vm->exits[vm->nexits].status =
			(uint16_t)(m->payload[4] << 8 | m->payload[5]);
		vm->nexits++;
	}
	pthread_mutex_unlock(&vm->lock);
	notify_owner(vm);
}

/* The guest's clock stood still while it was on disk: set it. */
static void send_time(struct vm *vm)
{
	uint8_t p[12], frame[AGENT_HDR_LEN + sizeof(p)];
	struct timespec ts;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	agent_le_put(p, (uint64_t)ts.tv_sec, 8);
	agent_le_put(p + 8, (uint64_t)ts.tv_nsec, 4);
	n = agent_encode(AGENT_MSG_TIME, p, sizeof(p), frame, sizeof(frame));
	if (n < 0 || send(vm->agent_fd, frame, (size_t)n, MSG_NOSIGNAL) != n)
		log_warnx("agent: could not send the time");
}

/* A guest may say what it likes, but not flood the host's log: every
 * line below goes through the VM's limiter (common/log.h). A guest can
 * repeat any message, READY and ACK included, as often as it likes. */
static void guest_log(struct vm *vm, const struct agent_msg *m)
{
	log_limit_info(&vm->glog, "guest: %.*s",
		       (int)(m->len > 200 ? 200 : m->len), m->payload);
}

static void agent_message(struct vm *vm, const struct agent_msg *m)
{
	switch ((enum agent_msg_type)m->type) {
	case AGENT_MSG_READY:
		pthread_mutex_lock(&vm->lock);
		if (!vm->agent_ready) {
			vm->agent_ready = true;
			vm->stats.ready_ns = since_start(vm);
		}
		send_identity(vm);
		pthread_mutex_unlock(&vm->lock);
		log_limit_info(&vm->glog, "guest agent ready (%.*s) %.1f s "
			       "after start", (int)(m->len > 64 ? 64 : m->len),
			       m->payload, (double)vm->stats.ready_ns / 1e9);
		notify_owner(vm);
		return;
	case AGENT_MSG_POWER:
		if (m->len != 1 || m->payload[0] > AGENT_POWER_REBOOT) {
			log_limit_warnx(&vm->glog, "agent: bad power message");
			return;
		}
		vm->power_intent = m->payload[0];
		if (m->payload[0] == AGENT_POWER_OFF)
			vm_end(vm, VM_EXIT_POWEROFF, "guest powered off");
		return;
	case AGENT_MSG_ACK:
		if (m->len < 1 || m->payload[0] != 0) {
			log_limit_warnx(&vm->glog, "agent refused the "
					"identity: %.*s", m->len > 1 ?
					(int)(m->len > 200 ? 199 : m->len - 1) :
					0, m->payload + 1);
			return;
		}
		pthread_mutex_lock(&vm->lock);
		vm->identity_acked = true;
		vm->stats.ack_ns = since_start(vm);
		pthread_mutex_unlock(&vm->lock);
		log_limit_info(&vm->glog, "guest identity applied %.1f ms "
			       "after start (guest: %.*s)",
			       (double)vm->stats.ack_ns / 1e6, m->len > 1 ?
			       (int)(m->len > 64 ? 63 : m->len - 1) : 0,
			       m->payload + 1);
		notify_owner(vm);
		return;
	case AGENT_MSG_EXITED:
		session_exited(vm, m);
		return;
	case AGENT_MSG_IDENTITY:
	case AGENT_MSG_TIME:
	case AGENT_MSG_SPAWN:
	case AGENT_MSG_RESIZE:
	case AGENT_MSG_SIGNAL:
	case AGENT_MSG_LOG:
		guest_log(vm, m);
		return;
	case AGENT_MSG_MAX:
		break;
	}
	log_limit_warnx(&vm->glog, "agent: unexpected message type %u",
			m->type);
}

static void agent_input(struct vm *vm)
{
	uint8_t buf[4096];
	ssize_t n = read(vm->agent_fd, buf, sizeof(buf));
	size_t off = 0, used;
	int r;

	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			close(vm->agent_fd);
			vm->agent_fd = -1;
		}
		return;
	}
	while (off < (size_t)n) {
		r = agent_decode(&vm->dec, buf + off, (size_t)n - off, &used,
				 &vm->msg);
		off += used;
		if (r < 0) {
			/* A broken stream from the guest: stop listening to
			 * it, the VM itself carries on. */
			log_limit_warnx(&vm->glog, "agent: protocol error: "
					"%s; agent port closed", strerror(-r));
			close(vm->agent_fd);
			vm->agent_fd = -1;
			return;
		}
		if (r == 1)
			agent_message(vm, &vm->msg);
	}
}

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
			agent_input(vm);
		vcon_process(&vm->con);
	}
	return NULL;
}

static void kick_handler(int sig)
{
	(void)sig;	/* only to interrupt KVM_RUN */
}

int vm_start(struct vm *vm)
{
	struct sigaction sa = { .sa_handler = kick_handler };
	sigset_t all, old;
	int r;

	if (vm->state != VM_CREATED)
		return -EINVAL;
	sigemptyset(&sa.sa_mask);
	if (sigaction(KICK_SIGNAL, &sa, NULL) < 0)
		return -errno;
	clock_gettime(CLOCK_MONOTONIC, &vm->started);
	vm->state = VM_RUNNING;
	if (vm->time_sync)
		send_time(vm);
	/* Our threads take no process signals (SIGWINCH, SIGTERM...): those
	 * are the owner's, whatever it blocks later. Only the kick reaches
	 * the vCPU thread. */
	sigfillset(&all);
	sigdelset(&all, KICK_SIGNAL);
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

/* ---- the owner's view -------------------------------------------------- */

pid_t vm_vcpu_tid(const struct vm *vm)
{
	return __atomic_load_n(&vm->vcpu_tid, __ATOMIC_ACQUIRE);
}

int vm_event_fd(const struct vm *vm)
{
	return vm->event_fd;
}

bool vm_agent_ready(const struct vm *vm)
{
	return __atomic_load_n(&vm->agent_ready, __ATOMIC_ACQUIRE);
}

enum vm_state vm_state(const struct vm *vm)
{
	if (vm->state == VM_RUNNING && vm->stopping)
		return VM_STOPPED;
	return vm->state;
}

enum vm_exit vm_exit_reason(const struct vm *vm)
{
	return vm->exit;
}

const char *vm_exit_detail(const struct vm *vm)
{
	return vm->detail[0] ? vm->detail : vm_exit_name(vm->exit);
}

void vm_get_stats(const struct vm *vm, struct vm_stats *st)
{
	*st = vm->stats;
}

int vm_identity_make(struct agent_identity *id, const char *user,
		     uint32_t uid, const char *home, const char *hostname)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t mid[16];
	struct timespec ts;
	uint8_t probe[AGENT_MAX_PAYLOAD];

	memset(id, 0, sizeof(*id));
	randombytes_buf(id->entropy, 64);
	id->entropy_len = 64;
	randombytes_buf(mid, sizeof(mid));
	for (unsigned i = 0; i < sizeof(mid); i++) {
		id->machine_id[2 * i] = hex[mid[i] >> 4];
		id->machine_id[2 * i + 1] = hex[mid[i] & 15];
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	id->sec = (uint64_t)ts.tv_sec;
	id->nsec = (uint32_t)ts.tv_nsec;
	snprintf(id->user, sizeof(id->user), "%s", user);
	snprintf(id->home, sizeof(id->home), "%s", home);
	snprintf(id->hostname, sizeof(id->hostname), "%s", hostname);
	id->uid = uid;
	/* The same checks the agent makes, here where they can be reported. */
	if (agent_identity_encode(id, probe, sizeof(probe)) < 0) {
		sodium_memzero(id, sizeof(*id));
		return -EINVAL;
	}
	return 0;
}

int vm_set_identity(struct vm *vm, const struct agent_identity *id)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->have_identity) {
		pthread_mutex_unlock(&vm->lock);
		return -EBUSY;
	}
	vm->identity = *id;
	vm->have_identity = true;
	send_identity(vm);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

bool vm_identity_acked(const struct vm *vm)
{
	return __atomic_load_n(&vm->identity_acked, __ATOMIC_ACQUIRE);
}

void vm_resize(struct vm *vm, unsigned nr, uint16_t rows, uint16_t cols)
{
	vcon_resize(&vm->con, nr, rows, cols);
}

const char *vm_exit_name(enum vm_exit e)
{
	switch (e) {
	case VM_EXIT_NONE: return "running";
	case VM_EXIT_POWEROFF: return "powered off";
	case VM_EXIT_REBOOT: return "rebooted";
	case VM_EXIT_RESET: return "reset";
	case VM_EXIT_STOPPED: return "stopped";
	case VM_EXIT_ERROR: return "error";
	}
	return "unknown";
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

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void vm_free(struct vm *vm)
{
	if (!vm)
		return;
	vm_stop(vm);
	vcon_destroy(&vm->con);
	for (unsigned i = 0; i < VCON_MAX_PORTS; i++)
		close_fd(&vm->port_fd[i]);
	close_fd(&vm->agent_fd);
	if (vm->run)
		munmap(vm->run, vm->run_size);
	if (vm->mem.host)
		munmap(vm->mem.host, vm->mem.size);
	close_fd(&vm->mem_fd);
	close_fd(&vm->vcpu_fd);
	close_fd(&vm->vm_fd);
	close_fd(&vm->kvm_fd);
	close_fd(&vm->stop_fd);
	close_fd(&vm->event_fd);
	close_fd(&vm->pagemap_fd);
	pthread_mutex_destroy(&vm->lock);
	pthread_cond_destroy(&vm->cond);
	log_limit_flush(&vm->glog);
	log_limit_destroy(&vm->glog);
	sodium_memzero(&vm->identity, sizeof(vm->identity));
	free(vm);
}

/* ---- pause, snapshot, restore ------------------------------------------ */

int vm_pause(struct vm *vm)
{
	int r = 0;

	if (!vm->threads)
		return -EINVAL;
	pthread_mutex_lock(&vm->lock);
	vm->pause_req = true;
	pthread_mutex_unlock(&vm->lock);
	vm->run->immediate_exit = 1;
	pthread_kill(vm->vcpu_thread, KICK_SIGNAL);
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
	uint64_t since = now_ns(), t;

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

static int cmp_msr(const void *a, const void *b)
{
	const struct kvm_msr_entry *x = a, *y = b;

	/* The TSC first: TSC_DEADLINE and kvmclock are relative to it. */
	if ((x->index == 0x10) != (y->index == 0x10))
		return x->index == 0x10 ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

struct msr_buf {
	struct kvm_msrs hdr;
	struct kvm_msr_entry e[SNAPSHOT_MAX_MSRS];
};

static int get_msrs(struct vm *vm, struct vcpu_state *c)
{
	struct {
		struct kvm_msr_list hdr;
		uint32_t idx[SNAPSHOT_MAX_MSRS];
	} list = { .hdr.nmsrs = SNAPSHOT_MAX_MSRS };
	struct msr_buf part;
	unsigned n;

	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &list) < 0)
		return -errno;
	n = list.hdr.nmsrs;
	for (unsigned i = 0; i < n; i++)
		c->msrs[i] = (struct kvm_msr_entry){ .index = list.idx[i] };
	/* KVM_GET_MSRS stops at the first MSR it cannot read: drop that one
	 * and go on, so we save every one it can. */
	for (unsigned done = 0; done < n;) {
		int got;

		part.hdr.nmsrs = n - done;
		memcpy(part.e, &c->msrs[done], (n - done) * sizeof(part.e[0]));
		got = ioctl(vm->vcpu_fd, KVM_GET_MSRS, &part);
		if (got < 0)
			return -errno;
		memcpy(&c->msrs[done], part.e, (size_t)got * sizeof(part.e[0]));
		done += (unsigned)got;
		if (done < n) {
			memmove(&c->msrs[done], &c->msrs[done + 1],
				(n - done - 1) * sizeof(c->msrs[0]));
			n--;
		}
	}
	qsort(c->msrs, n, sizeof(c->msrs[0]), cmp_msr);
	c->nmsrs = n;
	return 0;
}

static int xsave_size(struct vm *vm)
{
	int size = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);

	return size > (int)sizeof(struct kvm_xsave) ? size :
						       (int)sizeof(struct kvm_xsave);
}

static int capture_cpu(struct vm *vm, struct vcpu_state *c)
{
	int fd = vm->vcpu_fd, size = xsave_size(vm);

	if (size > SNAPSHOT_XSAVE_MAX)
		return -E2BIG;
	c->xsave_size = (uint32_t)size;
	if (ioctl(fd, KVM_GET_REGS, &c->regs) < 0 ||
	    ioctl(fd, KVM_GET_SREGS, &c->sregs) < 0 ||
	    ioctl(fd, KVM_GET_FPU, &c->fpu) < 0 ||
	    ioctl(fd, KVM_GET_XCRS, &c->xcrs) < 0 ||
	    ioctl(fd, KVM_GET_LAPIC, &c->lapic) < 0 ||
	    ioctl(fd, KVM_GET_VCPU_EVENTS, &c->events) < 0 ||
	    ioctl(fd, KVM_GET_MP_STATE, &c->mp) < 0 ||
	    ioctl(fd, KVM_GET_DEBUGREGS, &c->dregs) < 0 ||
	    ioctl(fd, size > (int)sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 :
	          KVM_GET_XSAVE, c->xsave) < 0)
		return -errno;
	return get_msrs(vm, c);
}

static int restore_cpu(struct vm *vm, const struct vcpu_state *c)
{
	int fd = vm->vcpu_fd;
	struct msr_buf m;
	struct kvm_vcpu_events ev = c->events;
	int r;

	if (c->nmsrs > SNAPSHOT_MAX_MSRS ||
	    c->xsave_size > (uint32_t)xsave_size(vm))
		return -EINVAL;
	if (ioctl(fd, KVM_SET_MP_STATE, &c->mp) < 0 ||
	    ioctl(fd, KVM_SET_REGS, &c->regs) < 0 ||
	    ioctl(fd, KVM_SET_SREGS, &c->sregs) < 0 ||
	    ioctl(fd, KVM_SET_XSAVE, c->xsave) < 0 ||
	    ioctl(fd, KVM_SET_XCRS, &c->xcrs) < 0 ||
	    ioctl(fd, KVM_SET_DEBUGREGS, &c->dregs) < 0 ||
	    ioctl(fd, KVM_SET_LAPIC, &c->lapic) < 0)
		return -errno;
	m.hdr.nmsrs = c->nmsrs;
	memcpy(m.e, c->msrs, c->nmsrs * sizeof(m.e[0]));
	r = ioctl(fd, KVM_SET_MSRS, &m);
	if (r < 0)
		return -errno;
	if ((uint32_t)r != c->nmsrs) {
		log_warnx("restore: MSR 0x%x refused", c->msrs[r].index);
		return -EINVAL;
	}
	/* Everything the events struct carries is valid here. */
	ev.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW;
	if (ioctl(fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		return -errno;
	return 0;
}

static int capture_machine(struct vm *vm, struct vm_snapshot *s)
{
	s->pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
	s->pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
	s->ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
	if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &s->pic_master) < 0 ||
	    ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &s->pic_slave) < 0 ||
	    ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &s->ioapic) < 0 ||
	    ioctl(vm->vm_fd, KVM_GET_PIT2, &s->pit) < 0 ||
	    ioctl(vm->vm_fd, KVM_GET_CLOCK, &s->clock) < 0)
		return -errno;
	return 0;
}

static int restore_machine(struct vm *vm, const struct vm_snapshot *s)
{
	struct kvm_clock_data clock = { .clock = s->clock.clock };

	if (ioctl(vm->vm_fd, KVM_SET_PIT2, &s->pit) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_CLOCK, &clock) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &s->pic_master) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &s->pic_slave) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &s->ioapic) < 0)
		return -errno;
	return 0;
}

/* Pause the VM and read its whole state into snap. On success the console
 * device is left locked (no device write reaches guest memory) until the
 * caller has copied what it needs and calls vcon_unlock(). */
static int capture(struct vm *vm, struct vm_snapshot *snap, char *err,
		   size_t errlen)
{
	uint64_t deadline = now_ns() + vm->quiet_ns;
	char why[160];
	int r;

	for (;;) {
		r = vm_pause(vm);
		if (r < 0) {
			snprintf(err, errlen, "the VM stopped: %s",
				 vm_exit_detail(vm));
			return r;
		}
		vcon_lock(&vm->con);
		r = vcon_save(&vm->con, &snap->con);
		if (r != -EBUSY)
			break;
		/* A guest must not keep its VM from being saved by keeping
		 * the console busy: past the deadline, settle the device or
		 * end the VM (vcon_settle() says which and why). */
		if (now_ns() >= deadline) {
			r = vcon_settle(&vm->con, why, sizeof(why));
			if (r == 0) {
				log_warnx("vm: saving: console busy for %llu ms; "
					  "%s", (unsigned long long)
					  (vm->quiet_ns / 1000000), why);
				r = vcon_save(&vm->con, &snap->con);
				break;
			}
			vcon_unlock(&vm->con);
			log_warnx("vm: saving: %s in %llu ms; VM ended", why,
				  (unsigned long long)(vm->quiet_ns / 1000000));
			vm_end(vm, VM_EXIT_ERROR, "could not be saved: %s", why);
			snprintf(err, errlen, "VM ended: %s", why);
			return r;
		}
		/* Bytes in flight: let the device finish them. */
		vcon_unlock(&vm->con);
		vm_resume(vm);
		usleep(10000);
	}
	if (r < 0) {	/* vcon_save() has no other error; be sure */
		vcon_unlock(&vm->con);
		snprintf(err, errlen, "saving the console: %s", strerror(-r));
		return r;
	}
	snap->mem_size = vm->mem.size;
	snap->pvm = vm->pvm;
	r = capture_machine(vm, snap);
	if (r == 0)
		r = capture_cpu(vm, &snap->cpu);
	if (r < 0) {
		vcon_unlock(&vm->con);
		snprintf(err, errlen, "reading the machine state: %s",
			 strerror(-r));
	}
	return r;
}

int vm_save(struct vm *vm, const char *dir, char *err, size_t errlen)
{
	struct vm_snapshot *snap = calloc(1, sizeof(*snap));
	int r;

	if (!snap) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = capture(vm, snap, err, errlen);
	if (r == 0) {
		r = snapshot_write(dir, snap, vm->mem.host);
		vcon_unlock(&vm->con);
		if (r < 0)
			snprintf(err, errlen, "writing the snapshot to %s: %s",
				 dir, strerror(-r));
	}
	free(snap);
	return r;
}

/* Machine, vCPU and device state from snap onto this VM (not yet run). */
static int restore_state(struct vm *vm, const struct vm_snapshot *snap,
			 char *err, size_t errlen)
{
	int r = restore_machine(vm, snap);

	if (r == 0)
		r = restore_cpu(vm, &snap->cpu);
	if (r < 0) {
		snprintf(err, errlen, "restoring the machine state: %s",
			 strerror(-r));
		return r;
	}
	r = vcon_restore(&vm->con, &snap->con);
	if (r < 0)
		snprintf(err, errlen, "restoring the console device: %s",
			 strerror(-r));
	return r;
}

int vm_restore_setup(struct vm *vm, const struct vm_snapshot *snap,
		     int mem_fd, char *err, size_t errlen)
{
	struct kvm_userspace_memory_region region;
	int r;

	if (!!snap->pvm != vm->pvm) {
		snprintf(err, errlen, "snapshot was taken on %s KVM, this is %s",
			 snap->pvm ? "PVM" : "hardware", vm->pvm ? "PVM" :
			 "hardware");
		return -EINVAL;
	}
	/* The template's RAM, copy-on-write: pages stay shared with every
	 * other clone until this guest writes them. */
	vm->mem.size = snap->mem_size;
	vm->mem.host = mmap(NULL, vm->mem.size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_NORESERVE, mem_fd, 0);
	if (vm->mem.host == MAP_FAILED) {
		vm->mem.host = NULL;
		r = -errno;
		snprintf(err, errlen, "mapping template memory: %s",
			 strerror(errno));
		return r;
	}
	region = (struct kvm_userspace_memory_region){
		.slot = 0, .memory_size = vm->mem.size,
		.userspace_addr = (uintptr_t)vm->mem.host,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		r = -errno;
		snprintf(err, errlen, "guest memory: %s", strerror(errno));
		return r;
	}
	r = setup_cpuid(vm);
	if (r < 0) {
		snprintf(err, errlen, "CPUID set-up: %s", strerror(-r));
		return r;
	}
	r = restore_state(vm, snap, err, errlen);
	if (r < 0)
		return r;
	/* The template was taken with its agent ready and waiting. */
	vm->agent_ready = true;
	return 0;
}


/* Pages of guest RAM this process owns privately: written since the
 * template was mapped (or swapped out). /proc/self/pagemap: bit 63
 * present, 62 swapped, 61 file page or shared. */
static int private_pages(const struct vm *vm, uint64_t **out, size_t *n)
{
	uint64_t npages = vm->mem.size / 4096, *idx, buf[512];
	uintptr_t base = (uintptr_t)vm->mem.host / 4096;
	int fd = vm->pagemap_fd;

	*n = 0;
	if (fd < 0)
		return -EBADF;
	idx = malloc(npages * sizeof(*idx) + 1);
	if (!idx)
		return -ENOMEM;
	for (uint64_t p = 0; p < npages; p += 512) {
		uint64_t cnt = npages - p < 512 ? npages - p : 512;
		ssize_t got = pread(fd, buf, cnt * 8, (off_t)((base + p) * 8));

		if (got != (ssize_t)(cnt * 8)) {
			free(idx);
			return -EIO;
		}
		for (uint64_t i = 0; i < cnt; i++)
			if ((buf[i] >> 62 & 1) ||
			    ((buf[i] >> 63 & 1) && !(buf[i] >> 61 & 1)))
				idx[(*n)++] = p + i;
	}
	*out = idx;
	return 0;
}

int vm_suspend_to_disk(struct vm *vm, const char *dir, uint64_t *pages,
		       char *err, size_t errlen)
{
	struct vm_snapshot *snap = calloc(1, sizeof(*snap));
	uint64_t *idx = NULL;
	size_t n = 0;
	int r;

	if (!snap) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = capture(vm, snap, err, errlen);
	if (r < 0)
		goto out;
	r = private_pages(vm, &idx, &n);
	if (r < 0)
		snprintf(err, errlen, "reading the page map: %s", strerror(-r));
	else if ((r = snapshot_write_pages(dir, snap, vm->mem.host, idx,
					   n)) < 0)
		snprintf(err, errlen, "writing %s: %s", dir, strerror(-r));
	vcon_unlock(&vm->con);
	if (pages)
		*pages = n;
out:
	free(idx);
	free(snap);
	return r;
}

int vm_resume_disk_setup(struct vm *vm, const char *dir, char *err,
			 size_t errlen)
{
	struct vm_snapshot *snap = calloc(1, sizeof(*snap));
	int r;

	if (!snap) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (!vm->mem.host) {
		free(snap);
		snprintf(err, errlen, "no template mapped");
		return -EINVAL;
	}
	r = snapshot_read_pages(dir, snap, vm->mem.host, vm->mem.size, err,
				errlen);
	if (r == 0)
		r = restore_state(vm, snap, err, errlen);
	if (r == 0) {
		vm->agent_ready = true;
		vm->identity_sent = vm->identity_acked = true;
		vm->time_sync = true;
	}
	free(snap);
	return r;
}

/* ---- sessions ---------------------------------------------------------- */

/* Lock held. A port for session id: free, and closed in the guest. */
static int claim_port(struct vm *vm, uint32_t id, int *host_fd)
{
	char name[VCON_NAME_MAX];
	int sv[2];

	for (unsigned n = 2; n < VCON_MAX_PORTS; n++) {
		bool open, added = vcon_port_state(&vm->con, n, &open);

		if (vm->port_session[n] || open)
			continue;
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
			return -errno;
		fcntl(sv[1], F_SETFL, O_NONBLOCK);
		if (added) {
			vcon_detach_port(&vm->con, n);
			if (vm->port_fd[n] >= 0)
				close(vm->port_fd[n]);
			vcon_attach_port(&vm->con, n, sv[1], sv[1]);
		} else {
			snprintf(name, sizeof(name), "clone.s%u", n);
			vcon_add_port(&vm->con, n, name, false, sv[1], sv[1]);
		}
		vm->port_fd[n] = sv[1];
		vm->port_session[n] = id;
		*host_fd = sv[0];
		return (int)n;
	}
	return -EBUSY;
}

int vm_session_open(struct vm *vm, struct agent_spawn *sp, int *in_fd,
		    int *io_fd, int *err_fd)
{
	uint8_t payload[AGENT_MAX_PAYLOAD];
	int io, err = -1, in = -1, n;

	*in_fd = *io_fd = *err_fd = -1;
	if (!sp->session)
		return -EINVAL;
	pthread_mutex_lock(&vm->lock);
	io = claim_port(vm, sp->session, io_fd);
	if (io >= 0 && !sp->pty) {
		err = claim_port(vm, sp->session, err_fd);
		if (err >= 0)
			in = claim_port(vm, sp->session, in_fd);
	}
	if (io < 0 || (!sp->pty && (err < 0 || in < 0))) {
		n = io < 0 ? io : err < 0 ? err : in;
		goto fail;
	}
	sp->io_port = (uint8_t)io;
	sp->err_port = err;
	sp->in_port = in;
	n = agent_spawn_encode(sp, payload, sizeof(payload));
	if (n >= 0)
		n = agent_send(vm, AGENT_MSG_SPAWN, payload, (size_t)n);
	log_debug("session %u: ports %d/%d, spawn sent: %d", sp->session, io,
		  err, n);
	if (n < 0)
		goto fail;
	pthread_mutex_unlock(&vm->lock);
	return 0;
fail:
	for (unsigned p = 0; p < VCON_MAX_PORTS; p++)
		if (vm->port_session[p] == sp->session)
			vm->port_session[p] = 0;
	pthread_mutex_unlock(&vm->lock);
	if (*in_fd >= 0)
		close(*in_fd);
	if (*io_fd >= 0)
		close(*io_fd);
	if (*err_fd >= 0)
		close(*err_fd);
	*in_fd = *io_fd = *err_fd = -1;
	return n;
}

int vm_session_resize(struct vm *vm, uint32_t id, uint16_t rows,
		      uint16_t cols)
{
	uint8_t p[8];
	int r;

	agent_le_put(p, id, 4);
	agent_le_put(p + 4, rows, 2);
	agent_le_put(p + 6, cols, 2);

	pthread_mutex_lock(&vm->lock);
	r = agent_send(vm, AGENT_MSG_RESIZE, p, sizeof(p));
	pthread_mutex_unlock(&vm->lock);
	return r;
}

int vm_session_signal(struct vm *vm, uint32_t id, int sig)
{
	uint8_t p[5];
	int r;

	agent_le_put(p, id, 4);
	p[4] = (uint8_t)sig;

	pthread_mutex_lock(&vm->lock);
	r = agent_send(vm, AGENT_MSG_SIGNAL, p, sizeof(p));
	pthread_mutex_unlock(&vm->lock);
	return r;
}

bool vm_session_exit(struct vm *vm, uint32_t *id, uint16_t *status)
{
	bool got = false;

	pthread_mutex_lock(&vm->lock);
	if (vm->nexits) {
		*id = vm->exits[0].id;
		*status = vm->exits[0].status;
		memmove(&vm->exits[0], &vm->exits[1],
			--vm->nexits * sizeof(vm->exits[0]));
		got = true;
	}
	pthread_mutex_unlock(&vm->lock);
	return got;
}
