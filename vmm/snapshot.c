#include "vmm/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "CLONESNP"
#define PAGE 4096

struct snap_header {
	char magic[8];
	uint32_t version;
	uint32_t body_len;
	uint64_t mem_size;
	uint8_t mem_hash[SNAPSHOT_HASH_LEN];
	uint8_t body_hash[SNAPSHOT_HASH_LEN];
};

static bool zero_page(const uint8_t *p)
{
	static const uint8_t zero[PAGE];

	return memcmp(p, zero, PAGE) == 0;
}

static int write_all(int fd, const void *buf, size_t len, off_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Guest RAM with its all-zero pages left as holes: a freshly booted guest
 * has touched a few tens of MiB of its RAM. */
static int write_memory(int fd, const uint8_t *mem, uint64_t size,
			uint8_t hash[SNAPSHOT_HASH_LEN])
{
	crypto_generichash_state h;
	uint64_t run = 0, start = 0;
	int r;

	crypto_generichash_init(&h, NULL, 0, SNAPSHOT_HASH_LEN);
	crypto_generichash_update(&h, mem, size);
	crypto_generichash_final(&h, hash, SNAPSHOT_HASH_LEN);
	if (ftruncate(fd, (off_t)size) < 0)
		return -errno;
	for (uint64_t off = 0; off <= size; off += PAGE) {
		if (off < size && !zero_page(mem + off)) {
			if (!run)
				start = off;
			run += PAGE;
			continue;
		}
		if (run) {
			r = write_all(fd, mem + start, run, (off_t)start);
			if (r < 0)
				return r;
			run = 0;
		}
	}
	return 0;
}

static int sync_close(int fd)
{
	int r = fsync(fd) < 0 ? -errno : 0;

	close(fd);
	return r;
}

/* dir/state, atomically: the header (mem_hash already set) and snap. Its
 * presence marks a complete snapshot, so it is written last. */
static int write_state(const char *dir, struct snap_header *hdr,
		       const struct vm_snapshot *snap)
{
	char tmp[4096], path[4096];
	int fd, r;

	memcpy(hdr->magic, MAGIC, sizeof(hdr->magic));
	hdr->version = SNAPSHOT_VERSION;
	hdr->body_len = sizeof(*snap);
	hdr->mem_size = snap->mem_size;
	crypto_generichash(hdr->body_hash, SNAPSHOT_HASH_LEN,
			   (const uint8_t *)snap, sizeof(*snap), NULL, 0);
	snprintf(tmp, sizeof(tmp), "%s/state.tmp", dir);
	snprintf(path, sizeof(path), "%s/state", dir);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	r = write_all(fd, hdr, sizeof(*hdr), 0);
	if (r == 0)
		r = write_all(fd, snap, sizeof(*snap), sizeof(*hdr));
	if (r == 0)
		r = sync_close(fd);
	else
		close(fd);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

int snapshot_write(const char *dir, const struct vm_snapshot *snap,
		   const uint8_t *mem)
{
	char tmp[4096], path[4096];
	struct snap_header hdr = { 0 };
	int fd, dfd, r;

	snprintf(tmp, sizeof(tmp), "%s/memory.tmp", dir);
	snprintf(path, sizeof(path), "%s/state", dir);
	unlink(path);		/* no state, no snapshot, until we are done */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	r = write_memory(fd, mem, snap->mem_size, hdr.mem_hash);
	if (r == 0)
		r = sync_close(fd);
	else
		close(fd);
	snprintf(path, sizeof(path), "%s/memory", dir);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	r = write_state(dir, &hdr, snap);
	if (r < 0)
		return r;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return r;
}

int snapshot_read(const char *dir, struct vm_snapshot *snap, int *mem_fd,
		  char *err, size_t errlen)
{
	char path[4096];
	struct snap_header hdr;
	uint8_t hash[SNAPSHOT_HASH_LEN];
	struct stat st;
	void *m;
	ssize_t n;
	int fd, r;

	*mem_fd = -1;
	snprintf(path, sizeof(path), "%s/state", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, errlen, -errno, "%s: %s", path,
			    strerror(errno));
	n = pread(fd, &hdr, sizeof(hdr), 0);
	if (n != (ssize_t)sizeof(hdr) || memcmp(hdr.magic, MAGIC, 8) != 0) {
		close(fd);
		return fail(err, errlen, -EBADMSG, "%s: not a snapshot", path);
	}
	if (hdr.version != SNAPSHOT_VERSION || hdr.body_len != sizeof(*snap)) {
		close(fd);
		return fail(err, errlen, -ESTALE, "%s: format %u/%u bytes, this "
			    "VMM writes %u/%zu", path, hdr.version,
			    hdr.body_len, SNAPSHOT_VERSION, sizeof(*snap));
	}
	n = pread(fd, snap, sizeof(*snap), sizeof(hdr));
	close(fd);
	crypto_generichash(hash, sizeof(hash), (const uint8_t *)snap,
			   sizeof(*snap), NULL, 0);
	if (n != (ssize_t)sizeof(*snap) ||
	    sodium_memcmp(hash, hdr.body_hash, sizeof(hash)) != 0 ||
	    snap->mem_size != hdr.mem_size)
		return fail(err, errlen, -EBADMSG, "%s: checksum mismatch",
			    path);

	snprintf(path, sizeof(path), "%s/memory", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, errlen, -errno, "%s: %s", path,
			    strerror(errno));
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != hdr.mem_size) {
		close(fd);
		return fail(err, errlen, -EBADMSG, "%s: size is not %llu", path,
			    (unsigned long long)hdr.mem_size);
	}
	m = mmap(NULL, hdr.mem_size, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		r = -errno;
		close(fd);
		return fail(err, errlen, r, "%s: mmap: %s", path,
			    strerror(-r));
	}
	crypto_generichash(hash, sizeof(hash), m, hdr.mem_size, NULL, 0);
	munmap(m, hdr.mem_size);
	if (sodium_memcmp(hash, hdr.mem_hash, sizeof(hash)) != 0) {
		close(fd);
		return fail(err, errlen, -EBADMSG, "%s: checksum mismatch",
			    path);
	}
	*mem_fd = fd;
	return 0;
}

/* ---- a suspended clone: its private pages over the template ------------ */

#define PAGES_MAGIC "CLONEPGS"

struct pages_header {
	char magic[8];
	uint32_t version;
	uint32_t pad;
	uint64_t count;
	uint64_t mem_size;
	uint8_t hash[SNAPSHOT_HASH_LEN];	/* indices, then pages */
};

int snapshot_write_pages(const char *dir, const struct vm_snapshot *snap,
			 const uint8_t *mem, const uint64_t *idx, size_t n)
{
	char tmp[4096], path[4096];
	struct pages_header ph = { .version = SNAPSHOT_VERSION, .count = n,
				   .mem_size = snap->mem_size };
	struct snap_header hdr = { 0 };
	crypto_generichash_state h;
	off_t off;
	int fd, r;

	memcpy(ph.magic, PAGES_MAGIC, 8);
	for (size_t i = 0; i < n; i++)
		if (idx[i] >= snap->mem_size / PAGE)
			return -EINVAL;
	crypto_generichash_init(&h, NULL, 0, SNAPSHOT_HASH_LEN);
	crypto_generichash_update(&h, (const uint8_t *)idx, n * sizeof(*idx));
	for (size_t i = 0; i < n; i++)
		crypto_generichash_update(&h, mem + idx[i] * PAGE, PAGE);
	crypto_generichash_final(&h, ph.hash, SNAPSHOT_HASH_LEN);

	snprintf(tmp, sizeof(tmp), "%s/pages.tmp", dir);
	snprintf(path, sizeof(path), "%s/pages", dir);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	r = write_all(fd, &ph, sizeof(ph), 0);
	if (r == 0)
		r = write_all(fd, idx, n * sizeof(*idx), sizeof(ph));
	off = (off_t)(sizeof(ph) + n * sizeof(*idx));
	for (size_t i = 0; i < n && r == 0; i++, off += PAGE)
		r = write_all(fd, mem + idx[i] * PAGE, PAGE, off);
	if (r == 0)
		r = sync_close(fd);
	else
		close(fd);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	/* The state names the pages file by its hash. */
	memcpy(hdr.mem_hash, ph.hash, SNAPSHOT_HASH_LEN);
	return write_state(dir, &hdr, snap);
}

int snapshot_read_pages(const char *dir, struct vm_snapshot *snap,
			uint8_t *mem, uint64_t mem_size, char *err,
			size_t errlen)
{
	char path[4096];
	struct snap_header hdr;
	struct pages_header ph;
	uint8_t hash[SNAPSHOT_HASH_LEN];
	crypto_generichash_state h;
	uint64_t *idx = NULL;
	uint8_t *data = NULL;
	ssize_t n;
	int fd, r = -EBADMSG;

	snprintf(path, sizeof(path), "%s/state", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, errlen, -errno, "%s: %s", path,
			    strerror(errno));
	n = pread(fd, &hdr, sizeof(hdr), 0);
	if (n == (ssize_t)sizeof(hdr))
		n = pread(fd, snap, sizeof(*snap), sizeof(hdr));
	close(fd);
	crypto_generichash(hash, sizeof(hash), (const uint8_t *)snap,
			   sizeof(*snap), NULL, 0);
	if (n != (ssize_t)sizeof(*snap) || memcmp(hdr.magic, MAGIC, 8) ||
	    hdr.version != SNAPSHOT_VERSION || hdr.body_len != sizeof(*snap) ||
	    sodium_memcmp(hash, hdr.body_hash, sizeof(hash)) != 0 ||
	    snap->mem_size != mem_size)
		return fail(err, errlen, -EBADMSG, "%s: not a valid suspended "
			    "VM state", path);

	snprintf(path, sizeof(path), "%s/pages", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, errlen, -errno, "%s: %s", path,
			    strerror(errno));
	if (pread(fd, &ph, sizeof(ph), 0) != (ssize_t)sizeof(ph) ||
	    memcmp(ph.magic, PAGES_MAGIC, 8) || ph.mem_size != mem_size ||
	    ph.count > mem_size / PAGE ||
	    sodium_memcmp(ph.hash, hdr.mem_hash, sizeof(hash)) != 0)
		goto bad;
	idx = malloc(ph.count * sizeof(*idx) + 1);
	data = malloc(ph.count * PAGE + 1);
	if (!idx || !data) {
		r = -ENOMEM;
		goto bad;
	}
	if (pread(fd, idx, ph.count * sizeof(*idx), sizeof(ph)) !=
		    (ssize_t)(ph.count * sizeof(*idx)) ||
	    pread(fd, data, ph.count * PAGE,
		  (off_t)(sizeof(ph) + ph.count * sizeof(*idx))) !=
		    (ssize_t)(ph.count * PAGE))
		goto bad;
	crypto_generichash_init(&h, NULL, 0, SNAPSHOT_HASH_LEN);
	crypto_generichash_update(&h, (const uint8_t *)idx,
				  ph.count * sizeof(*idx));
	crypto_generichash_update(&h, data, ph.count * PAGE);
	crypto_generichash_final(&h, hash, SNAPSHOT_HASH_LEN);
	if (sodium_memcmp(hash, ph.hash, sizeof(hash)) != 0)
		goto bad;
	for (uint64_t i = 0; i < ph.count; i++)
		if (idx[i] >= mem_size / PAGE)
			goto bad;
	/* Lay the clone's own pages over the template's. */
	for (uint64_t i = 0; i < ph.count; i++)
		memcpy(mem + idx[i] * PAGE, data + i * PAGE, PAGE);
	r = 0;
bad:
	close(fd);
	free(idx);
	free(data);
	if (r == -EBADMSG)
		fail(err, errlen, r, "%s: corrupt", path);
	else if (r < 0)
		fail(err, errlen, r, "%s: out of memory", path);
	return r;
}
