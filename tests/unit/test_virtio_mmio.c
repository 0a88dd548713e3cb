/* The virtio-mmio register file and status state machine, with a dummy
 * device that counts its callbacks. */
#include "vmm/virtio/mmio.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "common/log.h"
#include "tests/unit/fake_guest.h"

#define MEM_SIZE (1024 * 1024)
#define DUMMY_ID 42
#define DUMMY_FEATURES (1ULL << 0 | 1ULL << 5 | 1ULL << 35)
#define NQ 2
#define QMAX 16
#define GSI 7

struct env {
	struct fg g;
	struct fg_vq v[NQ];
	struct virtio_mmio t;
	unsigned config_reads, notifies, driver_oks, resets, irqs;
	unsigned last_notify;
	uint32_t last_gsi;
	void *last_opaque;
};

static const uint8_t config[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

static void dummy_config_read(struct virtio_mmio *t, uint32_t off,
			      void *data, uint32_t len)
{
	struct env *e = t->dev;

	e->config_reads++;
	assert_true(off + len <= sizeof(config));
	memcpy(data, config + off, len);
}

static void dummy_notify(struct virtio_mmio *t, unsigned q)
{
	struct env *e = t->dev;

	e->notifies++;
	e->last_notify = q;
}

static void dummy_driver_ok(struct virtio_mmio *t)
{
	struct env *e = t->dev;

	e->driver_oks++;
}

static void dummy_reset(struct virtio_mmio *t)
{
	struct env *e = t->dev;

	e->resets++;
}

static void dummy_irq(void *opaque, uint32_t gsi)
{
	struct env *e = opaque;

	e->irqs++;
	e->last_gsi = gsi;
	e->last_opaque = opaque;
}

static const struct virtio_dev_ops dummy_ops = {
	.name = "dummy",
	.device_id = DUMMY_ID,
	.features = DUMMY_FEATURES,
	.nqueues = NQ,
	.queue_max = QMAX,
	.config_size = sizeof(config),
	.config_read = dummy_config_read,
	.queue_notify = dummy_notify,
	.driver_ok = dummy_driver_ok,
	.reset = dummy_reset,
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	fg_init(&e->g, MEM_SIZE);
	for (unsigned i = 0; i < NQ; i++)
		fg_vq_init(&e->v[i], &e->g, 8);
	assert_int_equal(virtio_mmio_init(&e->t, &dummy_ops, e, &e->g.m,
					  0xd0000000, GSI, dummy_irq, e),
			 0);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	virtio_mmio_destroy(&e->t);
	virtio_mmio_destroy(&e->t);	/* twice is harmless */
	fg_free(&e->g);
	free(e);
	return 0;
}

static uint32_t status(struct env *e)
{
	return fg_rd(&e->t, VIRTIO_MMIO_STATUS);
}

/* The whole driver start-up, queues included. */
static void go_live(struct env *e)
{
	assert_int_equal(fg_mmio_negotiate(&e->t, 1ULL << VIRTIO_F_VERSION_1 |
							  1ULL << 5),
			 VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER |
				 VIRTIO_STATUS_FEATURES_OK);
	for (unsigned i = 0; i < NQ; i++)
		fg_mmio_queue(&e->t, i, &e->v[i]);
	fg_wr(&e->t, VIRTIO_MMIO_STATUS, FG_STATUS_LIVE);
	assert_int_equal(status(e), FG_STATUS_LIVE);
}

static void test_init_limits(void **state)
{
	struct virtio_mmio t;
	struct virtio_dev_ops ops = dummy_ops;

	(void)state;
	ops.nqueues = VIRTIO_MMIO_MAX_QUEUES + 1;
	assert_int_equal(virtio_mmio_init(&t, &ops, NULL, NULL, 0, 0, NULL,
					  NULL),
			 -EINVAL);
	ops.nqueues = 1;
	ops.queue_max = VIRTQ_MAX_SIZE * 2;
	assert_int_equal(virtio_mmio_init(&t, &ops, NULL, NULL, 0, 0, NULL,
					  NULL),
			 -EINVAL);
}

static void test_ids(void **state)
{
	struct env *e = *state;

	assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_MAGIC), 0x74726976);
	assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_VERSION), 2);
	assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_DEVICE_ID), DUMMY_ID);
	assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_VENDOR_ID),
			 VIRTIO_MMIO_VENDOR);
	assert_int_equal(status(e), 0);
	assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_CONFIG_GENERATION), 0);
}

