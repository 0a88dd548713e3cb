/* The instructions the VMM completes for the guest on PVM (vmm/x86/pvm.h),
 * decided as the hardware would decide them: decode, privilege, paging
 * through the guest's own page tables, alignment and operand checks, and
 * either the instruction's effect or the exact exception the CPU raises.
 *
 * Everything here is pure: it reads and writes the vCPU state in struct
 * x86_cpu and guest memory through gmem_ptr() only, never an ioctl, so it
 * is unit-tested and fuzzed on plain memory. vmm/x86/pvm.c moves the state to
 * and from KVM. Every input (instruction bytes, registers, page tables)
 * is the guest's and hostile: the worst it gets is a refusal. */
#ifndef VMM_X86_EMUL_H
#define VMM_X86_EMUL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/gmem.h"

#define X86_MAX_INSN_LEN 15

/* Exception vectors. */
#define X86_EXC_DB 1
#define X86_EXC_BP 3
#define X86_EXC_UD 6
#define X86_EXC_NM 7
#define X86_EXC_SS 12
#define X86_EXC_GP 13
#define X86_EXC_PF 14
#define X86_EXC_MF 16
#define X86_EXC_AC 17

/* #PF error code bits (SDM vol. 3, 4.7). */
#define X86_PF_P (1U << 0)	/* protection violation, not not-present */
#define X86_PF_W (1U << 1)
#define X86_PF_U (1U << 2)
#define X86_PF_RSVD (1U << 3)
#define X86_PF_I (1U << 4)

#define X86_CR0_MP (1ULL << 1)
#define X86_CR0_EM (1ULL << 2)
#define X86_CR0_TS (1ULL << 3)
#define X86_CR0_NE (1ULL << 5)
#define X86_CR0_WP (1ULL << 16)
#define X86_CR0_AM (1ULL << 18)
#define X86_CR4_OSFXSR (1ULL << 9)
#define X86_CR4_LA57 (1ULL << 12)
#define X86_CR4_SMEP (1ULL << 20)
#define X86_CR4_SMAP (1ULL << 21)
#define X86_CR4_PKE (1ULL << 22)
#define X86_CR4_CET (1ULL << 23)
#define X86_CR4_PKS (1ULL << 24)
#define X86_EFER_NXE (1ULL << 11)
#define X86_RFLAGS_TF (1ULL << 8)
#define X86_RFLAGS_AC (1ULL << 18)

enum x86_seg { X86_ES, X86_CS, X86_SS, X86_DS, X86_FS, X86_GS, X86_NSEG };

enum x86_insn_kind {
	X86_INSN_UNKNOWN,	/* not one we complete (or not sure what) */
	X86_INSN_TRUNCATED,	/* the bytes end inside the instruction */
	X86_INSN_TOO_LONG,	/* longer than 15 bytes: #GP(0) */
	X86_INSN_INT3,
	X86_INSN_FWAIT,
	X86_INSN_CLAC,
	X86_INSN_STAC,
	X86_INSN_LDMXCSR,
	X86_INSN_STMXCSR,
};

struct x86_insn {
	enum x86_insn_kind kind;
	unsigned len;		/* bytes, prefixes included */
	bool lock;		/* a LOCK prefix: #UD on all of ours */
	bool addr32;		/* 0x67: 32-bit effective address */
	/* memory operand of ldmxcsr/stmxcsr: seg + base + index*scale + disp
	 * (+ next RIP when rip_rel). reg numbers 0-15, -1 for none. */
	int base, index;
	unsigned scale;
	int64_t disp;
	bool rip_rel;
	int seg;		/* override (enum x86_seg), -1 for none */
};

