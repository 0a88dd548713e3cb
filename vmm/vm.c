/* A VM's KVM handles and its making: /dev/kvm, the VM, its vCPU, irqchip
 * and PIT, the devices on their buses, a cold boot's RAM and kernel; the
 * owner's view of it after (state, exit reason, stats), and its end. */
#include "vmm/vm_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "vmm/x86/boot.h"
#include "vmm/x86/cmdline.h"
#include "vmm/x86/cpu.h"

#define KVM_API_VERSION_EXPECTED 12
#define MAX_FILE (512ULL << 20)		/* kernel/initrd size sanity bound */
#define CMDLINE_BASE "reboot=k panic=-1 pci=off nomodule no_timer_check " \
		     "random.trust_cpu=on"
/* No i8042: its ports read 0, so that a reset request does not spin
 * waiting for it, and 0xfe written to its command port resets. */
#define I8042_DATA 0x60
#define I8042_CMD 0x64

void vm_notify(struct vm *vm)
{
	uint64_t one = 1;

	/* Guest messages (READY, ACK, EXITED) land here as often as it
	 * sends them. */
	if (write(vm->event_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_limit_warn(&vm->glog, "vm: event");
}

void vm_end(struct vm *vm, enum vm_exit why, const char *fmt, ...)
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
		pthread_kill(vm->vcpu_thread, VM_KICK_SIGNAL);
	vm_notify(vm);
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

/* The i8042's data port: reads 0. */
static void i8042_data(void *opaque, uint64_t off, void *data, uint32_t len,
		       bool write)
{
	(void)opaque;
	(void)off;
	if (!write)
		memset(data, 0, len);
}

/* Its command port: reads 0 (nothing pending); 0xfe is a reset. */
static void i8042_cmd(void *opaque, uint64_t off, void *data, uint32_t len,
		      bool write)
{
	struct vm *vm = opaque;
	bool reboot = vm->power_intent == AGENT_POWER_REBOOT;

	(void)off;
	if (!write)
		memset(data, 0, len);
	else if (*(const uint8_t *)data == 0xfe)
		vm_end(vm, reboot ? VM_EXIT_REBOOT : VM_EXIT_RESET, "guest %s",
		       reboot ? "rebooted" : "reset without a shutdown: "
		       "kernel panic or forced reboot");
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
	if (fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 ||
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

int vm_map_memory(struct vm *vm)
{
	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = vm->mem.size,
		.userspace_addr = (uintptr_t)vm->mem.host,
	};

	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return -errno;
	return 0;
}

static int setup_memory(struct vm *vm, unsigned memory_mb, char *err,
			size_t errlen)
{
	int r = gmem_create(&vm->mem, (uint64_t)memory_mb << 20, &vm->mem_fd);

	if (r == 0)
		r = vm_map_memory(vm);
	if (r < 0)
		snprintf(err, errlen, "guest memory (%u MiB): %s", memory_mb,
			 strerror(-r));
	return r;
}

/* The VMM's arguments, then the operator's with every clearcpuid= of theirs
 * merged into ours: the kernel reads only the last one, and ours (on PVM)
 * is what keeps it off instructions the emulator cannot run. */
static int build_cmdline(const struct vm *vm, const char *extra, char *out,
			 size_t outlen, char *err, size_t errlen)
{
	char rest[BOOT_CMDLINE_MAX], why[256];
	int n, r;

	r = cmdline_merge(cmdline_own_clearcpuid(vm->pvm), extra, rest,
			  sizeof(rest), why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "kernel command line: %s", why);
		return r;
	}
	n = snprintf(out, outlen, "%s %s virtio_mmio.device=4K@0x%llx:%u%s%s",
		     CMDLINE_BASE,
		     vm->serial ? "console=ttyS0 earlyprintk=serial,ttyS0"
				: "quiet 8250.nr_uarts=0",
		     VM_VIRTIO_BASE, VM_VIRTIO_CONSOLE_GSI, *rest ? " " : "",
		     rest);
	if (n < 0 || (size_t)n >= outlen) {
		snprintf(err, errlen, "kernel command line longer than %zu "
			 "bytes", outlen - 1);
		return -E2BIG;
	}
	return 0;
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
	r = build_cmdline(vm, cfg->cmdline, cmdline, sizeof(cmdline), err,
			  errlen);
	if (r < 0)
		goto out;
	r = boot_setup_params(&vm->mem, &k, cmdline, initrd_gpa, ilen);
	if (r < 0) {
		snprintf(err, errlen, "kernel command line longer than %d bytes",
			 BOOT_CMDLINE_MAX - 1);
		goto out;
	}
	log_debug("guest command line: %s", cmdline);
	r = boot_setup_longmode(&vm->mem);
	if (r == 0)
		r = cpu_setup_boot(vm->vcpu_fd, k.entry);
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
	r = vcon_init(&vm->con, &vm->mem, VM_VIRTIO_BASE, VM_VIRTIO_CONSOLE_GSI,
		      vm_irq, vm);
	if (r < 0) {
		snprintf(err, errlen, "virtio-console: %s", strerror(-r));
		goto fail;
	}
	vcon_set_log_limit(&vm->con, &vm->glog);
	r = virtio_mmio_register(&vm->con.t, &vm->mmio);
	if (r == 0)
		r = bus_register(&vm->pio, I8042_DATA, 1, i8042_data, vm);
	if (r == 0)
		r = bus_register(&vm->pio, I8042_CMD, 1, i8042_cmd, vm);
	if (r < 0) {
		snprintf(err, errlen, "device buses: %s", strerror(-r));
		goto fail;
	}
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
	if (cfg->serial) {
		r = uart_register(&vm->uart, &vm->pio);
		if (r < 0) {
			snprintf(err, errlen, "serial port: %s", strerror(-r));
			return r;
		}
	}
	r = setup_memory(vm, cfg->memory_mb, err, errlen);
	if (r < 0)
		return r;
	r = cpu_setup_cpuid(vm->kvm_fd, vm->vcpu_fd, vm->pvm);
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
	gmem_unmap(&vm->mem);
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
