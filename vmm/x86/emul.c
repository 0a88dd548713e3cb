/* The completions themselves: for each instruction the checks the SDM
 * (vol. 2, each instruction's "64-Bit Mode Exceptions") lists, in the
 * order of vol. 3, 6.9: decode faults (length, #UD, #NM) before the
 * faults of executing it (#SS/#GP of the address, #AC, #PF, then the
 * operand itself). */
#include "vmm/x86/emul.h"

#include <errno.h>
#include <string.h>

/* Error code of a fault on IDT entry n (bit 1: the IDT). */
#define IDT_ERROR(n) ((uint32_t)(n) << 3 | 2)
#define FSW_ES (1U << 7)	/* an unmasked x87 exception is pending */

static void raise(struct x86_outcome *out, int vector)
{
	out->ev.vector = vector;
}

static void raise_error(struct x86_outcome *out, int vector, uint32_t error)
{
	out->ev.vector = vector;
	out->ev.has_error = true;
	out->ev.error = error;
}

static void retire(struct x86_cpu *c, const struct x86_insn *in,
		   struct x86_outcome *out)
{
	/* A single step traps after the instruction (int3 clears TF on its
	 * way into the handler, so it never has one). */
	if ((c->rflags & X86_RFLAGS_TF) && in->kind != X86_INSN_INT3) {
		raise(out, X86_EXC_DB);
		out->ev.dr6_bs = true;
	}
	c->rip += in->len;
	out->retired = true;
}

static bool canonical(const struct x86_cpu *c, uint64_t la)
{
	unsigned bits = c->cr4 & X86_CR4_LA57 ? 57 : 48;

	return (uint64_t)((int64_t)(la << (64 - bits)) >> (64 - bits)) == la;
}

/* int3 is a software interrupt: from CPL 3 it needs a gate of DPL 3
 * (Linux gives #BP one so that debuggers work). The gate's other checks
 * (present, type) are the delivery's, made when KVM injects #BP. */
static int int3(const struct gmem *m, const struct x86_host *h,
		struct x86_cpu *c, const struct x86_insn *in,
		struct x86_outcome *out)
{
	struct x86_event f;
	uint64_t gate;

	if (c->cpl > 0) {
		if (c->idt_limit < X86_EXC_BP * 16 + 15) {
			raise_error(out, X86_EXC_GP, IDT_ERROR(X86_EXC_BP));
			return 0;
		}
		/* An implicit supervisor read: neither user nor AC. Should
		 * it fail, so does delivery, and the CPU reports that. */
		if (x86_access(m, h, c, c->idt_base + X86_EXC_BP * 16, &gate,
			       sizeof(gate), 0, &f) == 0 && f.vector < 0 &&
		    ((gate >> 45) & 3) < c->cpl) {
			raise_error(out, X86_EXC_GP, IDT_ERROR(X86_EXC_BP));
			return 0;
		}
	}
	retire(c, in, out);
	raise(out, X86_EXC_BP);
	return 0;
}

static int fwait(struct x86_cpu *c, const struct x86_insn *in,
		 struct x86_outcome *out)
{
	if ((c->cr0 & (X86_CR0_MP | X86_CR0_TS)) ==
	    (X86_CR0_MP | X86_CR0_TS)) {
		raise(out, X86_EXC_NM);
		return 0;
	}
	if (c->fsw & FSW_ES) {
		/* With CR0.NE clear the CPU signals FERR# to a PC-style
		 * interrupt line and waits: nothing here models that. */
		if (!(c->cr0 & X86_CR0_NE))
			return -EOPNOTSUPP;
		raise(out, X86_EXC_MF);
		return 0;
	}
	retire(c, in, out);
	return 0;
}

static int ac_flag(const struct x86_host *h, struct x86_cpu *c,
		   const struct x86_insn *in, struct x86_outcome *out)
{
	if (!h->smap || c->cpl > 0) {
		raise(out, X86_EXC_UD);
		return 0;
	}
	if (in->kind == X86_INSN_CLAC)
		c->rflags &= ~X86_RFLAGS_AC;
	else
		c->rflags |= X86_RFLAGS_AC;
	retire(c, in, out);
	return 0;
}