static void test_device_features(void **state)
{
	struct env *e = *state;

	fg_wr(&e->t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_DEVICE_FEATURES),
			 (uint32_t)DUMMY_FEATURES);
	fg_wr(&e->t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_DEVICE_FEATURES),
			 1U << (VIRTIO_F_VERSION_1 - 32) | 1U << 3);
	fg_wr(&e->t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
	assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_DEVICE_FEATURES), 0);
	fg_wr(&e->t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0xffffffff);
	assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_DEVICE_FEATURES), 0);
}

static void test_status_sequence(void **state)
{
	struct env *e = *state;
	const uint64_t f = 1ULL << VIRTIO_F_VERSION_1 | 1ULL << 0 | 1ULL << 35;

	fg_wr(&e->t, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACK);
	assert_int_equal(status(e), VIRTIO_STATUS_ACK);
	fg_wr(&e->t, VIRTIO_MMIO_STATUS,
	      VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER);
	assert_int_equal(status(e), VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER);
	assert_int_equal(fg_mmio_negotiate(&e->t, f),
			 VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER |
				 VIRTIO_STATUS_FEATURES_OK);
	assert_true(virtio_mmio_has(&e->t, 0));
	assert_true(virtio_mmio_has(&e->t, 35));
	assert_true(virtio_mmio_has(&e->t, VIRTIO_F_VERSION_1));
	assert_false(virtio_mmio_has(&e->t, 5));	/* offered, not taken */
	assert_false(virtio_mmio_live(&e->t));
	assert_int_equal(e->driver_oks, 0);
	fg_wr(&e->t, VIRTIO_MMIO_STATUS, FG_STATUS_LIVE);
	assert_int_equal(status(e), FG_STATUS_LIVE);
	assert_int_equal(e->driver_oks, 1);
	assert_true(virtio_mmio_live(&e->t));
	/* Writing the same status again is not a second DRIVER_OK. */
	fg_wr(&e->t, VIRTIO_MMIO_STATUS, FG_STATUS_LIVE);
	assert_int_equal(e->driver_oks, 1);
	assert_int_equal(e->resets, 0);
}

