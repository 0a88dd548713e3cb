#include "vmm/x86/boot.h"

#include <asm/bootparam.h>
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define PAGE_SIZE 4096ULL
#define SETUP_HDR_OFF 0x1f1
#define HDRS_MAGIC 0x53726448	/* "HdrS" */
#define LOADER_TYPE_UNDEFINED 0xff

static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -ENOEXEC;
}

static int load_elf(const struct gmem *m, const uint8_t *buf, size_t len,
		    struct boot_kernel *k, char *err, size_t errlen)
{
	Elf64_Ehdr eh;
	bool entry_loaded = false;

	if (len < sizeof(eh))
		return bad(err, errlen, "ELF header truncated");
	memcpy(&eh, buf, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_machine != EM_X86_64)
		return bad(err, errlen, "not a 64-bit x86 ELF kernel");
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 ||
	    eh.e_phoff > len ||
	    (len - eh.e_phoff) / sizeof(Elf64_Phdr) < eh.e_phnum)
		return bad(err, errlen, "ELF program headers out of the file");

	k->kind = BOOT_ELF;
	k->end = 0;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		uint8_t *dst;

		memcpy(&ph, buf + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD)
			continue;
		if (ph.p_filesz > ph.p_memsz || ph.p_offset > len ||
		    len - ph.p_offset < ph.p_filesz)
			return bad(err, errlen, "ELF segment %u out of the file",
				   i);
		dst = gmem_ptr(m, ph.p_paddr, ph.p_memsz);
		if (!dst || ph.p_paddr < BOOT_HIMEM_START) {
			snprintf(err, errlen, "ELF segment %u at 0x%llx+0x%llx "
				 "does not fit in guest memory", i,
				 (unsigned long long)ph.p_paddr,
				 (unsigned long long)ph.p_memsz);
			return -ENOMEM;
		}
		memcpy(dst, buf + ph.p_offset, ph.p_filesz);
		memset(dst + ph.p_filesz, 0, ph.p_memsz - ph.p_filesz);
		if (ph.p_paddr + ph.p_memsz > k->end)
			k->end = ph.p_paddr + ph.p_memsz;
		if (eh.e_entry >= ph.p_paddr &&
		    eh.e_entry < ph.p_paddr + ph.p_filesz)
			entry_loaded = true;
	}
	/* vmlinux's entry is physical (ENTRY(phys_startup_64)). */
	if (!entry_loaded)
		return bad(err, errlen, "ELF entry 0x%llx not in a loaded "
			   "segment", (unsigned long long)eh.e_entry);
	k->entry = eh.e_entry;
	k->initrd_max = 0xffffffffULL;
	k->setup_hdr_len = 0;
	return 0;
}

static int load_bzimage(const struct gmem *m, const uint8_t *buf, size_t len,
			struct boot_kernel *k, char *err, size_t errlen)
{
	struct setup_header h;
	size_t hdr_end, setup_len, payload_len;
	uint64_t load, need;
	uint8_t *dst;

	if (len < SETUP_HDR_OFF + sizeof(h))
		return bad(err, errlen, "bzImage header truncated");
	memcpy(&h, buf + SETUP_HDR_OFF, sizeof(h));
	if (h.header != HDRS_MAGIC)
		return bad(err, errlen, "no bzImage header (HdrS)");
	if (h.version < 0x020c || !(h.xloadflags & XLF_KERNEL_64))
		return bad(err, errlen, "bzImage (boot protocol %u.%02u) has "
			   "no 64-bit entry point", h.version >> 8,
			   h.version & 0xff);
	hdr_end = 0x202 + (size_t)buf[0x201];
	if (hdr_end - SETUP_HDR_OFF > sizeof(k->setup_hdr) || hdr_end > len)
		return bad(err, errlen, "bzImage setup header too long");
	setup_len = ((size_t)(h.setup_sects ? h.setup_sects : 4) + 1) * 512;
	if (setup_len >= len)
		return bad(err, errlen, "bzImage has no protected-mode code");
	payload_len = len - setup_len;

	load = h.pref_address;	/* protocol 2.10+, always set by 2.12 */
	if (load < BOOT_HIMEM_START)
		load = BOOT_BZIMAGE_LOAD;
	need = h.init_size > payload_len ? h.init_size : payload_len;
	dst = gmem_ptr(m, load, need);
	if (!dst) {
		snprintf(err, errlen, "bzImage needs 0x%llx bytes at 0x%llx: "
			 "guest memory too small", (unsigned long long)need,
			 (unsigned long long)load);
		return -ENOMEM;
	}
	memcpy(dst, buf + setup_len, payload_len);

	k->kind = BOOT_BZIMAGE;
	k->entry = load + 0x200;	/* startup_64 */
	k->end = load + need;
	k->initrd_max = h.initrd_addr_max;
	k->setup_hdr_len = hdr_end - SETUP_HDR_OFF;
	memcpy(k->setup_hdr, buf + SETUP_HDR_OFF, k->setup_hdr_len);
	return 0;
}

int boot_load_kernel(const struct gmem *m, const uint8_t *buf, size_t len,
		     struct boot_kernel *k, char *err, size_t errlen)
{
	memset(k, 0, sizeof(*k));
	if (len >= 4 && memcmp(buf, ELFMAG, SELFMAG) == 0)
		return load_elf(m, buf, len, k, err, errlen);
	if (len >= 0x206 && memcmp(buf + 0x202, "HdrS", 4) == 0)
		return load_bzimage(m, buf, len, k, err, errlen);
	return bad(err, errlen, "neither an ELF vmlinux nor a bzImage");
}

