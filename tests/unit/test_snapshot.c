/* A suspended VM on disk as hostile input: a valid image is read back
 * whole; truncated, padded, mislabelled and impossible ones are refused,
 * each with its own typed error, guest RAM untouched. The corrupt states
 * are written the way a compromised worker could: through the writer (or
 * by hand) with every hash recomputed, since the hashes are unkeyed. */
#include "vmm/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#define MEM (64ULL << 20)
#define NPAGES (MEM / SNAPSHOT_PAGE)
#define RING0 0x100000ULL
#define RING_STRIDE 0x4000ULL

struct env {
	char dir[64];
	uint8_t *mem;		/* the suspended guest's RAM */
	uint8_t *dst;		/* a fresh clone's, to resume into */
	struct vm_snapshot *snap, *got;
};

static void valid_state(struct vm_snapshot *s)
{
	memset(s, 0, sizeof(*s));
	s->mem_size = MEM;
	s->pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
	s->pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
	s->ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
	s->ioapic.chip.ioapic.base_address = 0xfec00000;
	for (int i = 0; i < 3; i++) {
		s->pit.channels[i].count = 0x10000;
		s->pit.channels[i].mode = i ? 0xff : 0;	/* as KVM leaves them */
	}
	/* As a booted guest's vCPU, idle (values from a real template). */
	s->cpu.mp.mp_state = KVM_MP_STATE_HALTED;
	s->cpu.regs.rflags = 0x246;
	s->cpu.sregs.cr0 = 0x80050033;
	s->cpu.sregs.cr3 = 0x614000;
	s->cpu.sregs.apic_base = 0xfee00900;
	s->cpu.xsave_size = sizeof(struct kvm_xsave);
	s->cpu.nmsrs = 3;
	s->cpu.msrs[0] = (struct kvm_msr_entry){ .index = 0x10, .data = 1 };
	s->cpu.msrs[1] = (struct kvm_msr_entry){ .index = 0x4b564d01,
						 .data = 0x1953001 };
	s->cpu.msrs[2] = (struct kvm_msr_entry){ .index = 0x4b564d03,
						 .data = 0x1836b41 };
	s->con.mmio.status = 0xf;
	s->con.mmio.drv_features = 1ULL << VIRTIO_F_VERSION_1 |
			      1ULL << VIRTIO_CONSOLE_F_SIZE |
			      1ULL << VIRTIO_CONSOLE_F_MULTIPORT;
	s->con.dev.device_ready = 1;
	for (unsigned i = 0; i < SNAPSHOT_NQUEUES; i++) {
		uint64_t base = RING0 + i * RING_STRIDE;

		s->con.vq[i] = (struct virtq_state){
			.desc = base, .avail = base + 0x1000,
			.used = base + 0x2000, .size = 256, .ready = 1,
			.last_avail = 7, .used_idx = 5,
		};
	}
	s->con.dev.port[0].used = s->con.dev.port[0].console = 1;
	s->con.dev.port[1].used = 1;
	strcpy(s->con.dev.port[1].name, "clone.agent");
	for (int i = 0; i < 2; i++)
		s->con.dev.port[i].guest_ready = s->con.dev.port[i].guest_open = 1;
}

static const uint64_t pages[] = { 0, 1, 200, NPAGES - 1 };
#define NP (sizeof(pages) / sizeof(pages[0]))

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	assert_int_equal(sodium_init() >= 0, 1);
	strcpy(e->dir, "/tmp/test_snapshot.XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	e->mem = mmap(NULL, MEM, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	e->dst = mmap(NULL, MEM, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(e->mem != MAP_FAILED && e->dst != MAP_FAILED);
	for (size_t i = 0; i < NP; i++)
		memset(e->mem + pages[i] * SNAPSHOT_PAGE, 0x41 + (int)i,
		       SNAPSHOT_PAGE);
	e->snap = calloc(1, sizeof(*e->snap));
	e->got = calloc(1, sizeof(*e->got));
	assert_true(e->snap && e->got);
	valid_state(e->snap);
	*state = e;
	return 0;
}

static void unlink_in(const struct env *e, const char *name)
{
	char p[128];

	snprintf(p, sizeof(p), "%s/%s", e->dir, name);
	unlink(p);
}

static int teardown(void **state)
{
	struct env *e = *state;

	unlink_in(e, "state");
	unlink_in(e, "pages");
	rmdir(e->dir);
	munmap(e->mem, MEM);
	munmap(e->dst, MEM);
	free(e->snap);
	free(e->got);
	free(e);
	return 0;
}

