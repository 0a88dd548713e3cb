/* The completions of vmm/x86_emul.c on plain memory: page tables built in
 * a buffer that stands for guest RAM, a vCPU state in a struct, and for
 * each hostile case the exact exception (vector, error code, CR2) or the
 * exact effect the SDM gives. */
#include "vmm/x86_emul.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>

#define MEM_SIZE (4U << 20)
#define TABLES 0x1000ULL	/* page tables are allocated from here */
#define DATA 0x80000ULL		/* data pages */

#define P (1ULL << 0)
#define RW (1ULL << 1)
#define US (1ULL << 2)
#define A (1ULL << 5)
#define D (1ULL << 6)
#define PS (1ULL << 7)
#define XD (1ULL << 63)

/* Linear addresses: a kernel one (the direct map) and a user one. */
#define KLA 0xffff888000200000ULL
#define ULA 0x00007f0000400000ULL

#define CR0_PE (1ULL << 0)
#define CR0_PG (1ULL << 31)
#define CR4_PAE (1ULL << 5)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)
#define RAX 0
#define RSP 4
#define RBP 5
#define R12 12

struct fx {
	struct gmem m;
	struct x86_host h;
	struct x86_cpu c;
	uint64_t next;		/* next free table page */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->m.host = calloc(1, MEM_SIZE);
	assert_non_null(f->m.host);
	f->m.size = MEM_SIZE;
	f->h = (struct x86_host){ .mxcsr_mask = 0xffbf, .maxphyaddr = 46,
				  .smap = true, .gbpages = true };
	f->next = TABLES + 4096;	/* TABLES itself is the top table */
	f->c.cr3 = TABLES;
	f->c.cr0 = CR0_PE | CR0_PG | X86_CR0_MP | X86_CR0_NE | X86_CR0_WP;
	f->c.cr4 = CR4_PAE | X86_CR4_OSFXSR;
	f->c.efer = EFER_LME | EFER_LMA | X86_EFER_NXE;
	f->c.code64 = true;
	f->c.rip = 0xffffffff81000000ULL;
	f->c.rflags = 0x2;
	f->c.mxcsr = 0x1f80;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	free(f->m.host);
	free(f);
	return 0;
}

/* The test's own view of guest RAM (the code under test uses gmem). */
static void *mem(struct fx *f, uint64_t gpa, size_t len)
{
	assert_true(gpa <= f->m.size && len <= f->m.size - gpa);
	return f->m.host + gpa;
}

static uint64_t *at(struct fx *f, uint64_t gpa)
{
	return mem(f, gpa, 8);
}

/* The entry of level (1 = PTE) that maps la, making the tables above it
 * as needed with P|RW|US, so that the leaf's bits decide. */
static uint64_t *entry(struct fx *f, uint64_t la, unsigned level)
{
	uint64_t table = f->c.cr3 & ~0xfffULL;
	unsigned l = f->c.cr4 & X86_CR4_LA57 ? 5 : 4;

	for (;; l--) {
		unsigned idx = (la >> (12 + 9 * (l - 1))) & 511;
		uint64_t *e = at(f, table + idx * 8);

		if (l == level)
			return e;
		if (!(*e & P)) {
			assert_true(f->next < DATA);
			*e = f->next | P | RW | US;
			f->next += 4096;
		}
		table = *e & 0x000ffffffffff000ULL;
	}
}

static void map(struct fx *f, uint64_t la, uint64_t gpa, uint64_t flags)
{
	*entry(f, la, 1) = gpa | flags;
}

static int run(struct fx *f, const char *bytes, size_t len,
	       struct x86_outcome *out)
{
	uint8_t *b = malloc(len ? len : 1);	/* reads past len: ASan */
	struct x86_insn in;

	assert_non_null(b);
	memcpy(b, bytes, len);
	x86_decode(b, len, &in);
	free(b);
	memset(out, 0x5a, sizeof(*out));
	return x86_emulate(&f->m, &f->h, &f->c, &in, out);
}

#define RUN(f, s, out) run(f, s, sizeof(s) - 1, out)