static void test_features_unoffered(void **state)
{
	struct env *e = *state;

	/* Bit 3 was not offered. */
	assert_int_equal(fg_mmio_negotiate(&e->t, 1ULL << VIRTIO_F_VERSION_1 |
							  1ULL << 3),
			 VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER);
	assert_false(virtio_mmio_has(&e->t, VIRTIO_F_VERSION_1));
	/* DRIVER_OK without FEATURES_OK is refused too. */
	fg_wr(&e->t, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACK |
		     VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(status(e), VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER);
	fg_wr(&e->t, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACK |
		     VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
		     VIRTIO_STATUS_DRIVER_OK);
	assert_false(status(e) & VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(e->driver_oks, 0);

	/* A high unoffered bit, through the second features word. */
	fg_wr(&e->t, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(fg_mmio_negotiate(&e->t, 1ULL << VIRTIO_F_VERSION_1 |
							  1ULL << 63),
			 VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER);

	/* The driver may try again with what was offered. */
	fg_wr(&e->t, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(fg_mmio_negotiate(&e->t, 1ULL << VIRTIO_F_VERSION_1),
			 VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER |
				 VIRTIO_STATUS_FEATURES_OK);
}

static void test_features_legacy(void **state)
{
	struct env *e = *state;

	/* No VERSION_1: a legacy driver. */
	assert_int_equal(fg_mmio_negotiate(&e->t, 1ULL << 0 | 1ULL << 5),
			 VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER);
	assert_int_equal(fg_mmio_negotiate(&e->t, 0),
			 VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER);
}

static void test_features_locked(void **state)
{
	struct env *e = *state;

	go_live(e);
	/* After FEATURES_OK the driver features cannot change. */
	fg_wr(&e->t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	fg_wr(&e->t, VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffff);
	fg_wr(&e->t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	fg_wr(&e->t, VIRTIO_MMIO_DRIVER_FEATURES, 0);
	assert_true(virtio_mmio_has(&e->t, VIRTIO_F_VERSION_1));
	assert_true(virtio_mmio_has(&e->t, 5));
	assert_false(virtio_mmio_has(&e->t, 0));
	assert_int_equal(e->t.drv_features,
			 1ULL << VIRTIO_F_VERSION_1 | 1ULL << 5);
}

static void test_features_sel_range(void **state)
{
	struct env *e = *state;

	fg_wr(&e->t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 2);
	fg_wr(&e->t, VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffff);
	assert_int_equal(e->t.drv_features, 0);
	fg_wr(&e->t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	fg_wr(&e->t, VIRTIO_MMIO_DRIVER_FEATURES, 0x1);
	fg_wr(&e->t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	fg_wr(&e->t, VIRTIO_MMIO_DRIVER_FEATURES, 0x20);
	assert_int_equal(e->t.drv_features, 1ULL << 32 | 0x20);
}

static void test_status_clear_ignored(void **state)
{
	struct env *e = *state;

	go_live(e);
	fg_wr(&e->t, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACK);
	assert_int_equal(status(e), FG_STATUS_LIVE);
	fg_wr(&e->t, VIRTIO_MMIO_STATUS,
	      FG_STATUS_LIVE & ~(uint32_t)VIRTIO_STATUS_FEATURES_OK);
	assert_int_equal(status(e), FG_STATUS_LIVE);
	assert_int_equal(e->resets, 0);
	assert_int_equal(e->driver_oks, 1);
	/* Adding FAILED is allowed. */
	fg_wr(&e->t, VIRTIO_MMIO_STATUS,
	      FG_STATUS_LIVE | VIRTIO_STATUS_FAILED);
	assert_int_equal(status(e), FG_STATUS_LIVE | VIRTIO_STATUS_FAILED);
}

static void test_reset(void **state)
{
	struct env *e = *state;

	go_live(e);
	virtio_mmio_interrupt(&e->t, VIRTIO_INT_VRING);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_SEL, 1);
	fg_wr(&e->t, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(e->resets, 1);
	assert_int_equal(status(e), 0);
	assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	assert_int_equal(e->t.drv_features, 0);
	assert_int_equal(e->t.queue_sel, 0);
	for (unsigned i = 0; i < NQ; i++) {
		fg_wr(&e->t, VIRTIO_MMIO_QUEUE_SEL, i);
		assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_QUEUE_READY), 0);
		assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_QUEUE_NUM_MAX), QMAX);
		assert_int_equal(e->t.vq[i].size, 0);
		assert_int_equal(e->t.vq[i].desc_gpa, 0);
		assert_int_equal(e->t.vq[i].max_size, QMAX);
	}
	/* And the driver can start over. */
	go_live(e);
	assert_int_equal(e->driver_oks, 2);
}

static void test_queue_setup(void **state)
{
	struct env *e = *state;
	struct virtq *q = &e->t.vq[1];

	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_SEL, 1);
	assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_QUEUE_NUM_MAX), QMAX);
	assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_QUEUE_READY), 0);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_NUM, 8);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)e->v[1].desc);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)e->v[1].avail);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)e->v[1].used);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
	assert_int_equal(q->size, 8);
	assert_int_equal(q->desc_gpa, e->v[1].desc);
	assert_int_equal(q->avail_gpa, e->v[1].avail);
	assert_int_equal(q->used_gpa, e->v[1].used);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_READY, 1);
	assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_QUEUE_READY), 1);
	assert_true(q->ready);
	assert_false(e->t.vq[0].ready);

	/* While ready, the queue registers are frozen. */
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_NUM, 4);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1000);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0xffffffff);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, 0x2000);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 1);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_USED_LOW, 0x3000);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_USED_HIGH, 1);
	assert_int_equal(q->size, 8);
	assert_int_equal(q->desc_gpa, e->v[1].desc);
	assert_int_equal(q->avail_gpa, e->v[1].avail);
	assert_int_equal(q->used_gpa, e->v[1].used);

	/* QueueReady 0 unfreezes them. */
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_READY, 0);
	assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_QUEUE_READY), 0);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_NUM, 4);
	assert_int_equal(q->size, 4);

	/* The high halves reach the top 32 bits. */
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0x12345678);
	assert_int_equal(q->desc_gpa, 0x1234567800000000ULL | e->v[1].desc);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_DESC_LOW, 0xabcdef00);
	assert_int_equal(q->desc_gpa, 0x12345678abcdef00ULL);
}

