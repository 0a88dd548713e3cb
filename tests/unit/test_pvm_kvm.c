/* pvm_complete_emulation() on the real KVM: a tiny 64-bit guest of a few
 * pages runs the instructions PVM's emulator gives up on, at CPL 0, and
 * the exception handlers it installs record what the CPU (here: our
 * completion and KVM's delivery of what it injects) handed them: vector,
 * error code, CR2 and the saved RIP. Only PVM sends these instructions to
 * the VMM; elsewhere the test says SKIP. */
#include "vmm/x86/pvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#define MEM_SIZE (4U << 20)
#define GDT 0x500
#define PML4 0x1000
#define PDPT 0x2000
#define PD 0x3000
#define PT 0x4000
#define IDT 0x6000
#define RESULT 0x8000		/* vector, error code, CR2, RIP (u64s) */
#define FLAGS 0x8020		/* case_ac's two RFLAGS */
#define CODE 0x10000
#define DATA 0x20000
#define ABSENT 0x21000		/* not present */
#define RDONLY 0x22000		/* read-only */
#define STACK 0x30000
#define CS_SEL 0x10
#define NO_VECTOR 0xff

/* The guest, assembled with the test: position independent apart from
 * the fixed addresses above. */
__asm__(".pushsection .rodata\n"
	".code64\n"
	".globl guest_start, guest_end, case_pf, case_ro, case_gp,"
	" case_ok, case_ac, case_bp, case_split\n"
	".globl h_bp, h_ud, h_nm, h_ss, h_gp, h_pf, h_ac\n"
	"guest_start:\n"
	"case_pf: mov $0x21000, %eax; ldmxcsr (%rax); hlt\n"
	"case_ro: mov $0x22000, %eax; stmxcsr (%rax); hlt\n"
	"case_gp: mov $0x20000, %eax; movl $0x11f80, (%rax);"
	" ldmxcsr (%rax); hlt\n"
	"case_ok: mov $0x20000, %eax; movl $0x9f80, (%rax);"
	" ldmxcsr (%rax); stmxcsr 8(%rax); hlt\n"
	"case_ac: stac; pushfq; pop %rax; mov %rax, 0x8020;"
	" clac; pushfq; pop %rax; mov %rax, 0x8028; hlt\n"
	"case_bp: int3; hlt\n"
	"case_split: mov $0x20ffe, %eax; stmxcsr (%rax); hlt\n"
	"h_bp: mov $3, %eax; jmp no_err\n"
	"h_ud: mov $6, %eax; jmp no_err\n"
	"h_nm: mov $7, %eax; jmp no_err\n"
	"h_ss: mov $12, %eax; jmp with_err\n"
	"h_gp: mov $13, %eax; jmp with_err\n"
	"h_pf: mov $14, %eax; jmp with_err\n"
	"h_ac: mov $17, %eax; jmp with_err\n"
	"with_err: pop %rcx; jmp record\n"
	"no_err: xor %ecx, %ecx\n"
	"record: pop %rdx; mov %cr2, %rbx; mov %rax, 0x8000;"
	" mov %rcx, 0x8008; mov %rbx, 0x8010; mov %rdx, 0x8018; hlt\n"
	"guest_end:\n"
	".popsection\n");

extern const uint8_t guest_start[], guest_end[], case_pf[], case_ro[],
	case_gp[], case_ok[], case_ac[], case_bp[], case_split[], h_bp[],
	h_ud[], h_nm[], h_ss[], h_gp[], h_pf[], h_ac[];

struct kvm {
	int kvm_fd, vm_fd, vcpu_fd;
	struct kvm_run *run;
	size_t run_size;
	struct gmem m;
};

static uint64_t guest_addr(const uint8_t *sym)
{
	return CODE + (uint64_t)(sym - guest_start);
}

static void *at(struct kvm *k, uint64_t gpa, size_t len)
{
	assert_true(gpa + len <= k->m.size);
	return k->m.host + gpa;
}

static void put64(struct kvm *k, uint64_t gpa, uint64_t v)
{
	memcpy(at(k, gpa, 8), &v, 8);
}

static uint64_t get64(struct kvm *k, uint64_t gpa)
{
	uint64_t v;

	memcpy(&v, at(k, gpa, 8), 8);
	return v;
}

static void gate(struct kvm *k, unsigned vector, const uint8_t *handler)
{
	uint64_t a = guest_addr(handler);

	/* 64-bit interrupt gate, DPL 0, present, selector CS_SEL */
	put64(k, IDT + vector * 16, (a & 0xffff) | (uint64_t)CS_SEL << 16 |
				    0x8eULL << 40 | (a >> 16 & 0xffff) << 48);
	put64(k, IDT + vector * 16 + 8, a >> 32);
}

