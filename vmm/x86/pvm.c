#include "vmm/x86/pvm.h"

#include <cpuid.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define EFER_LMA (1ULL << 10)
#define DR6_BS (1ULL << 14)
/* MXCSR_MASK when FXSAVE reports 0 (SDM vol. 1, 11.6.6). */
#define MXCSR_MASK_DEFAULT 0xffbf
/* The legacy (FXSAVE) area that opens an XSAVE image: the x87 status
 * word at byte 2, MXCSR at byte 24; the XSAVE header's XSTATE_BV at byte
 * 512, bit 1 the SSE component (SDM vol. 1, 13.4). */
#define XSAVE_FSW 2
#define XSAVE_MXCSR 24
#define XSAVE_XSTATE_BV 512
#define XSTATE_SSE (1ULL << 1)

bool pvm_detect(void)
{
	return access("/sys/module/kvm_pvm", F_OK) == 0;
}

void pvm_filter_cpuid(struct kvm_cpuid2 *cpuid)
{
	for (unsigned i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];

		if (e->function == 1) {
			e->ecx &= ~(1U << 9 |	/* SSSE3 */
				    1U << 1 |	/* PCLMULQDQ */
				    1U << 12 |	/* FMA */
				    1U << 13 |	/* CX16 */
				    1U << 19 |	/* SSE4.1 */
				    1U << 20 |	/* SSE4.2 */
				    1U << 23 |	/* POPCNT */
				    1U << 25 |	/* AES */
				    1U << 26 |	/* XSAVE */
				    1U << 27 |	/* OSXSAVE */
				    1U << 28 |	/* AVX */
				    1U << 29);	/* F16C */
		} else if (e->function == 7 && e->index == 0) {
			e->ebx &= ~(1U << 3 |	/* BMI1 */
				    1U << 5 |	/* AVX2 */
				    1U << 8 |	/* BMI2 */
				    1U << 19 |	/* ADX */
				    1U << 20 |	/* SMAP */
				    1U << 29);	/* SHA */
		} else if (e->function == 0xd) {
			e->eax = e->ebx = e->ecx = e->edx = 0;
		}
	}
}


/* On PVM the guest runs on the host's CPU and sees its CPUID (our
 * KVM_SET_CPUID2 does not reach it: shared/notes/pvm.md), so what the
 * host has is what the guest's instructions meet. */
static void host_cpu(struct x86_host *h)
{
	struct {
		uint8_t b[512];
	} __attribute__((aligned(16))) fx;
	unsigned a, b, c, d;
	uint32_t mask;

	memset(h, 0, sizeof(*h));
	memset(&fx, 0, sizeof(fx));
	h->maxphyaddr = 36;
	if (__get_cpuid(0x80000008, &a, &b, &c, &d))
		h->maxphyaddr = a & 0xff;
	if (__get_cpuid(0x80000001, &a, &b, &c, &d))
		h->gbpages = d >> 26 & 1;
	if (__get_cpuid_count(7, 0, &a, &b, &c, &d))
		h->smap = b >> 20 & 1;
	__asm__ volatile("fxsave64 %0" : "=m"(fx));
	memcpy(&mask, fx.b + 28, sizeof(mask));
	h->mxcsr_mask = mask ? mask : MXCSR_MASK_DEFAULT;
}

