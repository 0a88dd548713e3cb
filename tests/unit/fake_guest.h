/* A fake guest for device tests: guest RAM in a plain page-aligned buffer
 * (so ring alignment in guest addresses is alignment in host addresses),
 * and the driver side of split virtqueues (VIRTIO 1.x 2.7), written the
 * way a driver would, byte by byte, so tests can also write hostile rings.
 * Include after <cmocka.h>. */
#ifndef TESTS_UNIT_FAKE_GUEST_H
#define TESTS_UNIT_FAKE_GUEST_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/gmem.h"
#include "vmm/virtio/mmio.h"

#define FG_PAGE 4096ULL

struct fg {
	struct gmem m;
	uint64_t brk;		/* bump allocator for rings and buffers */
};

/* Guest RAM of size bytes (a multiple of FG_PAGE), zeroed. Page 0 is left
 * unallocated so that gpa 0 is never a valid buffer by accident. */
static inline void fg_init(struct fg *g, uint64_t size)
{
	g->m.host = aligned_alloc(FG_PAGE, size);
	assert_non_null(g->m.host);
	memset(g->m.host, 0, size);
	g->m.size = size;
	g->brk = FG_PAGE;
}

static inline void fg_free(struct fg *g)
{
	free(g->m.host);
	g->m.host = NULL;
	g->m.size = 0;
}

static inline uint64_t fg_alloc(struct fg *g, uint64_t len, uint64_t align)
{
	uint64_t gpa = (g->brk + align - 1) & ~(align - 1);

	assert_true(gpa + len <= g->m.size);
	g->brk = gpa + len;
	return gpa;
}

static inline uint8_t *fg_host(struct fg *g, uint64_t gpa)
{
	return g->m.host + gpa;
}

/* The driver's view of one split virtqueue. Descriptors are handed out
 * round robin: tests never have more than size of them in flight. */
struct fg_vq {
	struct fg *g;
	uint16_t size;
	uint64_t desc, avail, used;
	uint16_t avail_idx;	/* driver's avail->idx */
	uint16_t used_seen;	/* used entries consumed so far */
	uint16_t next_desc;
};

static inline void fg_vq_init(struct fg_vq *v, struct fg *g, uint16_t size)
{
	v->g = g;
	v->size = size;
	v->desc = fg_alloc(g, 16ULL * size, FG_PAGE);
	v->avail = fg_alloc(g, 6 + 2ULL * size, 2);
	v->used = fg_alloc(g, 6 + 8ULL * size, 4);
	v->avail_idx = v->used_seen = v->next_desc = 0;
}

