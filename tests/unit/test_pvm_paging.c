/* The paging side of vmm/x86/mmu.c through the completions: the guest's
 * own page tables in a buffer, each way an access can be refused, and the
 * exact #PF (error code, CR2) or the exact bytes moved. */
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_not_present),
		T(test_read_only),
		T(test_supervisor_page_from_user_mode),
		T(test_smap),
		T(test_page_boundary),
		T(test_beyond_guest_ram),
		T(test_reserved_bits),
		T(test_translate_fetch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