/* It faulted: nothing of the instruction happened, RIP stays on it. */
static void expect_fault(struct fx *f, const char *bytes, size_t len,
			 int vector, int error, uint64_t cr2)
{
	struct x86_cpu before = f->c;
	struct x86_outcome out;

	assert_int_equal(run(f, bytes, len, &out), 0);
	assert_false(out.retired);
	assert_int_equal(out.ev.vector, vector);
	assert_int_equal(out.ev.has_error, error >= 0);
	if (error >= 0)
		assert_int_equal(out.ev.error, error);
	assert_int_equal(out.ev.has_cr2, vector == X86_EXC_PF);
	if (vector == X86_EXC_PF)
		assert_int_equal(out.ev.cr2, cr2);
	assert_false(out.mxcsr_set);
	assert_memory_equal(&f->c, &before, sizeof(before));
}

#define FAULT(f, s, v, e, cr2) expect_fault(f, s, sizeof(s) - 1, v, e, cr2)
#define NOERR (-1)

static void expect_retired(struct fx *f, const char *bytes, size_t len)
{
	uint64_t rip = f->c.rip;
	struct x86_outcome out;

	assert_int_equal(run(f, bytes, len, &out), 0);
	assert_true(out.retired);
	assert_int_equal(out.ev.vector, -1);
	assert_int_equal(f->c.rip, rip + len);
}

#define RETIRED(f, s) expect_retired(f, s, sizeof(s) - 1)

static void expect_refused(struct fx *f, const char *bytes, size_t len,
			   int err)
{
	struct x86_cpu before = f->c;
	struct x86_outcome out;

	assert_int_equal(run(f, bytes, len, &out), err);
	assert_memory_equal(&f->c, &before, sizeof(before));
}

#define REFUSED(f, s, e) expect_refused(f, s, sizeof(s) - 1, e)

/* ---- privilege ---------------------------------------------------- */

static void test_clac_stac(void **state)
{
	struct fx *f = *state;

	f->c.rflags |= X86_RFLAGS_AC;
	RETIRED(f, "\x0f\x01\xca");
	assert_int_equal(f->c.rflags, 0x2);
	RETIRED(f, "\x0f\x01\xcb");
	assert_int_equal(f->c.rflags, 0x2 | X86_RFLAGS_AC);
	/* Segment and REX prefixes change nothing but the length. */
	RETIRED(f, "\x65\x48\x0f\x01\xca");
	assert_int_equal(f->c.rflags, 0x2);
}

static void test_clac_stac_user_mode(void **state)
{
	struct fx *f = *state;

	/* CPL > 0 is #UD (SDM: CLAC, 64-Bit Mode Exceptions), AC as it was. */
	f->c.cpl = 3;
	FAULT(f, "\x0f\x01\xca", X86_EXC_UD, NOERR, 0);
	f->c.rflags |= X86_RFLAGS_AC;
	FAULT(f, "\x0f\x01\xca", X86_EXC_UD, NOERR, 0);
	f->c.rflags &= ~X86_RFLAGS_AC;
	FAULT(f, "\x0f\x01\xcb", X86_EXC_UD, NOERR, 0);
	f->c.cpl = 1;
	FAULT(f, "\x0f\x01\xcb", X86_EXC_UD, NOERR, 0);
}

static void test_clac_without_smap_or_with_lock(void **state)
{
	struct fx *f = *state;

	f->h.smap = false;
	FAULT(f, "\x0f\x01\xca", X86_EXC_UD, NOERR, 0);
	f->h.smap = true;
	FAULT(f, "\xf0\x0f\x01\xcb", X86_EXC_UD, NOERR, 0);
	FAULT(f, "\xf0\xcc", X86_EXC_UD, NOERR, 0);
	FAULT(f, "\xf0\x9b", X86_EXC_UD, NOERR, 0);
	FAULT(f, "\xf0\x0f\xae\x10", X86_EXC_UD, NOERR, 0);
	/* f3 0f 01 ca is FRED's ERETU, f2 0f 01 ca ERETS: not clac. */
	REFUSED(f, "\xf3\x0f\x01\xca", -EOPNOTSUPP);
	REFUSED(f, "\xf2\x0f\x01\xca", -EOPNOTSUPP);
	REFUSED(f, "\x66\x0f\x01\xcb", -EOPNOTSUPP);
}

static void idt_gate(struct fx *f, unsigned dpl)
{
	uint64_t idt = 0xfffffe0000000000ULL;

	map(f, idt, DATA + 0x9000, P | RW | XD);
	/* vector 3: a present 64-bit interrupt gate */
	*at(f, DATA + 0x9000 + 3 * 16) = 0x8e00ULL << 32 | (uint64_t)dpl << 45;
	f->c.idt_base = idt;
	f->c.idt_limit = 4095;
}

