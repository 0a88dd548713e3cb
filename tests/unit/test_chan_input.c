/* Client input buffers: the bound on what libssh may hold for a client
 * that keeps to the window, the least pull that keeps that bound, and the
 * per-channel, per-connection and total budgets. */
#include "sshd/chan_input.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

static void test_offered_beyond_any_window_is_refused(void **state)
{
	(void)state;
	assert_int_equal(sshd_in_offered(0), 0);
	assert_int_equal(sshd_in_offered(32000), 0);
	assert_int_equal(sshd_in_offered(SSHD_IN_HELD_MAX), 0);
	assert_int_equal(sshd_in_offered(SSHD_IN_HELD_MAX + 1), -EPROTO);
	assert_int_equal(sshd_in_offered(256u << 20), -EPROTO);
}

/* Replays libssh 0.10's window rules (channels.c) against our policy: a
 * client that always fills the window it has, a guest that takes `drain`
 * bytes between packets, other channels holding `others` of the total
 * budget. What libssh holds never passes the bound, and our buffer never
 * passes its cap. */
static void replay(size_t drain, size_t packet, size_t others)
{
	struct sshd_in in = { 0 };
	size_t conn = 0, total = others, win = 32000;

	for (int round = 0; round < 20000; round++) {
		size_t l = win < packet ? win : packet;
		ssize_t r;

		if (l) {		/* a packet; the callback takes nothing */
			win -= l;
			assert_int_equal(sshd_in_offered(in.held + l), 0);
			sshd_in_taken(&in, in.held + l, 0);
			if (win + in.held < SSHD_IN_WIN_LIMIT)
				win = SSHD_IN_WIN_BASE;
		}
		sshd_in_consumed(&in, drain);
		r = sshd_in_pull_prepare(&in, &conn, &total);
		assert_true(r >= 0);
		if (r > 0) {		/* ssh_channel_read(r) */
			sshd_in_pulled(&in, (size_t)r);
			if (win < SSHD_IN_WIN_LIMIT)
				win = SSHD_IN_WIN_BASE;
		}
		assert_true(in.held + win <= SSHD_IN_HELD_MAX);
		assert_true(in.cap <= SSHD_IN_CHAN_MAX);
		assert_true(in.off + in.len <= in.cap);
		assert_int_equal(conn, in.cap);
		assert_int_equal(total, others + in.cap);
	}
	sshd_in_trim(&in, &conn, &total, true);
	assert_int_equal(conn, 0);
	assert_int_equal(total, others);
	assert_null(in.buf);
}

static void test_window_stays_bounded_whatever_the_guest_takes(void **state)
{
	(void)state;
	replay(0, 32768, 0);		/* a guest that never reads */
	replay(1000, 32768, 0);		/* a slow one */
	replay(20000, 32768, 0);
	replay(1 << 20, 32768, 0);	/* a fast one */
	replay(1000, 1, 0);		/* one byte a packet */
	/* The total budget all but spent: small pulls only, or none. */
	replay(1000, 32768, SSHD_IN_TOTAL_MAX - SSHD_IN_CHUNK);
	replay(20000, 32768, SSHD_IN_TOTAL_MAX - SSHD_IN_CHUNK);
}

static void test_pull_waits_for_an_empty_buffer(void **state)
{
	struct sshd_in in = { 0 };
	size_t conn = 0, total = 0;

	(void)state;
	assert_int_equal(sshd_in_pull_prepare(&in, &conn, &total), 0);
	sshd_in_taken(&in, 1000, 0);
	assert_int_equal(sshd_in_pull_prepare(&in, &conn, &total), 1000);
	assert_int_equal(in.cap, SSHD_IN_CHUNK);	/* sized to the need */
	memset(in.buf, 'a', 1000);
	sshd_in_pulled(&in, 600);
	sshd_in_taken(&in, in.held + 50, 0);	/* more came meanwhile */
	assert_int_equal(sshd_in_pull_prepare(&in, &conn, &total), 0);
	sshd_in_consumed(&in, 600);
	assert_int_equal(in.off, 0);
	assert_int_equal(sshd_in_pull_prepare(&in, &conn, &total), 450);
	sshd_in_pulled(&in, 450);
	/* Not freed while it holds input; freed, and given back, once
	 * empty. */
	sshd_in_trim(&in, &conn, &total, false);
	assert_non_null(in.buf);
	sshd_in_consumed(&in, 450);
	sshd_in_trim(&in, &conn, &total, false);
	assert_null(in.buf);
	assert_int_equal(conn, 0);
	assert_int_equal(total, 0);
}