static void cpu_from_kvm(struct x86_cpu *c, const struct kvm_regs *r,
			 const struct kvm_sregs *s, const struct kvm_xsave *x)
{
	const uint64_t gpr[16] = {
		r->rax, r->rcx, r->rdx, r->rbx, r->rsp, r->rbp, r->rsi, r->rdi,
		r->r8,	r->r9,	r->r10, r->r11, r->r12, r->r13, r->r14, r->r15,
	};

	memset(c, 0, sizeof(*c));
	memcpy(c->gpr, gpr, sizeof(gpr));
	c->rip = r->rip;
	c->rflags = r->rflags;
	c->cr0 = s->cr0;
	c->cr3 = s->cr3;
	c->cr4 = s->cr4;
	c->efer = s->efer;
	/* In 64-bit mode only FS and GS have a base; the others are 0
	 * whatever their descriptors say. */
	c->seg_base[X86_FS] = s->fs.base;
	c->seg_base[X86_GS] = s->gs.base;
	c->idt_base = s->idt.base;
	c->idt_limit = s->idt.limit;
	/* SS.DPL is the CPL, as KVM itself reads it (PVM sets it 0 in the
	 * guest's supervisor mode and 3 in user mode). */
	c->cpl = s->ss.dpl;
	c->code64 = (s->efer & EFER_LMA) && s->cs.l;
	/* With SSE clear in XSTATE_BV, KVM reports the init 0x1f80 here,
	 * which is then the vCPU's MXCSR: stmxcsr may store it as is. */
	memcpy(&c->mxcsr, (const uint8_t *)x->region + XSAVE_MXCSR,
	       sizeof(c->mxcsr));
	memcpy(&c->fsw, (const uint8_t *)x->region + XSAVE_FSW,
	       sizeof(c->fsw));
}

/* The instruction at RIP as the CPU fetches it, up to the first byte it
 * may not fetch. */
static size_t fetch(const struct gmem *m, const struct x86_host *h,
		    const struct x86_cpu *c, uint8_t *b)
{
	unsigned acc = X86_ACC_FETCH | (c->cpl == 3 ? X86_ACC_USER : 0);
	size_t n = 0;

	while (n < X86_MAX_INSN_LEN) {
		uint64_t a = c->rip + n;
		size_t k = X86_MAX_INSN_LEN - n;
		struct x86_event f;

		if (k > 4096 - (a & 4095))
			k = 4096 - (a & 4095);
		if (x86_access(m, h, c, a, b + n, k, acc, &f) < 0 ||
		    f.vector >= 0)
			break;
		n += k;
	}
	return n;
}

static void describe(char *desc, size_t n, const struct x86_cpu *c,
		     const uint8_t *b, size_t len)
{
	int off = snprintf(desc, n, "instruction at RIP 0x%llx (CPL %u%s), "
			   "bytes", (unsigned long long)c->rip, c->cpl,
			   c->code64 ? "" : ", not 64-bit mode");

	for (size_t i = 0; i < len && off > 0 && (size_t)off < n; i++)
		off += snprintf(desc + off, n - (size_t)off, " %02x", b[i]);
	if (!len && off > 0 && (size_t)off < n)
		snprintf(desc + off, n - (size_t)off, " unreadable");
}

/* Hand the outcome to KVM: the new registers of a retired instruction,
 * then the exception, with what the CPU sets on the way (CR2, DR6). */
