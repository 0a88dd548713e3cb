/* Guest memory as the host sees it: the one bounds-checked way in.
 * Every access a device makes on behalf of the guest goes through
 * gmem_ptr(), so a guest address can never reach outside guest RAM. */
#ifndef VMM_GMEM_H
#define VMM_GMEM_H

#include <stddef.h>
#include <stdint.h>

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

#endif
