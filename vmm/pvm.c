#include "vmm/pvm.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define RFLAGS_AC (1ULL << 18)
#define BP_VECTOR 3

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

static int64_t sext8(uint8_t v)
{
	return (int8_t)v;
}

static int64_t sext32(const uint8_t *p)
{
	int32_t v;

	memcpy(&v, p, 4);
	return v;
}

void x86_decode(const uint8_t *b, size_t len, struct x86_insn *in)
{
	unsigned rex = 0, mod, reg, rm;
	size_t i = 0;

	memset(in, 0, sizeof(*in));
	in->kind = X86_INSN_UNKNOWN;
	in->base = in->index = in->seg = -1;
	if (len > 15)
		len = 15;
	for (; i < len; i++) {
		switch (b[i]) {
		case 0x66: case 0xf2: case 0xf3:
		case 0x26: case 0x2e: case 0x36: case 0x3e:
			continue;
		case 0x64:
			in->seg = 4;
			continue;
		case 0x65:
			in->seg = 5;
			continue;
		default:
			break;
		}
		break;
	}
	if (i < len && (b[i] & 0xf0) == 0x40)
		rex = b[i++];
	if (i >= len)
		return;
	if (b[i] == 0xcc || b[i] == 0x9b) {
		in->kind = b[i] == 0xcc ? X86_INSN_INT3 : X86_INSN_FWAIT;
		in->len = (unsigned)i + 1;
		return;
	}
	if (b[i] != 0x0f || i + 2 >= len)
		return;
	if (b[i + 1] == 0x01 && (b[i + 2] == 0xca || b[i + 2] == 0xcb)) {
		in->kind = b[i + 2] == 0xca ? X86_INSN_CLAC : X86_INSN_STAC;
		in->len = (unsigned)i + 3;
		return;
	}
	if (b[i + 1] != 0xae)
		return;
	mod = b[i + 2] >> 6;
	reg = (b[i + 2] >> 3) & 7;
	rm = b[i + 2] & 7;
	if (mod == 3 || (reg != 2 && reg != 3))
		return;
	i += 3;
	if (rm == 4) {
		unsigned sib, idx;

		if (i >= len)
			return;
		sib = b[i++];
		in->scale = 1U << (sib >> 6);
		idx = ((sib >> 3) & 7) | (rex & 2 ? 8 : 0);
		if (idx != 4)
			in->index = (int)idx;
		if ((sib & 7) == 5 && mod == 0) {
			if (i + 4 > len)
				return;
			in->disp = sext32(b + i);
			i += 4;
		} else {
			in->base = (int)((sib & 7) | (rex & 1 ? 8 : 0));
		}
	} else if (rm == 5 && mod == 0) {
		if (i + 4 > len)
			return;
		in->rip_rel = true;
		in->disp = sext32(b + i);
		i += 4;
	} else {
		in->base = (int)(rm | (rex & 1 ? 8 : 0));
	}
	if (mod == 1) {
		if (i + 1 > len)
			return;
		in->disp = sext8(b[i++]);
	} else if (mod == 2) {
		if (i + 4 > len)
			return;
		in->disp = sext32(b + i);
		i += 4;
	}
	in->kind = reg == 2 ? X86_INSN_LDMXCSR : X86_INSN_STMXCSR;
	in->len = (unsigned)i;
}

static uint64_t reg_value(const struct kvm_regs *r, int n)
{
	const uint64_t v[16] = {
		r->rax, r->rcx, r->rdx, r->rbx, r->rsp, r->rbp, r->rsi, r->rdi,
		r->r8,	r->r9,	r->r10, r->r11, r->r12, r->r13, r->r14, r->r15,
	};
	return n >= 0 && n < 16 ? v[n] : 0;
}

/* Guest virtual to host pointer for one byte, through the guest's page
 * tables as KVM walks them. */
static uint8_t *gva_byte(int vcpu_fd, const struct gmem *m, uint64_t gva)
{
	struct kvm_translation t = { .linear_address = gva };

	if (ioctl(vcpu_fd, KVM_TRANSLATE, &t) < 0 || !t.valid)
		return NULL;
	return gmem_ptr(m, t.physical_address, 1);
}

static int gva_copy(int vcpu_fd, const struct gmem *m, uint64_t gva,
		    void *buf, size_t len, bool to_guest)
{
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i++) {
		uint8_t *g = gva_byte(vcpu_fd, m, gva + i);

		if (!g)
			return -EFAULT;
		if (to_guest)
			*g = p[i];
		else
			p[i] = *g;
	}
	return 0;
}

