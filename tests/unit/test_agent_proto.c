/* The agent protocol: framing, the stream decoder and its errors. */
#include "console/agent_proto.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>

#define FRAME_MAX (AGENT_HDR_LEN + AGENT_MAX_PAYLOAD)

static struct agent_msg *new_msg(void)
{
	struct agent_msg *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	return m;
}

static size_t encode(uint8_t type, const void *p, size_t len, uint8_t *out)
{
	int n = agent_encode(type, p, len, out, FRAME_MAX);

	assert_int_equal(n, AGENT_HDR_LEN + (int)len);
	return (size_t)n;
}

static void check_msg(const struct agent_msg *m, uint8_t type, const void *p,
		      size_t len)
{
	assert_int_equal(m->type, type);
	assert_int_equal(m->len, len);
	if (len)
		assert_memory_equal(m->payload, p, len);
}

static void roundtrip(uint8_t type, const void *p, size_t len)
{
	static uint8_t buf[FRAME_MAX];
	struct agent_msg *m = new_msg();
	struct agent_dec d;
	size_t n = encode(type, p, len, buf), used = 99;

	agent_dec_init(&d);
	assert_int_equal(agent_decode(&d, buf, n, &used, m), 1);
	assert_int_equal(used, n);
	check_msg(m, type, p, len);
	free(m);
}

static void test_wire_format(void **state)
{
	uint8_t out[8];

	(void)state;
	assert_int_equal(agent_encode(AGENT_MSG_LOG, "ab", 2, out, sizeof(out)),
			 6);
	assert_memory_equal(out, "\x01\x03\x02\x00" "ab", 6);
	assert_int_equal(agent_encode(AGENT_MSG_READY, NULL, 0, out, 4), 4);
	assert_memory_equal(out, "\x01\x01\x00\x00", 4);
}

static void test_roundtrip_each_type(void **state)
{
	const char ready[] = "clone-agent 1.0";
	const uint8_t off = AGENT_POWER_OFF, reboot = AGENT_POWER_REBOOT;
	const char log[] = "a line for the log\n";

	(void)state;
	roundtrip(AGENT_MSG_READY, ready, strlen(ready));
	roundtrip(AGENT_MSG_POWER, &off, 1);
	roundtrip(AGENT_MSG_POWER, &reboot, 1);
	roundtrip(AGENT_MSG_LOG, log, strlen(log));
	/* Framing is the same whatever the type. */
	for (uint8_t t = 1; t < AGENT_MSG_MAX; t++)
		roundtrip(t, "\x00\x01\x02payload", 10);
}

static void test_zero_length(void **state)
{
	(void)state;
	for (uint8_t t = 1; t < AGENT_MSG_MAX; t++)
		roundtrip(t, NULL, 0);
}

static void test_max_payload(void **state)
{
	uint8_t *p = malloc(AGENT_MAX_PAYLOAD);
	uint8_t out[FRAME_MAX];

	(void)state;
	assert_non_null(p);
	for (unsigned i = 0; i < AGENT_MAX_PAYLOAD; i++)
		p[i] = (uint8_t)(i * 31 + 7);
	roundtrip(AGENT_MSG_LOG, p, AGENT_MAX_PAYLOAD);
	encode(AGENT_MSG_LOG, p, AGENT_MAX_PAYLOAD, out);
	assert_int_equal(out[2], AGENT_MAX_PAYLOAD & 0xff);
	assert_int_equal(out[3], AGENT_MAX_PAYLOAD >> 8);
	free(p);
}

static void test_byte_by_byte(void **state)
{
	const char text[] = "one byte at a time";
	uint8_t buf[64];
	struct agent_msg *m = new_msg();
	struct agent_dec d;
	size_t n = encode(AGENT_MSG_LOG, text, strlen(text), buf), used;

	(void)state;
	agent_dec_init(&d);
	for (size_t i = 0; i < n; i++) {
		int r = agent_decode(&d, buf + i, 1, &used, m);

		assert_int_equal(used, 1);
		assert_int_equal(r, i == n - 1 ? 1 : 0);
	}
	check_msg(m, AGENT_MSG_LOG, text, strlen(text));
	/* The decoder is ready for the next frame. */
	n = encode(AGENT_MSG_POWER, "\x01", 1, buf);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(agent_decode(&d, buf + i, 1, &used, m),
				 i == n - 1 ? 1 : 0);
	check_msg(m, AGENT_MSG_POWER, "\x01", 1);
	free(m);
}

