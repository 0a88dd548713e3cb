/* The split virtqueue on plain memory, driven by a fake and often hostile
 * guest driver. */
#include "vmm/virtio/virtq.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tests/unit/fake_guest.h"

#define MEM_SIZE (1024 * 1024)
#define QSIZE 8

struct env {
	struct fg g;
	struct fg_vq v;
	struct virtq q;
	struct virtq_chain c;
};

static void point_queue(struct env *e)
{
	e->q.size = e->v.size;
	e->q.desc_gpa = e->v.desc;
	e->q.avail_gpa = e->v.avail;
	e->q.used_gpa = e->v.used;
}

static int setup_size(void **state, uint16_t size)
{
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	fg_init(&e->g, MEM_SIZE);
	fg_vq_init(&e->v, &e->g, size);
	e->q.max_size = 256;
	virtq_reset(&e->q);
	point_queue(e);
	assert_int_equal(virtq_enable(&e->q, &e->g.m), VIRTQ_OK);
	*state = e;
	return 0;
}

static int setup(void **state)
{
	return setup_size(state, QSIZE);
}

static int setup_big(void **state)
{
	return setup_size(state, 128);
}

static int teardown(void **state)
{
	struct env *e = *state;

	fg_free(&e->g);
	free(e);
	return 0;
}

/* A buffer of len bytes in guest memory. */
static uint64_t buf(struct env *e, uint32_t len)
{
	return fg_alloc(&e->g, len, 16);
}

static void expect_pop_err(struct env *e, enum virtq_err err)
{
	uint16_t before = e->q.last_avail;

	assert_int_equal(virtq_pop(&e->q, &e->g.m, &e->c), -(int)err);
	assert_true(e->q.broken);
	assert_int_equal(e->q.last_avail, before);	/* nothing consumed */
}

static void test_enable_size(void **state)
{
	struct env *e = *state;
	const uint16_t bad[] = { 0, 3, 6, 100, 255, 512, 1024 };

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e->q.size = bad[i];
		assert_int_equal(virtq_enable(&e->q, &e->g.m), VIRTQ_E_SIZE);
		assert_false(e->q.ready);
	}
	e->q.size = 256;	/* == max_size */
	e->q.desc_gpa = fg_alloc(&e->g, 16 * 256, FG_PAGE);
	e->q.avail_gpa = fg_alloc(&e->g, 6 + 2 * 256, 2);
	e->q.used_gpa = fg_alloc(&e->g, 6 + 8 * 256, 4);
	assert_int_equal(virtq_enable(&e->q, &e->g.m), VIRTQ_OK);
	assert_true(e->q.ready);
	e->q.size = 1;
	assert_int_equal(virtq_enable(&e->q, &e->g.m), VIRTQ_OK);
}

static void test_enable_align(void **state)
{
	struct env *e = *state;

	e->q.desc_gpa = e->v.desc + 8;
	assert_int_equal(virtq_enable(&e->q, &e->g.m), VIRTQ_E_RING_ALIGN);
	assert_false(e->q.ready);
	point_queue(e);
	e->q.avail_gpa = e->v.avail + 1;
	assert_int_equal(virtq_enable(&e->q, &e->g.m), VIRTQ_E_RING_ALIGN);
	point_queue(e);
	e->q.used_gpa = e->v.used + 2;
	assert_int_equal(virtq_enable(&e->q, &e->g.m), VIRTQ_E_RING_ALIGN);
	assert_false(e->q.ready);
	point_queue(e);
	assert_int_equal(virtq_enable(&e->q, &e->g.m), VIRTQ_OK);
}

