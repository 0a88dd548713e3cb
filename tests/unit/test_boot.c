/* The Linux x86 boot protocol on plain memory: synthetic ELF and bzImage
 * kernels, the initrd, the zero page and the long-mode page tables. */
#include "vmm/x86/boot.h"

#include <asm/bootparam.h>
#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>

#define MEM_SIZE (20ULL * 1024 * 1024)
#define KERNEL_AT 0x1000000ULL
#define SEG_OFF 0x1000
#define SEG_FILESZ 0x200
#define SEG_MEMSZ 0x3000
#define ENTRY (KERNEL_AT + 0x10)
#define ELF_LEN (SEG_OFF + SEG_FILESZ)

#define BZ_SETUP_SECTS 1
#define BZ_SETUP_LEN ((BZ_SETUP_SECTS + 1) * 512)
#define BZ_PAYLOAD 4096
#define BZ_LEN (BZ_SETUP_LEN + BZ_PAYLOAD)
#define BZ_INIT_SIZE 0x10000
#define BZ_HDR_END 0x26c	/* 0x202 + the jump's offset, 0x6a */

struct env {
	struct gmem m;
	struct boot_kernel k;
	char err[128];
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	e->m.host = aligned_alloc(4096, MEM_SIZE);
	assert_non_null(e->m.host);
	/* Stale contents where the loader writes or must not write. */
	memset(e->m.host, 0xaa, BOOT_HIMEM_START);
	memset(e->m.host + KERNEL_AT - 4096, 0xaa, 0x20000);
	e->m.size = MEM_SIZE;
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	free(e->m.host);
	free(e);
	return 0;
}

/* A minimal vmlinux: one PT_LOAD of SEG_FILESZ bytes (then bss up to
 * SEG_MEMSZ) at KERNEL_AT, and a PT_NOTE the loader must skip. The buffer
 * is exactly ELF_LEN bytes, so a read past it is a sanitizer error. */
static uint8_t *make_elf(void)
{
	uint8_t *b = calloc(1, ELF_LEN);
	Elf64_Ehdr eh = { 0 };
	Elf64_Phdr ph[2] = { { 0 } };

	assert_non_null(b);
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_entry = ENTRY;
	eh.e_phoff = sizeof(eh);
	eh.e_ehsize = sizeof(eh);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = 2;
	ph[0].p_type = PT_NOTE;
	ph[0].p_offset = 0xffffffffffffULL;	/* ignored */
	ph[0].p_filesz = 0xffffffffULL;
	ph[1].p_type = PT_LOAD;
	ph[1].p_offset = SEG_OFF;
	ph[1].p_vaddr = 0xffffffff81000000ULL;
	ph[1].p_paddr = KERNEL_AT;
	ph[1].p_filesz = SEG_FILESZ;
	ph[1].p_memsz = SEG_MEMSZ;
	memcpy(b, &eh, sizeof(eh));
	memcpy(b + sizeof(eh), ph, sizeof(ph));
	for (unsigned i = 0; i < SEG_FILESZ; i++)
		b[SEG_OFF + i] = (uint8_t)(i ^ 0x5a);
	return b;
}

static Elf64_Ehdr *ehdr(uint8_t *b)
{
	return (Elf64_Ehdr *)b;
}

static Elf64_Phdr *load_phdr(uint8_t *b)
{
	return (Elf64_Phdr *)(b + sizeof(Elf64_Ehdr)) + 1;
}

static int load(struct env *e, const uint8_t *b, size_t len)
{
	int r;

	e->err[0] = '\0';
	r = boot_load_kernel(&e->m, b, len, &e->k, e->err, sizeof(e->err));
	if (r < 0)
		assert_true(e->err[0] != '\0');	/* says why */
	return r;
}