static void test_chunks(void **state)
{
	uint8_t *p = malloc(AGENT_MAX_PAYLOAD);
	uint8_t *buf = malloc(FRAME_MAX);
	struct agent_msg *m = new_msg();
	struct agent_dec d;
	size_t n, off = 0, used;
	int r = 0;

	(void)state;
	assert_non_null(p);
	assert_non_null(buf);
	for (unsigned i = 0; i < AGENT_MAX_PAYLOAD; i++)
		p[i] = (uint8_t)(i ^ (i >> 8));
	n = encode(AGENT_MSG_LOG, p, 3000, buf);
	agent_dec_init(&d);
	/* Header split 3 + 1, then the payload in uneven pieces. */
	while (off < n) {
		size_t chunk = off == 0 ? 3 : off == 3 ? 1 : 977;

		if (chunk > n - off)
			chunk = n - off;
		r = agent_decode(&d, buf + off, chunk, &used, m);
		assert_int_equal(used, chunk);
		off += used;
		assert_int_equal(r, off == n ? 1 : 0);
	}
	check_msg(m, AGENT_MSG_LOG, p, 3000);
	free(m);
	free(buf);
	free(p);
}

static void test_two_frames(void **state)
{
	uint8_t buf[64];
	struct agent_msg *m = new_msg();
	struct agent_dec d;
	size_t n1, n2, n3, used;

	(void)state;
	n1 = encode(AGENT_MSG_READY, "v1", 2, buf);
	n2 = encode(AGENT_MSG_POWER, NULL, 0, buf + n1);
	n3 = encode(AGENT_MSG_LOG, "last", 4, buf + n1 + n2);
	agent_dec_init(&d);
	assert_int_equal(agent_decode(&d, buf, n1 + n2 + n3, &used, m), 1);
	assert_int_equal(used, n1);
	check_msg(m, AGENT_MSG_READY, "v1", 2);
	/* The empty frame is complete on its own header. */
	assert_int_equal(agent_decode(&d, buf + n1, n2 + n3, &used, m), 1);
	assert_int_equal(used, n2);
	check_msg(m, AGENT_MSG_POWER, NULL, 0);
	/* Half of the last frame, then the rest. */
	assert_int_equal(agent_decode(&d, buf + n1 + n2, 5, &used, m), 0);
	assert_int_equal(used, 5);
	assert_int_equal(agent_decode(&d, buf + n1 + n2 + 5, n3 - 5, &used, m),
			 1);
	assert_int_equal(used, n3 - 5);
	check_msg(m, AGENT_MSG_LOG, "last", 4);
	/* Nothing in, nothing out. */
	assert_int_equal(agent_decode(&d, buf, 0, &used, m), 0);
	assert_int_equal(used, 0);
	free(m);
}

/* A header that must be refused with err, then the error sticks. */
static void bad_header(const uint8_t hdr[AGENT_HDR_LEN], int err)
{
	uint8_t buf[16];
	struct agent_msg *m = new_msg();
	struct agent_dec d;
	size_t used = 99, n;

	agent_dec_init(&d);
	assert_int_equal(agent_decode(&d, hdr, AGENT_HDR_LEN, &used, m), err);
	assert_true(used <= AGENT_HDR_LEN);
	/* A good frame after it does not get through. */
	n = encode(AGENT_MSG_LOG, "ok", 2, buf);
	assert_int_equal(agent_decode(&d, buf, n, &used, m), err);
	assert_int_equal(used, 0);
	assert_int_equal(agent_decode(&d, buf, 0, &used, m), err);
	/* Only a new decoder starts over. */
	agent_dec_init(&d);
	assert_int_equal(agent_decode(&d, buf, n, &used, m), 1);
	check_msg(m, AGENT_MSG_LOG, "ok", 2);

	/* The same header byte by byte, behind a good frame. */
	agent_dec_init(&d);
	assert_int_equal(agent_decode(&d, buf, n, &used, m), 1);
	for (int i = 0; i < AGENT_HDR_LEN - 1; i++)
		assert_int_equal(agent_decode(&d, hdr + i, 1, &used, m), 0);
	assert_int_equal(agent_decode(&d, hdr + AGENT_HDR_LEN - 1, 1, &used,
				      m),
			 err);
	assert_int_equal(agent_decode(&d, hdr, 1, &used, m), err);
	free(m);
}

