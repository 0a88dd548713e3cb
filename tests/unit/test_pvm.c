/* The completions of vmm/x86/emul.c on plain memory: page tables built in
 * a buffer that stands for guest RAM, a vCPU state in a struct, and for
 * each hostile case the exact exception (vector, error code, CR2) or the
 * exact effect the SDM gives. */
#include "vmm/x86/emul.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tests/unit/pvm_guest.h"

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
		T(test_canonical),
		T(test_alignment_check),
		T(test_sse_state),
		T(test_truncated_and_too_long),
		T(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