static void test_elf_ok(void **state)
{
	struct env *e = *state;
	uint8_t *b = make_elf();

	assert_int_equal(load(e, b, ELF_LEN), 0);
	assert_int_equal(e->k.kind, BOOT_ELF);
	assert_int_equal(e->k.entry, ENTRY);
	assert_int_equal(e->k.end, KERNEL_AT + SEG_MEMSZ);
	assert_int_equal(e->k.initrd_max, 0xffffffffULL);
	assert_int_equal(e->k.setup_hdr_len, 0);
	assert_memory_equal(e->m.host + KERNEL_AT, b + SEG_OFF, SEG_FILESZ);
	for (uint64_t i = SEG_FILESZ; i < SEG_MEMSZ; i++)
		assert_int_equal(e->m.host[KERNEL_AT + i], 0);	/* bss */
	assert_int_equal(e->m.host[KERNEL_AT + SEG_MEMSZ], 0xaa);
	assert_int_equal(e->m.host[KERNEL_AT - 1], 0xaa);
	free(b);
}

static void test_not_a_kernel(void **state)
{
	struct env *e = *state;
	uint8_t *b = calloc(1, 4096);
	uint8_t *elf = make_elf();
	uint8_t *tiny;

	assert_non_null(b);
	assert_int_equal(load(e, b, 4096), -ENOEXEC);
	assert_int_equal(load(e, b, 0), -ENOEXEC);
	memcpy(b, "MZ", 2);
	assert_int_equal(load(e, b, 4096), -ENOEXEC);
	/* A truncated ELF header, in a buffer of exactly that size. */
	for (size_t len = 1; len < sizeof(Elf64_Ehdr); len++) {
		tiny = malloc(len);
		assert_non_null(tiny);
		memcpy(tiny, elf, len);
		assert_int_equal(load(e, tiny, len), -ENOEXEC);
		free(tiny);
	}
	free(elf);
	free(b);
}

static void test_elf_wrong_kind(void **state)
{
	struct env *e = *state;
	uint8_t *b = make_elf();

	ehdr(b)->e_ident[EI_CLASS] = ELFCLASS32;
	assert_int_equal(load(e, b, ELF_LEN), -ENOEXEC);
	ehdr(b)->e_ident[EI_CLASS] = ELFCLASS64;
	ehdr(b)->e_ident[EI_DATA] = ELFDATA2MSB;
	assert_int_equal(load(e, b, ELF_LEN), -ENOEXEC);
	ehdr(b)->e_ident[EI_DATA] = ELFDATA2LSB;
	ehdr(b)->e_machine = EM_386;
	assert_int_equal(load(e, b, ELF_LEN), -ENOEXEC);
	ehdr(b)->e_machine = EM_AARCH64;
	assert_int_equal(load(e, b, ELF_LEN), -ENOEXEC);
	ehdr(b)->e_machine = EM_X86_64;
	assert_int_equal(load(e, b, ELF_LEN), 0);
	free(b);
}

static void test_elf_phdrs_out(void **state)
{
	struct env *e = *state;
	uint8_t *b = make_elf();
	const uint64_t bad_off[] = {
		ELF_LEN - 10, ELF_LEN, ELF_LEN + 1, 0xffffffffffffff00ULL,
		ELF_LEN - sizeof(Elf64_Phdr) - 1,
	};

	for (unsigned i = 0; i < sizeof(bad_off) / sizeof(bad_off[0]); i++) {
		ehdr(b)->e_phoff = bad_off[i];
		assert_int_equal(load(e, b, ELF_LEN), -ENOEXEC);
	}
	ehdr(b)->e_phoff = sizeof(Elf64_Ehdr);
	ehdr(b)->e_phnum = 0xffff;
	assert_int_equal(load(e, b, ELF_LEN), -ENOEXEC);
	ehdr(b)->e_phnum = 0;
	assert_int_equal(load(e, b, ELF_LEN), -ENOEXEC);
	ehdr(b)->e_phnum = 2;
	ehdr(b)->e_phentsize = sizeof(Elf64_Phdr) - 1;
	assert_int_equal(load(e, b, ELF_LEN), -ENOEXEC);
	ehdr(b)->e_phentsize = sizeof(Elf64_Phdr);
	assert_int_equal(load(e, b, ELF_LEN), 0);
	free(b);
}

