/* A vCPU and guest RAM on plain memory for the tests of vmm/x86/emul.c:
 * page tables built in a buffer, instruction bytes decoded from a buffer
 * of exactly their length, and checks of the exact outcome. Include after
 * <cmocka.h>. */
#ifndef TESTS_UNIT_PVM_GUEST_H
#define TESTS_UNIT_PVM_GUEST_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/x86/emul.h"

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

static inline int setup(void **state)
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

static inline int teardown(void **state)
{
	struct fx *f = *state;

	free(f->m.host);
	free(f);
	return 0;
}

/* The test's own view of guest RAM (the code under test uses gmem). */
static inline void *mem(struct fx *f, uint64_t gpa, size_t len)
{
	assert_true(gpa <= f->m.size && len <= f->m.size - gpa);
	return f->m.host + gpa;
}

static inline uint64_t *at(struct fx *f, uint64_t gpa)
{
	return mem(f, gpa, 8);
}

/* The entry of level (1 = PTE) that maps la, making the tables above it
 * as needed with P|RW|US, so that the leaf's bits decide. */
static inline uint64_t *entry(struct fx *f, uint64_t la, unsigned level)
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

static inline void map(struct fx *f, uint64_t la, uint64_t gpa,
		       uint64_t flags)
{
	*entry(f, la, 1) = gpa | flags;
}

static inline int run(struct fx *f, const char *bytes, size_t len,
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
static inline void expect_fault(struct fx *f, const char *bytes,
				size_t len, int vector, int error,
				uint64_t cr2)
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

static inline void expect_retired(struct fx *f, const char *bytes,
				  size_t len)
{
	uint64_t rip = f->c.rip;
	struct x86_outcome out;

	assert_int_equal(run(f, bytes, len, &out), 0);
	assert_true(out.retired);
	assert_int_equal(out.ev.vector, -1);
	assert_int_equal(f->c.rip, rip + len);
}

#define RETIRED(f, s) expect_retired(f, s, sizeof(s) - 1)

static inline void expect_refused(struct fx *f, const char *bytes,
				  size_t len, int err)
{
	struct x86_cpu before = f->c;
	struct x86_outcome out;

	assert_int_equal(run(f, bytes, len, &out), err);
	assert_memory_equal(&f->c, &before, sizeof(before));
}

#define REFUSED(f, s, e) expect_refused(f, s, sizeof(s) - 1, e)

static inline void put32(struct fx *f, uint64_t gpa, uint32_t v)
{
	memcpy(mem(f, gpa, 4), &v, 4);
}

static inline uint32_t get32(struct fx *f, uint64_t gpa)
{
	uint32_t v;

	memcpy(&v, mem(f, gpa, 4), 4);
	return v;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

#endif
