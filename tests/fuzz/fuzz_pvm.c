/* libFuzzer harness: the instruction completions of vmm/x86/emul.c, as a
 * hostile guest kernel meets them on PVM: any instruction bytes, any vCPU
 * state, and page tables of its own making in 64 KiB of guest memory, so
 * that table and data addresses easily reach past its end.
 *
 * The input, little-endian:
 *   flags u32     bit 0-1 CPL, 2 code64, 3 CR0.WP, 4 CR0.AM, 5 CR0.TS,
 *                 6 CR0.MP, 7 CR0.EM, 8 CR0.NE, 9 CR4.OSFXSR, 10 CR4.SMAP,
 *                 11 CR4.SMEP, 12 CR4.LA57, 13 EFER.NXE, 14 RFLAGS.AC,
 *                 15 RFLAGS.TF, 16 host SMAP, 17 host 1 GiB pages,
 *                 18 MXCSR_MASK 0xffff (else 0xffbf), 19 CR4.PKE
 *   cr3 u32, maxphyaddr u8 (taken 32..52), mxcsr u32, fsw u16
 *   16 registers u64, rip u64, fs base u64, gs base u64, idt base u64,
 *   idt limit u16
 *   n u8, n instruction bytes (n taken modulo 24)
 *   then until the input ends: gpa u16, value u64 (guest memory writes:
 *   page-table entries, operands, the IDT)
 *
 * After each run: the return is 0, -EOPNOTSUPP or -EFAULT; on an error
 * nothing changed (registers or memory); an instruction that did not
 * retire changed nothing but the accessed bits of the tables it walked;
 * one that retired moved RIP by its length; only #PF carries CR2. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_input.h"
#include "vmm/x86/emul.h"

#define MEM_SIZE 65536

static bool bit(uint32_t flags, unsigned n)
{
	return flags >> n & 1;
}

static void read_state(struct fin *in, struct x86_cpu *c, struct x86_host *h)
{
	uint32_t f = fin_u32(in);
	unsigned phys;

	c->cpl = f & 3;
	c->code64 = bit(f, 2);
	c->cr0 = 1 | 1ULL << 31 | (bit(f, 3) ? X86_CR0_WP : 0) |
		 (bit(f, 4) ? X86_CR0_AM : 0) | (bit(f, 5) ? X86_CR0_TS : 0) |
		 (bit(f, 6) ? X86_CR0_MP : 0) | (bit(f, 7) ? X86_CR0_EM : 0) |
		 (bit(f, 8) ? X86_CR0_NE : 0);
	c->cr4 = 1ULL << 5 | (bit(f, 9) ? X86_CR4_OSFXSR : 0) |
		 (bit(f, 10) ? X86_CR4_SMAP : 0) |
		 (bit(f, 11) ? X86_CR4_SMEP : 0) |
		 (bit(f, 12) ? X86_CR4_LA57 : 0) |
		 (bit(f, 19) ? X86_CR4_PKE : 0);
	c->efer = 1ULL << 8 | 1ULL << 10 | (bit(f, 13) ? X86_EFER_NXE : 0);
	c->rflags = 2 | (bit(f, 14) ? X86_RFLAGS_AC : 0) |
		    (bit(f, 15) ? X86_RFLAGS_TF : 0);
	h->smap = bit(f, 16);
	h->gbpages = bit(f, 17);
	h->mxcsr_mask = bit(f, 18) ? 0xffff : 0xffbf;
	c->cr3 = fin_u32(in);
	phys = fin_u8(in);
	h->maxphyaddr = 32 + phys % 21;
	c->mxcsr = fin_u32(in);
	c->fsw = fin_u16(in);
	for (unsigned i = 0; i < 16; i++)
		c->gpr[i] = fin_u64(in);
	c->rip = fin_u64(in);
	c->seg_base[X86_FS] = fin_u64(in);
	c->seg_base[X86_GS] = fin_u64(in);
	c->idt_base = fin_u64(in);
	c->idt_limit = fin_u16(in);
}

/* Memory may differ from before only in the A and D bits (5, 6) of its
 * 8-byte entries, and only where it was walked. */
static bool only_ad(const uint8_t *now, const uint8_t *before)
{
	for (size_t i = 0; i < MEM_SIZE; i++)
		if ((now[i] ^ before[i]) & ~(i % 8 == 0 ? 0x60 : 0))
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fin in = { data, size };
	struct gmem m = { .host = calloc(1, MEM_SIZE), .size = MEM_SIZE };
	uint8_t *before = malloc(MEM_SIZE);
	struct x86_cpu c, c0;
	struct x86_host h;
	struct x86_insn insn;
	struct x86_outcome out;
	const uint8_t *bytes;
	uint8_t *copy;
	size_t n;
	int r;

	if (!m.host || !before)
		abort();
	memset(&c, 0, sizeof(c));
	memset(&h, 0, sizeof(h));
	read_state(&in, &c, &h);
	n = fin_bytes(&in, fin_u8(&in) % 24, &bytes);
	/* A buffer of exactly n bytes: a read past it is ASan's. */
	copy = malloc(n ? n : 1);
	if (!copy)
		abort();
	memcpy(copy, bytes, n);
	while (fin_left(&in)) {
		uint16_t gpa = fin_u16(&in) & ~7;
		uint64_t v = fin_u64(&in);

		memcpy(m.host + gpa, &v, 8);
	}
	memcpy(before, m.host, MEM_SIZE);
	c0 = c;

	x86_decode(copy, n, &insn);
	if (insn.kind >= X86_INSN_INT3 &&
	    (insn.len < 1 || insn.len > X86_MAX_INSN_LEN || insn.len > n))
		abort();
	r = x86_emulate(&m, &h, &c, &insn, &out);
	if (r != 0 && r != -EOPNOTSUPP && r != -EFAULT)
		abort();
	if (r < 0) {
		if (memcmp(&c, &c0, sizeof(c)) ||
		    memcmp(m.host, before, MEM_SIZE))
			abort();
		goto out;
	}
	if (out.ev.has_cr2 != (out.ev.vector == X86_EXC_PF))
		abort();
	if (out.retired) {
		if (c.rip != c0.rip + insn.len)
			abort();
	} else {
		if (out.ev.vector < 0 || out.mxcsr_set ||
		    memcmp(&c, &c0, sizeof(c)) || !only_ad(m.host, before))
			abort();
	}
	if (out.mxcsr_set && (c.mxcsr & ~h.mxcsr_mask))
		abort();
out:
	free(copy);
	free(before);
	free(m.host);
	return 0;
}
