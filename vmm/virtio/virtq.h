/* Split virtqueue (VIRTIO 1.x, 2.7) on guest memory: the device side.
 * Knows nothing of the transport. Every descriptor comes from a hostile
 * guest: each is copied once, then checked; any error marks the queue
 * broken and is returned as a typed error, never acted upon. */
#ifndef VMM_VIRTQ_H
#define VMM_VIRTQ_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/gmem.h"

#define VIRTQ_MAX_SIZE 1024
#define VIRTQ_MAX_SEGS 64	/* longest chain a device accepts */

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

enum virtq_err {
	VIRTQ_OK = 0,
	VIRTQ_E_NOT_READY,	/* queue used before it was made ready */
	VIRTQ_E_SIZE,		/* size 0, above the maximum, or not a power of 2 */
	VIRTQ_E_RING_ADDR,	/* a ring lies (partly) outside guest memory */
	VIRTQ_E_RING_ALIGN,	/* a ring is not aligned as the spec requires */
	VIRTQ_E_AVAIL_IDX,	/* driver published more buffers than the queue holds */
	VIRTQ_E_HEAD,		/* head descriptor index >= queue size */
	VIRTQ_E_NEXT,		/* next descriptor index >= queue size */
	VIRTQ_E_LOOP,		/* chain longer than the queue: a loop */
	VIRTQ_E_TOO_LONG,	/* chain longer than VIRTQ_MAX_SEGS */
	VIRTQ_E_BUF_ADDR,	/* a buffer lies (partly) outside guest memory */
	VIRTQ_E_ORDER,		/* device-readable descriptor after a writable one */
	VIRTQ_E_INDIRECT,	/* indirect descriptor, not negotiated */
	VIRTQ_E_USED_LEN,	/* device claims more written than the chain holds */
};

const char *virtq_strerror(enum virtq_err e);

struct virtq {
	uint16_t size;		/* QueueNum set by the driver */
	uint16_t max_size;	/* QueueNumMax offered by the device */
	bool ready;
	bool broken;		/* saw hostile input; the device needs a reset */
	uint64_t desc_gpa, avail_gpa, used_gpa;
	uint16_t last_avail;	/* next available ring slot to consume */
	uint16_t used_idx;	/* our copy of used->idx */
};

struct virtq_seg {
	uint8_t *host;		/* checked host pointer into guest memory */
	uint32_t len;
	bool write;		/* device-writable */
};

struct virtq_chain {
	uint16_t head;
	uint16_t nsegs;
	uint16_t nread;		/* device-readable segments come first */
	uint32_t read_len, write_len;	/* bytes in each kind */
	struct virtq_seg seg[VIRTQ_MAX_SEGS];
};

/* A queue's part of a snapshot: where its rings are and how far each side
 * has gone. */
struct virtq_state {
	uint64_t desc, avail, used;
	uint16_t size, last_avail, used_idx;
	uint8_t ready, pad[3];
};

/* Save q. held: chains the device popped and will not give back (taken,
 * not yet filled): they go back to the driver's ring, so that the
 * restored device takes them again. */
void virtq_save(const struct virtq *q, uint16_t held, struct virtq_state *st);
/* Onto a queue after virtq_reset, before it is used: 0, or -EINVAL when a
 * ready queue's size or rings do not fit guest memory m. */
int virtq_restore(struct virtq *q, const struct virtq_state *st,
		  const struct gmem *m);

/* Reset to the state after device reset, keeping max_size. */
void virtq_reset(struct virtq *q);

/* Check size and ring placement when the driver sets QueueReady.
 * VIRTQ_OK and q->ready set, or an error with q->ready left false. */
enum virtq_err virtq_enable(struct virtq *q, const struct gmem *m);

/* Take the next available chain into *c.
 * Returns 1 with *c filled, 0 when nothing is available, or -(error) with
 * the queue marked broken (nothing consumed). */
int virtq_pop(struct virtq *q, const struct gmem *m, struct virtq_chain *c);

/* Give back to the driver a chain popped earlier, with written bytes
 * placed in its writable segments. Returns 0 or -(error). */
int virtq_push(struct virtq *q, const struct gmem *m,
	       const struct virtq_chain *c, uint32_t written);

/* Whether the driver asked not to be interrupted (VIRTQ_AVAIL_F_NO_INTERRUPT). */
bool virtq_suppressed(const struct virtq *q, const struct gmem *m);

/* Copy helpers across a chain's segments. Return bytes copied. */
uint32_t virtq_chain_read(const struct virtq_chain *c, uint32_t off, void *dst,
			  uint32_t len);
uint32_t virtq_chain_write(const struct virtq_chain *c, uint32_t off,
			   const void *src, uint32_t len);

#endif
