/* What this VMM does differently on PVM, the software KVM (kvm_pvm) that
 * runs guest kernel code in KVM's instruction emulator. On hardware KVM
 * (VT-x/AMD-V) none of this is used: the plain paths run.
 *
 * On PVM:
 * - CPUID set through KVM does not reach the guest, so features whose
 *   instructions the emulator cannot complete are hidden on the guest
 *   command line (PVM_CLEARCPUID) as well as in CPUID (pvm_filter_cpuid).
 * - Instructions the emulator gives up on are completed here, on
 *   KVM_EXIT_INTERNAL_ERROR / KVM_INTERNAL_ERROR_EMULATION: int3, fwait,
 *   ldmxcsr/stmxcsr, clac/stac, with the checks the CPU makes (privilege,
 *   paging, alignment, operands) and the exceptions it raises. Anything
 *   else stops that VM with the instruction bytes and RIP in the message.
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
#include "vmm/x86/emul.h"

/* The VMM's own clearcpuid= list on PVM, first in the one clearcpuid= the
 * guest gets (vmm/x86/cmdline.h merges the operator's into it). erms and
 * fsrm: the emulator runs rep movsb/stosb one byte at a time, so the
 * kernel's byte-wise copy and clear (picked when the CPU reports them) are
 * the slowest here; without them it takes the quadword forms. */
#define PVM_CLEARCPUID                                                       \
	"xsave,cx16,smap,popcnt,ssse3,sse4_1,sse4_2,pclmulqdq,"               \
	"aes,sha_ni,avx,avx2,fma,f16c,bmi1,bmi2,adx,erms,fsrm"

/* Whether /dev/kvm is PVM (the kvm_pvm module is loaded). */
bool pvm_detect(void);

/* Hide from CPUID what PVM cannot emulate (PVM_CLEARCPUID but erms and
 * fsrm, which it runs, only slowly). */
void pvm_filter_cpuid(struct kvm_cpuid2 *cpuid);

/* Counts of completed instructions, for the boot benchmark; faults: the
 * instructions that raised an exception instead (vmm/x86/emul.h). */
struct pvm_emul_stats {
	uint64_t int3, fwait, mxcsr, clac_stac, faults;
};

/* Complete the instruction that caused an emulation-failure exit as the
 * CPU would have run it (vmm/x86/emul.c): its effect, or the exception
 * it raises injected through KVM_SET_VCPU_EVENTS (with CR2 for #PF).
 * MXCSR is read and written in the XSAVE image (KVM_GET/SET_XSAVE; a
 * write marks SSE in XSTATE_BV, without which the kernel ignores it).
 * 0: done, the vCPU can run on. -EOPNOTSUPP: not one we complete; -EFAULT:
 * its page tables or operand lie outside guest RAM (desc names the bytes
 * and RIP for both); other -errno: an ioctl failed. */
int pvm_complete_emulation(int vcpu_fd, struct kvm_run *run,
			   const struct gmem *m, struct pvm_emul_stats *st,
			   char *desc, size_t desclen);

#endif
