/* The decoder for the instructions the VMM completes on PVM. Every input
 * is copied into a heap buffer of exactly its length, so that a read past
 * len is a sanitizer error. */
#include "vmm/x86/pvm.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>

#define NONE (-1)
#define RAX 0
#define RCX 1
#define RDX 2
#define RBX 3
#define RSP 4
#define RBP 5
#define RSI 6
#define RDI 7
#define R8 8
#define R9 9
#define R12 12
#define R13 13
#define R15 15

static struct x86_insn decode(const void *bytes, size_t len)
{
	uint8_t *b = malloc(len ? len : 1);
	struct x86_insn in;

	assert_non_null(b);
	memcpy(b, bytes, len);
	memset(&in, 0x5a, sizeof(in));	/* all of it must be written */
	x86_decode(b, len, &in);
	free(b);
	return in;
}

#define DECODE(s) decode(s, sizeof(s) - 1)

/* Not an instruction: kind says why, and nothing else is set. */
static void expect_kind(const void *bytes, size_t len,
			enum x86_insn_kind kind)
{
	struct x86_insn in = decode(bytes, len);

	assert_int_equal(in.kind, kind);
	assert_int_equal(in.len, 0);
	assert_int_equal(in.base, NONE);
	assert_int_equal(in.index, NONE);
	assert_int_equal(in.seg, NONE);
	assert_false(in.lock);
}

static void expect_unknown(const void *bytes, size_t len)
{
	expect_kind(bytes, len, X86_INSN_UNKNOWN);
}

#define UNKNOWN(s) expect_unknown(s, sizeof(s) - 1)

static void expect_mem(struct x86_insn in, enum x86_insn_kind kind,
		       unsigned len, int base, int index, unsigned scale,
		       int64_t disp, bool rip_rel, int seg)
{
	assert_int_equal(in.kind, kind);
	assert_int_equal(in.len, len);
	assert_int_equal(in.base, base);
	assert_int_equal(in.index, index);
	if (index != NONE)
		assert_int_equal(in.scale, scale);
	assert_int_equal(in.disp, disp);
	assert_int_equal(in.rip_rel, rip_rel);
	assert_int_equal(in.seg, seg);
}

static void test_simple(void **state)
{
	struct x86_insn in;

	(void)state;
	in = DECODE("\xcc");
	assert_int_equal(in.kind, X86_INSN_INT3);
	assert_int_equal(in.len, 1);
	in = DECODE("\x9b");
	assert_int_equal(in.kind, X86_INSN_FWAIT);
	assert_int_equal(in.len, 1);
	in = DECODE("\x0f\x01\xca");
	assert_int_equal(in.kind, X86_INSN_CLAC);
	assert_int_equal(in.len, 3);
	in = DECODE("\x0f\x01\xcb");
	assert_int_equal(in.kind, X86_INSN_STAC);
	assert_int_equal(in.len, 3);
	assert_int_equal(in.seg, NONE);
	/* Trailing bytes are the next instruction's. */
	in = DECODE("\xcc\x90\x90");
	assert_int_equal(in.kind, X86_INSN_INT3);
	assert_int_equal(in.len, 1);
	in = DECODE("\x0f\x01\xca\x0f\x01\xcb");
	assert_int_equal(in.kind, X86_INSN_CLAC);
	assert_int_equal(in.len, 3);
	/* Neighbours that are something else. */
	UNKNOWN("\x0f\x01\xc9");	/* mwait */
	UNKNOWN("\x0f\x01\xcc");
	UNKNOWN("\x0f\x01\xf8");	/* swapgs */
	UNKNOWN("\x90");
	UNKNOWN("\xcd\x03");		/* int 3, the long form */
	UNKNOWN("\x0f\x0b");		/* ud2 */
}

