#include "vmm/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC SNAPSHOT_MAGIC
#define PAGES_MAGIC SNAPSHOT_PAGES_MAGIC
#define PAGE SNAPSHOT_PAGE

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
static int write_state(const char *dir, struct snapshot_header *hdr,
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
	struct snapshot_header hdr = { 0 };
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

/* ---- reading: a snapshot on disk is hostile input ---------------------- */

struct rd {
	enum snapshot_err why;
	char *err;
	size_t errlen;
};

/* Record why and say it as "NAME: fault: detail"; returns the -errno the
 * callers give back. */
static int rd_fail(struct rd *rd, enum snapshot_err e, int r,
		   const char *name, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static int rd_fail(struct rd *rd, enum snapshot_err e, int r,
		   const char *name, const char *fmt, ...)
{
	char what[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	rd->why = e;
	snprintf(rd->err, rd->errlen, "%s: %s%s%s", name, snapshot_strerror(e),
		 what[0] ? ": " : "", what);
	if (r)
		return r;
	if (e == SNAPSHOT_E_VERSION)
		return -ESTALE;
	if (e == SNAPSHOT_E_NOMEM)
		return -ENOMEM;
	return e == SNAPSHOT_E_IO ? -EIO : -EBADMSG;
}

/* len bytes at off, all of them: 0, 1 (the file ends first) or -errno. */
static int read_exact(int fd, void *buf, size_t len, off_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 1;
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The file's size, refusing what is not a regular file: a FIFO would
 * block the reader, a directory or device is no snapshot. */
static int file_size(int fd, const char *name, uint64_t *size, struct rd *rd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return rd_fail(rd, SNAPSHOT_E_IO, -errno, name, "%s",
			       strerror(errno));
	if (!S_ISREG(st.st_mode))
		return rd_fail(rd, SNAPSHOT_E_NOT_FILE, 0, name, "mode 0%o",
			       (unsigned)st.st_mode);
	*size = (uint64_t)st.st_size;
	return 0;
}

/* dir/name, read-only; a symbolic link, FIFO or device is refused (the
 * directory may be its user's to fill). -errno with rd set. */
static int open_file(const char *dir, const char *name, char *path,
		     size_t pathlen, struct rd *rd)
{
	uint64_t size;
	int fd, r;

	snprintf(path, pathlen, "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return rd_fail(rd, SNAPSHOT_E_OPEN, -errno, path, "%s",
			       strerror(errno));
	r = file_size(fd, path, &size, rd);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/* The state file: its header into *hdr and its body into *snap, checked
 * whole (snapshot_check included) for guest RAM of mem_size bytes, or of
 * the size the header says if mem_size is 0 (a template). */
static int read_state(int fd, const char *name, struct snapshot_header *hdr,
		      struct vm_snapshot *snap, uint64_t mem_size,
		      struct rd *rd)
{
	uint8_t hash[SNAPSHOT_HASH_LEN];
	char why[200];
	uint64_t size;
	int r;

	r = file_size(fd, name, &size, rd);
	if (r < 0)
		return r;
	r = read_exact(fd, hdr, sizeof(*hdr), 0);
	if (r < 0)
		return rd_fail(rd, SNAPSHOT_E_IO, r, name, "%s", strerror(-r));
	if (r > 0)
		return rd_fail(rd, SNAPSHOT_E_LENGTH, 0, name,
			       "%llu bytes, shorter than its header",
			       (unsigned long long)size);
	if (memcmp(hdr->magic, MAGIC, sizeof(hdr->magic)) != 0)
		return rd_fail(rd, SNAPSHOT_E_MAGIC, 0, name, "%s", "");
	if (hdr->version != SNAPSHOT_VERSION || hdr->body_len != sizeof(*snap))
		return rd_fail(rd, SNAPSHOT_E_VERSION, 0, name,
			       "format %u/%u bytes, this VMM writes %u/%zu",
			       hdr->version, hdr->body_len, SNAPSHOT_VERSION,
			       sizeof(*snap));
	if (size != sizeof(*hdr) + sizeof(*snap))
		return rd_fail(rd, SNAPSHOT_E_LENGTH, 0, name,
			       "%llu bytes, not %zu", (unsigned long long)size,
			       sizeof(*hdr) + sizeof(*snap));
	r = read_exact(fd, snap, sizeof(*snap), sizeof(*hdr));
	if (r < 0)
		return rd_fail(rd, SNAPSHOT_E_IO, r, name, "%s", strerror(-r));
	if (r > 0)
		return rd_fail(rd, SNAPSHOT_E_LENGTH, 0, name, "%s",
			       "shrank while read");
	crypto_generichash(hash, sizeof(hash), (const uint8_t *)snap,
			   sizeof(*snap), NULL, 0);
	if (sodium_memcmp(hash, hdr->body_hash, sizeof(hash)) != 0)
		return rd_fail(rd, SNAPSHOT_E_HASH, 0, name, "%s", "");
	if (snap->mem_size != hdr->mem_size)
		return rd_fail(rd, SNAPSHOT_E_MEM_SIZE, 0, name,
			       "header says %llu, state %llu",
			       (unsigned long long)hdr->mem_size,
			       (unsigned long long)snap->mem_size);
	rd->why = snapshot_check(snap, mem_size ? mem_size : hdr->mem_size,
				 why, sizeof(why));
	if (rd->why != SNAPSHOT_OK) {
		snprintf(rd->err, rd->errlen, "%s: %s", name, why);
		return -EBADMSG;
	}
	return 0;
}

int snapshot_read(const char *dir, struct vm_snapshot *snap, int *mem_fd,
		  char *err, size_t errlen)
{
	struct rd rd = { .err = err, .errlen = errlen };
	uint8_t hash[SNAPSHOT_HASH_LEN];
	struct snapshot_header hdr;
	char path[4096];
	uint64_t size;
	void *m;
	int fd, r;

	*mem_fd = -1;
	fd = open_file(dir, "state", path, sizeof(path), &rd);
	if (fd < 0)
		return fd;
	r = read_state(fd, path, &hdr, snap, 0, &rd);
	close(fd);
	if (r < 0)
		return r;

	fd = open_file(dir, "memory", path, sizeof(path), &rd);
	if (fd < 0)
		return fd;
	r = file_size(fd, path, &size, &rd);
	if (r == 0 && size != hdr.mem_size)
		r = rd_fail(&rd, SNAPSHOT_E_LENGTH, 0, path, "size is not %llu",
			    (unsigned long long)hdr.mem_size);
	if (r < 0)
		goto fail;
	m = mmap(NULL, hdr.mem_size, PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		r = rd_fail(&rd, SNAPSHOT_E_IO, -errno, path, "mmap: %s",
			    strerror(errno));
		goto fail;
	}
	crypto_generichash(hash, sizeof(hash), m, hdr.mem_size, NULL, 0);
	munmap(m, hdr.mem_size);
	if (sodium_memcmp(hash, hdr.mem_hash, sizeof(hash)) != 0) {
		r = rd_fail(&rd, SNAPSHOT_E_HASH, 0, path, "%s", "");
		goto fail;
	}
	*mem_fd = fd;
	return 0;
fail:
	close(fd);
	return r;
}

/* ---- a suspended clone: its private pages over the template ------------ */

int snapshot_write_pages(const char *dir, const struct vm_snapshot *snap,
			 const uint8_t *mem, const uint64_t *idx, size_t n)
{
	char tmp[4096], path[4096];
	struct snapshot_pages_header ph = { .version = SNAPSHOT_VERSION,
					    .count = n,
					    .mem_size = snap->mem_size };
	struct snapshot_header hdr = { 0 };
	crypto_generichash_state h;
	off_t off;
	int fd, r;

	memcpy(ph.magic, PAGES_MAGIC, 8);
	/* Only what the reader accepts: pages in RAM, in increasing order. */
	for (size_t i = 0; i < n; i++)
		if (idx[i] >= snap->mem_size / PAGE ||
		    (i && idx[i] <= idx[i - 1]))
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

/* The pages file, checked whole before any of it reaches mem: sizes
 * against the file and guest RAM before anything is allocated, every
 * index in RAM and in increasing order (so no page twice), the hash. */
static int read_pages(int fd, const char *name,
		      const struct snapshot_header *hdr, uint8_t *mem,
		      uint64_t mem_size, struct rd *rd)
{
	struct snapshot_pages_header ph;
	uint8_t hash[SNAPSHOT_HASH_LEN];
	crypto_generichash_state h;
	uint64_t *idx = NULL, size, npages = mem_size / PAGE;
	uint8_t *data = NULL;
	int r;

	r = file_size(fd, name, &size, rd);
	if (r < 0)
		return r;
	r = read_exact(fd, &ph, sizeof(ph), 0);
	if (r != 0) {
		r = r < 0 ? rd_fail(rd, SNAPSHOT_E_IO, r, name, "%s",
				    strerror(-r)) :
			    rd_fail(rd, SNAPSHOT_E_LENGTH, 0, name,
				    "%llu bytes, shorter than its header",
				    (unsigned long long)size);
		goto out;
	}
	if (memcmp(ph.magic, PAGES_MAGIC, sizeof(ph.magic)) != 0 || ph.pad) {
		r = rd_fail(rd, SNAPSHOT_E_MAGIC, 0, name, "%s", "");
		goto out;
	}
	if (ph.version != SNAPSHOT_VERSION) {
		r = rd_fail(rd, SNAPSHOT_E_VERSION, 0, name, "format %u, this "
			    "VMM writes %u", ph.version, SNAPSHOT_VERSION);
		goto out;
	}
	if (ph.mem_size != mem_size) {
		r = rd_fail(rd, SNAPSHOT_E_MEM_SIZE, 0, name,
			    "%llu bytes, guest RAM is %llu",
			    (unsigned long long)ph.mem_size,
			    (unsigned long long)mem_size);
		goto out;
	}
	if (ph.count > npages) {
		r = rd_fail(rd, SNAPSHOT_E_PAGE_COUNT, 0, name,
			    "%llu pages, guest RAM has %llu",
			    (unsigned long long)ph.count,
			    (unsigned long long)npages);
		goto out;
	}
	/* count <= npages <= 3 GiB / 4 KiB: no overflow below. */
	if (size != sizeof(ph) + ph.count * (sizeof(*idx) + PAGE)) {
		r = rd_fail(rd, SNAPSHOT_E_LENGTH, 0, name,
			    "%llu bytes for %llu pages",
			    (unsigned long long)size,
			    (unsigned long long)ph.count);
		goto out;
	}
	if (sodium_memcmp(ph.hash, hdr->mem_hash, sizeof(ph.hash)) != 0) {
		r = rd_fail(rd, SNAPSHOT_E_HASH, 0, name, "%s",
			    "not the pages of this state");
		goto out;
	}
	idx = malloc(ph.count * sizeof(*idx) + 1);
	if (!idx) {
		r = rd_fail(rd, SNAPSHOT_E_NOMEM, 0, name, "%s", "indices");
		goto out;
	}
	r = read_exact(fd, idx, ph.count * sizeof(*idx), sizeof(ph));
	if (r != 0) {
		r = rd_fail(rd, r < 0 ? SNAPSHOT_E_IO : SNAPSHOT_E_LENGTH, r < 0 ?
			    r : 0, name, "%s", "reading the indices");
		goto out;
	}
	for (uint64_t i = 0; i < ph.count; i++) {
		if (idx[i] >= npages) {
			r = rd_fail(rd, SNAPSHOT_E_PAGE_INDEX, 0, name,
				    "entry %llu: page %llu of %llu",
				    (unsigned long long)i,
				    (unsigned long long)idx[i],
				    (unsigned long long)npages);
			goto out;
		}
		if (i && idx[i] <= idx[i - 1]) {
			r = rd_fail(rd, SNAPSHOT_E_PAGE_ORDER, 0, name,
				    "entry %llu: page %llu after %llu",
				    (unsigned long long)i,
				    (unsigned long long)idx[i],
				    (unsigned long long)idx[i - 1]);
			goto out;
		}
	}
	data = malloc(ph.count * PAGE + 1);
	if (!data) {
		r = rd_fail(rd, SNAPSHOT_E_NOMEM, 0, name, "%llu pages",
			    (unsigned long long)ph.count);
		goto out;
	}
	r = read_exact(fd, data, ph.count * PAGE,
		       (off_t)(sizeof(ph) + ph.count * sizeof(*idx)));
	if (r != 0) {
		r = rd_fail(rd, r < 0 ? SNAPSHOT_E_IO : SNAPSHOT_E_LENGTH, r < 0 ?
			    r : 0, name, "%s", "reading the pages");
		goto out;
	}
	crypto_generichash_init(&h, NULL, 0, SNAPSHOT_HASH_LEN);
	crypto_generichash_update(&h, (const uint8_t *)idx,
				  ph.count * sizeof(*idx));
	crypto_generichash_update(&h, data, ph.count * PAGE);
	crypto_generichash_final(&h, hash, SNAPSHOT_HASH_LEN);
	if (sodium_memcmp(hash, ph.hash, sizeof(hash)) != 0) {
		r = rd_fail(rd, SNAPSHOT_E_HASH, 0, name, "%s", "");
		goto out;
	}
	/* Lay the clone's own pages over the template's. */
	for (uint64_t i = 0; i < ph.count; i++)
		memcpy(mem + idx[i] * PAGE, data + i * PAGE, PAGE);
	r = 0;
out:
	free(idx);
	free(data);
	return r;
}

int snapshot_read_pages_fd(int state_fd, int pages_fd,
			   struct vm_snapshot *snap, uint8_t *mem,
			   uint64_t mem_size, enum snapshot_err *why,
			   char *err, size_t errlen)
{
	struct rd rd = { .err = err, .errlen = errlen };
	struct snapshot_header hdr;
	int r;

	r = read_state(state_fd, "state", &hdr, snap, mem_size, &rd);
	if (r == 0)
		r = read_pages(pages_fd, "pages", &hdr, mem, mem_size, &rd);
	if (why)
		*why = r == 0 ? SNAPSHOT_OK : rd.why;
	return r;
}

int snapshot_read_pages(const char *dir, struct vm_snapshot *snap,
			uint8_t *mem, uint64_t mem_size, char *err,
			size_t errlen)
{
	struct rd rd = { .err = err, .errlen = errlen };
	struct snapshot_header hdr;
	char path[4096];
	int fd, r;

	fd = open_file(dir, "state", path, sizeof(path), &rd);
	if (fd < 0)
		return fd;
	r = read_state(fd, path, &hdr, snap, mem_size, &rd);
	close(fd);
	if (r < 0)
		return r;
	fd = open_file(dir, "pages", path, sizeof(path), &rd);
	if (fd < 0)
		return fd;
	r = read_pages(fd, path, &hdr, mem, mem_size, &rd);
	close(fd);
	return r;
}