static void test_int3(void **state)
{
	struct fx *f = *state;
	uint64_t rip = f->c.rip;
	struct x86_outcome out;

	/* #BP is a trap: the handler sees RIP after the int3. */
	assert_int_equal(RUN(f, "\xcc", &out), 0);
	assert_true(out.retired);
	assert_int_equal(out.ev.vector, X86_EXC_BP);
	assert_false(out.ev.has_error);
	assert_false(out.ev.has_cr2);
	assert_int_equal(f->c.rip, rip + 1);
	assert_int_equal(RUN(f, "\x66\xcc", &out), 0);
	assert_int_equal(f->c.rip, rip + 3);
}

static void test_int3_user_mode_gate_dpl(void **state)
{
	struct fx *f = *state;
	struct x86_outcome out;

	/* From CPL 3 a gate of DPL 0 is #GP(3 * 8 + 2: IDT, vector 3). */
	idt_gate(f, 0);
	f->c.cpl = 3;
	FAULT(f, "\xcc", X86_EXC_GP, 0x1a, 0);
	/* The IDT's limit short of entry 3: the same. */
	idt_gate(f, 3);
	f->c.idt_limit = 3 * 16 + 14;
	FAULT(f, "\xcc", X86_EXC_GP, 0x1a, 0);
	/* A DPL 3 gate (Linux's) lets it through. */
	f->c.idt_limit = 4095;
	assert_int_equal(RUN(f, "\xcc", &out), 0);
	assert_true(out.retired);
	assert_int_equal(out.ev.vector, X86_EXC_BP);
}

static void test_fwait(void **state)
{
	struct fx *f = *state;

	RETIRED(f, "\x9b");
	/* TS alone does not stop fwait; TS with MP is #NM. */
	f->c.cr0 = (f->c.cr0 & ~X86_CR0_MP) | X86_CR0_TS;
	RETIRED(f, "\x9b");
	f->c.cr0 |= X86_CR0_MP;
	FAULT(f, "\x9b", X86_EXC_NM, NOERR, 0);
	f->c.cr0 &= ~X86_CR0_TS;
	/* A pending unmasked x87 exception (FSW.ES) is #MF... */
	f->c.fsw = 0x0081;
	FAULT(f, "\x9b", X86_EXC_MF, NOERR, 0);
	/* ... and with CR0.NE clear, FERR#, which we do not model. */
	f->c.cr0 &= ~X86_CR0_NE;
	REFUSED(f, "\x9b", -EOPNOTSUPP);
}

static void test_single_step(void **state)
{
	struct fx *f = *state;
	struct x86_outcome out;

	f->c.rflags |= X86_RFLAGS_TF;
	assert_int_equal(RUN(f, "\x0f\x01\xcb", &out), 0);
	assert_true(out.retired);
	assert_int_equal(out.ev.vector, X86_EXC_DB);
	assert_true(out.ev.dr6_bs);
	/* int3 clears TF as it enters the handler: #BP alone. */
	assert_int_equal(RUN(f, "\xcc", &out), 0);
	assert_int_equal(out.ev.vector, X86_EXC_BP);
	assert_false(out.ev.dr6_bs);
}

/* ---- ldmxcsr / stmxcsr -------------------------------------------- */

static void put32(struct fx *f, uint64_t gpa, uint32_t v)
{
	memcpy(mem(f, gpa, 4), &v, 4);
}

static uint32_t get32(struct fx *f, uint64_t gpa)
{
	uint32_t v;

	memcpy(&v, mem(f, gpa, 4), 4);
	return v;
}

static void test_ldmxcsr(void **state)
{
	struct fx *f = *state;
	struct x86_outcome out;

	map(f, KLA, DATA, P | RW | XD);
	put32(f, DATA + 0x10, 0x9f80);	/* FZ, all masked */
	f->c.gpr[RAX] = KLA + 0x10;
	assert_int_equal(RUN(f, "\x0f\xae\x10", &out), 0);	/* [rax] */
	assert_true(out.retired);
	assert_true(out.mxcsr_set);
	assert_int_equal(out.ev.vector, -1);
	assert_int_equal(f->c.mxcsr, 0x9f80);
	/* A read sets A at every level and D nowhere. */
	for (unsigned l = 1; l <= 4; l++)
		assert_int_equal(*entry(f, KLA, l) & (A | D), A);
}