static void put(const struct env *e)
{
	assert_int_equal(snapshot_write_pages(e->dir, e->snap, e->mem, pages,
					      NP), 0);
}

/* Read the image back through the worker's path (snapshot_read_pages),
 * and through the typed one; both must agree. */
static enum snapshot_err load(struct env *e, int *ret)
{
	char err[256] = "", err2[256] = "", p[128];
	enum snapshot_err why = SNAPSHOT_OK;
	int r, r2, sfd, pfd;

	r = snapshot_read_pages(e->dir, e->got, e->dst, MEM, err, sizeof(err));
	snprintf(p, sizeof(p), "%s/state", e->dir);
	sfd = open(p, O_RDONLY);
	snprintf(p, sizeof(p), "%s/pages", e->dir);
	pfd = open(p, O_RDONLY);
	r2 = snapshot_read_pages_fd(sfd, pfd, e->got, e->dst, MEM, &why, err2,
				    sizeof(err2));
	if (sfd >= 0)
		close(sfd);
	if (pfd >= 0)
		close(pfd);
	assert_int_equal(r, r2);
	if (r < 0) {
		/* The line the worker sends back names the fault. */
		assert_non_null(strstr(err, snapshot_strerror(why)));
		assert_null(strchr(err, '\n'));
	}
	if (ret)
		*ret = r;
	return why;
}

/* Nothing of a refused image reaches the new clone's RAM. */
static void assert_dst_untouched(const struct env *e)
{
	for (size_t i = 0; i < NP; i++)
		assert_int_equal(e->dst[pages[i] * SNAPSHOT_PAGE], 0);
}

static void test_valid_roundtrip(void **state)
{
	struct env *e = *state;
	int r;

	put(e);
	assert_int_equal(load(e, &r), SNAPSHOT_OK);
	assert_int_equal(r, 0);
	assert_memory_equal(e->got, e->snap, sizeof(*e->snap));
	for (size_t i = 0; i < NP; i++)
		assert_memory_equal(e->dst + pages[i] * SNAPSHOT_PAGE,
				    e->mem + pages[i] * SNAPSHOT_PAGE,
				    SNAPSHOT_PAGE);
	assert_int_equal(e->dst[2 * SNAPSHOT_PAGE], 0);
}

/* ---- the files: lengths, counts, indices, hashes ------------------------ */

static void *slurp(const struct env *e, const char *name, size_t *len)
{
	char p[128];
	struct stat st;
	uint8_t *buf;
	int fd;

	snprintf(p, sizeof(p), "%s/%s", e->dir, name);
	fd = open(p, O_RDONLY);
	assert_true(fd >= 0 && fstat(fd, &st) == 0);
	*len = (size_t)st.st_size;
	buf = malloc(*len + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, *len), (ssize_t)*len);
	close(fd);
	return buf;
}