static void test_elf_segment_out(void **state)
{
	struct env *e = *state;
	uint8_t *b = make_elf();
	Elf64_Phdr *ph = load_phdr(b);

	ph->p_offset = ELF_LEN;
	assert_int_equal(load(e, b, ELF_LEN), -ENOEXEC);
	ph->p_offset = ELF_LEN - SEG_FILESZ + 1;
	assert_int_equal(load(e, b, ELF_LEN), -ENOEXEC);
	ph->p_offset = 0xffffffffffffff00ULL;	/* offset + filesz wraps */
	assert_int_equal(load(e, b, ELF_LEN), -ENOEXEC);
	ph->p_offset = SEG_OFF;
	ph->p_filesz = SEG_MEMSZ + 1;	/* more file than memory */
	assert_int_equal(load(e, b, ELF_LEN), -ENOEXEC);
	ph->p_filesz = 0xffffffffffffffffULL;
	ph->p_memsz = 0xffffffffffffffffULL;
	assert_int_equal(load(e, b, ELF_LEN), -ENOEXEC);
	free(b);
}

static void test_elf_segment_no_room(void **state)
{
	struct env *e = *state;
	uint8_t *b = make_elf();
	Elf64_Phdr *ph = load_phdr(b);
	const uint64_t bad_paddr[] = {
		MEM_SIZE - SEG_MEMSZ + 1,	/* straddles the end */
		MEM_SIZE,
		0xfffffffffffff000ULL,		/* wraps */
		0x1000,				/* below 1 MiB: ours */
		0,
	};

	for (unsigned i = 0; i < sizeof(bad_paddr) / sizeof(bad_paddr[0]);
	     i++) {
		ph->p_paddr = bad_paddr[i];
		ehdr(b)->e_entry = bad_paddr[i];
		assert_int_equal(load(e, b, ELF_LEN), -ENOMEM);
	}
	ph->p_paddr = KERNEL_AT;
	ph->p_memsz = 0xffffffffffffffffULL;
	ehdr(b)->e_entry = ENTRY;
	assert_int_equal(load(e, b, ELF_LEN), -ENOMEM);
	/* Ending exactly at the end of memory fits. */
	ph->p_memsz = SEG_MEMSZ;
	ph->p_paddr = MEM_SIZE - SEG_MEMSZ;
	ehdr(b)->e_entry = ph->p_paddr;
	assert_int_equal(load(e, b, ELF_LEN), 0);
	assert_int_equal(e->k.end, MEM_SIZE);
	free(b);
}

static void test_elf_entry_out(void **state)
{
	struct env *e = *state;
	uint8_t *b = make_elf();
	const uint64_t bad_entry[] = {
		0, KERNEL_AT - 1,
		KERNEL_AT + SEG_FILESZ,	/* in bss: nothing loaded there */
		KERNEL_AT + SEG_MEMSZ,
		0xffffffff81000000ULL,	/* virtual */
	};

	for (unsigned i = 0; i < sizeof(bad_entry) / sizeof(bad_entry[0]);
	     i++) {
		ehdr(b)->e_entry = bad_entry[i];
		assert_int_equal(load(e, b, ELF_LEN), -ENOEXEC);
	}
	ehdr(b)->e_entry = KERNEL_AT;
	assert_int_equal(load(e, b, ELF_LEN), 0);
	ehdr(b)->e_entry = KERNEL_AT + SEG_FILESZ - 1;
	assert_int_equal(load(e, b, ELF_LEN), 0);
	free(b);
}

/* A bzImage: BZ_SETUP_SECTS setup sectors with the header, then the
 * protected-mode payload. Exactly BZ_LEN bytes. */