static void test_ldmxcsr_reserved_bits(void **state)
{
	struct fx *f = *state;

	map(f, KLA, DATA, P | RW | XD);
	f->c.gpr[RAX] = KLA;
	/* Bit 16 is reserved on every CPU: #GP(0), MXCSR unchanged. */
	put32(f, DATA, 0x11f80);
	FAULT(f, "\x0f\xae\x10", X86_EXC_GP, 0, 0);
	put32(f, DATA, 0x80000000);
	FAULT(f, "\x0f\xae\x10", X86_EXC_GP, 0, 0);
	/* DAZ (bit 6) is reserved where MXCSR_MASK says so... */
	put32(f, DATA, 0x1fc0);
	FAULT(f, "\x0f\xae\x10", X86_EXC_GP, 0, 0);
	/* ... and allowed where it does not. */
	f->h.mxcsr_mask = 0xffff;
	RETIRED(f, "\x0f\xae\x10");
	assert_int_equal(f->c.mxcsr, 0x1fc0);
}

static void test_stmxcsr(void **state)
{
	struct fx *f = *state;
	struct x86_outcome out;

	map(f, KLA, DATA, P | RW | XD);
	f->c.mxcsr = 0x1f80;
	f->c.gpr[RSP] = KLA + 0x800;
	/* stmxcsr [rsp+0x10] */
	assert_int_equal(RUN(f, "\x0f\xae\x5c\x24\x10", &out), 0);
	assert_true(out.retired);
	assert_false(out.mxcsr_set);
	assert_int_equal(get32(f, DATA + 0x810), 0x1f80);
	/* A write sets D in the leaf. */
	assert_int_equal(*entry(f, KLA, 1) & (A | D), A | D);
	assert_int_equal(*entry(f, KLA, 2) & (A | D), A);
}

static void test_operand_address_forms(void **state)
{
	struct fx *f = *state;

	map(f, KLA, DATA, P | RW | XD);
	/* gs: stmxcsr [gs:rax+8] adds the GS base. */
	f->c.seg_base[X86_GS] = KLA + 0x100;
	f->c.gpr[RAX] = 0x20;
	RETIRED(f, "\x65\x0f\xae\x58\x08");
	assert_int_equal(get32(f, DATA + 0x128), 0x1f80);
	/* rip-relative: the next instruction's RIP + disp. */
	f->c.rip = KLA + 0x200;
	RETIRED(f, "\x0f\xae\x1d\x10\x00\x00\x00");
	assert_int_equal(get32(f, DATA + 0x200 + 7 + 0x10), 0x1f80);
	/* 0x67: the effective address wraps at 4 GiB, then the base. */
	f->c.seg_base[X86_GS] = KLA;
	f->c.gpr[RAX] = 0xfffffff0ULL | 0x5500000000ULL;
	RETIRED(f, "\x65\x67\x0f\xae\x58\x40");
	assert_int_equal(get32(f, DATA + 0x30), 0x1f80);
}

static void test_not_present(void **state)
{
	struct fx *f = *state;

	map(f, KLA, DATA, RW | XD);	/* P clear */
	f->c.gpr[RAX] = KLA + 0x44;
	FAULT(f, "\x0f\xae\x10", X86_EXC_PF, 0, KLA + 0x44);
	FAULT(f, "\x0f\xae\x18", X86_EXC_PF, X86_PF_W, KLA + 0x44);
	f->c.cpl = 3;
	FAULT(f, "\x0f\xae\x18", X86_EXC_PF, X86_PF_W | X86_PF_U,
	      KLA + 0x44);
	/* Not present higher up: the PDE. */
	f->c.cpl = 0;
	*entry(f, KLA, 2) &= ~P;
	FAULT(f, "\x0f\xae\x10", X86_EXC_PF, 0, KLA + 0x44);
	/* Nothing was touched on the way. */
	assert_int_equal(*entry(f, KLA, 4) & A, 0);
}