static void test_enable_ring_addr(void **state)
{
	struct env *e = *state;
	const uint64_t end = MEM_SIZE;
	const uint64_t bad[] = {
		end,			/* just past the end */
		end - 16,		/* straddles the end */
		end + FG_PAGE,
		0xfffffffffffff000ULL,	/* base + len wraps 64 bits */
		0xfffffffffffffff0ULL,
		1ULL << 32,		/* high half set */
	};

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		point_queue(e);
		e->q.desc_gpa = bad[i];
		assert_int_equal(virtq_enable(&e->q, &e->g.m),
				 VIRTQ_E_RING_ADDR);
		assert_false(e->q.ready);
		point_queue(e);
		e->q.avail_gpa = bad[i];
		assert_int_equal(virtq_enable(&e->q, &e->g.m),
				 VIRTQ_E_RING_ADDR);
		point_queue(e);
		e->q.used_gpa = bad[i];
		assert_int_equal(virtq_enable(&e->q, &e->g.m),
				 VIRTQ_E_RING_ADDR);
	}
	/* Rings ending exactly at the end of memory are fine. */
	point_queue(e);
	e->q.desc_gpa = end - 16 * QSIZE;
	e->q.used_gpa = (end - (6 + 8 * QSIZE)) & ~3ULL;
	assert_int_equal(virtq_enable(&e->q, &e->g.m), VIRTQ_OK);
	/* ... but one byte more is not. */
	e->q.avail_gpa = end - (6 + 2 * QSIZE) + 2;
	assert_int_equal(virtq_enable(&e->q, &e->g.m), VIRTQ_E_RING_ADDR);
}

static void test_pop_empty(void **state)
{
	struct env *e = *state;

	assert_int_equal(virtq_pop(&e->q, &e->g.m, &e->c), 0);
	assert_false(e->q.broken);
	e->q.ready = false;
	assert_int_equal(virtq_pop(&e->q, &e->g.m, &e->c),
			 -VIRTQ_E_NOT_READY);
	assert_int_equal(virtq_push(&e->q, &e->g.m, &e->c, 0),
			 -VIRTQ_E_NOT_READY);
}

static void test_pop_chain(void **state)
{
	struct env *e = *state;
	uint64_t r0 = buf(e, 10), r1 = buf(e, 20), w0 = buf(e, 30),
		 w1 = buf(e, 40);
	uint32_t id, len;

	/* Descriptors out of order in the table: 5 -> 2 -> 7 -> 0. */
	fg_desc(&e->v, 5, r0, 10, VIRTQ_DESC_F_NEXT, 2);
	fg_desc(&e->v, 2, r1, 20, VIRTQ_DESC_F_NEXT, 7);
	fg_desc(&e->v, 7, w0, 30, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 0);
	fg_desc(&e->v, 0, w1, 40, VIRTQ_DESC_F_WRITE, 0);
	fg_publish(&e->v, 5);

	assert_int_equal(virtq_pop(&e->q, &e->g.m, &e->c), 1);
	assert_int_equal(e->c.head, 5);
	assert_int_equal(e->c.nsegs, 4);
	assert_int_equal(e->c.nread, 2);
	assert_int_equal(e->c.read_len, 30);
	assert_int_equal(e->c.write_len, 70);
	assert_ptr_equal(e->c.seg[0].host, fg_host(&e->g, r0));
	assert_ptr_equal(e->c.seg[1].host, fg_host(&e->g, r1));
	assert_ptr_equal(e->c.seg[2].host, fg_host(&e->g, w0));
	assert_ptr_equal(e->c.seg[3].host, fg_host(&e->g, w1));
	assert_false(e->c.seg[0].write);
	assert_false(e->c.seg[1].write);
	assert_true(e->c.seg[2].write);
	assert_true(e->c.seg[3].write);
	assert_int_equal(e->c.seg[3].len, 40);
	assert_int_equal(e->q.last_avail, 1);
	assert_int_equal(virtq_pop(&e->q, &e->g.m, &e->c), 0);

	assert_int_equal(virtq_push(&e->q, &e->g.m, &e->c, 70), 0);
	assert_int_equal(fg_used_idx(&e->v), 1);
	assert_int_equal(fg_get_used(&e->v, &id, &len), 1);
	assert_int_equal(id, 5);
	assert_int_equal(len, 70);
	assert_false(e->q.broken);
}

static void test_zero_length_segment(void **state)
{
	struct env *e = *state;

	/* A zero-length buffer, even at the very end of memory, is inside. */
	fg_desc(&e->v, 0, MEM_SIZE, 0, 0, 0);
	fg_publish(&e->v, 0);
	assert_int_equal(virtq_pop(&e->q, &e->g.m, &e->c), 1);
	assert_int_equal(e->c.read_len, 0);
	assert_int_equal(e->c.write_len, 0);
}

static void test_head_out_of_range(void **state)
{
	struct env *e = *state;

	fg_publish(&e->v, QSIZE);
	expect_pop_err(e, VIRTQ_E_HEAD);
}

static void test_head_max(void **state)
{
	struct env *e = *state;

	fg_publish(&e->v, 0xffff);
	expect_pop_err(e, VIRTQ_E_HEAD);
}

