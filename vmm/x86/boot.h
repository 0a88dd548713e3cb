/* Linux x86 64-bit boot protocol (Documentation/x86/boot.rst): load a
 * bzImage or an ELF vmlinux and an initrd into guest memory, build the
 * zero page (boot_params) with the e820 map and command line, and the
 * identity-mapped page tables and GDT for entering the kernel in long mode.
 * Pure functions on guest memory: no KVM here. */
#ifndef VMM_BOOT_H
#define VMM_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/gmem.h"

/* Guest physical layout of what the VMM writes before the kernel runs. */
#define BOOT_GDT_ADDR 0x500
#define BOOT_STACK_ADDR 0x8ff0
#define BOOT_ZERO_PAGE_ADDR 0x7000
#define BOOT_PML4_ADDR 0x9000
#define BOOT_PDPT_ADDR 0xa000
#define BOOT_PD_ADDR 0xb000	/* four pages: the first 4 GiB in 2 MiB pages */
#define BOOT_CMDLINE_ADDR 0x20000
#define BOOT_CMDLINE_MAX 2048	/* COMMAND_LINE_SIZE on x86 */
#define BOOT_EBDA_START 0x9fc00
#define BOOT_HIMEM_START 0x100000
#define BOOT_BZIMAGE_LOAD 0x100000

#define BOOT_CS 0x10	/* __BOOT_CS */
#define BOOT_DS 0x18	/* __BOOT_DS */

enum boot_kernel_kind { BOOT_ELF, BOOT_BZIMAGE };

struct boot_kernel {
	enum boot_kernel_kind kind;
	uint64_t entry;		/* 64-bit entry point, guest physical */
	uint64_t end;		/* first byte after what the kernel needs */
	uint64_t initrd_max;	/* highest address the initrd may reach */
	uint8_t setup_hdr[0x80];	/* bzImage setup header (from 0x1f1) */
	size_t setup_hdr_len;
};

/* Load a kernel image (bzImage or ELF vmlinux, told apart by content) from
 * buf into guest memory. 0, or -ENOEXEC (not a kernel we can boot: err says
 * why), or -ENOMEM (does not fit in guest memory). */
int boot_load_kernel(const struct gmem *m, const uint8_t *buf, size_t len,
		     struct boot_kernel *k, char *err, size_t errlen);

/* Place the initrd at the top of RAM (page aligned, below initrd_max and
 * above the kernel). 0 and *gpa set, or -ENOMEM. */
int boot_load_initrd(const struct gmem *m, const struct boot_kernel *k,
		     const uint8_t *buf, size_t len, uint64_t *gpa);

/* Write the zero page: setup header, loader type, command line, initrd,
 * e820 map of RAM. 0 or -E2BIG (command line too long) / -ENOMEM. */
int boot_setup_params(const struct gmem *m, const struct boot_kernel *k,
		      const char *cmdline, uint64_t initrd_gpa,
		      uint64_t initrd_len);

/* Write the GDT and the identity-mapped page tables. 0 or -ENOMEM. */
int boot_setup_longmode(const struct gmem *m);

/* The e820 map boot_setup_params() writes, for tests and the snapshot.
 * Returns the number of entries (at most max). */
struct boot_e820 {
	uint64_t addr, size;
	uint32_t type;
};
#define BOOT_E820_RAM 1
#define BOOT_E820_RESERVED 2
int boot_e820_map(uint64_t mem_size, struct boot_e820 *e, int max);

#endif