int boot_load_initrd(const struct gmem *m, const struct boot_kernel *k,
		     const uint8_t *buf, size_t len, uint64_t *gpa)
{
	uint64_t top = m->size;
	uint64_t addr;
	uint8_t *dst;

	if (k->initrd_max < top - 1)
		top = k->initrd_max + 1;
	if (len > top)
		return -ENOMEM;
	addr = (top - len) & ~(PAGE_SIZE - 1);
	if (addr < k->end)
		return -ENOMEM;
	dst = gmem_ptr(m, addr, len);
	if (!dst)
		return -ENOMEM;
	memcpy(dst, buf, len);
	*gpa = addr;
	return 0;
}

int boot_e820_map(uint64_t mem_size, struct boot_e820 *e, int max)
{
	struct boot_e820 map[] = {
		{ 0, BOOT_EBDA_START, BOOT_E820_RAM },
		{ BOOT_EBDA_START, BOOT_HIMEM_START - BOOT_EBDA_START,
		  BOOT_E820_RESERVED },
		{ BOOT_HIMEM_START, mem_size - BOOT_HIMEM_START,
		  BOOT_E820_RAM },
	};
	int n = 0;

	for (unsigned i = 0; i < sizeof(map) / sizeof(map[0]) && n < max; i++)
		e[n++] = map[i];
	return n;
}

int boot_setup_params(const struct gmem *m, const struct boot_kernel *k,
		      const char *cmdline, uint64_t initrd_gpa,
		      uint64_t initrd_len)
{
	struct boot_params *bp;
	struct boot_e820 map[E820_MAX_ENTRIES_ZEROPAGE];
	size_t cl = strlen(cmdline);
	char *dst;
	int n;

	if (cl >= BOOT_CMDLINE_MAX)
		return -E2BIG;
	bp = gmem_ptr(m, BOOT_ZERO_PAGE_ADDR, sizeof(*bp));
	dst = gmem_ptr(m, BOOT_CMDLINE_ADDR, BOOT_CMDLINE_MAX);
	if (!bp || !dst || m->size <= BOOT_HIMEM_START)
		return -ENOMEM;
	memset(bp, 0, sizeof(*bp));
	if (k->kind == BOOT_BZIMAGE) {
		memcpy((uint8_t *)bp + SETUP_HDR_OFF, k->setup_hdr,
		       k->setup_hdr_len);
	} else {
		bp->hdr.boot_flag = 0xaa55;
		bp->hdr.header = HDRS_MAGIC;
		bp->hdr.version = 0x020c;
		bp->hdr.kernel_alignment = 0x1000000;
	}
	bp->hdr.type_of_loader = LOADER_TYPE_UNDEFINED;
	bp->hdr.loadflags |= LOADED_HIGH;
	memset(dst, 0, BOOT_CMDLINE_MAX);
	memcpy(dst, cmdline, cl);
	bp->hdr.cmd_line_ptr = BOOT_CMDLINE_ADDR;
	bp->hdr.cmdline_size = (uint32_t)cl;
	if (initrd_len) {
		bp->hdr.ramdisk_image = (uint32_t)initrd_gpa;
		bp->hdr.ramdisk_size = (uint32_t)initrd_len;
		bp->ext_ramdisk_image = (uint32_t)(initrd_gpa >> 32);
		bp->ext_ramdisk_size = (uint32_t)(initrd_len >> 32);
	}
	n = boot_e820_map(m->size, map, E820_MAX_ENTRIES_ZEROPAGE);
	for (int i = 0; i < n; i++) {
		bp->e820_table[i].addr = map[i].addr;
		bp->e820_table[i].size = map[i].size;
		bp->e820_table[i].type = map[i].type;
	}
	bp->e820_entries = (uint8_t)n;
	return 0;
}

int boot_setup_longmode(const struct gmem *m)
{
	/* null, null, __BOOT_CS: 64-bit code, __BOOT_DS: data */
	static const uint64_t gdt[] = {
		0, 0, 0x00af9b000000ffffULL, 0x00cf93000000ffffULL,
	};
	uint64_t *pml4 = gmem_ptr(m, BOOT_PML4_ADDR, PAGE_SIZE);
	uint64_t *pdpt = gmem_ptr(m, BOOT_PDPT_ADDR, PAGE_SIZE);
	uint64_t *pd = gmem_ptr(m, BOOT_PD_ADDR, 4 * PAGE_SIZE);
	void *g = gmem_ptr(m, BOOT_GDT_ADDR, sizeof(gdt));

	if (!pml4 || !pdpt || !pd || !g)
		return -ENOMEM;
	memcpy(g, gdt, sizeof(gdt));
	memset(pml4, 0, PAGE_SIZE);
	memset(pdpt, 0, PAGE_SIZE);
	/* present | writable; PD entries add PS (2 MiB pages) */
	pml4[0] = BOOT_PDPT_ADDR | 0x3;
	for (uint64_t i = 0; i < 4; i++)
		pdpt[i] = (BOOT_PD_ADDR + i * PAGE_SIZE) | 0x3;
	for (uint64_t i = 0; i < 4 * 512; i++)
		pd[i] = (i << 21) | 0x83;
	return 0;
}