static uint8_t *make_bz(void)
{
	uint8_t *b = calloc(1, BZ_LEN);
	struct setup_header h = { 0 };

	assert_non_null(b);
	h.setup_sects = BZ_SETUP_SECTS;
	h.boot_flag = 0xaa55;
	h.jump = 0x6aeb;	/* jmp short 0x26c */
	h.header = 0x53726448;	/* "HdrS" */
	h.version = 0x020f;
	h.cmdline_size = 2047;
	h.initrd_addr_max = 0x7fffffff;
	h.kernel_alignment = 0x200000;
	h.relocatable_kernel = 1;
	h.xloadflags = XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G;
	h.pref_address = KERNEL_AT;
	h.init_size = BZ_INIT_SIZE;
	memcpy(b + 0x1f1, &h, sizeof(h));
	for (unsigned i = 0; i < BZ_PAYLOAD; i++)
		b[BZ_SETUP_LEN + i] = (uint8_t)(i * 3 + 1);
	return b;
}

static struct setup_header *bzhdr(uint8_t *b)
{
	return (struct setup_header *)(b + 0x1f1);
}

static void test_bz_ok(void **state)
{
	struct env *e = *state;
	uint8_t *b = make_bz();

	assert_int_equal(memcmp(b + 0x202, "HdrS", 4), 0);
	assert_int_equal(b[0x201], BZ_HDR_END - 0x202);
	assert_int_equal(load(e, b, BZ_LEN), 0);
	assert_int_equal(e->k.kind, BOOT_BZIMAGE);
	assert_int_equal(e->k.entry, KERNEL_AT + 0x200);
	assert_int_equal(e->k.end, KERNEL_AT + BZ_INIT_SIZE);
	assert_int_equal(e->k.initrd_max, 0x7fffffff);
	assert_int_equal(e->k.setup_hdr_len, BZ_HDR_END - 0x1f1);
	assert_memory_equal(e->k.setup_hdr, b + 0x1f1, BZ_HDR_END - 0x1f1);
	assert_memory_equal(e->m.host + KERNEL_AT, b + BZ_SETUP_LEN,
			    BZ_PAYLOAD);
	assert_int_equal(e->m.host[KERNEL_AT + BZ_PAYLOAD], 0xaa);
	free(b);
}

static void test_bz_setup_sects_zero(void **state)
{
	struct env *e = *state;
	uint8_t *b = make_bz();

	/* 0 means 4 (boot.rst): the payload starts at 5 * 512. */
	bzhdr(b)->setup_sects = 0;
	assert_int_equal(load(e, b, BZ_LEN), 0);
	assert_memory_equal(e->m.host + KERNEL_AT, b + 5 * 512,
			    BZ_LEN - 5 * 512);
	/* All setup, no payload. */
	bzhdr(b)->setup_sects = 9;
	assert_int_equal(load(e, b, BZ_LEN), -ENOEXEC);
	free(b);
}

static void test_bz_low_pref_address(void **state)
{
	struct env *e = *state;
	uint8_t *b = make_bz();

	bzhdr(b)->pref_address = 0x1000;
	assert_int_equal(load(e, b, BZ_LEN), 0);
	assert_int_equal(e->k.entry, BOOT_BZIMAGE_LOAD + 0x200);
	assert_memory_equal(e->m.host + BOOT_BZIMAGE_LOAD, b + BZ_SETUP_LEN,
			    BZ_PAYLOAD);
	free(b);
}