static void test_mxcsr_base(void **state)
{
	(void)state;
	/* ldmxcsr [rax] */
	expect_mem(DECODE("\x0f\xae\x10"), X86_INSN_LDMXCSR, 3, RAX, NONE, 0,
		   0, false, NONE);
	/* stmxcsr [rbx] */
	expect_mem(DECODE("\x0f\xae\x1b"), X86_INSN_STMXCSR, 3, RBX, NONE, 0,
		   0, false, NONE);
	/* ldmxcsr [rax+8] */
	expect_mem(DECODE("\x0f\xae\x50\x08"), X86_INSN_LDMXCSR, 4, RAX, NONE,
		   0, 8, false, NONE);
	/* stmxcsr [rdi-4]: disp8 is signed */
	expect_mem(DECODE("\x0f\xae\x5f\xfc"), X86_INSN_STMXCSR, 4, RDI, NONE,
		   0, -4, false, NONE);
	/* ldmxcsr [rax+0x12345678] */
	expect_mem(DECODE("\x0f\xae\x90\x78\x56\x34\x12"), X86_INSN_LDMXCSR,
		   7, RAX, NONE, 0, 0x12345678, false, NONE);
	/* stmxcsr [rsi-0x80000000]: disp32 is signed */
	expect_mem(DECODE("\x0f\xae\x9e\x00\x00\x00\x80"), X86_INSN_STMXCSR,
		   7, RSI, NONE, 0, -0x80000000LL, false, NONE);
	/* ldmxcsr [rbp+0]: rbp as base needs mod=1 */
	expect_mem(DECODE("\x0f\xae\x55\x00"), X86_INSN_LDMXCSR, 4, RBP, NONE,
		   0, 0, false, NONE);
}

static void test_mxcsr_sib(void **state)
{
	(void)state;
	/* ldmxcsr [rsp]: SIB, no index */
	expect_mem(DECODE("\x0f\xae\x14\x24"), X86_INSN_LDMXCSR, 4, RSP, NONE,
		   0, 0, false, NONE);
	/* stmxcsr [rsp+0x10] */
	expect_mem(DECODE("\x0f\xae\x5c\x24\x10"), X86_INSN_STMXCSR, 5, RSP,
		   NONE, 0, 0x10, false, NONE);
	/* ldmxcsr [rax+rcx*4] */
	expect_mem(DECODE("\x0f\xae\x14\x88"), X86_INSN_LDMXCSR, 4, RAX, RCX,
		   4, 0, false, NONE);
	/* ldmxcsr [rbx+rdx*8+0x20] */
	expect_mem(DECODE("\x0f\xae\x54\xd3\x20"), X86_INSN_LDMXCSR, 5, RBX,
		   RDX, 8, 0x20, false, NONE);
	/* stmxcsr [rdi+rsi*2+0x1000] */
	expect_mem(DECODE("\x0f\xae\x9c\x77\x00\x10\x00\x00"),
		   X86_INSN_STMXCSR, 8, RDI, RSI, 2, 0x1000, false, NONE);
	/* ldmxcsr [rcx*1+rax]: scale 1 */
	expect_mem(DECODE("\x0f\xae\x14\x08"), X86_INSN_LDMXCSR, 4, RAX, RCX,
		   1, 0, false, NONE);
	/* ldmxcsr [0x1000]: SIB base=rbp with mod=0 is disp32, no base */
	expect_mem(DECODE("\x0f\xae\x14\x25\x00\x10\x00\x00"),
		   X86_INSN_LDMXCSR, 8, NONE, NONE, 0, 0x1000, false, NONE);
	/* stmxcsr [rax*8+0x40]: no base, an index */
	expect_mem(DECODE("\x0f\xae\x1c\xc5\x40\x00\x00\x00"),
		   X86_INSN_STMXCSR, 8, NONE, RAX, 8, 0x40, false, NONE);
	/* ldmxcsr [rbp+rax*1+8]: base=rbp with mod=1 is rbp */
	expect_mem(DECODE("\x0f\xae\x54\x05\x08"), X86_INSN_LDMXCSR, 5, RBP,
		   RAX, 1, 8, false, NONE);
}

