#include "vmm/virtio/virtq.h"

#include <errno.h>
#include <string.h>

/* Ring layouts, VIRTIO 1.x 2.7: little-endian, as x86 is. */
struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vring_used_elem {
	uint32_t id;
	uint32_t len;
};

#define DESC_BYTES(n) ((uint64_t)(n) * sizeof(struct vring_desc))
#define AVAIL_BYTES(n) (6 + 2 * (uint64_t)(n))
#define USED_BYTES(n) (6 + 8 * (uint64_t)(n))

const char *virtq_strerror(enum virtq_err e)
{
	switch (e) {
	case VIRTQ_OK: return "no error";
	case VIRTQ_E_NOT_READY: return "queue not ready";
	case VIRTQ_E_SIZE: return "bad queue size";
	case VIRTQ_E_RING_ADDR: return "ring outside guest memory";
	case VIRTQ_E_RING_ALIGN: return "ring misaligned";
	case VIRTQ_E_AVAIL_IDX: return "available index ahead by more than the queue size";
	case VIRTQ_E_HEAD: return "head descriptor index out of range";
	case VIRTQ_E_NEXT: return "next descriptor index out of range";
	case VIRTQ_E_LOOP: return "descriptor chain loops";
	case VIRTQ_E_TOO_LONG: return "descriptor chain too long";
	case VIRTQ_E_BUF_ADDR: return "buffer outside guest memory";
	case VIRTQ_E_ORDER: return "readable descriptor after writable one";
	case VIRTQ_E_INDIRECT: return "indirect descriptor not negotiated";
	case VIRTQ_E_USED_LEN: return "used length beyond the chain";
	}
	return "unknown virtqueue error";
}

void virtq_reset(struct virtq *q)
{
	uint16_t max = q->max_size;

	memset(q, 0, sizeof(*q));
	q->max_size = max;
}

enum virtq_err virtq_enable(struct virtq *q, const struct gmem *m)
{
	q->ready = false;
	if (q->size == 0 || q->size > q->max_size || (q->size & (q->size - 1)))
		return VIRTQ_E_SIZE;
	if ((q->desc_gpa & 15) || (q->avail_gpa & 1) || (q->used_gpa & 3))
		return VIRTQ_E_RING_ALIGN;
	if (!gmem_ptr(m, q->desc_gpa, DESC_BYTES(q->size)) ||
	    !gmem_ptr(m, q->avail_gpa, AVAIL_BYTES(q->size)) ||
	    !gmem_ptr(m, q->used_gpa, USED_BYTES(q->size)))
		return VIRTQ_E_RING_ADDR;
	q->ready = true;
	return VIRTQ_OK;
}

/* Ring pointers; valid because virtq_enable checked the whole rings. */
static uint16_t *avail_ring(const struct virtq *q, const struct gmem *m)
{
	return gmem_ptr(m, q->avail_gpa, AVAIL_BYTES(q->size));
}

static uint8_t *used_ring(const struct virtq *q, const struct gmem *m)
{
	return gmem_ptr(m, q->used_gpa, USED_BYTES(q->size));
}

static int fail(struct virtq *q, enum virtq_err e)
{
	q->broken = true;
	return -(int)e;
}