static void test_next_out_of_range(void **state)
{
	struct env *e = *state;
	uint64_t b = buf(e, 16);

	fg_desc(&e->v, 0, b, 16, VIRTQ_DESC_F_NEXT, 1);
	fg_desc(&e->v, 1, b, 16, VIRTQ_DESC_F_NEXT, QSIZE);
	fg_publish(&e->v, 0);
	expect_pop_err(e, VIRTQ_E_NEXT);
}

static void test_loop(void **state)
{
	struct env *e = *state;
	uint64_t b = buf(e, 16);

	fg_desc(&e->v, 3, b, 16, VIRTQ_DESC_F_NEXT, 4);
	fg_desc(&e->v, 4, b, 16, VIRTQ_DESC_F_NEXT, 3);
	fg_publish(&e->v, 3);
	expect_pop_err(e, VIRTQ_E_LOOP);
}

static void test_self_loop(void **state)
{
	struct env *e = *state;
	uint64_t b = buf(e, 16);

	fg_desc(&e->v, 6, b, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 6);
	fg_publish(&e->v, 6);
	expect_pop_err(e, VIRTQ_E_LOOP);
}

/* Every descriptor of the queue in one chain is legal, not a loop. */
static void test_chain_whole_table(void **state)
{
	struct env *e = *state;
	uint64_t b = buf(e, 16);

	for (uint16_t i = 0; i < QSIZE; i++)
		fg_desc(&e->v, i, b, 16,
			i < QSIZE - 1 ? VIRTQ_DESC_F_NEXT : 0,
			(uint16_t)(i + 1));
	fg_publish(&e->v, 0);
	assert_int_equal(virtq_pop(&e->q, &e->g.m, &e->c), 1);
	assert_int_equal(e->c.nsegs, QSIZE);
	assert_int_equal(e->c.read_len, 16 * QSIZE);
}

static void chain_of(struct env *e, unsigned n)
{
	uint64_t b = buf(e, 8);

	for (uint16_t i = 0; i < n; i++)
		fg_desc(&e->v, i, b, 8, i < n - 1 ? VIRTQ_DESC_F_NEXT : 0,
			(uint16_t)(i + 1));
	fg_publish(&e->v, 0);
}

static void test_too_long(void **state)
{
	struct env *e = *state;

	chain_of(e, VIRTQ_MAX_SEGS + 1);
	expect_pop_err(e, VIRTQ_E_TOO_LONG);
}

static void test_max_segs(void **state)
{
	struct env *e = *state;

	chain_of(e, VIRTQ_MAX_SEGS);
	assert_int_equal(virtq_pop(&e->q, &e->g.m, &e->c), 1);
	assert_int_equal(e->c.nsegs, VIRTQ_MAX_SEGS);
	assert_int_equal(e->c.read_len, 8 * VIRTQ_MAX_SEGS);
}

static void test_self_loop_big(void **state)
{
	struct env *e = *state;

	/* Size 128: the segment limit catches the loop first. */
	fg_desc(&e->v, 9, buf(e, 1), 1, VIRTQ_DESC_F_NEXT, 9);
	fg_publish(&e->v, 9);
	assert_true(virtq_pop(&e->q, &e->g.m, &e->c) < 0);
	assert_true(e->q.broken);
}

static void bad_buffer(struct env *e, uint64_t addr, uint32_t len,
		       uint16_t flags)
{
	virtq_reset(&e->q);
	e->q.max_size = 256;
	point_queue(e);
	e->v.avail_idx = 0;
	e->v.used_seen = 0;
	assert_int_equal(virtq_enable(&e->q, &e->g.m), VIRTQ_OK);
	fg_desc(&e->v, 0, buf(e, 4), 4, VIRTQ_DESC_F_NEXT, 1);
	fg_desc(&e->v, 1, addr, len, flags, 0);
	fg_publish(&e->v, 0);
	expect_pop_err(e, VIRTQ_E_BUF_ADDR);
}