static void test_mxcsr_rip_rel(void **state)
{
	(void)state;
	/* ldmxcsr [rip+0x200] */
	expect_mem(DECODE("\x0f\xae\x15\x00\x02\x00\x00"), X86_INSN_LDMXCSR,
		   7, NONE, NONE, 0, 0x200, true, NONE);
	/* stmxcsr [rip-16] */
	expect_mem(DECODE("\x0f\xae\x1d\xf0\xff\xff\xff"), X86_INSN_STMXCSR,
		   7, NONE, NONE, 0, -16, true, NONE);
	/* REX.B does not turn rip-relative into r13. */
	expect_mem(DECODE("\x41\x0f\xae\x15\x08\x00\x00\x00"),
		   X86_INSN_LDMXCSR, 8, NONE, NONE, 0, 8, true, NONE);
}

static void test_mxcsr_rex(void **state)
{
	(void)state;
	/* ldmxcsr [r8] */
	expect_mem(DECODE("\x41\x0f\xae\x10"), X86_INSN_LDMXCSR, 4, R8, NONE,
		   0, 0, false, NONE);
	/* stmxcsr [r15+0x7f] */
	expect_mem(DECODE("\x41\x0f\xae\x5f\x7f"), X86_INSN_STMXCSR, 5, R15,
		   NONE, 0, 0x7f, false, NONE);
	/* ldmxcsr [r13+0]: r13 like rbp needs a displacement */
	expect_mem(DECODE("\x41\x0f\xae\x55\x00"), X86_INSN_LDMXCSR, 5, R13,
		   NONE, 0, 0, false, NONE);
	/* ldmxcsr [r12]: r12 like rsp needs a SIB */
	expect_mem(DECODE("\x41\x0f\xae\x14\x24"), X86_INSN_LDMXCSR, 5, R12,
		   NONE, 0, 0, false, NONE);
	/* ldmxcsr [rax+r9*2]: REX.X */
	expect_mem(DECODE("\x42\x0f\xae\x14\x48"), X86_INSN_LDMXCSR, 5, RAX,
		   R9, 2, 0, false, NONE);
	/* ldmxcsr [rax+r12*1]: index 4 with REX.X is r12, not "none" */
	expect_mem(DECODE("\x42\x0f\xae\x14\x20"), X86_INSN_LDMXCSR, 5, RAX,
		   R12, 1, 0, false, NONE);
	/* stmxcsr [r8+r9*4+1]: REX.XB */
	expect_mem(DECODE("\x43\x0f\xae\x5c\x88\x01"), X86_INSN_STMXCSR, 6,
		   R8, R9, 4, 1, false, NONE);
	/* ldmxcsr [disp32] with REX.B: SIB base 5, mod 0 is still no base */
	expect_mem(DECODE("\x41\x0f\xae\x14\x25\x10\x00\x00\x00"),
		   X86_INSN_LDMXCSR, 9, NONE, NONE, 0, 0x10, false, NONE);
	/* REX.W changes nothing here. */
	expect_mem(DECODE("\x48\x0f\xae\x10"), X86_INSN_LDMXCSR, 4, RAX, NONE,
		   0, 0, false, NONE);
}