static void test_bz_rejected(void **state)
{
	struct env *e = *state;
	uint8_t *b = make_bz();

	bzhdr(b)->version = 0x020b;	/* before 2.12: no 64-bit entry */
	assert_int_equal(load(e, b, BZ_LEN), -ENOEXEC);
	bzhdr(b)->version = 0x020f;
	bzhdr(b)->xloadflags = XLF_CAN_BE_LOADED_ABOVE_4G;
	assert_int_equal(load(e, b, BZ_LEN), -ENOEXEC);
	bzhdr(b)->xloadflags = XLF_KERNEL_64;
	/* A header that claims to run past what we keep. */
	b[0x201] = 0xff;
	assert_int_equal(load(e, b, BZ_LEN), -ENOEXEC);
	b[0x201] = BZ_HDR_END - 0x202;
	assert_int_equal(load(e, b, BZ_LEN), 0);
	free(b);
}

static void test_bz_no_room(void **state)
{
	struct env *e = *state;
	uint8_t *b = make_bz();

	bzhdr(b)->init_size = MEM_SIZE;
	assert_int_equal(load(e, b, BZ_LEN), -ENOMEM);
	bzhdr(b)->init_size = BZ_INIT_SIZE;
	bzhdr(b)->pref_address = MEM_SIZE - BZ_PAYLOAD;
	assert_int_equal(load(e, b, BZ_LEN), -ENOMEM);
	bzhdr(b)->pref_address = 0xfffffffffffff000ULL;
	assert_int_equal(load(e, b, BZ_LEN), -ENOMEM);
	free(b);
}

/* Every truncation of a bzImage, each in a buffer of exactly that size:
 * rejected, and (under ASan) never read past. */
static void test_bz_truncated(void **state)
{
	struct env *e = *state;
	uint8_t *b = make_bz();

	for (size_t len = 0x206; len <= BZ_SETUP_LEN; len++) {
		uint8_t *t = malloc(len);

		assert_non_null(t);
		memcpy(t, b, len);
		assert_int_equal(load(e, t, len), -ENOEXEC);
		free(t);
	}
	free(b);
}

static struct boot_kernel fake_kernel(uint64_t end, uint64_t initrd_max)
{
	struct boot_kernel k = { .kind = BOOT_ELF, .entry = KERNEL_AT,
				 .end = end, .initrd_max = initrd_max };

	return k;
}

static void test_initrd(void **state)
{
	struct env *e = *state;
	uint8_t *b = make_elf();
	uint8_t rd[10000];
	uint64_t gpa = 0;

	for (unsigned i = 0; i < sizeof(rd); i++)
		rd[i] = (uint8_t)(i * 13);
	assert_int_equal(load(e, b, ELF_LEN), 0);
	assert_int_equal(boot_load_initrd(&e->m, &e->k, rd, sizeof(rd), &gpa),
			 0);
	assert_int_equal(gpa % 4096, 0);
	assert_true(gpa + sizeof(rd) <= MEM_SIZE);
	assert_true(gpa + sizeof(rd) + 4096 > MEM_SIZE);	/* at the top */
	assert_true(gpa >= e->k.end);
	assert_memory_equal(e->m.host + gpa, rd, sizeof(rd));
	free(b);
}

static void test_initrd_max(void **state)
{
	struct env *e = *state;
	struct boot_kernel k = fake_kernel(KERNEL_AT, 0x11fffff);
	uint8_t rd[0x1234];
	uint64_t gpa = 0;

	memset(rd, 0x42, sizeof(rd));
	assert_int_equal(boot_load_initrd(&e->m, &k, rd, sizeof(rd), &gpa), 0);
	assert_int_equal(gpa, 0x11fe000);
	assert_true(gpa + sizeof(rd) <= 0x1200000);
	assert_memory_equal(e->m.host + gpa, rd, sizeof(rd));
}