static void test_read_only(void **state)
{
	struct fx *f = *state;

	map(f, KLA, DATA, P | XD);
	put32(f, DATA, 0x1f80);
	put32(f, DATA + 4, 0xdeadbeef);
	/* Reading a read-only page is fine. */
	f->c.gpr[RAX] = KLA;
	RETIRED(f, "\x0f\xae\x10");
	/* With CR0.WP the kernel may not write it either... */
	f->c.gpr[RAX] = KLA + 4;
	FAULT(f, "\x0f\xae\x18", X86_EXC_PF, X86_PF_P | X86_PF_W, KLA + 4);
	assert_int_equal(get32(f, DATA + 4), 0xdeadbeef);
	/* ... R/W clear in a higher level counts the same... */
	*entry(f, KLA, 1) |= RW;
	*entry(f, KLA, 3) &= ~RW;
	FAULT(f, "\x0f\xae\x18", X86_EXC_PF, X86_PF_P | X86_PF_W, KLA + 4);
	/* ... without CR0.WP it may... */
	f->c.cr0 &= ~X86_CR0_WP;
	RETIRED(f, "\x0f\xae\x18");
	assert_int_equal(get32(f, DATA + 4), 0x1f80);
	/* ... and user mode never may. */
	*entry(f, KLA, 1) |= US;
	f->c.cpl = 3;
	FAULT(f, "\x0f\xae\x18", X86_EXC_PF,
	      X86_PF_P | X86_PF_W | X86_PF_U, KLA + 4);
}

static void test_supervisor_page_from_user_mode(void **state)
{
	struct fx *f = *state;

	map(f, ULA, DATA, P | RW | XD);	/* US clear in the leaf */
	f->c.gpr[RAX] = ULA + 8;
	f->c.cpl = 3;
	FAULT(f, "\x0f\xae\x10", X86_EXC_PF, X86_PF_P | X86_PF_U, ULA + 8);
	FAULT(f, "\x0f\xae\x18", X86_EXC_PF,
	      X86_PF_P | X86_PF_W | X86_PF_U, ULA + 8);
	/* US clear higher up, set in the leaf: still supervisor. */
	*entry(f, ULA, 1) |= US;
	*entry(f, ULA, 4) &= ~US;
	FAULT(f, "\x0f\xae\x10", X86_EXC_PF, X86_PF_P | X86_PF_U, ULA + 8);
	*entry(f, ULA, 4) |= US;
	put32(f, DATA + 8, 0x1f81);
	RETIRED(f, "\x0f\xae\x10");
	assert_int_equal(f->c.mxcsr, 0x1f81);
}

static void test_smap(void **state)
{
	struct fx *f = *state;

	map(f, ULA, DATA, P | RW | US | XD);
	put32(f, DATA, 0x1f82);
	f->c.gpr[RAX] = ULA;
	/* The kernel reaches a user page freely without CR4.SMAP... */
	RETIRED(f, "\x0f\xae\x10");
	/* ... with it only when EFLAGS.AC is set. */
	f->c.cr4 |= X86_CR4_SMAP;
	FAULT(f, "\x0f\xae\x10", X86_EXC_PF, X86_PF_P, ULA);
	FAULT(f, "\x0f\xae\x18", X86_EXC_PF, X86_PF_P | X86_PF_W, ULA);
	f->c.rflags |= X86_RFLAGS_AC;
	RETIRED(f, "\x0f\xae\x18");
	assert_int_equal(get32(f, DATA), 0x1f82);
}

static void test_page_boundary(void **state)
{
	struct fx *f = *state;
	uint8_t *lo = mem(f, DATA + 4094, 2);
	uint8_t *hi = mem(f, DATA + 0x3000, 2);

	/* Two linear pages on two far apart physical ones. */
	map(f, KLA, DATA, P | RW | XD);
	map(f, KLA + 4096, DATA + 0x3000, P | RW | XD);
	memcpy(lo, "\x81\x1f", 2);
	memcpy(hi, "\x00\x00", 2);
	f->c.gpr[RAX] = KLA + 4094;
	RETIRED(f, "\x0f\xae\x10");
	assert_int_equal(f->c.mxcsr, 0x1f81);
	f->c.mxcsr = 0x1f80;
	RETIRED(f, "\x0f\xae\x18");
	assert_memory_equal(lo, "\x80\x1f", 2);
	assert_memory_equal(hi, "\x00\x00", 2);
	assert_int_equal(*entry(f, KLA + 4096, 1) & D, D);
	/* The second page not present: #PF at its first byte, and the
	 * first page is not written (nor marked dirty). */
	*entry(f, KLA, 1) &= ~D;
	*entry(f, KLA + 4096, 1) &= ~P;
	memcpy(lo, "\x11\x11", 2);
	FAULT(f, "\x0f\xae\x18", X86_EXC_PF, X86_PF_W, KLA + 4096);
	assert_memory_equal(lo, "\x11\x11", 2);
	assert_int_equal(*entry(f, KLA, 1) & D, 0);
	/* The second page read-only. */
	*entry(f, KLA + 4096, 1) = (DATA + 0x3000) | P | XD;
	FAULT(f, "\x0f\xae\x18", X86_EXC_PF, X86_PF_P | X86_PF_W,
	      KLA + 4096);
	assert_memory_equal(lo, "\x11\x11", 2);
}

