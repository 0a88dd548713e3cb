/* What this VMM does differently on PVM, the software KVM (kvm_pvm) that
 * runs guest kernel code in KVM's instruction emulator. On hardware KVM
 * (VT-x/AMD-V) none of this is used: the plain paths run.
 *
 * On PVM:
 * - CPUID set through KVM does not reach the guest, so features whose
 *   instructions the emulator cannot complete are hidden on the guest
 *   command line (PVM_CMDLINE) as well as in CPUID (pvm_filter_cpuid).
 * - Instructions the emulator gives up on are completed here, on
 *   KVM_EXIT_INTERNAL_ERROR / KVM_INTERNAL_ERROR_EMULATION: int3, fwait,
 *   ldmxcsr/stmxcsr, clac/stac. Anything else stops that VM with the
 *   instruction bytes and RIP in the message.
 * - The guest kernel carries a patch of ours for 64-bit SYSCALL
 *   (contrib/guest/pvm-syscall.patch); nothing here is needed for that.
 * See shared/notes/pvm.md for the measurements behind each point. */
#ifndef VMM_PVM_H
#define VMM_PVM_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/gmem.h"

#define PVM_CMDLINE                                                          \
	"clearcpuid=xsave,cx16,smap,popcnt,ssse3,sse4_1,sse4_2,pclmulqdq,"    \
	"aes,sha_ni,avx,avx2,fma,f16c,bmi1,bmi2,adx"

/* Whether /dev/kvm is PVM (the kvm_pvm module is loaded). */
bool pvm_detect(void);

/* Hide from CPUID what PVM cannot emulate (same list as PVM_CMDLINE). */
void pvm_filter_cpuid(struct kvm_cpuid2 *cpuid);

/* Counts of completed instructions, for the boot benchmark. */
struct x86_emul_stats {
	uint64_t int3, fwait, mxcsr, clac_stac;
};

/* A decoded instruction the VMM can complete. */
enum x86_insn_kind {
	X86_INSN_UNKNOWN,
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
	/* memory operand of ldmxcsr/stmxcsr: seg + base + index*scale + disp
	 * (+ next RIP when rip_rel). reg numbers 0-15, -1 for none. */
	int base, index;
	unsigned scale;
	int64_t disp;
	bool rip_rel;
	int seg;		/* -1, or 4 = fs, 5 = gs (other segments have base 0) */
};

/* Decode up to len bytes at bytes (64-bit mode). Pure: unit-tested. */
void x86_decode(const uint8_t *bytes, size_t len, struct x86_insn *insn);

/* Complete the instruction that caused an emulation-failure exit.
 * 0: done, the vCPU can run on. -EOPNOTSUPP: not one we complete (desc
 * names the bytes and RIP); other -errno: an ioctl failed. */
int x86_complete_emulation(int vcpu_fd, struct kvm_run *run,
			   const struct gmem *m, struct x86_emul_stats *st,
			   char *desc, size_t desclen);

#endif