static void test_initrd_no_room(void **state)
{
	struct env *e = *state;
	struct boot_kernel k = fake_kernel(MEM_SIZE / 2, 0xffffffff);
	const size_t half = MEM_SIZE / 2;
	uint8_t *rd = calloc(1, half + 1);
	uint64_t gpa = 0;

	assert_non_null(rd);
	/* Exactly the room between the kernel and the top fits. */
	assert_int_equal(boot_load_initrd(&e->m, &k, rd, half, &gpa), 0);
	assert_int_equal(gpa, half);
	gpa = 1;
	assert_int_equal(boot_load_initrd(&e->m, &k, rd, half + 1, &gpa),
			 -ENOMEM);
	assert_int_equal(gpa, 1);
	/* initrd_max below the kernel's end. */
	k = fake_kernel(KERNEL_AT + 0x10000, KERNEL_AT + 0x8000);
	assert_int_equal(boot_load_initrd(&e->m, &k, rd, 16, &gpa), -ENOMEM);
	/* Larger than the space under initrd_max. */
	k = fake_kernel(BOOT_HIMEM_START, 0xfff);
	assert_int_equal(boot_load_initrd(&e->m, &k, rd, 0x1001, &gpa),
			 -ENOMEM);
	free(rd);
}

static struct boot_params *zero_page(struct env *e)
{
	return (struct boot_params *)(e->m.host + BOOT_ZERO_PAGE_ADDR);
}

static void check_e820(struct env *e, const struct boot_params *bp)
{
	struct boot_e820 map[8];
	int n = boot_e820_map(e->m.size, map, 8);

	assert_int_equal(n, 3);
	assert_int_equal(map[0].addr, 0);
	assert_int_equal(map[0].size, 0x9fc00);
	assert_int_equal(map[0].type, BOOT_E820_RAM);
	assert_int_equal(map[1].addr, 0x9fc00);
	assert_int_equal(map[1].size, 0x100000 - 0x9fc00);
	assert_int_equal(map[1].type, BOOT_E820_RESERVED);
	assert_int_equal(map[2].addr, 0x100000);
	assert_int_equal(map[2].size, e->m.size - 0x100000);
	assert_int_equal(map[2].type, BOOT_E820_RAM);
	assert_int_equal(bp->e820_entries, n);
	for (int i = 0; i < n; i++) {
		assert_int_equal(bp->e820_table[i].addr, map[i].addr);
		assert_int_equal(bp->e820_table[i].size, map[i].size);
		assert_int_equal(bp->e820_table[i].type, map[i].type);
	}
	assert_int_equal(bp->e820_table[n].size, 0);
	assert_int_equal(boot_e820_map(e->m.size, map, 2), 2);
	assert_int_equal(boot_e820_map(e->m.size, map, 0), 0);
}

static void test_params_elf(void **state)
{
	struct env *e = *state;
	uint8_t *b = make_elf();
	const char *cl = "console=hvc0 quiet";
	const struct boot_params *bp = zero_page(e);
	const char *dst = (const char *)e->m.host + BOOT_CMDLINE_ADDR;

	assert_int_equal(load(e, b, ELF_LEN), 0);
	assert_int_equal(boot_setup_params(&e->m, &e->k, cl, 0x1f00000,
					   0x12345),
			 0);
	assert_int_equal(bp->hdr.boot_flag, 0xaa55);
	assert_int_equal(bp->hdr.header, 0x53726448);
	assert_true(bp->hdr.version >= 0x020c);
	assert_int_equal(bp->hdr.type_of_loader, 0xff);
	assert_true(bp->hdr.loadflags & LOADED_HIGH);
	assert_int_equal(bp->hdr.cmd_line_ptr, BOOT_CMDLINE_ADDR);
	assert_int_equal(bp->ext_cmd_line_ptr, 0);
	assert_int_equal(bp->hdr.cmdline_size, strlen(cl));
	assert_string_equal(dst, cl);
	for (size_t i = strlen(cl); i < BOOT_CMDLINE_MAX; i++)
		assert_int_equal(dst[i], 0);
	assert_int_equal(bp->hdr.ramdisk_image, 0x1f00000);
	assert_int_equal(bp->hdr.ramdisk_size, 0x12345);
	assert_int_equal(bp->ext_ramdisk_image, 0);
	assert_int_equal(bp->ext_ramdisk_size, 0);
	/* Stale memory does not leak into the zero page. */
	assert_int_equal(bp->screen_info.orig_video_mode, 0);
	assert_int_equal(bp->hdr.setup_sects, 0);
	assert_int_equal(bp->sentinel, 0);
	check_e820(e, bp);
	free(b);
}