/* What the hardware looks at: a vCPU's state (64-bit mode only). */
struct x86_cpu {
	uint64_t gpr[16];	/* rax rcx rdx rbx rsp rbp rsi rdi r8-r15 */
	uint64_t rip, rflags;
	uint64_t cr0, cr3, cr4, efer;
	uint64_t seg_base[X86_NSEG];
	uint64_t idt_base;
	uint32_t idt_limit;
	unsigned cpl;
	bool code64;		/* EFER.LMA and CS.L: 64-bit mode */
	uint32_t mxcsr;
	uint16_t fsw;		/* x87 status word */
};

/* What the CPU under the guest offers (on PVM the guest sees the host's
 * CPUID and FPU; see pvm.c). */
struct x86_host {
	uint32_t mxcsr_mask;	/* MXCSR bits ldmxcsr may set */
	unsigned maxphyaddr;	/* physical address bits */
	bool smap;		/* clac/stac exist */
	bool gbpages;		/* 1 GiB pages exist */
};

/* An exception to inject. */
struct x86_event {
	int vector;		/* -1: none */
	bool has_error;
	uint32_t error;
	bool has_cr2;		/* #PF: CR2 is set to cr2 first */
	uint64_t cr2;
	bool dr6_bs;		/* #DB of a single step: DR6.BS is set */
};

/* What an instruction did. */
struct x86_outcome {
	bool retired;		/* it ran: rip (rflags, mxcsr) are new */
	bool mxcsr_set;		/* cpu->mxcsr was loaded */
	struct x86_event ev;	/* raised (with retired: a trap after it) */
};

/* Decode up to len bytes (64-bit mode). Pure; never reads past len. */
void x86_decode(const uint8_t *bytes, size_t len, struct x86_insn *insn);

/* Access flags for x86_translate() and x86_access(). */
#define X86_ACC_WRITE (1U << 0)
#define X86_ACC_FETCH (1U << 1)
#define X86_ACC_USER (1U << 2)	/* a user-mode access (CPL 3, explicit) */
#define X86_ACC_AC (1U << 3)	/* explicit supervisor, EFLAGS.AC = 1:
				 * SMAP lets it reach user pages */

/* One linear-to-physical walk: where the entries it used lie. */
struct x86_walk {
	uint64_t gpa;		/* of the byte at the linear address */
	uint64_t entry[5];	/* guest-physical, top level first */
	unsigned n;		/* entry[n - 1] is the leaf */
};

/* Walk the guest's 4- or 5-level page tables for linear address la as the
 * CPU does for an access of kind acc, touching nothing. 0: translated
 * (*w filled) or faulted (fault->vector X86_PF with its error code and
 * CR2; else -1). -EFAULT: a table entry lies outside guest RAM.
 * -EOPNOTSUPP: paging features we do not model (protection keys, CET). */
int x86_translate(const struct gmem *m, const struct x86_host *h,
		  const struct x86_cpu *c, uint64_t la, unsigned acc,
		  struct x86_walk *w, struct x86_event *fault);

/* Read (or with X86_ACC_WRITE write) len <= 4096 bytes at linear address
 * la, as one access: every page is checked before any byte moves; then
 * the accessed (and dirty) bits are set as the CPU sets them. Returns as
 * x86_translate(); -EFAULT also when the data lies outside guest RAM. */
int x86_access(const struct gmem *m, const struct x86_host *h,
	       const struct x86_cpu *c, uint64_t la, void *buf, size_t len,
	       unsigned acc, struct x86_event *fault);

/* Run the decoded instruction on c and guest memory as the CPU would.
 * 0: *out says whether it retired, what it raised, or both (int3; a
 * single step). -EOPNOTSUPP: not an instruction or a state we complete
 * (not 64-bit mode, unknown or truncated bytes, legacy FPU error
 * reporting, unmodelled paging). -EFAULT: its page tables or operand lie
 * outside guest RAM. On an error, c and guest memory are unchanged. */
int x86_emulate(const struct gmem *m, const struct x86_host *h,
		struct x86_cpu *c, const struct x86_insn *in,
		struct x86_outcome *out);

#endif