static void test_beyond_guest_ram(void **state)
{
	struct fx *f = *state;

	/* The data page past the end of RAM, or straddling it. */
	map(f, KLA, MEM_SIZE, P | RW | XD);
	f->c.gpr[RAX] = KLA;
	REFUSED(f, "\x0f\xae\x10", -EFAULT);
	REFUSED(f, "\x0f\xae\x18", -EFAULT);
	map(f, KLA, 0x3ffffffff000ULL, P | RW | XD);	/* < MAXPHYADDR */
	REFUSED(f, "\x0f\xae\x18", -EFAULT);
	/* A split store whose second page is outside: nothing written. */
	map(f, KLA, DATA, P | RW | XD);
	map(f, KLA + 4096, MEM_SIZE, P | RW | XD);
	put32(f, DATA + 4092, 0x22222222);
	f->c.gpr[RAX] = KLA + 4094;
	REFUSED(f, "\x0f\xae\x18", -EFAULT);
	assert_int_equal(get32(f, DATA + 4092), 0x22222222);
	assert_int_equal(*entry(f, KLA, 1) & (A | D), 0);
	/* A page table outside RAM. */
	*entry(f, KLA, 2) = (MEM_SIZE + 0x1000) | P | RW;
	f->c.gpr[RAX] = KLA;
	REFUSED(f, "\x0f\xae\x10", -EFAULT);
	/* CR3 itself outside RAM. */
	f->c.cr3 = 0x3fff000;
	REFUSED(f, "\x0f\xae\x10", -EFAULT);
}

static void test_reserved_bits(void **state)
{
	struct fx *f = *state;
	const uint32_t rsvd = X86_PF_P | X86_PF_RSVD;

	f->c.gpr[RAX] = KLA;
	/* Above MAXPHYADDR (46 here). */
	map(f, KLA, DATA | 1ULL << 46, P | RW);
	FAULT(f, "\x0f\xae\x10", X86_EXC_PF, rsvd, KLA);
	/* XD without EFER.NXE. */
	map(f, KLA, DATA, P | RW | XD);
	f->c.efer &= ~X86_EFER_NXE;
	FAULT(f, "\x0f\xae\x18", X86_EXC_PF, rsvd | X86_PF_W, KLA);
	f->c.efer |= X86_EFER_NXE;
	RETIRED(f, "\x0f\xae\x10");
	/* PS in a PML4E. */
	*entry(f, KLA, 4) |= PS;
	FAULT(f, "\x0f\xae\x10", X86_EXC_PF, rsvd, KLA);
	*entry(f, KLA, 4) &= ~PS;
	/* A 2 MiB page, then one with reserved bit 13 set. */
	*entry(f, KLA, 2) = 0x0 | P | RW | PS;
	put32(f, 0x0, 0x1f83);
	RETIRED(f, "\x0f\xae\x10");
	assert_int_equal(f->c.mxcsr, 0x1f83);
	assert_int_equal(*entry(f, KLA, 2) & A, A);
	*entry(f, KLA, 2) |= 1ULL << 13;
	FAULT(f, "\x0f\xae\x10", X86_EXC_PF, rsvd, KLA);
	/* A 1 GiB page... */
	*entry(f, KLA, 3) = 0x0 | P | RW | PS;
	f->c.gpr[RAX] = KLA + 0x10;
	put32(f, 0x200010, 0x1f84);
	RETIRED(f, "\x0f\xae\x10");
	assert_int_equal(f->c.mxcsr, 0x1f84);
	/* ... where the CPU has none, PS there is reserved. */
	f->h.gbpages = false;
	FAULT(f, "\x0f\xae\x10", X86_EXC_PF, rsvd, KLA + 0x10);
}