static void test_prefixes(void **state)
{
	struct x86_insn in;

	(void)state;
	/* gs: stmxcsr [gs:rax] */
	expect_mem(DECODE("\x65\x0f\xae\x18"), X86_INSN_STMXCSR, 4, RAX, NONE,
		   0, 0, false, X86_GS);
	/* fs */
	expect_mem(DECODE("\x64\x0f\xae\x10"), X86_INSN_LDMXCSR, 4, RAX, NONE,
		   0, 0, false, X86_FS);
	/* gs with REX: ldmxcsr [gs:r8+8] */
	expect_mem(DECODE("\x65\x41\x0f\xae\x50\x08"), X86_INSN_LDMXCSR, 6, R8,
		   NONE, 0, 8, false, X86_GS);
	/* Every override is kept: ss decides between #SS and #GP. */
	expect_mem(DECODE("\x36\x0f\xae\x10"), X86_INSN_LDMXCSR, 4, RAX, NONE,
		   0, 0, false, X86_SS);
	/* The last segment prefix wins. */
	expect_mem(DECODE("\x2e\x3e\x26\x36\x0f\xae\x10"), X86_INSN_LDMXCSR, 7,
		   RAX, NONE, 0, 0, false, X86_SS);
	in = DECODE("\x64\x65\x0f\xae\x10");
	assert_int_equal(in.seg, X86_GS);
	/* int3 and fwait take any prefix; it only counts in the length. */
	in = DECODE("\x66\xcc");
	assert_int_equal(in.kind, X86_INSN_INT3);
	assert_int_equal(in.len, 2);
	in = DECODE("\xf3\x2e\x9b");
	assert_int_equal(in.kind, X86_INSN_FWAIT);
	assert_int_equal(in.len, 3);
	/* ldmxcsr, stmxcsr, clac and stac are NP: with 66, f2 or f3 they
	 * are #UD or another instruction (f3 0f 01 ca is FRED's eretu). */
	UNKNOWN("\x66\x0f\xae\x10");
	UNKNOWN("\xf3\x66\x0f\xae\x50\x08");
	UNKNOWN("\xf2\x0f\xae\x18");
	UNKNOWN("\xf3\x0f\x01\xcb");
	UNKNOWN("\xf3\x0f\x01\xca");
	UNKNOWN("\xf2\x0f\x01\xca");
	UNKNOWN("\x66\x0f\x01\xca");
	/* LOCK is decoded, for the CPU's #UD. */
	in = DECODE("\xf0\x0f\x01\xca");
	assert_int_equal(in.kind, X86_INSN_CLAC);
	assert_true(in.lock);
	assert_int_equal(in.len, 4);
	in = DECODE("\x0f\x01\xca");
	assert_false(in.lock);
	/* 0x67: a 32-bit address. */
	in = DECODE("\x67\x0f\xae\x10");
	assert_int_equal(in.kind, X86_INSN_LDMXCSR);
	assert_true(in.addr32);
	assert_int_equal(in.len, 4);
	assert_false(DECODE("\x0f\xae\x10").addr32);
}

static void test_rex_position(void **state)
{
	(void)state;
	/* A REX before another prefix is ignored: [rax], not [r8]. */
	expect_mem(DECODE("\x41\x65\x0f\xae\x10"), X86_INSN_LDMXCSR, 5,
		   RAX, NONE, 0, 0, false, X86_GS);
	/* Of two REX prefixes the last counts. */
	expect_mem(DECODE("\x41\x40\x0f\xae\x10"), X86_INSN_LDMXCSR, 5,
		   RAX, NONE, 0, 0, false, NONE);
	expect_mem(DECODE("\x40\x41\x0f\xae\x10"), X86_INSN_LDMXCSR, 5,
		   R8, NONE, 0, 0, false, NONE);
}

static void test_other_forms_unknown(void **state)
{
	(void)state;
	/* mod=3: register operand; not ldmxcsr */
	UNKNOWN("\x0f\xae\xd0");
	UNKNOWN("\x0f\xae\xd8");
	UNKNOWN("\x0f\xae\xe8");	/* lfence */
	UNKNOWN("\x0f\xae\xf0");	/* mfence */
	UNKNOWN("\x0f\xae\xf8");	/* sfence */
	/* Other /r of the 0f ae group. */
	UNKNOWN("\x0f\xae\x00");	/* fxsave */
	UNKNOWN("\x0f\xae\x08");	/* fxrstor */
	UNKNOWN("\x0f\xae\x20");	/* xsave */
	UNKNOWN("\x0f\xae\x28");	/* xrstor */
	UNKNOWN("\x0f\xae\x30");	/* xsaveopt */
	UNKNOWN("\x0f\xae\x38");	/* clflush */
	UNKNOWN("\x0f\xaf\x10");
	UNKNOWN("\xc5\xf8\xae\x10");	/* vldmxcsr (VEX) */
}

