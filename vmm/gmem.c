#include "vmm/gmem.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int gmem_create(struct gmem *m, uint64_t size, int *fd)
{
	*fd = memfd_create("clone-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (*fd < 0 || ftruncate(*fd, (off_t)size) < 0)
		return -errno;
	m->host = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_NORESERVE, *fd, 0);
	if (m->host == MAP_FAILED) {
		m->host = NULL;
		return -errno;
	}
	m->size = size;
	return 0;
}

int gmem_map_template(struct gmem *m, int fd, uint64_t size)
{
	m->host = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_NORESERVE, fd, 0);
	if (m->host == MAP_FAILED) {
		m->host = NULL;
		return -errno;
	}
	m->size = size;
	return 0;
}

/* /proc/self/pagemap: bit 63 present, 62 swapped, 61 file page or
 * shared. A private page is swapped, or present and not the file's. */
int gmem_private_pages(const struct gmem *m, int pagemap_fd, uint64_t **out,
		       size_t *n)
{
	uint64_t npages = m->size / GMEM_PAGE, *idx, buf[512];
	uintptr_t base = (uintptr_t)m->host / GMEM_PAGE;

	*n = 0;
	if (pagemap_fd < 0)
		return -EBADF;
	idx = malloc(npages * sizeof(*idx) + 1);
	if (!idx)
		return -ENOMEM;
	for (uint64_t p = 0; p < npages; p += 512) {
		uint64_t cnt = npages - p < 512 ? npages - p : 512;
		ssize_t got = pread(pagemap_fd, buf, cnt * 8,
				    (off_t)((base + p) * 8));

		if (got != (ssize_t)(cnt * 8)) {
			free(idx);
			return -EIO;
		}
		for (uint64_t i = 0; i < cnt; i++)
			if ((buf[i] >> 62 & 1) ||
			    ((buf[i] >> 63 & 1) && !(buf[i] >> 61 & 1)))
				idx[(*n)++] = p + i;
	}
	*out = idx;
	return 0;
}

void gmem_unmap(struct gmem *m)
{
	if (m->host)
		munmap(m->host, m->size);
	m->host = NULL;
}
