/* libFuzzer harness: the virtio-mmio register file as a hostile guest's
 * vCPU sees it: virtio-console behind it, with two ports that have no
 * host fds, and small plain guest memory so that ring addresses easily
 * reach past its end.
 *
 * The input is a sequence of steps, an op byte then its fields
 * (little-endian; offsets are taken modulo the register window):
 *
 *   0 WRITE    off u16, value u32 (a 32-bit write, as a driver does)
 *   1 ACCESS   off u16, len u8 (0..8), value u64, write u8 (any size)
 *   2 READ     off u16
 *   3 PROCESS  (the device's I/O thread runs over the rings)
 *   4 MEM      gpa u16, n u8, n bytes (the guest writes its memory)
 *
 * After every step the transport's promises must hold: DRIVER_OK only
 * with FEATURES_OK, FEATURES_OK only for offered features with
 * VERSION_1, and a ready queue has a valid size and rings inside guest
 * memory. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "tests/fuzz/fuzz_input.h"
#include "vmm/virtio/console.h"

#define MEM_SIZE 65536
#define BASE 0xd0000000ULL
#define GSI 5

enum op { OP_WRITE, OP_ACCESS, OP_READ, OP_PROCESS, OP_MEM, OP_COUNT };

static void irq(void *opaque, uint32_t gsi)
{
	(void)opaque;
	(void)gsi;
}

static void check(const struct virtio_mmio *t, const struct gmem *m)
{
	uint64_t offered = t->ops->features | 1ULL << VIRTIO_F_VERSION_1;

	if ((t->status & VIRTIO_STATUS_DRIVER_OK) &&
	    !(t->status & VIRTIO_STATUS_FEATURES_OK))
		abort();
	if ((t->status & VIRTIO_STATUS_FEATURES_OK) &&
	    ((t->drv_features & ~offered) ||
	     !(t->drv_features >> VIRTIO_F_VERSION_1 & 1)))
		abort();
	for (unsigned i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++) {
		const struct virtq *q = &t->vq[i];

		if (!q->ready)
			continue;
		if (i >= t->ops->nqueues || !q->size ||
		    q->size > q->max_size || (q->size & (q->size - 1)) ||
		    !gmem_ptr(m, q->desc_gpa, 16ULL * q->size) ||
		    !gmem_ptr(m, q->avail_gpa, 6 + 2ULL * q->size) ||
		    !gmem_ptr(m, q->used_gpa, 6 + 8ULL * q->size))
			abort();
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_init("fuzz", LOG_ERR);	/* guest errors are expected here */
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fin in = { data, size };
	struct gmem m = { .host = calloc(1, MEM_SIZE), .size = MEM_SIZE };
	struct vcon *c = malloc(sizeof(*c));

	if (!m.host || !c || vcon_init(c, &m, BASE, GSI, irq, NULL) < 0)
		abort();
	/* Ports without host fds: the device consumes and drops. */
	vcon_add_port(c, 0, NULL, true, -1, -1);
	vcon_add_port(c, 1, "clone.agent", false, -1, -1);
	while (fin_left(&in)) {
		uint8_t buf[8];
		uint64_t v, off;
		unsigned len;
		const uint8_t *b;
		size_t n;

		switch ((enum op)(fin_u8(&in) % OP_COUNT)) {
		case OP_WRITE:
			off = fin_u16(&in) % VIRTIO_MMIO_SIZE;
			v = fin_u32(&in);
			memcpy(buf, &v, 4);
			virtio_mmio_write(&c->t, off, buf, 4);
			break;
		case OP_ACCESS:
			off = fin_u16(&in) % VIRTIO_MMIO_SIZE;
			len = fin_u8(&in) % 9;
			v = fin_u64(&in);
			memcpy(buf, &v, 8);
			if (fin_u8(&in) & 1)
				virtio_mmio_write(&c->t, off, buf, len);
			else
				virtio_mmio_read(&c->t, off, buf, len);
			break;
		case OP_READ:
			off = fin_u16(&in) % VIRTIO_MMIO_SIZE;
			virtio_mmio_read(&c->t, off, buf, 4);
			break;
		case OP_PROCESS:
			vcon_process(c);
			break;
		case OP_MEM:
			off = fin_u16(&in) % MEM_SIZE;
			n = fin_bytes(&in, fin_u8(&in), &b);
			if (n > MEM_SIZE - off)
				n = MEM_SIZE - off;
			memcpy(m.host + off, b, n);
			break;
		case OP_COUNT:
			break;
		}
		check(&c->t, &m);
	}
	vcon_destroy(c);
	free(c);
	free(m.host);
	return 0;
}