static void try_ready(struct env *e, bool expect)
{
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_READY, 1);
	assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_QUEUE_READY), expect);
}

static void test_queue_refused(void **state)
{
	struct env *e = *state;
	const uint32_t bad_num[] = { 0, 7, QMAX * 2, 0x10008 };

	fg_mmio_queue(&e->t, 0, &e->v[0]);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_READY, 0);
	for (unsigned i = 0; i < sizeof(bad_num) / sizeof(bad_num[0]); i++) {
		fg_wr(&e->t, VIRTIO_MMIO_QUEUE_NUM, bad_num[i]);
		try_ready(e, false);
	}
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_NUM, 8);
	try_ready(e, true);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_READY, 0);

	/* Rings outside guest memory. */
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_DESC_HIGH, 1);
	try_ready(e, false);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_USED_LOW, MEM_SIZE - 8);
	try_ready(e, false);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_USED_LOW, 0xfffff000);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_USED_HIGH, 0xffffffff);
	try_ready(e, false);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)e->v[0].used);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
	/* Misaligned. */
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)e->v[0].avail + 1);
	try_ready(e, false);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)e->v[0].avail);
	try_ready(e, true);

	/* No such queue. */
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_SEL, NQ);
	assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_NUM, 8);
	try_ready(e, false);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_SEL, 0xffffffff);
	try_ready(e, false);
}

static void test_notify(void **state)
{
	struct env *e = *state;

	assert_int_equal(fg_mmio_negotiate(&e->t, 1ULL << VIRTIO_F_VERSION_1),
			 VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER |
				 VIRTIO_STATUS_FEATURES_OK);
	fg_mmio_queue(&e->t, 1, &e->v[1]);
	/* Ready, but before DRIVER_OK. */
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_int_equal(e->notifies, 0);
	fg_wr(&e->t, VIRTIO_MMIO_STATUS, FG_STATUS_LIVE);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_int_equal(e->notifies, 1);
	assert_int_equal(e->last_notify, 1);
	/* Queue 0 is not ready; queue 2 and up do not exist. */
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_NOTIFY, NQ);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_NOTIFY, 0xffffffff);
	assert_int_equal(e->notifies, 1);
	/* Not while the device needs a reset. */
	virtio_mmio_needs_reset(&e->t);
	fg_wr(&e->t, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	assert_int_equal(e->notifies, 1);
}

static void test_interrupt(void **state)
{
	struct env *e = *state;

	virtio_mmio_interrupt(&e->t, VIRTIO_INT_VRING);
	assert_int_equal(e->irqs, 1);
	assert_int_equal(e->last_gsi, GSI);
	assert_ptr_equal(e->last_opaque, e);
	virtio_mmio_interrupt(&e->t, VIRTIO_INT_CONFIG);
	assert_int_equal(e->irqs, 2);
	assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_INTERRUPT_STATUS),
			 VIRTIO_INT_VRING | VIRTIO_INT_CONFIG);
	fg_wr(&e->t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_INT_VRING);
	assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_INTERRUPT_STATUS),
			 VIRTIO_INT_CONFIG);
	fg_wr(&e->t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_INT_CONFIG);
	assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	/* InterruptStatus is read-only. */
	fg_wr(&e->t, VIRTIO_MMIO_INTERRUPT_STATUS, 3);
	assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	assert_int_equal(e->irqs, 2);

	/* No irq callback: bits only. */
	e->t.irq = NULL;
	virtio_mmio_interrupt(&e->t, VIRTIO_INT_VRING);
	assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_INTERRUPT_STATUS), 1);
	assert_int_equal(e->irqs, 2);
}

