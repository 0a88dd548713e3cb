/* A fuzz input read as a script of fields, little-endian. Past the end
 * every field reads as zero and every byte string as empty, so harnesses
 * never check lengths and a script ends when fin_left() is 0. */
#ifndef TESTS_FUZZ_FUZZ_INPUT_H
#define TESTS_FUZZ_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

struct fin {
	const uint8_t *p;
	size_t len;
};

static inline size_t fin_left(const struct fin *in)
{
	return in->len;
}

/* An n-byte (n <= 8) unsigned field. */
static inline uint64_t fin_uint(struct fin *in, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n && in->len; i++, in->p++, in->len--)
		v |= (uint64_t)in->p[0] << (8 * i);
	return v;
}

static inline uint8_t fin_u8(struct fin *in)
{
	return (uint8_t)fin_uint(in, 1);
}

static inline uint16_t fin_u16(struct fin *in)
{
	return (uint16_t)fin_uint(in, 2);
}

static inline uint32_t fin_u32(struct fin *in)
{
	return (uint32_t)fin_uint(in, 4);
}

static inline uint64_t fin_u64(struct fin *in)
{
	return fin_uint(in, 8);
}

/* Up to max bytes as they are: *p points into the input. Returns how many. */
static inline size_t fin_bytes(struct fin *in, size_t max, const uint8_t **p)
{
	size_t n = max < in->len ? max : in->len;

	*p = in->p;
	in->p += n;
	in->len -= n;
	return n;
}

#endif