static void spit(const struct env *e, const char *name, const void *buf,
		 size_t len)
{
	char p[128];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", e->dir, name);
	fd = open(p, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

/* As an attacker would after editing the pages file: its hash over what
 * is there (indices and pages after the header), into its header and the
 * state's. */
static void rehash_pages(const struct env *e)
{
	size_t len, slen;
	uint8_t *p = slurp(e, "pages", &len), *s = slurp(e, "state", &slen);
	struct snapshot_pages_header *ph = (void *)p;
	struct snapshot_header *sh = (void *)s;

	crypto_generichash(ph->hash, SNAPSHOT_HASH_LEN, p + sizeof(*ph),
			   len - sizeof(*ph), NULL, 0);
	memcpy(sh->mem_hash, ph->hash, SNAPSHOT_HASH_LEN);
	spit(e, "pages", p, len);
	spit(e, "state", s, slen);
	free(p);
	free(s);
}

static void truncate_to(const struct env *e, const char *name, off_t len)
{
	char p[128];

	snprintf(p, sizeof(p), "%s/%s", e->dir, name);
	assert_int_equal(truncate(p, len), 0);
}

static void test_truncated_state(void **state)
{
	struct env *e = *state;

	put(e);
	truncate_to(e, "state", 40);
	assert_int_equal(load(e, NULL), SNAPSHOT_E_LENGTH);
	put(e);
	truncate_to(e, "state", sizeof(struct snapshot_header) + 100);
	assert_int_equal(load(e, NULL), SNAPSHOT_E_LENGTH);
	put(e);
	truncate_to(e, "state", sizeof(struct snapshot_header) +
				    sizeof(struct vm_snapshot) + 1);
	assert_int_equal(load(e, NULL), SNAPSHOT_E_LENGTH);
	assert_dst_untouched(e);
}

static void test_truncated_or_padded_pages(void **state)
{
	struct env *e = *state;
	off_t full = sizeof(struct snapshot_pages_header) +
		     NP * (8 + SNAPSHOT_PAGE);

	put(e);
	truncate_to(e, "pages", 10);
	assert_int_equal(load(e, NULL), SNAPSHOT_E_LENGTH);
	put(e);
	truncate_to(e, "pages", full - 1);
	rehash_pages(e);
	assert_int_equal(load(e, NULL), SNAPSHOT_E_LENGTH);
	put(e);
	truncate_to(e, "pages", full + SNAPSHOT_PAGE);
	rehash_pages(e);
	assert_int_equal(load(e, NULL), SNAPSHOT_E_LENGTH);
	assert_dst_untouched(e);
}

static void set_count(const struct env *e, uint64_t count)
{
	size_t len;
	uint8_t *p = slurp(e, "pages", &len);

	((struct snapshot_pages_header *)p)->count = count;
	spit(e, "pages", p, len);
	free(p);
}

/* A count the file does not hold is refused before anything is sized by
 * it: a count of all of RAM in a file of four pages allocates nothing. */
static void test_huge_counts(void **state)
{
	struct env *e = *state;

	put(e);
	set_count(e, 1ULL << 60);
	rehash_pages(e);
	assert_int_equal(load(e, NULL), SNAPSHOT_E_PAGE_COUNT);
	set_count(e, NPAGES + 1);
	assert_int_equal(load(e, NULL), SNAPSHOT_E_PAGE_COUNT);
	set_count(e, NPAGES);
	assert_int_equal(load(e, NULL), SNAPSHOT_E_LENGTH);
	assert_dst_untouched(e);
}

static void set_index(const struct env *e, size_t i, uint64_t page)
{
	size_t len;
	uint8_t *p = slurp(e, "pages", &len);

	memcpy(p + sizeof(struct snapshot_pages_header) + i * 8, &page, 8);
	spit(e, "pages", p, len);
	free(p);
	rehash_pages(e);
}

static void test_page_beyond_ram(void **state)
{
	struct env *e = *state;

	put(e);
	set_index(e, NP - 1, NPAGES);
	assert_int_equal(load(e, NULL), SNAPSHOT_E_PAGE_INDEX);
	set_index(e, NP - 1, UINT64_MAX / SNAPSHOT_PAGE + 2);	/* wraps */
	assert_int_equal(load(e, NULL), SNAPSHOT_E_PAGE_INDEX);
	assert_dst_untouched(e);
}

static void test_duplicate_and_unordered_pages(void **state)
{
	struct env *e = *state;

	put(e);
	set_index(e, 2, pages[1]);
	assert_int_equal(load(e, NULL), SNAPSHOT_E_PAGE_ORDER);
	set_index(e, 2, pages[3]);
	set_index(e, 3, pages[2]);
	assert_int_equal(load(e, NULL), SNAPSHOT_E_PAGE_ORDER);
	assert_dst_untouched(e);
	/* The writer refuses to write what the reader would refuse. */
	uint64_t dup[] = { 3, 3 };
	assert_int_equal(snapshot_write_pages(e->dir, e->snap, e->mem, dup, 2),
			 -EINVAL);
}

static void test_magic_version_hash(void **state)
{
	struct env *e = *state;
	size_t len;
	uint8_t *s;
	int r;

	put(e);
	s = slurp(e, "state", &len);
	s[0] ^= 1;
	spit(e, "state", s, len);
	assert_int_equal(load(e, NULL), SNAPSHOT_E_MAGIC);
	s[0] ^= 1;
	((struct snapshot_header *)s)->version++;
	spit(e, "state", s, len);
	assert_int_equal(load(e, &r), SNAPSHOT_E_VERSION);
	assert_int_equal(r, -ESTALE);
	((struct snapshot_header *)s)->version--;
	s[len - 1] ^= 1;	/* a body byte, hash not redone */
	spit(e, "state", s, len);
	assert_int_equal(load(e, &r), SNAPSHOT_E_HASH);
	assert_int_equal(r, -EBADMSG);
	free(s);

	put(e);
	s = slurp(e, "pages", &len);
	s[len - 1] ^= 1;	/* a page byte */
	spit(e, "pages", s, len);
	assert_int_equal(load(e, NULL), SNAPSHOT_E_HASH);
	free(s);
	assert_dst_untouched(e);
}

static void test_pages_of_another_state(void **state)
{
	struct env *e = *state;
	size_t len;
	uint8_t *p;

	put(e);
	p = slurp(e, "pages", &len);
	e->mem[pages[0] * SNAPSHOT_PAGE] ^= 0xff;
	put(e);
	spit(e, "pages", p, len);	/* the older pages, whole and hashed */
	free(p);
	assert_int_equal(load(e, NULL), SNAPSHOT_E_HASH);
	assert_dst_untouched(e);
}

static void test_memory_size(void **state)
{
	struct env *e = *state;
	int r;

	e->snap->mem_size = MEM * 2;	/* not this template's */
	put(e);
	assert_int_equal(load(e, NULL), SNAPSHOT_E_MEM_SIZE);
	e->snap->mem_size = MEM;
	put(e);
	r = snapshot_read_pages(e->dir, e->got, e->dst, MEM / 2, (char[64]){ 0 },
				64);
	assert_int_equal(r, -EBADMSG);
	assert_dst_untouched(e);
}

/* A FIFO would block the resume forever, a link could point anywhere. */
static void test_not_regular_files(void **state)
{
	struct env *e = *state;
	char p[128], err[256];

	put(e);
	unlink_in(e, "state");
	snprintf(p, sizeof(p), "%s/state", e->dir);
	assert_int_equal(mkfifo(p, 0600), 0);
	assert_int_equal(snapshot_read_pages(e->dir, e->got, e->dst, MEM, err,
					     sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "not a regular file"));
	unlink(p);
	assert_int_equal(symlink("pages", p), 0);
	assert_int_equal(snapshot_read_pages(e->dir, e->got, e->dst, MEM, err,
					     sizeof(err)), -ELOOP);
	unlink(p);
	assert_int_equal(snapshot_read_pages(e->dir, e->got, e->dst, MEM, err,
					     sizeof(err)), -ENOENT);
	assert_dst_untouched(e);
}

/* ---- the state: each field the VMM or KVM would act on ------------------ */

struct bad_state {
	const char *what;
	void (*corrupt)(struct vm_snapshot *s);
	enum snapshot_err want;
};

/* name, the corruption (s is the state), the error it must get. */
#define BAD_STATES(X)							\
	X(kvm_flavour, s->pvm = 2, SNAPSHOT_E_KVM)			\
	X(pic_as_ioapic, s->pic_master.chip_id = KVM_IRQCHIP_IOAPIC,	\
	  SNAPSHOT_E_IRQCHIP)						\
	X(pic_mode, s->pic_slave.chip.pic.init_state = 9,		\
	  SNAPSHOT_E_IRQCHIP)						\
	X(ioapic_moved, s->ioapic.chip.ioapic.base_address = 0x1000,	\
	  SNAPSHOT_E_IRQCHIP)						\
	X(pit_mode, s->pit.channels[0].mode = 9, SNAPSHOT_E_PIT)	\
	X(pit_count, s->pit.channels[2].count = 0x10001, SNAPSHOT_E_PIT) \
	X(pit_flags, s->pit.flags = 0x80, SNAPSHOT_E_PIT)		\
	X(mp_state, s->cpu.mp.mp_state = 77, SNAPSHOT_E_CPU)		\
	X(rflags_reserved, s->cpu.regs.rflags = 1ULL << 40, SNAPSHOT_E_CPU) \
	X(page_tables_beyond_ram, s->cpu.sregs.cr3 = MEM, SNAPSHOT_E_CPU) \
	X(apic_moved, s->cpu.sregs.apic_base = 0x1900, SNAPSHOT_E_CPU)	\
	X(exception_vector, s->cpu.events.exception.nr = 200,		\
	  SNAPSHOT_E_CPU)						\
	X(nmsrs_huge, s->cpu.nmsrs = 100000, SNAPSHOT_E_MSR)		\
	X(msr_twice, s->cpu.msrs[2].index = 0x10, SNAPSHOT_E_MSR)	\
	X(kvmclock_beyond_ram, s->cpu.msrs[1].data = MEM - 16 + 1,	\
	  SNAPSHOT_E_MSR_ADDR)						\
	X(steal_time_wraps, s->cpu.msrs[2].data = ~0ULL,		\
	  SNAPSHOT_E_MSR_ADDR)						\
	X(xsave_huge, s->cpu.xsave_size = 1 << 20, SNAPSHOT_E_XSAVE)	\
	X(xsave_small, s->cpu.xsave_size = 16, SNAPSHOT_E_XSAVE)	\
	X(status_bits, s->con.mmio.status |= 0x10, SNAPSHOT_E_DEVICE)	\
	X(driver_ok_alone, s->con.mmio.status = 0x7, SNAPSHOT_E_DEVICE)	\
	X(features_not_offered, s->con.mmio.drv_features |= 1ULL << 28,	\
	  SNAPSHOT_E_DEVICE)						\
	X(interrupt_status, s->con.mmio.int_status = 0x80, SNAPSHOT_E_DEVICE) \
	X(device_ready_flag, s->con.dev.device_ready = 3, SNAPSHOT_E_DEVICE) \
	X(queue_size_odd, s->con.vq[3].size = 3, SNAPSHOT_E_QUEUE_SIZE)	\
	X(queue_size_zero, s->con.vq[0].size = 0, SNAPSHOT_E_QUEUE_SIZE) \
	X(queue_size_huge, s->con.vq[7].size = 32768,			\
	  SNAPSHOT_E_QUEUE_SIZE)					\
	X(queue_ready_flag, s->con.vq[1].ready = 2, SNAPSHOT_E_QUEUE_SIZE) \
	X(queue_idle_huge, (s->con.vq[9].ready = 0,			\
			    s->con.vq[9].size = 4096),			\
	  SNAPSHOT_E_QUEUE_SIZE)					\
	X(desc_beyond_ram, s->con.vq[2].desc = MEM - 4080,		\
	  SNAPSHOT_E_QUEUE_ADDR)					\
	X(used_wraps, s->con.vq[4].used = ~0ULL - 3, SNAPSHOT_E_QUEUE_ADDR) \
	X(avail_misaligned, s->con.vq[6].avail += 1,			\
	  SNAPSHOT_E_QUEUE_ADDR)					\
	X(too_many_in_flight, s->con.vq[8].last_avail = 300,		\
	  SNAPSHOT_E_QUEUE_IDX)						\
	X(given_back_more, s->con.vq[8].used_idx = 9,			\
	  SNAPSHOT_E_QUEUE_IDX)						\
	X(port_flag, s->con.dev.port[1].guest_open = 5, SNAPSHOT_E_PORT)	\
	X(port_name_unterminated, memset(s->con.dev.port[1].name, 'x',	\
					 VCON_NAME_MAX),		\
	  SNAPSHOT_E_PORT)						\
	X(absent_port_open, s->con.dev.port[9].guest_open = 1,		\
	  SNAPSHOT_E_PORT)

#define CORRUPT_FN(name, stmt, err) \
	static void corrupt_##name(struct vm_snapshot *s) { stmt; }
#define CORRUPT_ROW(name, stmt, err) { #name, corrupt_##name, err },
BAD_STATES(CORRUPT_FN)
static const struct bad_state bad_states[] = { BAD_STATES(CORRUPT_ROW) };

static void test_impossible_states(void **state)
{
	struct env *e = *state;

	for (size_t i = 0; i < sizeof(bad_states) / sizeof(bad_states[0]);
	     i++) {
		enum snapshot_err got;

		valid_state(e->snap);
		bad_states[i].corrupt(e->snap);
		put(e);		/* hashes all valid, as a worker writes them */
		got = load(e, NULL);
		if (got != bad_states[i].want)
			fail_msg("%s: %s, not %s", bad_states[i].what,
				 snapshot_strerror(got),
				 snapshot_strerror(bad_states[i].want));
		assert_dst_untouched(e);
	}
}

/* The template shares the reader: an impossible template state is
 * refused too (template_open then rebuilds it). */
static void test_template_reader(void **state)
{
	struct env *e = *state;
	char err[256] = "";
	int fd = -1;

	valid_state(e->snap);
	assert_int_equal(snapshot_write(e->dir, e->snap, e->mem), 0);
	assert_int_equal(snapshot_read(e->dir, e->got, &fd, err, sizeof(err)),
			 0);
	assert_true(fd >= 0);
	close(fd);
	e->snap->con.vq[5].used = MEM - 8;
	assert_int_equal(snapshot_write(e->dir, e->snap, e->mem), 0);
	assert_int_equal(snapshot_read(e->dir, e->got, &fd, err, sizeof(err)),
			 -EBADMSG);
	assert_int_equal(fd, -1);
	assert_non_null(strstr(err, "queue 5"));
	unlink_in(e, "memory");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_valid_roundtrip, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_truncated_state, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_truncated_or_padded_pages,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_huge_counts, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_page_beyond_ram, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_duplicate_and_unordered_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_magic_version_hash, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pages_of_another_state,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_memory_size, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_not_regular_files, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_impossible_states, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_template_reader, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
