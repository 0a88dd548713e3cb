/* An address bus, as kvmtool's kvm__register_mmio: each device registers
 * the range it answers (port I/O or MMIO, one bus each) with a handler,
 * and the vCPU's exit handler looks the address up here, knowing no
 * device by its base. Ranges are registered before the vCPU runs and
 * only read after, so lookups take no lock. */
#ifndef VMM_BUS_H
#define VMM_BUS_H

#include <stdbool.h>
#include <stdint.h>

#define BUS_MAX_RANGES 8

/* An access of len bytes at off from the range's base: for a read, fill
 * data; for a write, data holds the bytes. */
typedef void (*bus_fn)(void *opaque, uint64_t off, void *data, uint32_t len,
		       bool write);

struct bus_range {
	uint64_t base, len;
	bus_fn fn;
	void *opaque;
};

struct bus {
	struct bus_range r[BUS_MAX_RANGES];
	unsigned n;
};

/* Answer [base, base + len) with fn. 0, -EINVAL (len 0 or wrapping),
 * -EEXIST (overlaps a registered range) or -ENOSPC (bus full). */
int bus_register(struct bus *b, uint64_t base, uint64_t len, bus_fn fn,
		 void *opaque);

/* Hand an access starting at addr to the range holding addr: 0, or
 * -ENOENT when nothing is there (the caller says what an empty address
 * reads as). The handler checks len against its own registers. */
int bus_access(const struct bus *b, uint64_t addr, void *data, uint32_t len,
	       bool write);

#endif
