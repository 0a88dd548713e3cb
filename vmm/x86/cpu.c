#include "vmm/x86/cpu.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "common/log.h"
#include "vmm/x86/boot.h"
#include "vmm/x86/pvm.h"

int cpu_setup_cpuid(int kvm_fd, int vcpu_fd, bool pvm)
{
	struct kvm_cpuid2 *c;
	int nent = 256, r = 0;

	c = calloc(1, sizeof(*c) + (size_t)nent * sizeof(c->entries[0]));
	if (!c)
		return -ENOMEM;
	c->nent = (uint32_t)nent;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
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
	if (pvm)
		pvm_filter_cpuid(c);
	if (ioctl(vcpu_fd, KVM_SET_CPUID2, c) < 0)
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

int cpu_setup_boot(int vcpu_fd, uint64_t entry)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_fpu fpu;
	struct kvm_lapic_state lapic;
	uint32_t *lvt;

	if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
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
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;

	memset(&regs, 0, sizeof(regs));
	regs.rflags = 2;
	regs.rip = entry;
	regs.rsp = regs.rbp = BOOT_STACK_ADDR;
	regs.rsi = BOOT_ZERO_PAGE_ADDR;	/* boot_params */
	if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return -errno;

	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	if (ioctl(vcpu_fd, KVM_SET_FPU, &fpu) < 0)
		return -errno;

	/* LINT0 as ExtINT (the PIC's output), LINT1 as NMI: virtual wire. */
	if (ioctl(vcpu_fd, KVM_GET_LAPIC, &lapic) < 0)
		return -errno;
	lvt = (uint32_t *)(void *)&lapic.regs[0x350];
	*lvt = (*lvt & ~0x700U) | 0x700U;
	lvt = (uint32_t *)(void *)&lapic.regs[0x360];
	*lvt = (*lvt & ~0x700U) | 0x400U;
	if (ioctl(vcpu_fd, KVM_SET_LAPIC, &lapic) < 0)
		return -errno;
	return 0;
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
	struct kvm_msr_entry e[CPU_MAX_MSRS];
};

static int get_msrs(int kvm_fd, int vcpu_fd, struct cpu_state *c)
{
	struct {
		struct kvm_msr_list hdr;
		uint32_t idx[CPU_MAX_MSRS];
	} list = { .hdr.nmsrs = CPU_MAX_MSRS };
	struct msr_buf part;
	unsigned n;

	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &list) < 0)
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
		got = ioctl(vcpu_fd, KVM_GET_MSRS, &part);
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

static int xsave_size(int kvm_fd)
{
	int size = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);

	return size > (int)sizeof(struct kvm_xsave) ? size :
						       (int)sizeof(struct kvm_xsave);
}

int cpu_capture(int kvm_fd, int vcpu_fd, struct cpu_state *c)
{
	int fd = vcpu_fd, size = xsave_size(kvm_fd);

	if (size > CPU_XSAVE_MAX)
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
	return get_msrs(kvm_fd, vcpu_fd, c);
}

int cpu_restore(int kvm_fd, int vcpu_fd, const struct cpu_state *c)
{
	int fd = vcpu_fd;
	struct msr_buf m;
	struct kvm_vcpu_events ev = c->events;
	int r;

	if (c->nmsrs > CPU_MAX_MSRS ||
	    c->xsave_size > (uint32_t)xsave_size(kvm_fd))
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