static void test_canonical(void **state)
{
	struct fx *f = *state;

	f->c.gpr[RAX] = 0x0000800000000000ULL;
	FAULT(f, "\x0f\xae\x10", X86_EXC_GP, 0, 0);
	/* The last byte counts too. */
	f->c.gpr[RAX] = 0x00007ffffffffffdULL;
	FAULT(f, "\x0f\xae\x10", X86_EXC_GP, 0, 0);
	/* Through rsp or rbp it is the stack: #SS(0); r12 is not. */
	f->c.gpr[RSP] = f->c.gpr[RBP] = f->c.gpr[R12] = 0x8000000000000000ULL;
	FAULT(f, "\x0f\xae\x14\x24", X86_EXC_SS, 0, 0);	/* [rsp] */
	FAULT(f, "\x0f\xae\x55\x00", X86_EXC_SS, 0, 0);	/* [rbp] */
	FAULT(f, "\x41\x0f\xae\x14\x24", X86_EXC_GP, 0, 0);	/* [r12] */
	/* [fs:rsp] */
	FAULT(f, "\x64\x0f\xae\x14\x24", X86_EXC_GP, 0, 0);
	/* With LA57, 0x0000800000000000 is an ordinary address: 5 levels. */
	f->c.cr4 |= X86_CR4_LA57;
	map(f, 0x0000800000000000ULL, DATA, P | RW | XD);
	put32(f, DATA, 0x1f85);
	f->c.gpr[RAX] = 0x0000800000000000ULL;
	RETIRED(f, "\x0f\xae\x10");
	assert_int_equal(f->c.mxcsr, 0x1f85);
	f->c.gpr[RAX] = 0x0100000000000000ULL;
	FAULT(f, "\x0f\xae\x10", X86_EXC_GP, 0, 0);
}

static void test_alignment_check(void **state)
{
	struct fx *f = *state;

	map(f, ULA, DATA, P | RW | US | XD);
	f->c.gpr[RAX] = ULA + 2;
	f->c.cpl = 3;
	f->c.cr0 |= X86_CR0_AM;
	f->c.rflags |= X86_RFLAGS_AC;
	FAULT(f, "\x0f\xae\x18", X86_EXC_AC, 0, 0);
	/* #AC comes before #PF: the address alone decides it. */
	*entry(f, ULA, 1) &= ~P;
	FAULT(f, "\x0f\xae\x18", X86_EXC_AC, 0, 0);
	*entry(f, ULA, 1) |= P;
	/* Aligned: fine. Each of the three conditions off: fine. */
	f->c.gpr[RAX] = ULA + 4;
	RETIRED(f, "\x0f\xae\x18");
	f->c.gpr[RAX] = ULA + 2;
	f->c.rflags &= ~X86_RFLAGS_AC;
	RETIRED(f, "\x0f\xae\x18");
	f->c.rflags |= X86_RFLAGS_AC;
	f->c.cr0 &= ~X86_CR0_AM;
	RETIRED(f, "\x0f\xae\x18");
	f->c.cr0 |= X86_CR0_AM;
	f->c.cpl = 0;
	RETIRED(f, "\x0f\xae\x18");
}

static void test_sse_state(void **state)
{
	struct fx *f = *state;

	map(f, KLA, DATA, P | RW | XD);
	f->c.gpr[RAX] = 0x0000800000000000ULL;	/* #UD, #NM come first */
	f->c.cr4 &= ~X86_CR4_OSFXSR;
	FAULT(f, "\x0f\xae\x10", X86_EXC_UD, NOERR, 0);
	f->c.cr4 |= X86_CR4_OSFXSR;
	f->c.cr0 |= X86_CR0_EM;
	FAULT(f, "\x0f\xae\x18", X86_EXC_UD, NOERR, 0);
	f->c.cr0 &= ~X86_CR0_EM;
	f->c.cr0 |= X86_CR0_TS;
	FAULT(f, "\x0f\xae\x10", X86_EXC_NM, NOERR, 0);
	f->c.cr0 &= ~X86_CR0_TS;
	f->c.gpr[RAX] = KLA;
	RETIRED(f, "\x0f\xae\x10");
}

/* ---- what is refused ---------------------------------------------- */

