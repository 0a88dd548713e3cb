/* The CPU flags the guest kernel knows by name, as its clearcpuid= parser
 * sees them (x86_cap_flags[] of linux-source-6.1). The table is generated:
 * vmm/x86/cpu_flags.c, by contrib/guest/gen-cpu-flags.sh. */
#ifndef VMM_X86_CPU_FLAGS_H
#define VMM_X86_CPU_FLAGS_H

struct cpu_flag {
	unsigned bit;		/* word * 32 + bit, as X86_FEATURE_* */
	const char *name;	/* lower case, as in /proc/cpuinfo */
};

/* In bit order: the kernel takes the first bit whose name matches. */
extern const struct cpu_flag cpu_flags[];
extern const unsigned cpu_flags_count;
/* clearcpuid= clears any bit below cpu_flags_ncapints * 32 by number. */
extern const unsigned cpu_flags_ncapints;

#endif
