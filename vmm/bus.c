#include "vmm/bus.h"

#include <errno.h>

int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_fn fn,
		 void *opaque)
{
	if (!len || base + len < base)
		return -EINVAL;
	for (unsigned i = 0; i < b->n; i++)
		if (base < b->r[i].base + b->r[i].len &&
		    b->r[i].base < base + len)
			return -EEXIST;
	if (b->n == BUS_MAX_RANGES)
		return -ENOSPC;
	b->r[b->n++] = (struct bus_range){
		.base = base, .len = len, .fn = fn, .opaque = opaque,
	};
	return 0;
}

int bus_access(const struct bus *b, uint64_t addr, void *data, uint32_t len,
	       bool write)
{
	for (unsigned i = 0; i < b->n; i++) {
		const struct bus_range *r = &b->r[i];

		if (addr >= r->base && addr - r->base < r->len) {
			r->fn(r->opaque, addr - r->base, data, len, write);
			return 0;
		}
	}
	return -ENOENT;
}
