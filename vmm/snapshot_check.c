/* What a machine state must look like before the VMM restores it. A
 * suspended VM's state was written by a worker a guest may have taken over,
 * into a directory its user owns, and its hashes are unkeyed (that worker
 * could recompute them): every field the VMM or KVM acts on is checked
 * here, as guest input is, against the guest RAM it will run in. Values a
 * running guest can put in a register itself (a selector, the LAPIC page)
 * are left to the code that already treats them as guest input; what is
 * refused is what our VMM or KVM never produce: sizes, indices and
 * addresses that the device code trusts once restored, and states no
 * machine can be in. */
#include "vmm/snapshot.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "vmm/virtio/virtq.h"
#include "vmm/vm.h"

#define MIB (1024ULL * 1024)
#define IOAPIC_BASE 0xfec00000ULL
#define LAPIC_BASE 0xfee00000ULL
#define CR0_PG (1ULL << 31)
#define CR3_ADDR 0x000ffffffffff000ULL
/* RFLAGS bits that exist (all others are reserved, bit 1 is always set). */
#define RFLAGS_DEFINED 0x3f7fd7ULL
#define RFLAGS_FIXED 0x2ULL

/* KVM's paravirtual MSRs that hold a guest physical address. */
#define MSR_KVM_WALL_CLOCK 0x11
#define MSR_KVM_SYSTEM_TIME 0x12
#define MSR_KVM_WALL_CLOCK_NEW 0x4b564d00
#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01
#define MSR_KVM_ASYNC_PF_EN 0x4b564d02
#define MSR_KVM_STEAL_TIME 0x4b564d03
#define MSR_KVM_PV_EOI_EN 0x4b564d04

#define STATUS_BITS (VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER | \
		     VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_FEATURES_OK | \
		     VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED)
/* What virtio-console offers (vmm/virtio/console.c's ops table) plus
 * VERSION_1, which the transport adds. */
#define VCON_OFFERED (1ULL << VIRTIO_CONSOLE_F_SIZE | \
		      1ULL << VIRTIO_CONSOLE_F_MULTIPORT | \
		      1ULL << VIRTIO_F_VERSION_1)
#define INT_STATUS_BITS 3	/* used buffer, configuration change */

const char *snapshot_strerror(enum snapshot_err e)
{
	switch (e) {
	case SNAPSHOT_OK: return "no error";
	case SNAPSHOT_E_OPEN: return "cannot open";
	case SNAPSHOT_E_NOT_FILE: return "not a regular file";
	case SNAPSHOT_E_IO: return "read error";
	case SNAPSHOT_E_NOMEM: return "out of memory";
	case SNAPSHOT_E_MAGIC: return "not a snapshot";
	case SNAPSHOT_E_VERSION: return "other format version";
	case SNAPSHOT_E_LENGTH: return "wrong length";
	case SNAPSHOT_E_HASH: return "checksum mismatch";
	case SNAPSHOT_E_MEM_SIZE: return "bad memory size";
	case SNAPSHOT_E_PAGE_COUNT: return "more pages than guest RAM";
	case SNAPSHOT_E_PAGE_INDEX: return "page beyond guest RAM";
	case SNAPSHOT_E_PAGE_ORDER: return "page listed twice or out of order";
	case SNAPSHOT_E_KVM: return "bad KVM flavour";
	case SNAPSHOT_E_IRQCHIP: return "impossible interrupt controller state";
	case SNAPSHOT_E_PIT: return "impossible PIT state";
	case SNAPSHOT_E_CPU: return "impossible vCPU state";
	case SNAPSHOT_E_MSR: return "bad MSR list";
	case SNAPSHOT_E_MSR_ADDR: return "MSR address outside guest RAM";
	case SNAPSHOT_E_XSAVE: return "bad XSAVE size";
	case SNAPSHOT_E_DEVICE: return "impossible console device state";
	case SNAPSHOT_E_QUEUE_SIZE: return "bad virtqueue size";
	case SNAPSHOT_E_QUEUE_ADDR: return "virtqueue ring outside guest RAM";
	case SNAPSHOT_E_QUEUE_IDX: return "impossible virtqueue indices";
	case SNAPSHOT_E_PORT: return "impossible console port state";
	}
	return "unknown snapshot error";
}

