/* The guest kernel's clearcpuid=, merged. Linux reads only the last
 * clearcpuid= on its command line (arch/x86/kernel/cpu/common.c,
 * cpu_parse_early_param), so an operator's own clearcpuid= in [template]
 * cmdline would silently replace the list the VMM needs on PVM (XSAVE back,
 * the guest dead on xrstor). Every clearcpuid= of the operator's is folded
 * into the VMM's list here, and what the kernel would quietly get wrong (an
 * unknown name, a list it cuts short) is refused before any guest boots. */
#ifndef VMM_X86_CMDLINE_H
#define VMM_X86_CMDLINE_H

#include <stdbool.h>
#include <stddef.h>

/* Characters of clearcpuid='s value the 6.1 kernel reads: its buffer is
 * char arg[128] and cmdline_find_option() keeps one byte for the NUL,
 * cutting the rest off without a word. */
#define CMDLINE_CLEARCPUID_MAX 127

/* Merge own (the VMM's list, e.g. "xsave,cx16", or NULL for none) and every
 * clearcpuid= word of extra (the operator's arguments, or NULL) into one
 * "clearcpuid=LIST" with own's flags first and no flag twice (a name and
 * its bit number are the same flag), followed by extra's other words as
 * they were written. Words are split as the kernel's early parser splits
 * them (at any byte <= ' ', quotes or not). out gets "" when there is
 * nothing to say. Returns 0; -EINVAL for an unknown flag name, a bit
 * number out of range, a clearcpuid word the kernel would not read as one
 * (quoted, or with no '='); -E2BIG for a merged list over
 * CMDLINE_CLEARCPUID_MAX or an out too small. On error why (may be NULL)
 * gets a one-line reason and out is "". */
/* The VMM's own clearcpuid= list for this host (PVM_CLEARCPUID on PVM,
 * NULL elsewhere): the own argument of cmdline_merge(), for every caller
 * that builds or checks the template's command line. */
const char *cmdline_own_clearcpuid(bool pvm);

int cmdline_merge(const char *own, const char *extra, char *out,
		  size_t outlen, char *why, size_t whylen);

#endif
