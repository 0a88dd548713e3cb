/* libFuzzer harness: the suspended-VM reader (vmm/snapshot.c and
 * vmm/snapshot_check.c) on arbitrary files, as a compromised worker could
 * leave them for the next one.
 *
 * The input: a flags byte, a u32 length n (little-endian), n bytes of the
 * state file, and the rest as the pages file. Both go into memfds and
 * through snapshot_read_pages_fd into a 256 MiB guest RAM (the size of the
 * test template, which the seeds come from). The hashes are unkeyed, so
 * an attacker recomputes them; the fuzzer cannot, so the flags do it for
 * it and the checks behind the hashes are reached:
 *   bit 0: the state's body hash is made to match its body;
 *   bit 1: the pages hash (in both files) is made to match the pages file.
 *
 * A read that succeeds must leave a state snapshot_check accepts; one
 * that fails must say why in one line and leave guest RAM untouched (a
 * canary page shows it). ASan and UBSan watch every access. */
#include <errno.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/fuzz/fuzz_input.h"
#include "vmm/snapshot.h"

#define MEM_SIZE (256ULL << 20)
#define CANARY 0x5a

static uint8_t *mem;
static struct vm_snapshot snap;

static int memfd_with(const uint8_t *p, size_t n)
{
	int fd = memfd_create("fuzz_snapshot", MFD_CLOEXEC);

	if (fd < 0)
		abort();
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w <= 0)
			abort();
		p += w;
		n -= (size_t)w;
	}
	return fd;
}

/* Fix up the hashes as a worker writing the files would. */
static void fix_hashes(uint8_t flags, uint8_t *st, size_t stlen, uint8_t *pg,
		       size_t pglen)
{
	struct snapshot_header *h = (void *)st;
	struct snapshot_pages_header *ph = (void *)pg;

	if ((flags & 2) && pglen >= sizeof(*ph)) {
		crypto_generichash(ph->hash, SNAPSHOT_HASH_LEN,
				   pg + sizeof(*ph), pglen - sizeof(*ph), NULL,
				   0);
		if (stlen >= sizeof(*h))
			memcpy(h->mem_hash, ph->hash, SNAPSHOT_HASH_LEN);
	}
	if ((flags & 1) && stlen >= sizeof(*h))
		crypto_generichash(h->body_hash, SNAPSHOT_HASH_LEN,
				   st + sizeof(*h), stlen - sizeof(*h), NULL,
				   0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fin in = { data, size };
	const uint8_t *p;
	uint8_t flags, *st, *pg;
	size_t stlen, pglen;
	enum snapshot_err why;
	char err[256];
	int sfd, pfd, r;

	if (!mem) {
		if (sodium_init() < 0)
			abort();
		mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (mem == MAP_FAILED)
			abort();
	}
	flags = fin_u8(&in);
	stlen = fin_bytes(&in, fin_u32(&in), &p);
	st = malloc(stlen + 1);
	if (!st)
		abort();
	memcpy(st, p, stlen);
	pglen = fin_bytes(&in, fin_left(&in), &p);
	pg = malloc(pglen + 1);
	if (!pg)
		abort();
	memcpy(pg, p, pglen);
	fix_hashes(flags, st, stlen, pg, pglen);
	sfd = memfd_with(st, stlen);
	pfd = memfd_with(pg, pglen);

	mem[MEM_SIZE - 1] = CANARY;
	err[0] = 0;
	r = snapshot_read_pages_fd(sfd, pfd, &snap, mem, MEM_SIZE, &why, err,
				   sizeof(err));
	if (r == 0) {
		if (why != SNAPSHOT_OK ||
		    snapshot_check(&snap, MEM_SIZE, err, sizeof(err)) !=
			    SNAPSHOT_OK)
			abort();
		/* Give back what the input laid over RAM: RSS stays small. */
		madvise(mem, MEM_SIZE, MADV_DONTNEED);
	} else {
		if (why == SNAPSHOT_OK || !err[0] || strchr(err, '\n') ||
		    (r != -EBADMSG && r != -ESTALE && r != -ENOMEM &&
		     r != -EIO))
			abort();
		if (mem[MEM_SIZE - 1] != CANARY)
			abort();	/* a refused image wrote guest RAM */
	}
	close(sfd);
	close(pfd);
	free(st);
	free(pg);
	return 0;
}
