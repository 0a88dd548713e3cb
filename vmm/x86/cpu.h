/* An x86 vCPU's state through KVM: CPUID, the registers a 64-bit kernel
 * entry needs, and the whole state captured from and restored onto a
 * vCPU (registers, FPU/XSAVE, LAPIC, events, MSRs) for snapshots. Knows
 * vCPU and KVM fds only, nothing of the VM around them. */
#ifndef VMM_X86_CPU_H
#define VMM_X86_CPU_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stdint.h>

#define CPU_MAX_MSRS 256
#define CPU_XSAVE_MAX 16384

struct cpu_state {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp;
	struct kvm_debugregs dregs;
	uint32_t nmsrs, xsave_size;
	struct kvm_msr_entry msrs[CPU_MAX_MSRS];
	uint8_t xsave[CPU_XSAVE_MAX];
};

/* The CPUID KVM supports, as one vCPU with APIC id 0 and the hypervisor
 * bit (and PVM's filter when pvm), set on vcpu_fd. 0 or -errno. */
int cpu_setup_cpuid(int kvm_fd, int vcpu_fd, bool pvm);

/* 64-bit long mode at entry with the boot page tables, GDT and stack of
 * vmm/x86/boot.h, and the LAPIC as a virtual wire. 0 or -errno. */
int cpu_setup_boot(int vcpu_fd, uint64_t entry);

/* Read the whole vCPU state into c (every MSR KVM lists and can read, the
 * TSC first). 0 or -errno (-E2BIG: XSAVE area larger than we keep). */
int cpu_capture(int kvm_fd, int vcpu_fd, struct cpu_state *c);

/* Set c onto a vCPU that has not run. 0 or -errno (-EINVAL: c holds more
 * than KVM takes, or KVM refused an MSR). */
int cpu_restore(int kvm_fd, int vcpu_fd, const struct cpu_state *c);

#endif