static void test_params_no_initrd(void **state)
{
	struct env *e = *state;
	const struct boot_kernel k = fake_kernel(KERNEL_AT + 0x1000,
						 0xffffffff);
	const struct boot_params *bp = zero_page(e);

	assert_int_equal(boot_setup_params(&e->m, &k, "", 0x1f00000, 0), 0);
	assert_int_equal(bp->hdr.ramdisk_image, 0);
	assert_int_equal(bp->hdr.ramdisk_size, 0);
	assert_int_equal(bp->hdr.cmdline_size, 0);
	assert_int_equal(e->m.host[BOOT_CMDLINE_ADDR], 0);
	/* An initrd above 4 GiB goes into the ext_ fields. */
	assert_int_equal(boot_setup_params(&e->m, &k, "x", 0x123456000ULL,
					   0x200000001ULL),
			 0);
	assert_int_equal(bp->hdr.ramdisk_image, 0x23456000);
	assert_int_equal(bp->ext_ramdisk_image, 1);
	assert_int_equal(bp->hdr.ramdisk_size, 1);
	assert_int_equal(bp->ext_ramdisk_size, 2);
}

static void test_params_bz(void **state)
{
	struct env *e = *state;
	uint8_t *b = make_bz();
	const struct boot_params *bp = zero_page(e);

	assert_int_equal(load(e, b, BZ_LEN), 0);
	assert_int_equal(boot_setup_params(&e->m, &e->k, "root=/dev/vda", 0,
					   0),
			 0);
	/* The kernel's own setup header, with our fields on top. */
	assert_int_equal(bp->hdr.setup_sects, BZ_SETUP_SECTS);
	assert_int_equal(bp->hdr.boot_flag, 0xaa55);
	assert_int_equal(bp->hdr.header, 0x53726448);
	assert_int_equal(bp->hdr.version, 0x020f);
	assert_int_equal(bp->hdr.xloadflags,
			 XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G);
	assert_int_equal(bp->hdr.pref_address, KERNEL_AT);
	assert_int_equal(bp->hdr.init_size, BZ_INIT_SIZE);
	assert_int_equal(bp->hdr.initrd_addr_max, 0x7fffffff);
	assert_int_equal(bp->hdr.type_of_loader, 0xff);
	assert_true(bp->hdr.loadflags & LOADED_HIGH);
	assert_int_equal(bp->hdr.cmd_line_ptr, BOOT_CMDLINE_ADDR);
	assert_string_equal((const char *)e->m.host + BOOT_CMDLINE_ADDR,
			    "root=/dev/vda");
	/* Past the header's end (0x26c), nothing from the image. */
	assert_int_equal(((const uint8_t *)bp)[BZ_HDR_END], 0);
	check_e820(e, bp);
	free(b);
}

static void test_params_cmdline_max(void **state)
{
	struct env *e = *state;
	const struct boot_kernel k = fake_kernel(KERNEL_AT, 0xffffffff);
	char *cl = malloc(BOOT_CMDLINE_MAX + 1);

	assert_non_null(cl);
	memset(cl, 'a', BOOT_CMDLINE_MAX);
	cl[BOOT_CMDLINE_MAX] = '\0';
	assert_int_equal(boot_setup_params(&e->m, &k, cl, 0, 0), -E2BIG);
	cl[BOOT_CMDLINE_MAX - 1] = '\0';	/* the longest that fits */
	assert_int_equal(boot_setup_params(&e->m, &k, cl, 0, 0), 0);
	assert_int_equal(zero_page(e)->hdr.cmdline_size, BOOT_CMDLINE_MAX - 1);
	assert_int_equal(e->m.host[BOOT_CMDLINE_ADDR + BOOT_CMDLINE_MAX - 1],
			 0);
	free(cl);
}