static void build_guest(struct kvm *k)
{
	static const uint64_t gdt[] = {
		0, 0, 0x00af9b000000ffffULL, 0x00cf93000000ffffULL,
	};

	memcpy(at(k, GDT, sizeof(gdt)), gdt, sizeof(gdt));
	put64(k, PML4, PDPT | 3);
	put64(k, PDPT, PD | 3);
	put64(k, PD, PT | 3);
	for (uint64_t i = 0; i < 512; i++)
		put64(k, PT + i * 8, i << 12 | 3);
	put64(k, PT + (ABSENT >> 12) * 8, ABSENT | 2);	/* P clear */
	put64(k, PT + (RDONLY >> 12) * 8, RDONLY | 1);	/* RW clear */
	memcpy(at(k, CODE, (size_t)(guest_end - guest_start)), guest_start,
	       (size_t)(guest_end - guest_start));
	gate(k, 3, h_bp);
	gate(k, 6, h_ud);
	gate(k, 7, h_nm);
	gate(k, 12, h_ss);
	gate(k, 13, h_gp);
	gate(k, 14, h_pf);
	gate(k, 17, h_ac);
}

static void seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code)
{
	*s = (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = sel, .type = type,
		.present = 1, .db = code ? 0 : 1, .s = 1, .l = code ? 1 : 0,
		.g = 1,
	};
}

