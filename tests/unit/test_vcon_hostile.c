/* virtio-console against a guest that uses the rules to cost the host:
 * rings of empty chains, floods of bad messages, control messages it
 * never takes. On plain memory, as test_virtio_console.c. */
#include "vmm/virtio_console.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tests/unit/vcon_env.h"

#define BIG_RING 256	/* the device's QueueNumMax */

/* Start over with queue q holding BIG_RING entries. */
static void big_ring(struct env *e, unsigned q)
{
	fg_wr(&e->c.t, VIRTIO_MMIO_STATUS, 0);
	bring_up_sized(e, false, q, BIG_RING);
}

/* A ring full of zero-length chains on a port: each costs the per-call
 * budget something, so one call stops early (the guest, on its vCPU,
 * could refill the ring as fast as we empty it) and asks to run again. */
static void test_zero_length_tx_chains_spend_budget(void **state)
{
	struct env *e = *state;
	struct fg_vq *v = &e->v[txq(1)];
	unsigned rounds = 0;
	uint16_t used;

	big_ring(e, txq(1));
	for (unsigned i = 0; i < BIG_RING; i++)
		fg_post_out(v, NULL, 0);
	kick(e, txq(1));
	used = fg_used_idx(v);
	assert_true(used > 0);
	assert_true(used < BIG_RING);
	while (fg_used_idx(v) != BIG_RING) {
		assert_true(would_wake(e));
		vcon_process(&e->c);
		assert_true(++rounds < 100);
	}
	assert_false(needs_reset(e));
}

/* The same with control messages, which had no budget at all. */
static void test_ctrl_messages_spend_budget(void **state)
{
	struct env *e = *state;
	struct fg_vq *v = &e->v[CTRL_TX];
	unsigned rounds = 0;
	uint16_t used, base;
	uint8_t m[8];
	uint32_t id = 1;
	uint16_t ev = VIRTIO_CONSOLE_PORT_OPEN, val = 1;

	big_ring(e, CTRL_TX);
	device_ready(e);
	base = fg_used_idx(v);
	memcpy(m, &id, 4);
	memcpy(m + 4, &ev, 2);
	memcpy(m + 6, &val, 2);
	for (unsigned i = 0; i < BIG_RING; i++)
		fg_post_out(v, m, sizeof(m));
	kick(e, CTRL_TX);
	used = (uint16_t)(fg_used_idx(v) - base);
	assert_true(used > 0);
	assert_true(used < BIG_RING);
	while ((uint16_t)(fg_used_idx(v) - base) != BIG_RING) {
		assert_true(would_wake(e));
		vcon_process(&e->c);
		assert_true(++rounds < 100);
	}
	assert_true(e->c.port[1].guest_open);
	assert_false(needs_reset(e));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_zero_length_tx_chains_spend_budget),
		T(test_ctrl_messages_spend_budget),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