int virtq_pop(struct virtq *q, const struct gmem *m, struct virtq_chain *c)
{
	const uint8_t *desc;
	uint16_t *avail, avail_idx, idx;
	uint64_t read_len = 0, write_len = 0;
	unsigned count = 0;

	if (!q->ready)
		return -VIRTQ_E_NOT_READY;
	if (q->broken)
		return -VIRTQ_E_NOT_READY;
	avail = avail_ring(q, m);
	desc = gmem_ptr(m, q->desc_gpa, DESC_BYTES(q->size));
	if (!avail || !desc)
		return fail(q, VIRTQ_E_RING_ADDR);

	/* Acquire: the ring entry and descriptors the driver wrote before
	 * publishing the index are visible once we see the index. */
	avail_idx = __atomic_load_n(&avail[1], __ATOMIC_ACQUIRE);
	if (avail_idx == q->last_avail)
		return 0;
	if ((uint16_t)(avail_idx - q->last_avail) > q->size)
		return fail(q, VIRTQ_E_AVAIL_IDX);

	idx = __atomic_load_n(&avail[2 + (q->last_avail & (q->size - 1))],
			      __ATOMIC_RELAXED);
	if (idx >= q->size)
		return fail(q, VIRTQ_E_HEAD);

	c->head = idx;
	c->nsegs = 0;
	c->nread = 0;
	for (;;) {
		struct vring_desc d;
		struct virtq_seg *s;
		uint8_t *host;

		if (count++ >= q->size)
			return fail(q, VIRTQ_E_LOOP);
		if (c->nsegs >= VIRTQ_MAX_SEGS)
			return fail(q, VIRTQ_E_TOO_LONG);
		/* One copy: the guest may change the table under us. */
		memcpy(&d, desc + DESC_BYTES(idx), sizeof(d));
		if (d.flags & VIRTQ_DESC_F_INDIRECT)
			return fail(q, VIRTQ_E_INDIRECT);
		host = gmem_ptr(m, d.addr, d.len);
		if (!host)
			return fail(q, VIRTQ_E_BUF_ADDR);
		s = &c->seg[c->nsegs++];
		s->host = host;
		s->len = d.len;
		s->write = d.flags & VIRTQ_DESC_F_WRITE;
		if (s->write) {
			write_len += d.len;
		} else {
			/* By position, not by byte count: a zero-length
			 * writable descriptor counts too, since users take
			 * seg[0..nread) as the readable segments. */
			if (c->nread != c->nsegs - 1)
				return fail(q, VIRTQ_E_ORDER);
			read_len += d.len;
			c->nread++;
		}
		if (read_len > UINT32_MAX || write_len > UINT32_MAX)
			return fail(q, VIRTQ_E_TOO_LONG);
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			break;
		if (d.next >= q->size)
			return fail(q, VIRTQ_E_NEXT);
		idx = d.next;
	}
	c->read_len = (uint32_t)read_len;
	c->write_len = (uint32_t)write_len;
	q->last_avail++;
	return 1;
}

int virtq_push(struct virtq *q, const struct gmem *m,
	       const struct virtq_chain *c, uint32_t written)
{
	struct vring_used_elem e = { .id = c->head, .len = written };
	uint8_t *used;

	if (!q->ready)
		return -VIRTQ_E_NOT_READY;
	if (written > c->write_len)
		return -VIRTQ_E_USED_LEN;
	used = used_ring(q, m);
	if (!used)
		return fail(q, VIRTQ_E_RING_ADDR);
	memcpy(used + 4 + 8 * (q->used_idx & (q->size - 1)), &e, sizeof(e));
	q->used_idx++;
	/* Release: the element is visible before the index that covers it. */
	__atomic_store_n((uint16_t *)(used + 2), q->used_idx, __ATOMIC_RELEASE);
	return 0;
}

bool virtq_suppressed(const struct virtq *q, const struct gmem *m)
{
	uint16_t *avail;

	if (!q->ready)
		return true;
	avail = avail_ring(q, m);
	if (!avail)
		return true;
	/* Order our used index store before reading the driver's flags. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return __atomic_load_n(&avail[0], __ATOMIC_RELAXED) &
	       VIRTQ_AVAIL_F_NO_INTERRUPT;
}

uint32_t virtq_chain_read(const struct virtq_chain *c, uint32_t off, void *dst,
			  uint32_t len)
{
	uint8_t *out = dst;
	uint32_t done = 0;

	for (unsigned i = 0; i < c->nread && done < len; i++) {
		const struct virtq_seg *s = &c->seg[i];
		uint32_t n;

		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		n = s->len - off;
		if (n > len - done)
			n = len - done;
		memcpy(out + done, s->host + off, n);
		done += n;
		off = 0;
	}
	return done;
}

uint32_t virtq_chain_write(const struct virtq_chain *c, uint32_t off,
			   const void *src, uint32_t len)
{
	const uint8_t *in = src;
	uint32_t done = 0;

	for (unsigned i = c->nread; i < c->nsegs && done < len; i++) {
		const struct virtq_seg *s = &c->seg[i];
		uint32_t n;

		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		n = s->len - off;
		if (n > len - done)
			n = len - done;
		memcpy(s->host + off, in + done, n);
		done += n;
		off = 0;
	}
	return done;
}

void virtq_save(const struct virtq *q, uint16_t held, struct virtq_state *st)
{
	*st = (struct virtq_state){
		.desc = q->desc_gpa, .avail = q->avail_gpa, .used = q->used_gpa,
		.size = q->size, .last_avail = (uint16_t)(q->last_avail - held),
		.used_idx = q->used_idx, .ready = q->ready,
	};
}

int virtq_restore(struct virtq *q, const struct virtq_state *st,
		  const struct gmem *m)
{
	int r = 0;

	virtq_reset(q);
	q->desc_gpa = st->desc;
	q->avail_gpa = st->avail;
	q->used_gpa = st->used;
	q->size = st->size;
	if (st->ready && virtq_enable(q, m) != VIRTQ_OK)
		r = -EINVAL;
	q->last_avail = st->last_avail;
	q->used_idx = st->used_idx;
	return r;
}