static enum snapshot_err bad(char *err, size_t errlen, enum snapshot_err e,
			     const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static enum snapshot_err bad(char *err, size_t errlen, enum snapshot_err e,
			     const char *fmt, ...)
{
	char what[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "%s: %s", snapshot_strerror(e), what);
	return e;
}

/* [gpa, gpa + len) inside RAM, overflow included. */
static bool in_ram(uint64_t gpa, uint64_t len, uint64_t mem_size)
{
	return len <= mem_size && gpa <= mem_size - len;
}

static bool flag(uint8_t v)
{
	return v <= 1;
}

static enum snapshot_err check_pic(const struct kvm_irqchip *c, uint32_t id,
				   char *err, size_t errlen)
{
	const struct kvm_pic_state *p = &c->chip.pic;

	if (c->chip_id != id)
		return bad(err, errlen, SNAPSHOT_E_IRQCHIP,
			   "chip %u where chip %u belongs", c->chip_id, id);
	if (p->priority_add > 7 || p->init_state > 3 ||
	    !flag(p->read_reg_select) || !flag(p->poll) ||
	    !flag(p->special_mask) || !flag(p->auto_eoi) ||
	    !flag(p->rotate_on_auto_eoi) ||
	    !flag(p->special_fully_nested_mode) || !flag(p->init4))
		return bad(err, errlen, SNAPSHOT_E_IRQCHIP,
			   "PIC %u: a mode field out of range", id);
	return SNAPSHOT_OK;
}

static enum snapshot_err check_machine(const struct vm_snapshot *s,
				       char *err, size_t errlen)
{
	enum snapshot_err e;

	if (s->pvm > 1)
		return bad(err, errlen, SNAPSHOT_E_KVM, "pvm %u", s->pvm);
	if ((e = check_pic(&s->pic_master, KVM_IRQCHIP_PIC_MASTER, err,
			   errlen)) ||
	    (e = check_pic(&s->pic_slave, KVM_IRQCHIP_PIC_SLAVE, err, errlen)))
		return e;
	if (s->ioapic.chip_id != KVM_IRQCHIP_IOAPIC)
		return bad(err, errlen, SNAPSHOT_E_IRQCHIP,
			   "chip %u where the IOAPIC belongs",
			   s->ioapic.chip_id);
	/* KVM takes the base as given: the IOAPIC would move. */
	if (s->ioapic.chip.ioapic.base_address != IOAPIC_BASE)
		return bad(err, errlen, SNAPSHOT_E_IRQCHIP,
			   "IOAPIC at 0x%llx",
			   (unsigned long long)s->ioapic.chip.ioapic.base_address);
	if (s->pit.flags & ~(uint32_t)(KVM_PIT_FLAGS_HPET_LEGACY |
				       KVM_PIT_FLAGS_SPEAKER_DATA_ON))
		return bad(err, errlen, SNAPSHOT_E_PIT, "flags 0x%x",
			   s->pit.flags);
	for (unsigned i = 0; i < 3; i++) {
		const struct kvm_pit_channel_state *c = &s->pit.channels[i];

		/* What an 8254 can hold: KVM keeps a count of 0 as 65536,
		 * folds modes 6 and 7 onto 2 and 3, and marks a channel
		 * never programmed with mode 0xff. */
		if (c->count > 0x10000 || (c->mode > 5 && c->mode != 0xff) ||
		    c->rw_mode > 3 ||
		    c->read_state > 4 || c->write_state > 4 ||
		    c->count_latched > 3 || !flag(c->status_latched) ||
		    !flag(c->bcd) || !flag(c->gate))
			return bad(err, errlen, SNAPSHOT_E_PIT,
				   "channel %u: count %u mode %u", i, c->count,
				   c->mode);
	}
	return SNAPSHOT_OK;
}

/* Bytes at an MSR's address that KVM reads or writes, or 0 if the MSR is
 * not one with an address (or is disabled). */
static uint64_t msr_area(const struct kvm_msr_entry *m, uint64_t *gpa)
{
	switch (m->index) {
	case MSR_KVM_WALL_CLOCK:
	case MSR_KVM_WALL_CLOCK_NEW:
		*gpa = m->data;
		return m->data ? 12 : 0;	/* struct pvclock_wall_clock */
	case MSR_KVM_SYSTEM_TIME:
	case MSR_KVM_SYSTEM_TIME_NEW:
		*gpa = m->data & ~1ULL;
		return m->data & 1 ? 32 : 0;	/* pvclock_vcpu_time_info */
	case MSR_KVM_ASYNC_PF_EN:
	case MSR_KVM_STEAL_TIME:
		*gpa = m->data & ~63ULL;
		return m->data & 1 ? 64 : 0;
	case MSR_KVM_PV_EOI_EN:
		*gpa = m->data & ~3ULL;
		return m->data & 1 ? 4 : 0;
	default:
		return 0;
	}
}

static enum snapshot_err check_cpu(const struct cpu_state *c,
				   uint64_t mem_size, char *err, size_t errlen)
{
	const struct kvm_vcpu_events *ev = &c->events;

	if (c->mp.mp_state > KVM_MP_STATE_SIPI_RECEIVED)
		return bad(err, errlen, SNAPSHOT_E_CPU, "run state %u",
			   c->mp.mp_state);
	if ((c->regs.rflags & ~RFLAGS_DEFINED) ||
	    !(c->regs.rflags & RFLAGS_FIXED))
		return bad(err, errlen, SNAPSHOT_E_CPU, "RFLAGS 0x%llx",
			   (unsigned long long)c->regs.rflags);
	if ((c->sregs.cr0 & CR0_PG) &&
	    !in_ram(c->sregs.cr3 & CR3_ADDR, SNAPSHOT_PAGE, mem_size))
		return bad(err, errlen, SNAPSHOT_E_CPU,
			   "page tables at 0x%llx, outside guest RAM",
			   (unsigned long long)(c->sregs.cr3 & CR3_ADDR));
	/* Our VMM never moves the local APIC. */
	if ((c->sregs.apic_base & ~0xfffULL) != LAPIC_BASE)
		return bad(err, errlen, SNAPSHOT_E_CPU, "APIC base 0x%llx",
			   (unsigned long long)c->sregs.apic_base);
	if (!flag(ev->exception.injected) || !flag(ev->exception.pending) ||
	    !flag(ev->exception.has_error_code) || ev->exception.nr > 31 ||
	    !flag(ev->interrupt.injected) || !flag(ev->interrupt.soft) ||
	    !flag(ev->nmi.injected) || !flag(ev->nmi.pending) ||
	    !flag(ev->nmi.masked))
		return bad(err, errlen, SNAPSHOT_E_CPU,
			   "pending events: exception %u", ev->exception.nr);
	if (c->xsave_size < sizeof(struct kvm_xsave) ||
	    c->xsave_size > CPU_XSAVE_MAX)
		return bad(err, errlen, SNAPSHOT_E_XSAVE, "%u bytes",
			   c->xsave_size);
	if (c->nmsrs > CPU_MAX_MSRS)
		return bad(err, errlen, SNAPSHOT_E_MSR, "%u MSRs, at most %u",
			   c->nmsrs, CPU_MAX_MSRS);
	for (uint32_t i = 0; i < c->nmsrs; i++) {
		uint64_t gpa = 0, len = msr_area(&c->msrs[i], &gpa);

		/* Saved from KVM's index list: each MSR once. */
		for (uint32_t j = 0; j < i; j++)
			if (c->msrs[j].index == c->msrs[i].index)
				return bad(err, errlen, SNAPSHOT_E_MSR,
					   "MSR 0x%x twice", c->msrs[i].index);
		if (len && !in_ram(gpa, len, mem_size))
			return bad(err, errlen, SNAPSHOT_E_MSR_ADDR,
				   "MSR 0x%x: 0x%llx", c->msrs[i].index,
				   (unsigned long long)c->msrs[i].data);
	}
	return SNAPSHOT_OK;
}

static enum snapshot_err check_queue(const struct virtq_state *q, unsigned i,
				     uint64_t mem_size, char *err,
				     size_t errlen)
{
	if (!flag(q->ready))
		return bad(err, errlen, SNAPSHOT_E_QUEUE_SIZE,
			   "queue %u: ready %u", i, q->ready);
	if (q->size > VIRTQ_MAX_SIZE ||
	    (q->ready && (!q->size || (q->size & (q->size - 1)))))
		return bad(err, errlen, SNAPSHOT_E_QUEUE_SIZE,
			   "queue %u: size %u", i, q->size);
	/* A buffer in flight holds a descriptor of its own: never more than
	 * the queue's size of them. */
	if ((uint16_t)(q->last_avail - q->used_idx) > q->size)
		return bad(err, errlen, SNAPSHOT_E_QUEUE_IDX,
			   "queue %u: %u taken, %u given back, size %u", i,
			   q->last_avail, q->used_idx, q->size);
	if (!q->ready)
		return SNAPSHOT_OK;
	/* The rings' alignment and extent, VIRTIO 1.x 2.7 (as virtq_enable
	 * would check them on a driver's QueueReady). */
	if ((q->desc & 15) || (q->avail & 1) || (q->used & 3) ||
	    !in_ram(q->desc, 16ULL * q->size, mem_size) ||
	    !in_ram(q->avail, 6 + 2ULL * q->size, mem_size) ||
	    !in_ram(q->used, 6 + 8ULL * q->size, mem_size))
		return bad(err, errlen, SNAPSHOT_E_QUEUE_ADDR,
			   "queue %u: rings at 0x%llx 0x%llx 0x%llx", i,
			   (unsigned long long)q->desc,
			   (unsigned long long)q->avail,
			   (unsigned long long)q->used);
	return SNAPSHOT_OK;
}

static enum snapshot_err check_console(const struct snapshot_console *s,
				       uint64_t mem_size, char *err,
				       size_t errlen)
{
	const struct virtio_mmio_state *c = &s->mmio;
	const struct vcon_state *d = &s->dev;
	enum snapshot_err e;

	/* The transport's own promises (vmm/virtio/mmio.c set_status). */
	if ((c->status & ~(uint32_t)STATUS_BITS) ||
	    ((c->status & VIRTIO_STATUS_DRIVER_OK) &&
	     !(c->status & VIRTIO_STATUS_FEATURES_OK)) ||
	    ((c->status & VIRTIO_STATUS_FEATURES_OK) &&
	     ((c->drv_features & ~VCON_OFFERED) ||
	      !(c->drv_features >> VIRTIO_F_VERSION_1 & 1))))
		return bad(err, errlen, SNAPSHOT_E_DEVICE,
			   "status 0x%x, features 0x%llx", c->status,
			   (unsigned long long)c->drv_features);
	if (c->int_status & ~(uint32_t)INT_STATUS_BITS)
		return bad(err, errlen, SNAPSHOT_E_DEVICE,
			   "interrupt status 0x%x", c->int_status);
	if (!flag(d->device_ready) ||
	    (d->device_ready && !(c->status & VIRTIO_STATUS_DRIVER_OK)))
		return bad(err, errlen, SNAPSHOT_E_DEVICE,
			   "ready %u with status 0x%x", d->device_ready,
			   c->status);
	for (unsigned i = 0; i < SNAPSHOT_NQUEUES; i++)
		if ((e = check_queue(&s->vq[i], i, mem_size, err, errlen)))
			return e;
	for (unsigned i = 0; i < VCON_MAX_PORTS; i++) {
		const __typeof__(d->port[0]) *p = &d->port[i];

		if (!flag(p->used) || !flag(p->console) ||
		    !flag(p->guest_ready) || !flag(p->guest_open) ||
		    memchr(p->name, 0, sizeof(p->name)) == NULL)
			return bad(err, errlen, SNAPSHOT_E_PORT,
				   "port %u: a field out of range", i);
		if (!p->used && (p->console || p->guest_ready ||
				 p->guest_open || p->name[0]))
			return bad(err, errlen, SNAPSHOT_E_PORT,
				   "port %u: state of a port that is not there",
				   i);
	}
	return SNAPSHOT_OK;
}

enum snapshot_err snapshot_check(const struct vm_snapshot *s,
				 uint64_t mem_size, char *err, size_t errlen)
{
	enum snapshot_err e;

	if (s->mem_size != mem_size || mem_size % SNAPSHOT_PAGE ||
	    mem_size < VM_MIN_MEMORY_MB * MIB ||
	    mem_size > VM_MAX_MEMORY_MB * MIB)
		return bad(err, errlen, SNAPSHOT_E_MEM_SIZE,
			   "%llu bytes, guest RAM is %llu",
			   (unsigned long long)s->mem_size,
			   (unsigned long long)mem_size);
	if ((e = check_machine(s, err, errlen)) ||
	    (e = check_cpu(&s->cpu, mem_size, err, errlen)) ||
	    (e = check_console(&s->con, mem_size, err, errlen)))
		return e;
	return SNAPSHOT_OK;
}