static void test_buf_addr(void **state)
{
	struct env *e = *state;

	bad_buffer(e, MEM_SIZE, 1, 0);
	bad_buffer(e, MEM_SIZE - 4, 5, VIRTQ_DESC_F_WRITE);
	bad_buffer(e, MEM_SIZE + FG_PAGE, 16, 0);
	bad_buffer(e, 0, MEM_SIZE + 1, VIRTQ_DESC_F_WRITE);
	bad_buffer(e, 0xfffffffffffffff0ULL, 0x20, 0);	/* wraps to 0x10 */
	bad_buffer(e, 0xffffffffffffffffULL, 1, VIRTQ_DESC_F_WRITE);
	bad_buffer(e, 0xfffffffffffff000ULL, 0xffffffff, 0);
}

static void test_order(void **state)
{
	struct env *e = *state;
	uint64_t b = buf(e, 16);

	fg_desc(&e->v, 0, b, 8, VIRTQ_DESC_F_NEXT, 1);
	fg_desc(&e->v, 1, b, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
	fg_desc(&e->v, 2, b, 8, 0, 0);
	fg_publish(&e->v, 0);
	expect_pop_err(e, VIRTQ_E_ORDER);
}

/* A zero-length writable descriptor before a readable one is out of order
 * too: the chain's readable segments must be seg[0..nread). */
static void test_order_zero_length_write(void **state)
{
	struct env *e = *state;
	uint64_t b = buf(e, 16);

	fg_desc(&e->v, 0, b, 0, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	fg_desc(&e->v, 1, b, 8, 0, 0);
	fg_publish(&e->v, 0);
	expect_pop_err(e, VIRTQ_E_ORDER);
}

static void test_indirect(void **state)
{
	struct env *e = *state;
	uint64_t table = fg_alloc(&e->g, 32, 16);

	fg_desc(&e->v, 0, table, 32, VIRTQ_DESC_F_INDIRECT, 0);
	fg_publish(&e->v, 0);
	expect_pop_err(e, VIRTQ_E_INDIRECT);
}

static void test_avail_idx_ahead(void **state)
{
	struct env *e = *state;

	fg_desc(&e->v, 0, buf(e, 4), 4, 0, 0);
	fg_avail_idx(&e->v, QSIZE + 1);
	expect_pop_err(e, VIRTQ_E_AVAIL_IDX);
}

static void test_avail_idx_behind(void **state)
{
	struct env *e = *state;

	/* One behind us is 65535 ahead: also a lie. */
	fg_avail_idx(&e->v, 0xffff);
	expect_pop_err(e, VIRTQ_E_AVAIL_IDX);
}

static void test_avail_full(void **state)
{
	struct env *e = *state;
	uint64_t b = buf(e, 4);

	/* Exactly size buffers outstanding is a full ring, not an error. */
	for (uint16_t i = 0; i < QSIZE; i++) {
		fg_desc(&e->v, i, b, 4, 0, 0);
		fg_publish(&e->v, i);
	}
	for (uint16_t i = 0; i < QSIZE; i++) {
		assert_int_equal(virtq_pop(&e->q, &e->g.m, &e->c), 1);
		assert_int_equal(e->c.head, i);
	}
	assert_int_equal(virtq_pop(&e->q, &e->g.m, &e->c), 0);
}

static void test_wrap(void **state)
{
	struct env *e = *state;
	uint64_t b = buf(e, 4);
	uint32_t id, len;

	/* As if 65534 chains had gone through already. */
	e->q.last_avail = e->q.used_idx = 65534;
	fg_avail_idx(&e->v, 65534);
	e->v.used_seen = 65534;
	for (uint16_t i = 0; i < 4; i++) {
		fg_desc(&e->v, i, b, 4, VIRTQ_DESC_F_WRITE, 0);
		fg_publish(&e->v, i);
	}
	assert_int_equal(e->v.avail_idx, 2);
	for (uint16_t i = 0; i < 4; i++) {
		assert_int_equal(virtq_pop(&e->q, &e->g.m, &e->c), 1);
		assert_int_equal(e->c.head, i);
		assert_int_equal(virtq_push(&e->q, &e->g.m, &e->c, i), 0);
	}
	assert_int_equal(virtq_pop(&e->q, &e->g.m, &e->c), 0);
	assert_int_equal(e->q.last_avail, 2);
	assert_int_equal(fg_used_idx(&e->v), 2);
	for (uint16_t i = 0; i < 4; i++) {
		assert_int_equal(fg_get_used(&e->v, &id, &len), 1);
		assert_int_equal(id, i);
		assert_int_equal(len, i);
	}
	/* Slots 6, 7, 0, 1 of the used ring. */
	fg_used_elem(&e->v, 6, &id, &len);
	assert_int_equal(id, 0);
	fg_used_elem(&e->v, 1, &id, &len);
	assert_int_equal(id, 3);
}

static void test_broken_sticky(void **state)
{
	struct env *e = *state;
	uint64_t b = buf(e, 4);

	fg_desc(&e->v, 0, b, 4, 0, 0);
	fg_publish(&e->v, QSIZE + 3);
	expect_pop_err(e, VIRTQ_E_HEAD);
	/* The guest repairs the ring: the queue stays broken. */
	fg_avail_idx(&e->v, 0);
	fg_publish(&e->v, 0);
	assert_true(virtq_pop(&e->q, &e->g.m, &e->c) < 0);
	assert_true(virtq_pop(&e->q, &e->g.m, &e->c) < 0);
	assert_true(e->q.broken);

	/* Device reset, then the driver sets the queue up again. */
	virtq_reset(&e->q);
	assert_false(e->q.broken);
	assert_false(e->q.ready);
	assert_int_equal(e->q.max_size, 256);
	assert_int_equal(e->q.last_avail, 0);
	point_queue(e);
	assert_int_equal(virtq_enable(&e->q, &e->g.m), VIRTQ_OK);
	assert_int_equal(virtq_pop(&e->q, &e->g.m, &e->c), 1);
	assert_int_equal(e->c.head, 0);
}

static void test_push_too_much(void **state)
{
	struct env *e = *state;

	fg_desc(&e->v, 0, buf(e, 4), 4, VIRTQ_DESC_F_NEXT, 1);
	fg_desc(&e->v, 1, buf(e, 10), 10, VIRTQ_DESC_F_WRITE, 0);
	fg_publish(&e->v, 0);
	assert_int_equal(virtq_pop(&e->q, &e->g.m, &e->c), 1);
	assert_int_equal(virtq_push(&e->q, &e->g.m, &e->c, 11),
			 -VIRTQ_E_USED_LEN);
	assert_int_equal(fg_used_idx(&e->v), 0);
	assert_int_equal(virtq_push(&e->q, &e->g.m, &e->c, 10), 0);
	assert_int_equal(fg_used_idx(&e->v), 1);
}

static void test_used_ring(void **state)
{
	struct env *e = *state;
	struct virtq_chain c[3];
	uint32_t id, len;

	for (uint16_t i = 0; i < 3; i++) {
		fg_desc(&e->v, (uint16_t)(i + 4), buf(e, 100), 100,
			VIRTQ_DESC_F_WRITE, 0);
		fg_publish(&e->v, (uint16_t)(i + 4));
		assert_int_equal(virtq_pop(&e->q, &e->g.m, &c[i]), 1);
	}
	/* Completed out of order, as devices may. */
	assert_int_equal(virtq_push(&e->q, &e->g.m, &c[2], 30), 0);
	assert_int_equal(virtq_push(&e->q, &e->g.m, &c[0], 10), 0);
	assert_int_equal(virtq_push(&e->q, &e->g.m, &c[1], 0), 0);
	assert_int_equal(fg_used_idx(&e->v), 3);
	assert_int_equal(e->q.used_idx, 3);
	assert_int_equal(fg_get_used(&e->v, &id, &len), 1);
	assert_int_equal(id, 6);
	assert_int_equal(len, 30);
	assert_int_equal(fg_get_used(&e->v, &id, &len), 1);
	assert_int_equal(id, 4);
	assert_int_equal(len, 10);
	assert_int_equal(fg_get_used(&e->v, &id, &len), 1);
	assert_int_equal(id, 5);
	assert_int_equal(len, 0);
	assert_int_equal(fg_get_used(&e->v, &id, &len), 0);
}

static void test_chain_copy(void **state)
{
	struct env *e = *state;
	const uint32_t rl[] = { 3, 5, 7 }, wl[] = { 4, 0, 6 };
	uint64_t r[3], w[3];
	uint8_t out[32], in[16];
	uint8_t n = 0;

	for (unsigned i = 0; i < 3; i++) {
		r[i] = buf(e, rl[i]);
		for (uint32_t j = 0; j < rl[i]; j++)
			fg_host(&e->g, r[i])[j] = n++;
		fg_desc(&e->v, (uint16_t)i, r[i], rl[i], VIRTQ_DESC_F_NEXT,
			(uint16_t)(i + 1));
	}
	for (unsigned i = 0; i < 3; i++) {
		w[i] = buf(e, 16);
		memset(fg_host(&e->g, w[i]), 0xee, 16);
		fg_desc(&e->v, (uint16_t)(3 + i), w[i], wl[i],
			VIRTQ_DESC_F_WRITE | (i < 2 ? VIRTQ_DESC_F_NEXT : 0),
			(uint16_t)(4 + i));
	}
	fg_publish(&e->v, 0);
	assert_int_equal(virtq_pop(&e->q, &e->g.m, &e->c), 1);
	assert_int_equal(e->c.read_len, 15);
	assert_int_equal(e->c.write_len, 10);

	/* Read across all three readable segments, from offset 2. */
	memset(out, 0, sizeof(out));
	assert_int_equal(virtq_chain_read(&e->c, 2, out, 10), 10);
	for (uint8_t i = 0; i < 10; i++)
		assert_int_equal(out[i], i + 2);
	/* Short at the end; nothing past it; writable bytes never read. */
	assert_int_equal(virtq_chain_read(&e->c, 12, out, sizeof(out)), 3);
	assert_int_equal(out[0], 12);
	assert_int_equal(out[2], 14);
	assert_int_equal(virtq_chain_read(&e->c, 15, out, 4), 0);
	assert_int_equal(virtq_chain_read(&e->c, 1000, out, 4), 0);
	assert_int_equal(virtq_chain_read(&e->c, 0, out, 0), 0);

	/* Write from offset 1: 3 bytes in w0, none in the empty w1, 6 in w2. */
	for (uint8_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(0xa0 + i);
	assert_int_equal(virtq_chain_write(&e->c, 1, in, sizeof(in)), 9);
	assert_int_equal(fg_host(&e->g, w[0])[0], 0xee);
	assert_memory_equal(fg_host(&e->g, w[0]) + 1, in, 3);
	assert_int_equal(fg_host(&e->g, w[0])[4], 0xee);
	assert_memory_equal(fg_host(&e->g, w[2]), in + 3, 6);
	assert_int_equal(fg_host(&e->g, w[2])[6], 0xee);
	/* Readable segments untouched. */
	assert_int_equal(fg_host(&e->g, r[0])[0], 0);
	/* Offset into the last segment, and past the end. */
	assert_int_equal(virtq_chain_write(&e->c, 8, in, 5), 2);
	assert_memory_equal(fg_host(&e->g, w[2]) + 4, in, 2);
	assert_int_equal(virtq_chain_write(&e->c, 10, in, 5), 0);
}

static void test_suppressed(void **state)
{
	struct env *e = *state;

	assert_false(virtq_suppressed(&e->q, &e->g.m));
	fg_avail_flags(&e->v, VIRTQ_AVAIL_F_NO_INTERRUPT);
	assert_true(virtq_suppressed(&e->q, &e->g.m));
	fg_avail_flags(&e->v, 0);
	assert_false(virtq_suppressed(&e->q, &e->g.m));
	e->q.ready = false;
	assert_true(virtq_suppressed(&e->q, &e->g.m));
}

static void test_strerror(void **state)
{
	(void)state;
	for (int i = VIRTQ_OK; i <= VIRTQ_E_USED_LEN; i++)
		assert_non_null(virtq_strerror((enum virtq_err)i));
	assert_string_equal(virtq_strerror((enum virtq_err)999),
			    "unknown virtqueue error");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
#define TBIG(f) cmocka_unit_test_setup_teardown(f, setup_big, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_enable_size),
		T(test_enable_align),
		T(test_enable_ring_addr),
		T(test_pop_empty),
		T(test_pop_chain),
		T(test_zero_length_segment),
		T(test_head_out_of_range),
		T(test_head_max),
		T(test_next_out_of_range),
		T(test_loop),
		T(test_self_loop),
		T(test_chain_whole_table),
		TBIG(test_too_long),
		TBIG(test_max_segs),
		TBIG(test_self_loop_big),
		T(test_buf_addr),
		T(test_order),
		T(test_order_zero_length_write),
		T(test_indirect),
		T(test_avail_idx_ahead),
		T(test_avail_idx_behind),
		T(test_avail_full),
		T(test_wrap),
		T(test_broken_sticky),
		T(test_push_too_much),
		T(test_used_ring),
		T(test_chain_copy),
		T(test_suppressed),
		cmocka_unit_test(test_strerror),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