static void test_truncated(void **state)
{
	const char *full[] = {
		"\x0f\xae\x10",
		"\x0f\xae\x50\x08",
		"\x0f\xae\x90\x78\x56\x34\x12",
		"\x0f\xae\x14\x88",
		"\x0f\xae\x54\xd3\x20",
		"\x0f\xae\x14\x25\x00\x10\x00\x00",
		"\x0f\xae\x9c\x77\x00\x10\x00\x00",
		"\x0f\xae\x15\x00\x02\x00\x00",
		"\x65\x43\x0f\xae\x5c\x88\x01",
		"\x0f\x01\xca",
		"\x65\x2e\x0f\x01\xcb",
		"\x66\xcc",
	};
	const size_t len[] = { 3, 4, 7, 4, 5, 8, 8, 7, 7, 3, 5, 2 };

	(void)state;
	for (unsigned i = 0; i < sizeof(full) / sizeof(full[0]); i++) {
		/* The whole is known... */
		assert_int_not_equal(decode(full[i], len[i]).kind,
				     X86_INSN_UNKNOWN);
		/* ... every proper prefix of it is cut short. */
		for (size_t n = 0; n < len[i]; n++)
			expect_kind(full[i], n, X86_INSN_TRUNCATED);
	}
	expect_kind("\x66\x66\x66", 3, X86_INSN_TRUNCATED);
	expect_kind("\x41", 1, X86_INSN_TRUNCATED);
	expect_kind("\x65", 1, X86_INSN_TRUNCATED);
	/* Cut short but already not ours (lar; fxsave): unknown. */
	UNKNOWN("\x0f\x02");
	UNKNOWN("\x0f\xae\x00");
	UNKNOWN("\x66\x0f\x01");
}

/* Past 15 bytes the CPU raises #GP(0), whatever the bytes would be. */
static void test_too_long(void **state)
{
	uint8_t b[32];
	struct x86_insn in;

	(void)state;
	/* 14 prefixes and int3: 15 bytes, the architectural maximum. */
	memset(b, 0x66, sizeof(b));
	b[14] = 0xcc;
	in = decode(b, 15);
	assert_int_equal(in.kind, X86_INSN_INT3);
	assert_int_equal(in.len, 15);
	in = decode(b, sizeof(b));
	assert_int_equal(in.kind, X86_INSN_INT3);
	assert_int_equal(in.len, 15);
	/* 15 prefixes, int3 as the 16th byte: too long. */
	b[14] = 0x66;
	b[15] = 0xcc;
	expect_kind(b, sizeof(b), X86_INSN_TOO_LONG);
	expect_kind(b, 15, X86_INSN_TOO_LONG);
	/* 12 prefixes and a 3-byte ldmxcsr fit... */
	memset(b, 0x2e, sizeof(b));
	memcpy(b + 12, "\x0f\xae\x10", 3);
	in = decode(b, sizeof(b));
	assert_int_equal(in.kind, X86_INSN_LDMXCSR);
	assert_int_equal(in.len, 15);
	/* ... 12 and a 4-byte one do not, even given only 14 bytes. */
	memcpy(b + 12, "\x0f\xae\x50\x08", 4);
	expect_kind(b, sizeof(b), X86_INSN_TOO_LONG);
	expect_kind(b, 14, X86_INSN_TRUNCATED);
	expect_kind(b, 15, X86_INSN_TOO_LONG);
	/* All prefixes, no opcode. */
	memset(b, 0x65, sizeof(b));
	expect_kind(b, sizeof(b), X86_INSN_TOO_LONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple),
		cmocka_unit_test(test_mxcsr_base),
		cmocka_unit_test(test_mxcsr_sib),
		cmocka_unit_test(test_mxcsr_rip_rel),
		cmocka_unit_test(test_mxcsr_rex),
		cmocka_unit_test(test_prefixes),
		cmocka_unit_test(test_rex_position),
		cmocka_unit_test(test_other_forms_unknown),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_too_long),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