static void test_needs_reset(void **state)
{
	struct env *e = *state;

	/* Before DRIVER_OK: the bit, but no interrupt. */
	virtio_mmio_needs_reset(&e->t);
	assert_int_equal(status(e), VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(e->irqs, 0);
	fg_wr(&e->t, VIRTIO_MMIO_STATUS, 0);

	go_live(e);
	virtio_mmio_needs_reset(&e->t);
	assert_int_equal(status(e), FG_STATUS_LIVE | VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(e->irqs, 1);
	assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_INTERRUPT_STATUS),
			 VIRTIO_INT_CONFIG);
	assert_false(virtio_mmio_live(&e->t));
	/* Once is enough. */
	virtio_mmio_needs_reset(&e->t);
	assert_int_equal(e->irqs, 1);
	/* The driver cannot clear it by writing status... */
	fg_wr(&e->t, VIRTIO_MMIO_STATUS, FG_STATUS_LIVE);
	assert_int_equal(status(e), FG_STATUS_LIVE | VIRTIO_STATUS_NEEDS_RESET);
	/* ... only by resetting. */
	fg_wr(&e->t, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(status(e), 0);
	go_live(e);
	assert_true(virtio_mmio_live(&e->t));
}

static void test_bad_access(void **state)
{
	struct env *e = *state;
	uint8_t b[8];
	uint16_t h;
	uint32_t v;
	uint64_t q;

	/* Misaligned and non-32-bit register reads read as 0. */
	virtio_mmio_read(&e->t, VIRTIO_MMIO_MAGIC + 1, &v, 4);
	assert_int_equal(v, 0);
	virtio_mmio_read(&e->t, VIRTIO_MMIO_MAGIC + 2, &h, 2);
	assert_int_equal(h, 0);
	virtio_mmio_read(&e->t, VIRTIO_MMIO_MAGIC, &h, 2);
	assert_int_equal(h, 0);
	virtio_mmio_read(&e->t, VIRTIO_MMIO_MAGIC, b, 1);
	assert_int_equal(b[0], 0);
	virtio_mmio_read(&e->t, VIRTIO_MMIO_MAGIC, &q, 8);
	assert_int_equal(q, 0);
	/* Unknown and write-only registers read as 0. */
	assert_int_equal(fg_rd(&e->t, 0x0f0), 0);
	assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_QUEUE_NOTIFY), 0);
	assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_QUEUE_DESC_LOW), 0);

	/* Such writes are ignored. */
	h = VIRTIO_STATUS_ACK;
	virtio_mmio_write(&e->t, VIRTIO_MMIO_STATUS, &h, 2);
	assert_int_equal(status(e), 0);
	v = VIRTIO_STATUS_ACK;
	virtio_mmio_write(&e->t, VIRTIO_MMIO_STATUS + 1, &v, 4);
	assert_int_equal(status(e), 0);
	q = VIRTIO_STATUS_ACK;
	virtio_mmio_write(&e->t, VIRTIO_MMIO_STATUS, &q, 8);
	assert_int_equal(status(e), 0);
	fg_wr(&e->t, VIRTIO_MMIO_MAGIC, 0);
	fg_wr(&e->t, 0x0f0, 1);
	fg_wr(&e->t, 0xffc, 1);
	assert_int_equal(fg_rd(&e->t, VIRTIO_MMIO_MAGIC), 0x74726976);
	assert_int_equal(status(e), 0);
	assert_int_equal(e->resets, 0);
}