static int apply(int vcpu_fd, struct kvm_regs *regs, struct kvm_sregs *sregs,
		 struct kvm_xsave *xs, const struct x86_cpu *c,
		 const struct x86_outcome *out)
{
	struct kvm_vcpu_events ev;
	struct kvm_debugregs dbg;
	bool set_ev = out->ev.vector >= 0;

	if (out->retired) {
		regs->rip = c->rip;
		regs->rflags = c->rflags;
		if (ioctl(vcpu_fd, KVM_SET_REGS, regs) < 0)
			return -errno;
	}
	if (out->mxcsr_set) {
		uint8_t *img = (uint8_t *)xs->region;
		uint64_t bv;

		/* The kernel takes MXCSR from the image only when XSTATE_BV
		 * has FP, SSE or AVX (copy_uabi_to_xstate()); otherwise it
		 * keeps the init 0x1f80 and the ldmxcsr is silently lost.
		 * XSAVES leaves SSE out of XSTATE_BV when the CPU tracks the
		 * SSE state as unused (its init optimisation), which here
		 * depends on scheduling. Setting the bit changes nothing
		 * else: with it clear, KVM_GET_XSAVE filled the XMM area with
		 * its init zeros, which is the state the vCPU has. */
		memcpy(img + XSAVE_MXCSR, &c->mxcsr, sizeof(c->mxcsr));
		memcpy(&bv, img + XSAVE_XSTATE_BV, sizeof(bv));
		bv |= XSTATE_SSE;
		memcpy(img + XSAVE_XSTATE_BV, &bv, sizeof(bv));
		if (ioctl(vcpu_fd, KVM_SET_XSAVE, xs) < 0)
			return -errno;
	}
	/* Without KVM_CAP_EXCEPTION_PAYLOAD (a VM-wide switch) an injected
	 * #PF leaves CR2 alone, so it is set here first. */
	if (out->ev.has_cr2) {
		sregs->cr2 = out->ev.cr2;
		if (ioctl(vcpu_fd, KVM_SET_SREGS, sregs) < 0)
			return -errno;
	}
	if (out->ev.dr6_bs) {
		if (ioctl(vcpu_fd, KVM_GET_DEBUGREGS, &dbg) < 0)
			return -errno;
		dbg.dr6 |= DR6_BS;
		if (ioctl(vcpu_fd, KVM_SET_DEBUGREGS, &dbg) < 0)
			return -errno;
	}
	if (ioctl(vcpu_fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return -errno;
	ev.flags = 0;
	/* An sti or mov ss shadow lasts one instruction: this one. */
	if (out->retired && ev.interrupt.shadow) {
		ev.interrupt.shadow = 0;
		ev.flags |= KVM_VCPUEVENT_VALID_SHADOW;
		set_ev = true;
	}
	if (out->ev.vector >= 0) {
		ev.exception.injected = 1;
		ev.exception.nr = (uint8_t)out->ev.vector;
		ev.exception.has_error_code = out->ev.has_error;
		ev.exception.error_code = out->ev.error;
	}
	if (set_ev && ioctl(vcpu_fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		return -errno;
	return 0;
}

static void count(struct pvm_emul_stats *st, const struct x86_insn *in,
		  const struct x86_outcome *out)
{
	if (!out->retired) {
		st->faults++;
		return;
	}
	switch (in->kind) {
	case X86_INSN_INT3:
		st->int3++;
		break;
	case X86_INSN_FWAIT:
		st->fwait++;
		break;
	case X86_INSN_CLAC:
	case X86_INSN_STAC:
		st->clac_stac++;
		break;
	case X86_INSN_LDMXCSR:
	case X86_INSN_STMXCSR:
		st->mxcsr++;
		break;
	case X86_INSN_UNKNOWN:
	case X86_INSN_TRUNCATED:
	case X86_INSN_TOO_LONG:
		break;
	}
}

int pvm_complete_emulation(int vcpu_fd, struct kvm_run *run,
			   const struct gmem *m, struct pvm_emul_stats *st,
			   char *desc, size_t desclen)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	/* Not KVM_GET_FPU: KVM's struct kvm_fpu has an mxcsr field that
	 * KVM_GET_FPU leaves 0 and KVM_SET_FPU ignores. */
	struct kvm_xsave xs;
	struct x86_host h;
	struct x86_cpu c;
	struct x86_insn in;
	struct x86_outcome out;
	uint8_t bytes[X86_MAX_INSN_LEN];
	size_t n = 0;
	int r;

	if (ioctl(vcpu_fd, KVM_GET_REGS, &regs) < 0 ||
	    ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0 ||
	    ioctl(vcpu_fd, KVM_GET_XSAVE, &xs) < 0)
		return -errno;
	host_cpu(&h);
	cpu_from_kvm(&c, &regs, &sregs, &xs);
	if (run->emulation_failure.ndata >= 3 &&
	    (run->emulation_failure.flags &
	     KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
		n = run->emulation_failure.insn_size;
		if (n > sizeof(bytes))
			n = sizeof(bytes);
		memcpy(bytes, run->emulation_failure.insn_bytes, n);
	}
	x86_decode(bytes, n, &in);
	/* KVM hands over only what its decoder had fetched when it gave up
	 * (perhaps not the displacement): fetch the rest as the CPU would. */
	if (in.kind == X86_INSN_TRUNCATED) {
		n = fetch(m, &h, &c, bytes);
		x86_decode(bytes, n, &in);
	}
	describe(desc, desclen, &c, bytes, n);
	r = x86_emulate(m, &h, &c, &in, &out);
	if (r < 0)
		return r;
	r = apply(vcpu_fd, &regs, &sregs, &xs, &c, &out);
	if (r < 0)
		return r;
	count(st, &in, &out);
	return 0;
}