static void test_truncated_and_too_long(void **state)
{
	struct fx *f = *state;
	const char *full = "\x65\x43\x0f\xae\x5c\x88\x01";	/* 7 bytes */
	char b[32];

	map(f, KLA, DATA, P | RW | XD);
	f->c.seg_base[X86_GS] = KLA;
	for (size_t n = 0; n < 7; n++)
		expect_refused(f, full, n, -EOPNOTSUPP);
	expect_retired(f, full, 7);
	/* 15 prefixes and no end: the CPU's #GP(0) for > 15 bytes. */
	memset(b, 0x66, sizeof(b));
	expect_fault(f, b, 15, X86_EXC_GP, 0, 0);
	expect_fault(f, b, sizeof(b), X86_EXC_GP, 0, 0);
	/* 12 prefixes and a 4-byte ldmxcsr: 16 bytes. */
	memset(b, 0x2e, sizeof(b));
	memcpy(b + 12, "\x0f\xae\x50\x08", 4);
	expect_fault(f, b, 16, X86_EXC_GP, 0, 0);
	/* ... with 11 it is 15 and fine. */
	f->c.gpr[RAX] = KLA;
	expect_retired(f, b + 1, 15);
}

static void test_refused(void **state)
{
	struct fx *f = *state;

	REFUSED(f, "\x90", -EOPNOTSUPP);
	REFUSED(f, "\x0f\xae\x00", -EOPNOTSUPP);	/* fxsave */
	REFUSED(f, "\x0f\xae\xd0", -EOPNOTSUPP);	/* mod 3 */
	REFUSED(f, "\x66\x0f\xae\x10", -EOPNOTSUPP);	/* NP */
	REFUSED(f, "", -EOPNOTSUPP);
	/* Outside 64-bit mode the bytes mean other things. */
	f->c.code64 = false;
	REFUSED(f, "\xcc", -EOPNOTSUPP);
	REFUSED(f, "\x0f\x01\xca", -EOPNOTSUPP);
	/* Protection keys: rules we do not model. */
	f->c.code64 = true;
	f->c.cr4 |= X86_CR4_PKE;
	f->c.gpr[RAX] = KLA;
	map(f, KLA, DATA, P | RW | XD);
	REFUSED(f, "\x0f\xae\x10", -EOPNOTSUPP);
}

static void test_translate_fetch(void **state)
{
	struct fx *f = *state;
	struct x86_event ev;
	struct x86_walk w;

	map(f, KLA, DATA, P | RW | XD);
	assert_int_equal(x86_translate(&f->m, &f->h, &f->c, KLA + 5, 0, &w,
				       &ev), 0);
	assert_int_equal(ev.vector, -1);
	assert_int_equal(w.gpa, DATA + 5);
	assert_int_equal(w.n, 4);
	/* NX: a fetch faults, with I/D set. */
	assert_int_equal(x86_translate(&f->m, &f->h, &f->c, KLA,
				       X86_ACC_FETCH, &w, &ev), 0);
	assert_int_equal(ev.vector, X86_EXC_PF);
	assert_int_equal(ev.error, X86_PF_P | X86_PF_I);
	/* SMEP: the kernel may not run a user page. */
	map(f, ULA, DATA, P | US);
	f->c.cr4 |= X86_CR4_SMEP;
	assert_int_equal(x86_translate(&f->m, &f->h, &f->c, ULA,
				       X86_ACC_FETCH, &w, &ev), 0);
	assert_int_equal(ev.error, X86_PF_P | X86_PF_I);
	assert_int_equal(x86_translate(&f->m, &f->h, &f->c, ULA,
				       X86_ACC_FETCH | X86_ACC_USER, &w, &ev),
			 0);
	assert_int_equal(ev.vector, -1);
	/* Longer than a page is not one access. */
	assert_int_equal(x86_access(&f->m, &f->h, &f->c, KLA, f->m.host,
				    4097, 0, &ev), -EINVAL);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_clac_stac),
		T(test_clac_stac_user_mode),
		T(test_clac_without_smap_or_with_lock),
		T(test_int3),
		T(test_int3_user_mode_gate_dpl),
		T(test_fwait),
		T(test_single_step),
		T(test_ldmxcsr),
		T(test_ldmxcsr_reserved_bits),
		T(test_stmxcsr),
		T(test_operand_address_forms),
		T(test_not_present),
		T(test_read_only),
		T(test_supervisor_page_from_user_mode),
		T(test_smap),
		T(test_page_boundary),
		T(test_beyond_guest_ram),
		T(test_reserved_bits),
		T(test_canonical),
		T(test_alignment_check),
		T(test_sse_state),
		T(test_truncated_and_too_long),
		T(test_refused),
		T(test_translate_fetch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
