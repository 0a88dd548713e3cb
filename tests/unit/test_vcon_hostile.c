/* virtio-console against a guest that uses the rules to cost the host:
 * rings of empty chains, floods of bad messages, control messages it
 * never takes. On plain memory, as test_virtio_console.c. */
#include "vmm/virtio/console.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tests/unit/capture.h"

#include "tests/unit/vcon_env.h"
#include "vmm/snapshot.h"

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

/* A driver that says 10,000 times it failed to start, and 10,000 times it
 * failed to add a port (neither stops the device): the VM's limiter lets
 * its burst through and counts the rest. */
static void test_driver_complaints_are_rate_limited(void **state)
{
	struct env *e = *state;
	struct log_limit l;
	char *out;

	log_init("t", LOG_INFO);
	log_limit_init(&l, "guest");
	vcon_set_log_limit(&e->c, &l);
	capture_start();
	for (unsigned i = 0; i < 10000; i++) {
		guest_ctrl(e, BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 0);
		guest_ctrl(e, 1, VIRTIO_CONSOLE_PORT_READY, 0);
	}
	out = capture_end();
	assert_false(needs_reset(e));
	assert_int_equal(capture_lines(out), LOG_LIMIT_BURST);
	assert_non_null(strstr(out, "guest driver failed to start"));
	assert_int_equal(l.dropped, 20000 - LOG_LIMIT_BURST);
	free(out);
	vcon_set_log_limit(&e->c, NULL);
	log_limit_destroy(&l);
}

/* Device errors go through the same limiter: a guest that breaks the
 * device and resets it again and again is not heard every time. */
static void test_device_errors_are_rate_limited(void **state)
{
	struct env *e = *state;
	struct log_limit l;
	char *out;

	log_init("t", LOG_INFO);
	log_limit_init(&l, "guest");
	vcon_set_log_limit(&e->c, &l);
	capture_start();
	for (unsigned i = 0; i < 100; i++) {
		guest_ctrl(e, 7, VIRTIO_CONSOLE_PORT_READY, 1);	/* no port 7 */
		assert_true(needs_reset(e));
		fg_wr(&e->c.t, VIRTIO_MMIO_STATUS, 0);
		e->g.brk = FG_PAGE;	/* the new rings where the old were */
		bring_up(e, false);
	}
	out = capture_end();
	assert_int_equal(capture_lines(out), LOG_LIMIT_BURST);
	assert_int_equal(l.dropped, 100 - LOG_LIMIT_BURST);
	free(out);
	vcon_set_log_limit(&e->c, NULL);
	log_limit_destroy(&l);
}

/* ---- saving a device the guest keeps busy ----------------------------- */

/* A driver that posts no control receive buffers: the device's messages
 * wait for ever, and every save says -EBUSY however long the guest runs.
 * Settling refuses too (no saved state would be true) and leaves the
 * device as it was: the caller ends the VM. */