static inline void fg_desc(struct fg_vq *v, uint16_t i, uint64_t addr,
			   uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t *d = fg_host(v->g, v->desc + 16ULL * i);

	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static inline uint64_t fg_desc_addr(struct fg_vq *v, uint16_t i)
{
	uint64_t addr;

	memcpy(&addr, fg_host(v->g, v->desc + 16ULL * i), 8);
	return addr;
}

static inline void fg_avail_flags(struct fg_vq *v, uint16_t flags)
{
	memcpy(fg_host(v->g, v->avail), &flags, 2);
}

/* Write avail->idx as is (hostile tests use it to lie). */
static inline void fg_avail_idx(struct fg_vq *v, uint16_t idx)
{
	v->avail_idx = idx;
	memcpy(fg_host(v->g, v->avail + 2), &idx, 2);
}

/* Put head in the next available slot and publish it. */
static inline void fg_publish(struct fg_vq *v, uint16_t head)
{
	uint64_t slot = v->avail + 4 + 2ULL * (v->avail_idx % v->size);

	memcpy(fg_host(v->g, slot), &head, 2);
	fg_avail_idx(v, (uint16_t)(v->avail_idx + 1));
}

static inline uint16_t fg_used_idx(struct fg_vq *v)
{
	uint16_t idx;

	memcpy(&idx, fg_host(v->g, v->used + 2), 2);
	return idx;
}

static inline void fg_used_elem(struct fg_vq *v, uint16_t n, uint32_t *id,
				uint32_t *len)
{
	uint8_t *e = fg_host(v->g, v->used + 4 + 8ULL * (n % v->size));

	memcpy(id, e, 4);
	memcpy(len, e + 4, 4);
}

/* The next used element the driver has not seen: 1 with *id and *len, or
 * 0 when there is none. */
static inline int fg_get_used(struct fg_vq *v, uint32_t *id, uint32_t *len)
{
	if (fg_used_idx(v) == v->used_seen)
		return 0;
	fg_used_elem(v, v->used_seen++, id, len);
	return 1;
}

static inline uint16_t fg_next_desc(struct fg_vq *v)
{
	uint16_t i = v->next_desc;

	v->next_desc = (uint16_t)((v->next_desc + 1) % v->size);
	return i;
}

/* Post one device-readable buffer holding len bytes of data. Returns the
 * head descriptor. */
static inline uint16_t fg_post_out(struct fg_vq *v, const void *data,
				   uint32_t len)
{
	uint64_t gpa = fg_alloc(v->g, len ? len : 1, 16);
	uint16_t i = fg_next_desc(v);

	if (len)
		memcpy(fg_host(v->g, gpa), data, len);
	fg_desc(v, i, gpa, len, 0, 0);
	fg_publish(v, i);
	return i;
}

/* Post one device-writable buffer of len bytes; *gpa says where. */
static inline uint16_t fg_post_in(struct fg_vq *v, uint32_t len,
				  uint64_t *gpa)
{
	uint64_t a = fg_alloc(v->g, len ? len : 1, 16);
	uint16_t i = fg_next_desc(v);

	memset(fg_host(v->g, a), 0xee, len);
	fg_desc(v, i, a, len, VIRTQ_DESC_F_WRITE, 0);
	fg_publish(v, i);
	if (gpa)
		*gpa = a;
	return i;
}

/* Register access as a vCPU does it: 32 bits at a time. */
static inline void fg_wr(struct virtio_mmio *t, uint64_t off, uint32_t val)
{
	virtio_mmio_write(t, off, &val, 4);
}

static inline uint32_t fg_rd(struct virtio_mmio *t, uint64_t off)
{
	uint32_t val;

	virtio_mmio_read(t, off, &val, 4);
	return val;
}

/* Select queue qi, give it v's rings and make it ready. */
static inline void fg_mmio_queue(struct virtio_mmio *t, unsigned qi,
				 const struct fg_vq *v)
{
	fg_wr(t, VIRTIO_MMIO_QUEUE_SEL, qi);
	fg_wr(t, VIRTIO_MMIO_QUEUE_NUM, v->size);
	fg_wr(t, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)v->desc);
	fg_wr(t, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(v->desc >> 32));
	fg_wr(t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)v->avail);
	fg_wr(t, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (uint32_t)(v->avail >> 32));
	fg_wr(t, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)v->used);
	fg_wr(t, VIRTIO_MMIO_QUEUE_USED_HIGH, (uint32_t)(v->used >> 32));
	fg_wr(t, VIRTIO_MMIO_QUEUE_READY, 1);
}

/* Driver features negotiation (VIRTIO 1.x 3.1.1) up to FEATURES_OK.
 * Returns the status read back. */
static inline uint32_t fg_mmio_negotiate(struct virtio_mmio *t,
					 uint64_t features)
{
	fg_wr(t, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACK);
	fg_wr(t, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER);
	fg_wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	fg_wr(t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
	fg_wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	fg_wr(t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
	fg_wr(t, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER |
					     VIRTIO_STATUS_FEATURES_OK);
	return fg_rd(t, VIRTIO_MMIO_STATUS);
}

#define FG_STATUS_LIVE                                                       \
	(VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER |                          \
	 VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK)

#endif
