/* Decoder for the few instructions the VMM completes on PVM (64-bit mode).
 * It says what it knows and nothing else: an encoding the SDM leaves open
 * (a mandatory-prefix slot filled, a register form) is UNKNOWN, so the VM
 * stops rather than be given the wrong instruction. */
#include "vmm/x86/emul.h"

#include <string.h>

struct cursor {
	const uint8_t *b;
	size_t len, i;
	enum x86_insn_kind fail;
};

/* The next n bytes, or why there are none: past 15 bytes the CPU raises
 * #GP whatever follows; short of that the bytes we were given ran out. */
static const uint8_t *next(struct cursor *c, size_t n)
{
	const uint8_t *p;

	if (c->i + n > X86_MAX_INSN_LEN) {
		c->fail = X86_INSN_TOO_LONG;
		return NULL;
	}
	if (c->i + n > c->len) {
		c->fail = X86_INSN_TRUNCATED;
		return NULL;
	}
	p = c->b + c->i;
	c->i += n;
	return p;
}

static int64_t sext32(const uint8_t *p)
{
	int32_t v;

	memcpy(&v, p, 4);
	return v;
}

/* ModRM memory operand (mod != 3) with its SIB and displacement. */
static bool modrm_mem(struct cursor *c, unsigned modrm, unsigned rex,
		      struct x86_insn *in)
{
	unsigned mod = modrm >> 6, rm = modrm & 7;
	const uint8_t *p;

	if (rm == 4) {
		unsigned sib, idx;

		if (!(p = next(c, 1)))
			return false;
		sib = *p;
		in->scale = 1U << (sib >> 6);
		idx = ((sib >> 3) & 7) | (rex & 2 ? 8 : 0);
		if (idx != 4)	/* rsp cannot be an index; r12 can */
			in->index = (int)idx;
		if ((sib & 7) == 5 && mod == 0) {
			if (!(p = next(c, 4)))
				return false;
			in->disp = sext32(p);
		} else {
			in->base = (int)((sib & 7) | (rex & 1 ? 8 : 0));
		}
	} else if (rm == 5 && mod == 0) {
		/* REX.B does not make this r13: it stays RIP-relative. */
		if (!(p = next(c, 4)))
			return false;
		in->rip_rel = true;
		in->disp = sext32(p);
	} else {
		in->base = (int)(rm | (rex & 1 ? 8 : 0));
	}
	if (mod == 1) {
		if (!(p = next(c, 1)))
			return false;
		in->disp = (int8_t)*p;
	} else if (mod == 2) {
		if (!(p = next(c, 4)))
			return false;
		in->disp = sext32(p);
	}
	return true;
}

void x86_decode(const uint8_t *b, size_t len, struct x86_insn *in)
{
	struct cursor c = { .b = b, .len = len, .fail = X86_INSN_UNKNOWN };
	enum x86_insn_kind kind = X86_INSN_UNKNOWN;
	bool opsize = false, rep = false;
	unsigned rex = 0, modrm;
	const uint8_t *p;

	memset(in, 0, sizeof(*in));
	in->base = in->index = in->seg = -1;
	for (;;) {
		if (!(p = next(&c, 1)))
			goto fail;
		switch (*p) {
		case 0x26: in->seg = X86_ES; break;
		case 0x2e: in->seg = X86_CS; break;
		case 0x36: in->seg = X86_SS; break;
		case 0x3e: in->seg = X86_DS; break;
		case 0x64: in->seg = X86_FS; break;
		case 0x65: in->seg = X86_GS; break;
		case 0x66: opsize = true; break;
		case 0x67: in->addr32 = true; break;
		case 0xf0: in->lock = true; break;
		case 0xf2: case 0xf3: rep = true; break;
		default:
			if ((*p & 0xf0) == 0x40) {
				rex = *p;
				continue;
			}
			goto opcode;
		}
		/* A REX prefix counts only right before the opcode. */
		rex = 0;
	}
opcode:
	if (*p == 0xcc || *p == 0x9b) {
		kind = *p == 0xcc ? X86_INSN_INT3 : X86_INSN_FWAIT;
		goto done;
	}
	if (*p != 0x0f || !(p = next(&c, 1)))
		goto fail;
	if (*p != 0x01 && *p != 0xae)
		goto fail;
	/* clac, stac, ldmxcsr and stmxcsr are NP: with 66/f2/f3 they are
	 * #UD or other instructions (f3 0f 01 ca is FRED's eretu). */
	if (opsize || rep)
		goto fail;
	if (*p == 0x01) {
		if (!(p = next(&c, 1)) || (*p != 0xca && *p != 0xcb))
			goto fail;
		kind = *p == 0xca ? X86_INSN_CLAC : X86_INSN_STAC;
		goto done;
	}
	if (!(p = next(&c, 1)))
		goto fail;
	modrm = *p;
	/* mod 3 is lfence/mfence/sfence and the fsbase group; /0 /1 /4 ..
	 * are fxsave, fxrstor, xsave, ...: none of them ours. */
	if (modrm >> 6 == 3 || (((modrm >> 3) & 7) != 2 &&
				((modrm >> 3) & 7) != 3))
		goto fail;
	if (!modrm_mem(&c, modrm, rex, in))
		goto fail;
	kind = ((modrm >> 3) & 7) == 2 ? X86_INSN_LDMXCSR : X86_INSN_STMXCSR;
done:
	in->kind = kind;
	in->len = (unsigned)c.i;
	return;
fail:
	memset(in, 0, sizeof(*in));
	in->base = in->index = in->seg = -1;
	in->kind = c.fail;
}