static uint64_t reg(const struct x86_cpu *c, int n)
{
	return n >= 0 && n < 16 ? c->gpr[n] : 0;
}

static int mxcsr(const struct gmem *m, const struct x86_host *h,
		 struct x86_cpu *c, const struct x86_insn *in,
		 struct x86_outcome *out)
{
	bool load = in->kind == X86_INSN_LDMXCSR;
	unsigned acc = load ? 0 : X86_ACC_WRITE;
	uint64_t ea, la;
	uint32_t v;
	int seg, r;

	if ((c->cr0 & X86_CR0_EM) || !(c->cr4 & X86_CR4_OSFXSR)) {
		raise(out, X86_EXC_UD);
		return 0;
	}
	if (c->cr0 & X86_CR0_TS) {
		raise(out, X86_EXC_NM);
		return 0;
	}
	ea = reg(c, in->base) + (uint64_t)in->disp +
	     (in->index >= 0 ? reg(c, in->index) * in->scale : 0);
	if (in->rip_rel)
		ea += c->rip + in->len;
	if (in->addr32)
		ea &= 0xffffffffULL;
	/* rsp and rbp (not r12, r13) as base address the stack. */
	seg = in->seg >= 0 ? in->seg :
	      (in->base == 4 || in->base == 5) ? X86_SS : X86_DS;
	la = c->seg_base[seg] + ea;
	if (!canonical(c, la) || !canonical(c, la + 3)) {
		raise_error(out, seg == X86_SS ? X86_EXC_SS : X86_EXC_GP, 0);
		return 0;
	}
	if (c->cpl == 3 && (c->cr0 & X86_CR0_AM) &&
	    (c->rflags & X86_RFLAGS_AC) && (la & 3)) {
		raise_error(out, X86_EXC_AC, 0);
		return 0;
	}
	if (c->cpl == 3)
		acc |= X86_ACC_USER;
	else if (c->rflags & X86_RFLAGS_AC)
		acc |= X86_ACC_AC;
	v = c->mxcsr;
	r = x86_access(m, h, c, la, &v, sizeof(v), acc, &out->ev);
	if (r < 0 || out->ev.vector >= 0)
		return r;
	if (load) {
		if (v & ~h->mxcsr_mask) {
			raise_error(out, X86_EXC_GP, 0);
			return 0;
		}
		c->mxcsr = v;
		out->mxcsr_set = true;
	}
	retire(c, in, out);
	return 0;
}

int x86_emulate(const struct gmem *m, const struct x86_host *h,
		struct x86_cpu *c, const struct x86_insn *in,
		struct x86_outcome *out)
{
	memset(out, 0, sizeof(*out));
	out->ev.vector = -1;
	/* The decoder knows 64-bit mode only: in another the same bytes are
	 * other instructions (0x40-0x4f are inc/dec, not REX). */
	if (!c->code64)
		return -EOPNOTSUPP;
	switch (in->kind) {
	case X86_INSN_UNKNOWN:
	case X86_INSN_TRUNCATED:
		return -EOPNOTSUPP;
	case X86_INSN_TOO_LONG:
		raise_error(out, X86_EXC_GP, 0);
		return 0;
	case X86_INSN_INT3:
	case X86_INSN_FWAIT:
	case X86_INSN_CLAC:
	case X86_INSN_STAC:
	case X86_INSN_LDMXCSR:
	case X86_INSN_STMXCSR:
		break;
	}
	if (in->lock) {
		raise(out, X86_EXC_UD);
		return 0;
	}
	switch (in->kind) {
	case X86_INSN_INT3:
		return int3(m, h, c, in, out);
	case X86_INSN_FWAIT:
		return fwait(c, in, out);
	case X86_INSN_CLAC:
	case X86_INSN_STAC:
		return ac_flag(h, c, in, out);
	case X86_INSN_LDMXCSR:
	case X86_INSN_STMXCSR:
		return mxcsr(m, h, c, in, out);
	case X86_INSN_UNKNOWN:
	case X86_INSN_TRUNCATED:
	case X86_INSN_TOO_LONG:
		break;
	}
	return -EOPNOTSUPP;
}