static void test_ctrl_never_taken_cannot_be_settled(void **state)
{
	struct env *e = *state;
	struct vcon_state st;
	char why[160] = "";

	guest_ctrl(e, BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	assert_int_equal(e->c.ctrl_len, NPORTS);
	for (unsigned i = 0; i < 1000; i++) {
		vcon_process(&e->c);
		vcon_lock(&e->c);
		assert_int_equal(vcon_save(&e->c, &st), -EBUSY);
		vcon_unlock(&e->c);
	}
	vcon_lock(&e->c);
	assert_int_equal(vcon_settle(&e->c, why, sizeof(why)), -EBUSY);
	assert_int_equal(vcon_save(&e->c, &st), -EBUSY);
	vcon_unlock(&e->c);
	assert_string_equal(why, "the guest took none of 3 console control "
				 "messages");
	assert_int_equal(e->c.ctrl_len, NPORTS);
	assert_false(needs_reset(e));
	/* And the device still works once the driver does its part. */
	fg_post_in(&e->v[CTRL_RX], CTRL_BUF, NULL);
	fg_post_in(&e->v[CTRL_RX], CTRL_BUF, NULL);
	fg_post_in(&e->v[CTRL_RX], CTRL_BUF, NULL);
	kick(e, CTRL_RX);
	for (unsigned i = 0; i < NPORTS; i++)
		expect_ctrl(e, i, VIRTIO_CONSOLE_DEVICE_ADD, 1, NULL, 0);
}

/* Guest output a host end does not read holds the save the same way; it
 * is settled as a reader going away would: the chain given back, its
 * bytes dropped, and the save goes through. */
static void test_unread_output_is_settled(void **state)
{
	struct env *e = *state;
	struct fg_vq *v = &e->v[txq(1)];
	static uint8_t junk[64 * 1024];
	struct snapshot_console st;
	struct pollfd pfd[2 * VCON_MAX_PORTS];
	int sndbuf = 4096;
	uint32_t id, len;
	unsigned irqs;
	char why[160] = "";

	device_ready(e);
	port_ready(e, 1);
	assert_int_equal(setsockopt(e->dev[1], SOL_SOCKET, SO_SNDBUF, &sndbuf,
				    sizeof(sndbuf)),
			 0);
	fg_post_out(v, junk, sizeof(junk));
	kick(e, txq(1));
	assert_true(e->c.port[1].tx_busy);
	vcon_lock(&e->c);
	assert_int_equal(vcon_save(&e->c, &st.dev), -EBUSY);
	irqs = e->irqs;
	assert_int_equal(vcon_settle(&e->c, why, sizeof(why)), 0);
	assert_int_equal(vcon_save(&e->c, &st.dev), 0);
	assert_int_equal(virtio_mmio_save(&e->c.t, &st.mmio, st.vq,
					  SNAPSHOT_NQUEUES), 0);
	vcon_unlock(&e->c);
	assert_non_null(strstr(why, "bytes of guest output nobody read (1 "
				    "buffers)"));
	assert_true(e->irqs > irqs);
	assert_int_equal(fg_get_used(v, &id, &len), 1);
	assert_int_equal(len, 0);
	assert_false(e->c.port[1].tx_busy);
	assert_int_equal(vcon_pollfds(&e->c, pfd, 2 * VCON_MAX_PORTS), 0);
	assert_int_equal(st.vq[txq(1)].used_idx, 1);
	assert_false(needs_reset(e));
}

/* Control messages on a device that needs a reset can never be taken
 * until the reset, which drops them: settling drops them now. */
static void test_ctrl_on_stopped_device_is_settled(void **state)
{
	struct env *e = *state;
	struct snapshot_console st;
	char why[160] = "";

	guest_ctrl(e, BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	guest_ctrl(e, 7, VIRTIO_CONSOLE_PORT_READY, 1);	/* no such port */
	assert_true(needs_reset(e));
	assert_int_equal(e->c.ctrl_len, NPORTS);
	vcon_lock(&e->c);
	assert_int_equal(vcon_save(&e->c, &st.dev), -EBUSY);
	assert_int_equal(vcon_settle(&e->c, why, sizeof(why)), 0);
	assert_int_equal(vcon_save(&e->c, &st.dev), 0);
	assert_int_equal(virtio_mmio_save(&e->c.t, &st.mmio, st.vq,
					  SNAPSHOT_NQUEUES), 0);
	vcon_unlock(&e->c);
	assert_non_null(strstr(why, "3 control messages for a stopped "
				    "driver dropped"));
	assert_true(st.mmio.status & VIRTIO_STATUS_NEEDS_RESET);
	/* The driver's reset brings every port back. */
	fg_wr(&e->c.t, VIRTIO_MMIO_STATUS, 0);
	bring_up(e, false);
	device_ready(e);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
#define TBARE(f) cmocka_unit_test_setup_teardown(f, setup_bare, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_zero_length_tx_chains_spend_budget),
		T(test_ctrl_messages_spend_budget),
		T(test_driver_complaints_are_rate_limited),
		T(test_device_errors_are_rate_limited),
		TBARE(test_ctrl_never_taken_cannot_be_settled),
		T(test_unread_output_is_settled),
		TBARE(test_ctrl_on_stopped_device_is_settled),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
