/* Guest memory as the host sees it: guest RAM in a memfd (a cold boot) or
 * the template's memory file mapped copy-on-write (a clone), the scan for
 * the pages a clone owns, and the one bounds-checked way in. Every access
 * a device makes on behalf of the guest goes through gmem_ptr(), so a
 * guest address can never reach outside guest RAM. */
#ifndef VMM_GMEM_H
#define VMM_GMEM_H

#include <stddef.h>
#include <stdint.h>

#define GMEM_PAGE 4096

struct gmem {
	uint8_t *host;	/* mapping of guest physical address 0 */
	uint64_t size;	/* bytes of RAM from guest physical 0 */
};

/* Host pointer for guest range [gpa, gpa + len), or NULL if any byte of it
 * lies outside guest RAM (overflow included). len 0 is valid inside RAM. */
static inline void *gmem_ptr(const struct gmem *m, uint64_t gpa, uint64_t len)
{
	if (len > m->size || gpa > m->size - len)
		return NULL;
	return m->host + gpa;
}

/* Fresh RAM of size bytes in a new memfd, mapped shared; *fd gets the
 * memfd (the caller closes it after gmem_unmap). 0 or -errno. */
int gmem_create(struct gmem *m, uint64_t size, int *fd);

/* The template's memory file fd (size bytes), mapped copy-on-write: pages
 * stay shared with every other clone until this guest writes them.
 * 0 or -errno. */
int gmem_map_template(struct gmem *m, int fd, uint64_t size);

/* Page numbers of guest RAM this process owns privately (written since
 * the template was mapped, or swapped out), read from an open
 * /proc/self/pagemap, in increasing order. *out (malloc'd, the caller
 * frees it) gets *n of them. 0 or -errno (-EBADF: no pagemap fd). */
int gmem_private_pages(const struct gmem *m, int pagemap_fd, uint64_t **out,
		       size_t *n);

/* Unmap; accepts a gmem never mapped (host NULL). */
void gmem_unmap(struct gmem *m);

#endif