static void test_errors(void **state)
{
	const uint8_t version0[] = { 0, 1, 0, 0 };
	const uint8_t version2[] = { 2, 1, 0, 0 };
	const uint8_t version_ff[] = { 0xff, 3, 1, 0 };
	const uint8_t type0[] = { 1, 0, 0, 0 };
	const uint8_t type_max[] = { 1, AGENT_MSG_MAX, 0, 0 };
	const uint8_t type_ff[] = { 1, 0xff, 0, 0 };
	const uint8_t too_long[] = { 1, AGENT_MSG_LOG,
				     (AGENT_MAX_PAYLOAD + 1) & 0xff,
				     (AGENT_MAX_PAYLOAD + 1) >> 8 };
	const uint8_t too_long_max[] = { 1, AGENT_MSG_LOG, 0xff, 0xff };

	(void)state;
	bad_header(version0, -EPROTO);
	bad_header(version2, -EPROTO);
	bad_header(version_ff, -EPROTO);
	bad_header(type0, -EBADMSG);
	bad_header(type_max, -EBADMSG);
	bad_header(type_ff, -EBADMSG);
	bad_header(too_long, -EMSGSIZE);
	bad_header(too_long_max, -EMSGSIZE);
}

static void test_encode_errors(void **state)
{
	uint8_t out[FRAME_MAX + 16];
	static uint8_t p[AGENT_MAX_PAYLOAD + 1];

	(void)state;
	assert_int_equal(agent_encode(0, "x", 1, out, sizeof(out)), -EBADMSG);
	assert_int_equal(agent_encode(AGENT_MSG_MAX, "x", 1, out, sizeof(out)),
			 -EBADMSG);
	assert_int_equal(agent_encode(0xff, "x", 1, out, sizeof(out)),
			 -EBADMSG);
	assert_int_equal(agent_encode(AGENT_MSG_LOG, p, AGENT_MAX_PAYLOAD + 1,
				      out, sizeof(out)),
			 -EMSGSIZE);
	assert_int_equal(agent_encode(AGENT_MSG_LOG, p, SIZE_MAX, out,
				      sizeof(out)),
			 -EMSGSIZE);
	assert_int_equal(agent_encode(AGENT_MSG_LOG, "abc", 3, out, 6),
			 -EMSGSIZE);
	assert_int_equal(agent_encode(AGENT_MSG_LOG, NULL, 0, out, 3),
			 -EMSGSIZE);
	assert_int_equal(agent_encode(AGENT_MSG_LOG, NULL, 0, out, 0),
			 -EMSGSIZE);
	assert_int_equal(agent_encode(AGENT_MSG_LOG, "abc", 3, out, 7), 7);
}

static void test_spawn_round_trip_and_refusals(void **state)
{
	struct agent_spawn sp = { .session = 7, .io_port = 2, .err_port = 3,
				  .in_port = 4 }, out;
	uint8_t buf[AGENT_MAX_PAYLOAD];
	int n;

	(void)state;
	snprintf(sp.cmd, sizeof(sp.cmd), "echo hi");
	snprintf(sp.term, sizeof(sp.term), "xterm-256color");
	memcpy(sp.env, "LANG=C.UTF-8\0LC_ALL=C\0", 22);
	sp.env_len = 22;
	n = agent_spawn_encode(&sp, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(agent_spawn_decode(buf, (size_t)n, &out), 0);
	assert_int_equal(out.session, 7);
	assert_int_equal(out.io_port, 2);
	assert_int_equal(out.err_port, 3);
	assert_int_equal(out.in_port, 4);
	assert_string_equal(out.cmd, "echo hi");
	assert_int_equal(out.env_len, 22);
	assert_memory_equal(out.env, sp.env, 22);
	/* Truncated anywhere: malformed, never a crash. */
	for (int i = 0; i < n; i++)
		assert_true(agent_spawn_decode(buf, (size_t)i, &out) < 0 ||
			    i == 0 || out.session == 7);
	/* Only LANG and LC_*, no quotes, ports distinct, no stdin port
	 * with a pty. */
	memcpy(sp.env, "PATH=/evil\0", 11);
	sp.env_len = 11;
	assert_int_equal(agent_spawn_encode(&sp, buf, sizeof(buf)), -EINVAL);
	sp.env_len = 0;
	sp.in_port = 2;
	assert_int_equal(agent_spawn_encode(&sp, buf, sizeof(buf)), -EINVAL);
	sp.in_port = 4;
	sp.pty = 1;
	sp.rows = 24;
	sp.cols = 80;
	assert_int_equal(agent_spawn_encode(&sp, buf, sizeof(buf)), -EINVAL);
	assert_false(agent_env_ok("LC_ALL", "a\"b"));
	assert_false(agent_env_ok("LD_PRELOAD", "x"));
	assert_true(agent_env_ok("LC_CTYPE", "en_US.UTF-8"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spawn_round_trip_and_refusals),
		cmocka_unit_test(test_wire_format),
		cmocka_unit_test(test_roundtrip_each_type),
		cmocka_unit_test(test_zero_length),
		cmocka_unit_test(test_max_payload),
		cmocka_unit_test(test_byte_by_byte),
		cmocka_unit_test(test_chunks),
		cmocka_unit_test(test_two_frames),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_encode_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