static int setup(void **state)
{
	struct kvm *k = calloc(1, sizeof(*k));
	struct kvm_userspace_memory_region region = { 0 };
	struct kvm_cpuid2 *cpuid;
	struct kvm_sregs sregs;
	int n;

	assert_non_null(k);
	k->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (k->kvm_fd < 0 || !pvm_detect()) {
		print_message("SKIP test_pvm_kvm: %s\n", k->kvm_fd < 0 ?
			      "no /dev/kvm" : "not PVM: KVM completes these "
			      "instructions itself");
		if (k->kvm_fd >= 0)
			close(k->kvm_fd);
		free(k);
		*state = NULL;
		return 0;
	}
	k->vm_fd = ioctl(k->kvm_fd, KVM_CREATE_VM, 0);
	assert_true(k->vm_fd >= 0);
	k->m.size = MEM_SIZE;
	k->m.host = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(k->m.host != MAP_FAILED);
	region.memory_size = MEM_SIZE;
	region.userspace_addr = (uint64_t)(uintptr_t)k->m.host;
	assert_int_equal(ioctl(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &region),
			 0);
	k->vcpu_fd = ioctl(k->vm_fd, KVM_CREATE_VCPU, 0);
	assert_true(k->vcpu_fd >= 0);
	n = 256;
	cpuid = calloc(1, sizeof(*cpuid) + n * sizeof(cpuid->entries[0]));
	assert_non_null(cpuid);
	cpuid->nent = (uint32_t)n;
	assert_int_equal(ioctl(k->kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid), 0);
	assert_int_equal(ioctl(k->vcpu_fd, KVM_SET_CPUID2, cpuid), 0);
	free(cpuid);
	k->run_size = (size_t)ioctl(k->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	k->run = mmap(NULL, k->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      k->vcpu_fd, 0);
	assert_true(k->run != MAP_FAILED);
	build_guest(k);
	assert_int_equal(ioctl(k->vcpu_fd, KVM_GET_SREGS, &sregs), 0);
	seg(&sregs.cs, CS_SEL, 0xb, true);
	seg(&sregs.ds, CS_SEL + 8, 0x3, false);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.tr = (struct kvm_segment){ .limit = 0x67, .type = 0xb,
					 .present = 1 };
	sregs.ldt = (struct kvm_segment){ .type = 2, .unusable = 1 };
	sregs.gdt.base = GDT;
	sregs.gdt.limit = 4 * 8 - 1;
	sregs.idt.base = IDT;
	sregs.idt.limit = 4095;
	sregs.cr0 = 0x80050033;	/* PG | AM | WP | NE | ET | MP | PE */
	sregs.cr3 = PML4;
	sregs.cr4 = 0x620;	/* OSXMMEXCPT | OSFXSR | PAE */
	sregs.efer = 0x500;	/* LMA | LME */
	assert_int_equal(ioctl(k->vcpu_fd, KVM_SET_SREGS, &sregs), 0);
	*state = k;
	return 0;
}

static int teardown(void **state)
{
	struct kvm *k = *state;

	if (!k)
		return 0;
	munmap(k->run, k->run_size);
	close(k->vcpu_fd);
	close(k->vm_fd);
	close(k->kvm_fd);
	munmap(k->m.host, MEM_SIZE);
	free(k);
	return 0;
}

/* Run one case from its label to a hlt (the case's own, or a handler's),
 * completing the instructions PVM's emulator gives up on. Returns how
 * many completions it took. */
static unsigned run_case(struct kvm *k, const uint8_t *label)
{
	struct pvm_emul_stats st = { 0 };
	struct kvm_regs regs = { 0 };
	unsigned done = 0;
	char desc[160];

	put64(k, RESULT, NO_VECTOR);
	regs.rip = guest_addr(label);
	regs.rsp = STACK;
	regs.rflags = 2;
	assert_int_equal(ioctl(k->vcpu_fd, KVM_SET_REGS, &regs), 0);
	for (unsigned i = 0; i < 64; i++) {
		int r;

		assert_int_equal(ioctl(k->vcpu_fd, KVM_RUN, 0), 0);
		if (k->run->exit_reason == KVM_EXIT_HLT)
			return done;
		if (k->run->exit_reason != KVM_EXIT_INTERNAL_ERROR ||
		    k->run->internal.suberror != KVM_INTERNAL_ERROR_EMULATION)
			fail_msg("exit %u", k->run->exit_reason);
		r = pvm_complete_emulation(k->vcpu_fd, k->run, &k->m, &st,
					   desc, sizeof(desc));
		if (r < 0)
			fail_msg("completing the %s: %s", desc, strerror(-r));
		done++;
	}
	fail_msg("no hlt after 64 exits");
	return done;
}

/* The handler for vector ran with this error code, CR2 and saved RIP. */
static void expect(struct kvm *k, uint64_t vector, uint64_t error,
		   uint64_t cr2, uint64_t rip)
{
	assert_int_equal(get64(k, RESULT), vector);
	assert_int_equal(get64(k, RESULT + 8), error);
	if (vector == 14)
		assert_int_equal(get64(k, RESULT + 16), cr2);
	assert_int_equal(get64(k, RESULT + 24), rip);
}

#define SKIP_IF_NO_KVM(k)                                                  \
	do {                                                               \
		if (!(k))                                                  \
			return;                                            \
	} while (0)

static void test_ldmxcsr_not_present_is_pf(void **state)
{
	struct kvm *k = *state;

	SKIP_IF_NO_KVM(k);
	assert_true(run_case(k, case_pf) > 0);
	/* #PF, error code 0 (not present, read, supervisor), CR2 the
	 * operand, RIP on the ldmxcsr (after the 5-byte mov). */
	expect(k, 14, 0, ABSENT, guest_addr(case_pf) + 5);
}

static void test_stmxcsr_read_only_is_pf(void **state)
{
	struct kvm *k = *state;

	SKIP_IF_NO_KVM(k);
	memset(at(k, RDONLY, 4), 0xaa, 4);
	assert_true(run_case(k, case_ro) > 0);
	expect(k, 14, 3, RDONLY, guest_addr(case_ro) + 5);
	assert_int_equal(get64(k, RDONLY) & 0xffffffff, 0xaaaaaaaa);
}

static void test_ldmxcsr_reserved_bit_is_gp(void **state)
{
	struct kvm *k = *state;

	SKIP_IF_NO_KVM(k);
	assert_true(run_case(k, case_gp) > 0);
	expect(k, 13, 0, 0, guest_addr(case_gp) + 11);
}

static void test_split_store_writes_nothing(void **state)
{
	struct kvm *k = *state;

	SKIP_IF_NO_KVM(k);
	memset(at(k, ABSENT - 2, 2), 0xbb, 2);
	assert_true(run_case(k, case_split) > 0);
	/* CR2 is the first byte on the page that faulted. */
	expect(k, 14, 2, ABSENT, guest_addr(case_split) + 5);
	assert_memory_equal(at(k, ABSENT - 2, 2), "\xbb\xbb", 2);
}

/* XSTATE_BV, the first u64 of the XSAVE header at byte 512 (u32 128 of
 * struct kvm_xsave's region); FP, SSE and AVX are the components whose
 * bits make the kernel take MXCSR from an image (SDM vol. 1, 13.4). */
#define XSTATE_BV_U32 128
#define XSTATE_MXCSR_BITS 0x7ULL

/* Put the vCPU's x87, SSE and AVX state in its init configuration with
 * their XSTATE_BV bits clear, as XSAVES records it when a thread's SSE
 * state happens to be untouched (whether it is depends on scheduling). */
static void clear_mxcsr_components(struct kvm *k)
{
	struct kvm_xsave xs;
	uint64_t bv;

	assert_int_equal(ioctl(k->vcpu_fd, KVM_GET_XSAVE, &xs), 0);
	memcpy(&bv, &xs.region[XSTATE_BV_U32], sizeof(bv));
	bv &= ~XSTATE_MXCSR_BITS;
	memcpy(&xs.region[XSTATE_BV_U32], &bv, sizeof(bv));
	assert_int_equal(ioctl(k->vcpu_fd, KVM_SET_XSAVE, &xs), 0);
	assert_int_equal(ioctl(k->vcpu_fd, KVM_GET_XSAVE, &xs), 0);
	memcpy(&bv, &xs.region[XSTATE_BV_U32], sizeof(bv));
	assert_int_equal(bv & XSTATE_MXCSR_BITS, 0);
	assert_int_equal(xs.region[6], 0x1f80);
}

/* An ldmxcsr from the init SSE state sticks: the completion's
 * KVM_SET_XSAVE must mark SSE in XSTATE_BV, or the kernel drops the
 * image's MXCSR and keeps 0x1f80. The exit is handed to the completion
 * directly, with no KVM_RUN between clearing the bits and completing,
 * so that no XSAVES can set them again and the case is the same on
 * every run (through KVM_RUN it depends on scheduling). */
static void test_ldmxcsr_sticks_from_init_state(void **state)
{
	static const uint8_t ldmxcsr_rax[] = { 0x0f, 0xae, 0x10 };
	struct kvm *k = *state;
	struct pvm_emul_stats st = { 0 };
	struct kvm_regs regs = { 0 };
	struct kvm_xsave xs;
	struct kvm_run run;
	char desc[160];
	int r;

	SKIP_IF_NO_KVM(k);
	clear_mxcsr_components(k);
	put64(k, DATA, 0x9f80);
	regs.rip = guest_addr(case_ok) + 11;	/* its ldmxcsr (%rax) */
	regs.rax = DATA;
	regs.rsp = STACK;
	regs.rflags = 2;
	assert_int_equal(ioctl(k->vcpu_fd, KVM_SET_REGS, &regs), 0);
	memset(&run, 0, sizeof(run));
	run.exit_reason = KVM_EXIT_INTERNAL_ERROR;
	run.emulation_failure.suberror = KVM_INTERNAL_ERROR_EMULATION;
	run.emulation_failure.ndata = 3;
	run.emulation_failure.flags =
		KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES;
	run.emulation_failure.insn_size = sizeof(ldmxcsr_rax);
	memcpy(run.emulation_failure.insn_bytes, ldmxcsr_rax,
	       sizeof(ldmxcsr_rax));
	r = pvm_complete_emulation(k->vcpu_fd, &run, &k->m, &st, desc,
				   sizeof(desc));
	if (r < 0)
		fail_msg("completing the %s: %s", desc, strerror(-r));
	assert_int_equal(st.mxcsr, 1);
	assert_int_equal(ioctl(k->vcpu_fd, KVM_GET_XSAVE, &xs), 0);
	assert_int_equal(xs.region[6], 0x9f80);
	assert_int_equal(ioctl(k->vcpu_fd, KVM_GET_REGS, &regs), 0);
	assert_int_equal(regs.rip, guest_addr(case_ok) + 14);
}

static void test_completions_run(void **state)
{
	struct kvm *k = *state;
	struct kvm_xsave xs;
	uint64_t f1, f2;

	SKIP_IF_NO_KVM(k);
	/* From 0x1f80, whatever the test before left, or a lost ldmxcsr
	 * would go unseen. */
	clear_mxcsr_components(k);
	run_case(k, case_ok);
	assert_int_equal(get64(k, RESULT), NO_VECTOR);
	assert_int_equal(get64(k, DATA + 8) & 0xffffffff, 0x9f80);
	/* MXCSR as KVM holds it: the XSAVE image's (KVM_GET_FPU leaves
	 * its mxcsr field 0). */
	assert_int_equal(ioctl(k->vcpu_fd, KVM_GET_XSAVE, &xs), 0);
	assert_int_equal(xs.region[6], 0x9f80);
	/* int3: #BP with RIP after it. */
	run_case(k, case_bp);
	expect(k, 3, 0, 0, guest_addr(case_bp) + 1);
	/* stac, clac: only where the CPU has SMAP. */
	put64(k, FLAGS, 0);
	put64(k, FLAGS + 8, 0);
	run_case(k, case_ac);
	f1 = get64(k, FLAGS);
	f2 = get64(k, FLAGS + 8);
	if (get64(k, RESULT) == 6) {
		print_message("SKIP test_completions_run: no SMAP here, "
			      "stac is #UD (as it should be)\n");
		return;
	}
	assert_int_equal(get64(k, RESULT), NO_VECTOR);
	assert_true(f1 & (1U << 18));
	assert_false(f2 & (1U << 18));
}

#define T(fn) cmocka_unit_test(fn)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_ldmxcsr_not_present_is_pf),
		T(test_stmxcsr_read_only_is_pf),
		T(test_ldmxcsr_reserved_bit_is_gp),
		T(test_split_store_writes_nothing),
		T(test_ldmxcsr_sticks_from_init_state),
		T(test_completions_run),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
