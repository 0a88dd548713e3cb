/* VM persistence: the whole machine state read from a paused VM (the
 * console settled first), written as a template snapshot (vm_save) or as
 * a suspended clone with only its own pages (vm_suspend_to_disk), and
 * restored onto a new VM from the template's memory (vm_restore_setup)
 * or from a suspended clone's files (vm_resume_disk_setup). The file
 * formats are vmm/snapshot.c's; each layer's part is its own. */
#include "vmm/vm_impl.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/clock.h"
#include "vmm/snapshot.h"
#include "vmm/x86/cpu.h"

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
	uint64_t deadline = clock_mono_ns() + vm->quiet_ns;
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
		r = vcon_save(&vm->con, &snap->con.dev);
		if (r != -EBUSY)
			break;
		/* A guest must not keep its VM from being saved by keeping
		 * the console busy: past the deadline, settle the device or
		 * end the VM (vcon_settle() says which and why). */
		if (clock_mono_ns() >= deadline) {
			r = vcon_settle(&vm->con, why, sizeof(why));
			if (r == 0) {
				log_warnx("vm: saving: console busy for %llu ms; "
					  "%s", (unsigned long long)
					  (vm->quiet_ns / 1000000), why);
				r = vcon_save(&vm->con, &snap->con.dev);
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
	/* The device held still and settled: its transport and queues. */
	if (r == 0)
		r = virtio_mmio_save(&vm->con.t, &snap->con.mmio, snap->con.vq,
				     SNAPSHOT_NQUEUES);
	if (r < 0) {	/* neither has another error; be sure */
		vcon_unlock(&vm->con);
		snprintf(err, errlen, "saving the console: %s", strerror(-r));
		return r;
	}
	snap->mem_size = vm->mem.size;
	snap->pvm = vm->pvm;
	r = capture_machine(vm, snap);
	if (r == 0)
		r = cpu_capture(vm->kvm_fd, vm->vcpu_fd, &snap->cpu);
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
		r = cpu_restore(vm->kvm_fd, vm->vcpu_fd, &snap->cpu);
	if (r < 0) {
		snprintf(err, errlen, "restoring the machine state: %s",
			 strerror(-r));
		return r;
	}
	r = virtio_mmio_restore(&vm->con.t, &snap->con.mmio, snap->con.vq,
				SNAPSHOT_NQUEUES);
	if (r == 0)
		r = vcon_restore(&vm->con, &snap->con.dev);
	if (r < 0)
		snprintf(err, errlen, "restoring the console device: %s",
			 strerror(-r));
	return r;
}

int vm_restore_setup(struct vm *vm, const struct vm_snapshot *snap,
		     int mem_fd, char *err, size_t errlen)
{
	int r;

	if (!!snap->pvm != vm->pvm) {
		snprintf(err, errlen, "snapshot was taken on %s KVM, this is %s",
			 snap->pvm ? "PVM" : "hardware", vm->pvm ? "PVM" :
			 "hardware");
		return -EINVAL;
	}
	r = gmem_map_template(&vm->mem, mem_fd, snap->mem_size);
	if (r < 0) {
		snprintf(err, errlen, "mapping template memory: %s",
			 strerror(-r));
		return r;
	}
	r = vm_map_memory(vm);
	if (r < 0) {
		snprintf(err, errlen, "guest memory: %s", strerror(-r));
		return r;
	}
	r = cpu_setup_cpuid(vm->kvm_fd, vm->vcpu_fd, vm->pvm);
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
	r = gmem_private_pages(&vm->mem, vm->pagemap_fd, &idx, &n);
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