static void test_params_small_memory(void **state)
{
	struct env *e = *state;
	const struct boot_kernel k = fake_kernel(KERNEL_AT, 0xffffffff);
	struct gmem small = { .host = e->m.host, .size = BOOT_HIMEM_START };

	assert_int_equal(boot_setup_params(&small, &k, "", 0, 0), -ENOMEM);
	small.size = BOOT_CMDLINE_ADDR + 100;
	assert_int_equal(boot_setup_params(&small, &k, "", 0, 0), -ENOMEM);
}

static void test_longmode(void **state)
{
	struct env *e = *state;
	const uint64_t *gdt = (const uint64_t *)(e->m.host + BOOT_GDT_ADDR);
	const uint64_t *pml4 = (const uint64_t *)(e->m.host + BOOT_PML4_ADDR);
	const uint64_t *pdpt = (const uint64_t *)(e->m.host + BOOT_PDPT_ADDR);
	const uint64_t *pd = (const uint64_t *)(e->m.host + BOOT_PD_ADDR);

	assert_int_equal(boot_setup_longmode(&e->m), 0);
	assert_int_equal(gdt[0], 0);
	assert_int_equal(gdt[1], 0);
	/* __BOOT_CS: present, code, L=1; __BOOT_DS: present, data, G, D/B. */
	assert_int_equal(gdt[BOOT_CS / 8], 0x00af9b000000ffffULL);
	assert_int_equal(gdt[BOOT_DS / 8], 0x00cf93000000ffffULL);
	assert_int_equal(pml4[0], BOOT_PDPT_ADDR | 3);
	for (unsigned i = 1; i < 512; i++)
		assert_int_equal(pml4[i], 0);
	for (uint64_t i = 0; i < 4; i++)
		assert_int_equal(pdpt[i], (BOOT_PD_ADDR + i * 4096) | 3);
	for (unsigned i = 4; i < 512; i++)
		assert_int_equal(pdpt[i], 0);
	for (uint64_t i = 0; i < 4 * 512; i++)
		assert_int_equal(pd[i], (i << 21) | 0x83);
	/* The tables do not overlap the zero page, stack or command line. */
	assert_true(BOOT_ZERO_PAGE_ADDR + 4096 <= BOOT_STACK_ADDR);
	assert_true(BOOT_STACK_ADDR < BOOT_PML4_ADDR);
	assert_true(BOOT_PD_ADDR + 4 * 4096 <= BOOT_CMDLINE_ADDR);
}

static void test_longmode_small_memory(void **state)
{
	struct env *e = *state;
	struct gmem small = { .host = e->m.host, .size = BOOT_PD_ADDR + 4096 };

	assert_int_equal(boot_setup_longmode(&small), -ENOMEM);
	small.size = BOOT_PD_ADDR + 4 * 4096;
	assert_int_equal(boot_setup_longmode(&small), 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_elf_ok),
		T(test_not_a_kernel),
		T(test_elf_wrong_kind),
		T(test_elf_phdrs_out),
		T(test_elf_segment_out),
		T(test_elf_segment_no_room),
		T(test_elf_entry_out),
		T(test_bz_ok),
		T(test_bz_setup_sects_zero),
		T(test_bz_low_pref_address),
		T(test_bz_rejected),
		T(test_bz_no_room),
		T(test_bz_truncated),
		T(test_initrd),
		T(test_initrd_max),
		T(test_initrd_no_room),
		T(test_params_elf),
		T(test_params_no_initrd),
		T(test_params_bz),
		T(test_params_cmdline_max),
		T(test_params_small_memory),
		T(test_longmode),
		T(test_longmode_small_memory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