static void describe(char *desc, size_t n, uint64_t rip, const uint8_t *b,
		     size_t len)
{
	int off = snprintf(desc, n, "instruction at RIP 0x%llx, bytes",
			   (unsigned long long)rip);

	for (size_t i = 0; i < len && off > 0 && (size_t)off < n; i++)
		off += snprintf(desc + off, n - (size_t)off, " %02x", b[i]);
	if (!len && off > 0 && (size_t)off < n)
		snprintf(desc + off, n - (size_t)off, " unreadable");
}

static int mxcsr_access(int vcpu_fd, const struct gmem *m,
			const struct kvm_regs *regs, const struct x86_insn *in)
{
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	uint64_t addr;
	uint32_t v;

	addr = reg_value(regs, in->base) +
	       reg_value(regs, in->index) * (in->index >= 0 ? in->scale : 0) +
	       (uint64_t)in->disp;
	if (in->rip_rel)
		addr += regs->rip + in->len;
	if (in->seg >= 0) {
		if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
			return -errno;
		addr += in->seg == 4 ? sregs.fs.base : sregs.gs.base;
	}
	if (ioctl(vcpu_fd, KVM_GET_FPU, &fpu) < 0)
		return -errno;
	if (in->kind == X86_INSN_LDMXCSR) {
		if (gva_copy(vcpu_fd, m, addr, &v, sizeof(v), false) < 0)
			return -EOPNOTSUPP;
		fpu.mxcsr = v;
		if (ioctl(vcpu_fd, KVM_SET_FPU, &fpu) < 0)
			return -errno;
	} else {
		v = fpu.mxcsr;
		if (gva_copy(vcpu_fd, m, addr, &v, sizeof(v), true) < 0)
			return -EOPNOTSUPP;
	}
	return 0;
}

int x86_complete_emulation(int vcpu_fd, struct kvm_run *run,
			   const struct gmem *m, struct x86_emul_stats *st,
			   char *desc, size_t desclen)
{
	struct kvm_regs regs;
	struct kvm_vcpu_events ev;
	struct x86_insn in;
	uint8_t bytes[15];
	size_t n = 0;
	int r;

	if (ioctl(vcpu_fd, KVM_GET_REGS, &regs) < 0)
		return -errno;
	if (run->emulation_failure.ndata >= 3 &&
	    (run->emulation_failure.flags &
	     KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) &&
	    run->emulation_failure.insn_size) {
		n = run->emulation_failure.insn_size;
		if (n > sizeof(bytes))
			n = sizeof(bytes);
		memcpy(bytes, run->emulation_failure.insn_bytes, n);
	} else {
		/* Fetch as much of the 15 bytes as is mapped. */
		while (n < sizeof(bytes)) {
			uint8_t *g = gva_byte(vcpu_fd, m, regs.rip + n);

			if (!g)
				break;
			bytes[n++] = *g;
		}
	}
	describe(desc, desclen, regs.rip, bytes, n);
	x86_decode(bytes, n, &in);

	switch (in.kind) {
	case X86_INSN_UNKNOWN:
		return -EOPNOTSUPP;
	case X86_INSN_INT3:
		/* The handler expects RIP after the int3, as the CPU leaves it. */
		regs.rip += in.len;
		if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0 ||
		    ioctl(vcpu_fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
			return -errno;
		ev.exception.injected = 1;
		ev.exception.nr = BP_VECTOR;
		ev.exception.has_error_code = 0;
		ev.flags = 0;
		if (ioctl(vcpu_fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
			return -errno;
		st->int3++;
		return 0;
	case X86_INSN_FWAIT:	/* no pending x87 exceptions to raise */
		st->fwait++;
		break;
	case X86_INSN_CLAC:
		regs.rflags &= ~RFLAGS_AC;
		st->clac_stac++;
		break;
	case X86_INSN_STAC:
		regs.rflags |= RFLAGS_AC;
		st->clac_stac++;
		break;
	case X86_INSN_LDMXCSR:
	case X86_INSN_STMXCSR:
		r = mxcsr_access(vcpu_fd, m, &regs, &in);
		if (r < 0)
			return r;
		st->mxcsr++;
		break;
	}
	regs.rip += in.len;
	if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}