static void test_config(void **state)
{
	struct env *e = *state;
	uint8_t b[8];
	uint16_t h;
	uint32_t v;
	uint64_t q;

	v = fg_rd(&e->t, VIRTIO_MMIO_CONFIG);
	assert_memory_equal(&v, config, 4);
	v = fg_rd(&e->t, VIRTIO_MMIO_CONFIG + 4);
	assert_memory_equal(&v, config + 4, 4);
	virtio_mmio_read(&e->t, VIRTIO_MMIO_CONFIG + 2, &h, 2);
	assert_memory_equal(&h, config + 2, 2);
	virtio_mmio_read(&e->t, VIRTIO_MMIO_CONFIG + 7, b, 1);
	assert_int_equal(b[0], 8);
	virtio_mmio_read(&e->t, VIRTIO_MMIO_CONFIG, &q, 8);
	assert_memory_equal(&q, config, 8);
	assert_int_equal(e->config_reads, 5);

	/* Beyond config_size, or straddling it: zero, device not asked. */
	v = 0xdeadbeef;
	virtio_mmio_read(&e->t, VIRTIO_MMIO_CONFIG + 6, &v, 4);
	assert_int_equal(v, 0);
	v = 0xdeadbeef;
	virtio_mmio_read(&e->t, VIRTIO_MMIO_CONFIG + 8, &v, 4);
	assert_int_equal(v, 0);
	virtio_mmio_read(&e->t, VIRTIO_MMIO_SIZE - 4, &v, 4);
	assert_int_equal(v, 0);
	virtio_mmio_read(&e->t, 0xffffffffffffffffULL, b, 1);
	assert_int_equal(b[0], 0);
	virtio_mmio_read(&e->t, 0xfffffffffffffff8ULL, &q, 8);
	assert_int_equal(q, 0);
	assert_int_equal(e->config_reads, 5);

	/* Config space is read-only here. */
	v = 0;
	virtio_mmio_write(&e->t, VIRTIO_MMIO_CONFIG, &v, 4);
	assert_int_equal(e->config_reads, 5);
}

/* Guest errors go through a time-window limiter per source (the VM's, or
 * the transport's own), not a budget per process that one guest spends
 * for every other device and that never refills: a second transport's
 * first mistake is logged however many the first one made. */
static void test_guest_errors_limited_per_source(void **state)
{
	static const struct virtio_dev_ops second_ops = {
		.name = "second", .device_id = DUMMY_ID, .nqueues = NQ,
		.queue_max = QMAX,
	};
	struct env *e = *state;
	struct virtio_mmio t2;
	FILE *f = tmpfile();
	char buf[8192];
	size_t n;
	uint32_t v;
	int saved = dup(STDERR_FILENO);

	assert_non_null(f);
	log_init("t", LOG_INFO);
	assert_true(dup2(fileno(f), STDERR_FILENO) >= 0);
	for (int i = 0; i < 100; i++)
		virtio_mmio_read(&e->t, 0x0f0, &v, 4);	/* unknown register */
	assert_int_equal(virtio_mmio_init(&t2, &second_ops, e, &e->g.m,
					  0xd0001000, GSI, dummy_irq, e),
			 0);
	virtio_mmio_read(&t2, 0x0f0, &v, 4);
	virtio_mmio_destroy(&t2);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	assert_non_null(strstr(buf, "second: guest error: read of unknown "
				    "register (register 0x0f0)"));
	assert_true(n < 40 * 80);	/* the first one's 100 were limited */
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_limits),
		T(test_ids),
		T(test_device_features),
		T(test_status_sequence),
		T(test_features_unoffered),
		T(test_features_legacy),
		T(test_features_locked),
		T(test_features_sel_range),
		T(test_status_clear_ignored),
		T(test_reset),
		T(test_queue_setup),
		T(test_queue_refused),
		T(test_notify),
		T(test_interrupt),
		T(test_needs_reset),
		T(test_bad_access),
		T(test_config),
		T(test_guest_errors_limited_per_source),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