static void test_budget_gives_the_least_pull_or_nothing(void **state)
{
	struct sshd_in in = { 0 };
	size_t conn = 0, total = SSHD_IN_TOTAL_MAX - SSHD_IN_CHUNK;
	ssize_t r;

	(void)state;
	/* Held under WIN_LIMIT: any pull keeps the bound; the budget gives
	 * a chunk. */
	sshd_in_taken(&in, 500000, 0);
	r = sshd_in_pull_prepare(&in, &conn, &total);
	assert_int_equal(r, SSHD_IN_CHUNK);
	assert_int_equal(total, SSHD_IN_TOTAL_MAX);
	sshd_in_pulled(&in, (size_t)r);
	sshd_in_consumed(&in, (size_t)r);
	/* Held far over WIN_LIMIT: a chunk would leave libssh free to
	 * grant a window over what it holds; wait instead. */
	sshd_in_taken(&in, SSHD_IN_HELD_MAX, 0);
	assert_int_equal(sshd_in_pull_prepare(&in, &conn, &total), 0);
	/* Once the total has room (others freed theirs but a chunk), the
	 * channel gets what it needs. */
	total = in.cap + SSHD_IN_CHUNK;
	r = sshd_in_pull_prepare(&in, &conn, &total);
	assert_true(r >= (ssize_t)(SSHD_IN_HELD_MAX - SSHD_IN_WIN_LIMIT + 1));
	assert_true(in.held - (size_t)r < SSHD_IN_WIN_LIMIT);
	assert_int_equal(in.cap, SSHD_IN_CHAN_MAX);
	assert_int_equal(conn, SSHD_IN_CHAN_MAX);
	sshd_in_trim(&in, &conn, &total, true);
	assert_int_equal(conn, 0);
	assert_int_equal(total, SSHD_IN_CHUNK);
}

static void test_connection_budget(void **state)
{
	struct sshd_in a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
	size_t conn = 0, total = 0;

	(void)state;
	sshd_in_taken(&a, SSHD_IN_CHAN_MAX, 0);
	sshd_in_taken(&b, SSHD_IN_CHAN_MAX, 0);
	sshd_in_taken(&c, SSHD_IN_CHAN_MAX, 0);
	sshd_in_taken(&d, SSHD_IN_CHAN_MAX, 0);
	assert_true(sshd_in_pull_prepare(&a, &conn, &total) > 0);
	assert_true(sshd_in_pull_prepare(&b, &conn, &total) > 0);
	assert_true(sshd_in_pull_prepare(&c, &conn, &total) > 0);
	assert_true(conn <= SSHD_IN_CONN_MAX);
	assert_int_equal(sshd_in_pull_prepare(&d, &conn, &total), 0);
	sshd_in_trim(&a, &conn, &total, true);
	assert_true(sshd_in_pull_prepare(&d, &conn, &total) > 0);
	assert_true(conn <= SSHD_IN_CONN_MAX);
	assert_int_equal(total, conn);
	sshd_in_trim(&b, &conn, &total, true);
	sshd_in_trim(&c, &conn, &total, true);
	sshd_in_trim(&d, &conn, &total, true);
	assert_int_equal(conn, 0);
	assert_int_equal(total, 0);
}

static void test_trim_accepts_a_zeroed_struct(void **state)
{
	struct sshd_in in = { 0 };
	size_t conn = 0, total = 0;

	(void)state;
	sshd_in_trim(&in, &conn, &total, true);
	sshd_in_trim(&in, &conn, &total, false);
	sshd_in_consumed(&in, 10);
	sshd_in_pulled(&in, 10);
	assert_int_equal(in.len, 0);
	assert_int_equal(conn + total, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_offered_beyond_any_window_is_refused),
		cmocka_unit_test(test_window_stays_bounded_whatever_the_guest_takes),
		cmocka_unit_test(test_pull_waits_for_an_empty_buffer),
		cmocka_unit_test(test_budget_gives_the_least_pull_or_nothing),
		cmocka_unit_test(test_connection_budget),
		cmocka_unit_test(test_trim_accepts_a_zeroed_struct),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
