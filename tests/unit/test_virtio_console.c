/* virtio-console with multiport, driven the way the Linux virtio_console
 * driver drives it (VIRTIO 1.x 5.3), on plain memory, with socketpairs as
 * the host side of the ports. */
#include "vmm/virtio/console.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tests/unit/vcon_env.h"

static void test_config_space(void **state)
{
	struct env *e = *state;
	uint32_t v;

	assert_int_equal(fg_rd(&e->c.t, VIRTIO_MMIO_DEVICE_ID),
			 VIRTIO_ID_CONSOLE);
	fg_wr(&e->c.t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	assert_int_equal(fg_rd(&e->c.t, VIRTIO_MMIO_DEVICE_FEATURES),
			 1U << VIRTIO_CONSOLE_F_SIZE |
				 1U << VIRTIO_CONSOLE_F_MULTIPORT);
	fg_wr(&e->c.t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	assert_int_equal(fg_rd(&e->c.t, VIRTIO_MMIO_DEVICE_FEATURES), 1);

	assert_int_equal(cfg16(e, 0), 0);
	vcon_resize(&e->c, 0, 24, 80);
	assert_int_equal(cfg16(e, 0), 80);	/* cols */
	assert_int_equal(cfg16(e, 2), 24);	/* rows */
	v = fg_rd(&e->c.t, VIRTIO_MMIO_CONFIG);
	assert_int_equal(v, 80 | 24 << 16);
	assert_int_equal(fg_rd(&e->c.t, VIRTIO_MMIO_CONFIG + 4),
			 VCON_MAX_PORTS);
	assert_int_equal(fg_rd(&e->c.t, VIRTIO_MMIO_CONFIG + 8), 0);
	v = 0xdeadbeef;
	virtio_mmio_read(&e->c.t, VIRTIO_MMIO_CONFIG + 10, &v, 4);
	assert_int_equal(v, 0);
	/* Other ports' sizes go by control message, not config. */
	vcon_resize(&e->c, 2, 50, 132);
	assert_int_equal(cfg16(e, 0), 80);
	vcon_resize(&e->c, VCON_MAX_PORTS, 1, 1);	/* ignored */
	expect_no_ctrl(e);
	assert_false(needs_reset(e));
}

static void test_add_port_errors(void **state)
{
	struct env *e = *state;
	char longname[VCON_NAME_MAX + 1];

	memset(longname, 'x', VCON_NAME_MAX);
	longname[VCON_NAME_MAX] = '\0';
	assert_int_equal(vcon_add_port(&e->c, VCON_MAX_PORTS, NULL, false,
				       -1, -1),
			 -EINVAL);
	assert_int_equal(vcon_add_port(&e->c, 5, longname, false, -1, -1),
			 -EINVAL);
	assert_int_equal(vcon_add_port(&e->c, 0, NULL, true, -1, -1), -EBUSY);
	longname[VCON_NAME_MAX - 1] = '\0';	/* longest that fits */
	assert_int_equal(vcon_add_port(&e->c, 5, longname, false, -1, -1), 0);
	guest_ctrl(e, BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	for (unsigned i = 0; i < NPORTS; i++)
		expect_ctrl(e, i, VIRTIO_CONSOLE_DEVICE_ADD, 1, NULL, 0);
	expect_ctrl(e, 5, VIRTIO_CONSOLE_DEVICE_ADD, 1, NULL, 0);
	/* Once the driver is ready, a new port is hot-added. */
	assert_int_equal(vcon_add_port(&e->c, 6, NULL, false, -1, -1), 0);
	assert_int_equal(vcon_add_port(&e->c, 6, NULL, false, -1, -1),
			 -EBUSY);
	vcon_process(&e->c);
	expect_ctrl(e, 6, VIRTIO_CONSOLE_DEVICE_ADD, 1, NULL, 0);
	/* No host fds: the port is there, closed, and has no name. */
	guest_ctrl(e, 5, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_ctrl(e, 5, VIRTIO_CONSOLE_PORT_NAME, 0, longname,
		    VCON_NAME_MAX - 1);
	expect_no_ctrl(e);
}

static void test_device_ready(void **state)
{
	struct env *e = *state;
	unsigned irqs = e->irqs;

	device_ready(e);
	assert_true(e->irqs > irqs);
	/* Said twice: no second round of DEVICE_ADD. */
	guest_ctrl(e, BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	expect_no_ctrl(e);
	/* The control transmit buffers came back. */
	assert_int_equal(fg_used_idx(&e->v[CTRL_TX]), 2);
	assert_false(needs_reset(e));
}

static void test_device_ready_failed(void **state)
{
	struct env *e = *state;

	/* value 0: the driver failed to start; not hostile, nothing sent. */
	guest_ctrl(e, BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 0);
	expect_no_ctrl(e);
	assert_false(needs_reset(e));
	device_ready(e);
}

static void test_console_port(void **state)
{
	struct env *e = *state;
	/* cols, then rows: the spec's struct virtio_console_resize, and what
	 * the guest kernel (linux-source-6.1) reads. */
	const uint16_t size[2] = { 80, 24 };
	unsigned irqs;

	device_ready(e);
	guest_ctrl(e, 0, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_ctrl(e, 0, VIRTIO_CONSOLE_CONSOLE_PORT, 1, NULL, 0);
	/* No size known yet: no RESIZE. */
	expect_ctrl(e, 0, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL, 0);
	expect_no_ctrl(e);
	assert_true(e->c.port[0].guest_ready);

	irqs = e->irqs;
	vcon_resize(&e->c, 0, 24, 80);
	expect_ctrl(e, 0, VIRTIO_CONSOLE_RESIZE, 0, size, sizeof(size));
	expect_no_ctrl(e);
	assert_true(e->irqs > irqs);
	/* PORT_READY again changes nothing. */
	guest_ctrl(e, 0, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_no_ctrl(e);
	assert_false(needs_reset(e));
}

static void test_console_port_sized(void **state)
{
	struct env *e = *state;
	const uint16_t size[2] = { 100, 30 };	/* cols, rows */

	vcon_resize(&e->c, 2, 30, 100);
	device_ready(e);
	guest_ctrl(e, 2, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_ctrl(e, 2, VIRTIO_CONSOLE_CONSOLE_PORT, 1, NULL, 0);
	expect_ctrl(e, 2, VIRTIO_CONSOLE_RESIZE, 0, size, sizeof(size));
	expect_ctrl(e, 2, VIRTIO_CONSOLE_PORT_NAME, 0, TERM_NAME,
		    strlen(TERM_NAME));
	expect_ctrl(e, 2, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL, 0);
	expect_no_ctrl(e);
}

static void test_named_port(void **state)
{
	struct env *e = *state;

	device_ready(e);
	/* PORT_READY with value 0: the guest could not add it. */
	guest_ctrl(e, 1, VIRTIO_CONSOLE_PORT_READY, 0);
	expect_no_ctrl(e);
	assert_false(e->c.port[1].guest_ready);
	guest_ctrl(e, 1, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_ctrl(e, 1, VIRTIO_CONSOLE_PORT_NAME, 0, AGENT_NAME,
		    strlen(AGENT_NAME));
	expect_ctrl(e, 1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL, 0);
	expect_no_ctrl(e);
	/* Not a console: a size means nothing to it. */
	vcon_resize(&e->c, 1, 24, 80);
	expect_no_ctrl(e);
	/* The guest opens and closes its end. */
	guest_ctrl(e, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	assert_true(e->c.port[1].guest_open);
	guest_ctrl(e, 1, VIRTIO_CONSOLE_PORT_OPEN, 0);
	assert_false(e->c.port[1].guest_open);
	expect_no_ctrl(e);
	assert_false(needs_reset(e));
}

static void test_guest_to_host(void **state)
{
	struct env *e = *state;
	struct fg_vq *v = &e->v[txq(1)];
	uint64_t a = fg_alloc(&e->g, 16, 16), b = fg_alloc(&e->g, 16, 16);
	char out[64];
	uint32_t id, len;
	unsigned irqs = e->irqs;

	memcpy(fg_host(&e->g, a), "hel", 3);
	memcpy(fg_host(&e->g, b), "lo, host", 8);
	fg_desc(v, 10, a, 3, VIRTQ_DESC_F_NEXT, 11);
	fg_desc(v, 11, b, 8, 0, 0);
	fg_publish(v, 10);
	kick(e, txq(1));
	assert_int_equal(host_read(e, 1, out, sizeof(out)), 11);
	assert_memory_equal(out, "hello, host", 11);
	assert_int_equal(fg_get_used(v, &id, &len), 1);
	assert_int_equal(id, 10);
	assert_int_equal(len, 0);
	assert_true(e->irqs > irqs);
	assert_int_equal(e->c.port[1].bytes_out, 11);

	/* Port 0 has its own queue pair, 0 and 1. */
	fg_post_out(&e->v[1], "console", 7);
	fg_post_out(&e->v[1], "", 0);
	fg_post_out(&e->v[1], "!", 1);
	kick(e, 1);
	assert_int_equal(host_read(e, 0, out, sizeof(out)), 8);
	assert_memory_equal(out, "console!", 8);
	assert_int_equal(fg_used_idx(&e->v[1]), 3);
	assert_int_equal(host_read(e, 1, out, sizeof(out)), 0);
	assert_false(needs_reset(e));
}

static void test_host_to_guest(void **state)
{
	struct env *e = *state;
	struct fg_vq *v = &e->v[rxq(1)];
	uint8_t big[100];
	uint64_t gpa[2], a, b;
	uint32_t id, len;
	uint16_t h;

	device_ready(e);
	/* Before PORT_READY the data waits on the host side. */
	host_write(e, 1, "abc", 3);
	h = fg_post_in(v, 64, &gpa[0]);
	kick(e, rxq(1));
	assert_int_equal(fg_used_idx(v), 0);
	/* Ready but not open in the guest: Linux would drop it; it waits. */
	guest_ctrl(e, 1, VIRTIO_CONSOLE_PORT_READY, 1);
	vcon_process(&e->c);
	assert_int_equal(fg_used_idx(v), 0);
	port_ready(e, 1);
	vcon_process(&e->c);
	assert_int_equal(fg_get_used(v, &id, &len), 1);
	assert_int_equal(id, h);
	assert_int_equal(len, 3);
	assert_memory_equal(fg_host(&e->g, gpa[0]), "abc", 3);
	assert_int_equal(fg_host(&e->g, gpa[0])[3], 0xee);

	/* More than one buffer holds: split across two. */
	for (unsigned i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)i;
	fg_post_in(v, 64, &gpa[0]);
	fg_post_in(v, 64, &gpa[1]);
	host_write(e, 1, big, sizeof(big));
	vcon_process(&e->c);
	assert_int_equal(fg_get_used(v, &id, &len), 1);
	assert_int_equal(len, 64);
	assert_int_equal(fg_get_used(v, &id, &len), 1);
	assert_int_equal(len, 36);
	assert_memory_equal(fg_host(&e->g, gpa[0]), big, 64);
	assert_memory_equal(fg_host(&e->g, gpa[1]), big + 64, 36);

	/* One chain of two writable segments. */
	a = fg_alloc(&e->g, 5, 16);
	b = fg_alloc(&e->g, 50, 16);
	fg_desc(v, 20, a, 5, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 21);
	fg_desc(v, 21, b, 50, VIRTQ_DESC_F_WRITE, 0);
	fg_publish(v, 20);
	host_write(e, 1, "0123456789", 10);
	kick(e, rxq(1));
	assert_int_equal(fg_get_used(v, &id, &len), 1);
	assert_int_equal(id, 20);
	assert_int_equal(len, 10);
	assert_memory_equal(fg_host(&e->g, a), "01234", 5);
	assert_memory_equal(fg_host(&e->g, b), "56789", 5);
	assert_int_equal(e->c.port[1].bytes_in, 113);

	/* Nothing more to read: the buffer is held and the fd watched. */
	fg_post_in(v, 64, NULL);
	vcon_process(&e->c);
	assert_int_equal(fg_get_used(v, &id, &len), 0);
	{
		struct pollfd pfd[2 * VCON_MAX_PORTS];
		int n = vcon_pollfds(&e->c, pfd, 2 * VCON_MAX_PORTS);

		assert_int_equal(n, 1);
		assert_int_equal(pfd[0].fd, e->dev[1]);
		assert_int_equal(pfd[0].events, POLLIN);
		assert_int_equal(vcon_pollfds(&e->c, pfd, 0), 0);
	}
	assert_false(needs_reset(e));
}

static void test_host_eof(void **state)
{
	struct env *e = *state;

	device_ready(e);
	port_ready(e, 0);
	port_ready(e, 1);
	fg_post_in(&e->v[rxq(1)], 64, NULL);
	fg_post_in(&e->v[rxq(0)], 64, NULL);
	assert_int_equal(shutdown(e->host[1], SHUT_WR), 0);
	assert_int_equal(shutdown(e->host[0], SHUT_WR), 0);
	vcon_process(&e->c);
	/* A named port closes; the console (hvc) has no such notion. */
	expect_ctrl(e, 1, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL, 0);
	expect_no_ctrl(e);
	assert_false(e->c.port[1].host_open);
	assert_false(e->c.port[0].host_open);
	/* And it is said once. */
	vcon_process(&e->c);
	expect_no_ctrl(e);
	assert_false(needs_reset(e));
}

static void test_backpressure(void **state)
{
	struct env *e = *state;
	struct fg_vq *v = &e->v[txq(1)];
	const uint32_t total = 128 * 1024;
	struct pollfd pfd[2 * VCON_MAX_PORTS];
	uint64_t a = fg_alloc(&e->g, total, 16);
	static uint8_t got[128 * 1024];
	size_t have = 0;
	uint32_t id, len;
	int sndbuf = 4096, n, rounds = 0;

	assert_int_equal(setsockopt(e->dev[1], SOL_SOCKET, SO_SNDBUF, &sndbuf,
				    sizeof(sndbuf)),
			 0);
	for (uint32_t i = 0; i < total; i++)
		fg_host(&e->g, a)[i] = (uint8_t)(i * 7 + i / 251);
	/* Two segments, the second starting mid-buffer. */
	fg_desc(v, 0, a, 1000, VIRTQ_DESC_F_NEXT, 1);
	fg_desc(v, 1, a + 1000, total - 1000, 0, 0);
	fg_publish(v, 0);
	kick(e, txq(1));

	/* The host fd is full: the chain is held, POLLOUT asked for. */
	assert_int_equal(fg_used_idx(v), 0);
	assert_true(e->c.port[1].tx_busy);
	n = vcon_pollfds(&e->c, pfd, 2 * VCON_MAX_PORTS);
	assert_int_equal(n, 1);
	assert_int_equal(pfd[0].fd, e->dev[1]);
	assert_int_equal(pfd[0].events, POLLOUT);

	/* Drain the host side until the chain completes. */
	while (fg_used_idx(v) == 0) {
		size_t k = host_read(e, 1, got + have, sizeof(got) - have);

		assert_true(k > 0);
		have += k;
		vcon_process(&e->c);
		assert_true(++rounds < 100000);
	}
	while (have < total) {
		size_t k = host_read(e, 1, got + have, sizeof(got) - have);

		assert_true(k > 0);
		have += k;
	}
	assert_int_equal(host_read(e, 1, got, 1), 0);
	assert_memory_equal(got, fg_host(&e->g, a), total);
	assert_int_equal(fg_get_used(v, &id, &len), 1);
	assert_int_equal(id, 0);
	assert_int_equal(len, 0);
	assert_false(e->c.port[1].tx_busy);
	assert_int_equal(vcon_pollfds(&e->c, pfd, 2 * VCON_MAX_PORTS), 0);
	assert_false(needs_reset(e));
}

/* More queued than one vcon_process() moves: the rest must not wait for a
 * kick the guest has no reason to send. */
static void test_budget_tx(void **state)
{
	struct env *e = *state;
	const unsigned nbufs = 6, bufsz = 64 * 1024;
	struct fg_vq *v;
	int p[2], rounds = 0;
	uint8_t *got = malloc(nbufs * bufsz);

	assert_non_null(got);
	assert_int_equal(pipe(p), 0);
	nonblock(p[0]);
	nonblock(p[1]);
	if (fcntl(p[1], F_SETPIPE_SZ, 1024 * 1024) < 0) {
		close(p[0]);
		close(p[1]);
		free(got);
		skip();
	}
	e->host[3] = p[0];
	e->dev[3] = p[1];
	/* DEVICE_READY not sent yet: ports can still be added. */
	assert_int_equal(vcon_add_port(&e->c, 3, "bulk", false, -1, p[1]), 0);
	v = &e->v[txq(3)];
	for (unsigned i = 0; i < nbufs; i++) {
		uint64_t a = fg_alloc(&e->g, bufsz, 16);

		memset(fg_host(&e->g, a), (int)i + 1, bufsz);
		fg_desc(v, (uint16_t)i, a, bufsz, 0, 0);
		fg_publish(v, (uint16_t)i);
	}
	kick(e, txq(3));
	while (fg_used_idx(v) != nbufs) {
		assert_true(would_wake(e));
		vcon_process(&e->c);
		assert_true(++rounds < 100);
	}
	assert_int_equal(read(p[0], got, nbufs * bufsz),
			 (ssize_t)(nbufs * bufsz));
	for (unsigned i = 0; i < nbufs; i++)
		assert_int_equal(got[i * bufsz + bufsz - 1], i + 1);
	free(got);
	assert_false(needs_reset(e));
}

/* The same the other way: more host input than one call moves, the guest
 * with enough receive buffers posted for all of it. */
static void test_budget_rx(void **state)
{
	struct env *e = *state;
	const unsigned nbufs = 6, bufsz = 64 * 1024;
	uint8_t *data = malloc(nbufs * bufsz);
	uint64_t gpa[6];
	uint16_t head[6];
	struct fg_vq *v;
	int p[2], rounds = 0;
	struct ctrl m;

	assert_non_null(data);
	assert_int_equal(pipe(p), 0);
	nonblock(p[0]);
	nonblock(p[1]);
	if (fcntl(p[1], F_SETPIPE_SZ, 1024 * 1024) < 0) {
		close(p[0]);
		close(p[1]);
		free(data);
		skip();
	}
	e->host[3] = p[1];
	e->dev[3] = p[0];
	assert_int_equal(vcon_add_port(&e->c, 3, "bulk", false, p[0], -1), 0);
	guest_ctrl(e, BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	while (next_ctrl(e, &m))
		;
	port_ready(e, 3);
	for (unsigned i = 0; i < nbufs * bufsz; i++)
		data[i] = (uint8_t)(i / 4093);
	assert_int_equal(write(p[1], data, nbufs * bufsz),
			 (ssize_t)(nbufs * bufsz));
	v = &e->v[rxq(3)];
	for (unsigned i = 0; i < nbufs; i++)
		head[i] = fg_post_in(v, bufsz, &gpa[i]);
	kick(e, rxq(3));
	while (fg_used_idx(v) != nbufs) {
		assert_true(would_wake(e));
		vcon_process(&e->c);
		assert_true(++rounds < 100);
	}
	for (unsigned i = 0; i < nbufs; i++) {
		uint32_t id = 0, len = 0;

		assert_int_equal(fg_get_used(v, &id, &len), 1);
		assert_int_equal(id, head[i]);
		assert_int_equal(len, bufsz);
		assert_memory_equal(fg_host(&e->g, gpa[i]), data + i * bufsz,
				    bufsz);
	}
	free(data);
	assert_false(needs_reset(e));
}

static void hostile_ctrl(struct env *e, uint32_t id, uint16_t event)
{
	unsigned irqs = e->irqs;

	assert_false(needs_reset(e));
	guest_ctrl(e, id, event, 1);
	assert_true(needs_reset(e));
	assert_true(e->irqs > irqs);
	assert_true(fg_rd(&e->c.t, VIRTIO_MMIO_INTERRUPT_STATUS) &
		    VIRTIO_INT_CONFIG);
	/* Stopped: data on a port no longer moves. */
	fg_post_out(&e->v[txq(1)], "x", 1);
	kick(e, txq(1));
	vcon_process(&e->c);
	assert_int_equal(fg_used_idx(&e->v[txq(1)]), 0);
	{
		char c;

		assert_int_equal(host_read(e, 1, &c, 1), 0);
	}
	/* The driver resets and starts over. */
	fg_wr(&e->c.t, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(status(e), 0);
	bring_up(e, false);
	device_ready(e);
}

static void test_ctrl_unknown_port(void **state)
{
	struct env *e = *state;

	device_ready(e);
	hostile_ctrl(e, 7, VIRTIO_CONSOLE_PORT_READY);	/* not added */
	hostile_ctrl(e, VCON_MAX_PORTS, VIRTIO_CONSOLE_PORT_READY);
	hostile_ctrl(e, BAD_ID, VIRTIO_CONSOLE_PORT_OPEN);
	hostile_ctrl(e, 0x80000000U, VIRTIO_CONSOLE_PORT_READY);
	/* Events only the device sends. */
	hostile_ctrl(e, 0, VIRTIO_CONSOLE_RESIZE);
	hostile_ctrl(e, 1, VIRTIO_CONSOLE_PORT_NAME);
	hostile_ctrl(e, 1, 0xffff);
}

static void test_ctrl_short(void **state)
{
	struct env *e = *state;
	const uint8_t m[4] = { 0 };

	fg_post_out(&e->v[CTRL_TX], m, sizeof(m));
	kick(e, CTRL_TX);
	assert_true(needs_reset(e));
	/* The buffer is given back all the same. */
	assert_int_equal(fg_used_idx(&e->v[CTRL_TX]), 1);
	expect_no_ctrl(e);
}

static void test_ctrl_write_only(void **state)
{
	struct env *e = *state;

	/* A control "message" the device cannot read: no bytes. */
	fg_post_in(&e->v[CTRL_TX], 8, NULL);
	kick(e, CTRL_TX);
	assert_true(needs_reset(e));
}

static void test_ctrl_rx_too_small(void **state)
{
	struct env *e = *state;
	uint32_t id, len;

	fg_post_in(&e->v[CTRL_RX], 4, NULL);
	guest_ctrl(e, BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	assert_true(needs_reset(e));
	assert_int_equal(fg_get_used(&e->v[CTRL_RX], &id, &len), 1);
	assert_int_equal(len, 0);
	assert_int_equal(fg_get_used(&e->v[CTRL_RX], &id, &len), 0);
}

static void test_ctrl_rx_name_too_small(void **state)
{
	struct env *e = *state;

	/* Room for the header, not the name behind it. */
	fg_post_in(&e->v[CTRL_RX], CTRL_BUF, NULL);
	fg_post_in(&e->v[CTRL_RX], CTRL_BUF, NULL);
	fg_post_in(&e->v[CTRL_RX], CTRL_BUF, NULL);
	guest_ctrl(e, BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	assert_false(needs_reset(e));
	fg_post_in(&e->v[CTRL_RX], 8 + 3, NULL);
	guest_ctrl(e, 1, VIRTIO_CONSOLE_PORT_READY, 1);
	assert_true(needs_reset(e));
}

/* A broken descriptor on a data queue stops the device, and the queues
 * after it are not touched. */
static void test_bad_desc_tx(void **state)
{
	struct env *e = *state;
	struct pollfd pfd[2 * VCON_MAX_PORTS];
	char c;

	device_ready(e);
	fg_desc(&e->v[txq(1)], 0, MEM_SIZE - 2, 4, 0, 0);
	fg_publish(&e->v[txq(1)], 0);
	fg_post_out(&e->v[txq(2)], "late", 4);
	fg_wr(&e->c.t, VIRTIO_MMIO_QUEUE_NOTIFY, txq(2));
	kick(e, txq(1));
	assert_true(needs_reset(e));
	assert_int_equal(host_read(e, 2, &c, 1), 0);
	assert_int_equal(fg_used_idx(&e->v[txq(1)]), 0);
	assert_int_equal(fg_used_idx(&e->v[txq(2)]), 0);
	assert_int_equal(vcon_pollfds(&e->c, pfd, 2 * VCON_MAX_PORTS), 0);
	/* Console output no longer moves either. */
	fg_post_out(&e->v[txq(0)], "x", 1);
	kick(e, txq(0));
	assert_int_equal(host_read(e, 0, &c, 1), 0);
}

/* Once a port's transmit queue is found broken, its receive side does
 * not run either. */
static void test_bad_desc_tx_stops_rx(void **state)
{
	struct env *e = *state;
	char c;

	device_ready(e);
	port_ready(e, 1);
	fg_post_in(&e->v[rxq(1)], 64, NULL);
	fg_desc(&e->v[txq(1)], 7, 0, 16, VIRTQ_DESC_F_NEXT, QSIZE);
	fg_publish(&e->v[txq(1)], 7);
	host_write(e, 1, "in", 2);
	kick(e, txq(1));
	assert_true(needs_reset(e));
	assert_int_equal(fg_used_idx(&e->v[rxq(1)]), 0);
	assert_int_equal(e->c.port[1].bytes_in, 0);
	/* The host's bytes are still there, unread. */
	assert_int_equal(recv(e->dev[1], &c, 1, MSG_DONTWAIT | MSG_PEEK), 1);
}

static void test_bad_desc_loop(void **state)
{
	struct env *e = *state;
	uint64_t a = fg_alloc(&e->g, 8, 16);

	fg_desc(&e->v[txq(2)], 3, a, 8, VIRTQ_DESC_F_NEXT, 4);
	fg_desc(&e->v[txq(2)], 4, a, 8, VIRTQ_DESC_F_NEXT, 3);
	fg_publish(&e->v[txq(2)], 3);
	kick(e, txq(2));
	assert_true(needs_reset(e));
}

/* A zero-length writable descriptor ahead of the data is out of order
 * too. It once left the transmit path looping on an empty writev: the
 * alarm turns that hang into a failure. */
static void test_bad_desc_zero_write_first(void **state)
{
	struct env *e = *state;
	uint64_t a = fg_alloc(&e->g, 8, 16);
	char c;

	memcpy(fg_host(&e->g, a), "12345678", 8);
	fg_desc(&e->v[txq(1)], 0, a, 0,
		VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	fg_desc(&e->v[txq(1)], 1, a, 8, 0, 0);
	fg_publish(&e->v[txq(1)], 0);
	alarm(10);
	kick(e, txq(1));
	alarm(0);
	assert_true(needs_reset(e));
	assert_int_equal(host_read(e, 1, &c, 1), 0);
	assert_int_equal(fg_used_idx(&e->v[txq(1)]), 0);
}

static void test_bad_desc_rx(void **state)
{
	struct env *e = *state;

	device_ready(e);
	port_ready(e, 1);
	host_write(e, 1, "data", 4);
	fg_publish(&e->v[rxq(1)], 1000);	/* head out of range */
	kick(e, rxq(1));
	assert_true(needs_reset(e));
}

static void test_bad_avail_idx(void **state)
{
	struct env *e = *state;

	fg_avail_idx(&e->v[CTRL_TX], QSIZE + 1);
	kick(e, CTRL_TX);
	assert_true(needs_reset(e));
}

static void test_rx_readonly_buffer(void **state)
{
	struct env *e = *state;

	device_ready(e);
	port_ready(e, 1);
	host_write(e, 1, "data", 4);
	fg_post_out(&e->v[rxq(1)], "ro", 2);
	kick(e, rxq(1));
	assert_true(needs_reset(e));
	assert_int_equal(fg_used_idx(&e->v[rxq(1)]), 0);
}

static void test_ctrl_rx_bad_desc(void **state)
{
	struct env *e = *state;

	fg_desc(&e->v[CTRL_RX], 0, 0xfffffffffffffff8ULL, 16,
		VIRTQ_DESC_F_WRITE, 0);
	fg_publish(&e->v[CTRL_RX], 0);
	guest_ctrl(e, BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	assert_true(needs_reset(e));
}

static void test_reset(void **state)
{
	struct env *e = *state;
	struct pollfd pfd[2 * VCON_MAX_PORTS];
	int sndbuf = 4096;
	static uint8_t junk[64 * 1024];
	unsigned resets_irqs;

	device_ready(e);
	port_ready(e, 1);
	port_ready(e, 2);
	guest_ctrl(e, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	/* A held transmit chain and a held receive buffer. */
	assert_int_equal(setsockopt(e->dev[1], SOL_SOCKET, SO_SNDBUF, &sndbuf,
				    sizeof(sndbuf)),
			 0);
	fg_post_out(&e->v[txq(1)], junk, sizeof(junk));
	fg_post_in(&e->v[rxq(2)], 64, NULL);
	kick(e, txq(1));
	assert_true(e->c.port[1].tx_busy);
	assert_true(e->c.port[2].rx_busy);
	/* Control messages queued: more than the driver gave buffers for. */
	for (unsigned i = 0; i < 20; i++)
		vcon_resize(&e->c, 2, (uint16_t)(10 + i), 80);
	assert_true(e->c.ctrl_len > 0);
	assert_int_equal(vcon_pollfds(&e->c, pfd, 2 * VCON_MAX_PORTS), 2);

	fg_wr(&e->c.t, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(status(e), 0);
	assert_false(e->c.device_ready);
	assert_int_equal(e->c.ctrl_len, 0);
	for (unsigned i = 0; i < VCON_MAX_PORTS; i++) {
		const struct vcon_port *p = &e->c.port[i];

		assert_false(p->guest_ready);
		assert_false(p->guest_open);
		assert_false(p->tx_busy);
		assert_false(p->tx_blocked);
		assert_false(p->rx_busy);
	}
	for (unsigned i = 0; i < NQ; i++)
		assert_false(e->c.t.vq[i].ready);
	/* The ports themselves stay. */
	assert_true(e->c.port[1].used);
	assert_string_equal(e->c.port[1].name, AGENT_NAME);
	assert_int_equal(vcon_pollfds(&e->c, pfd, 2 * VCON_MAX_PORTS), 0);
	resets_irqs = e->irqs;
	vcon_process(&e->c);
	assert_int_equal(e->irqs, resets_irqs);

	/* Drain what the old transmit chain left in the socket. */
	while (host_read(e, 1, junk, sizeof(junk)))
		;
	/* A new driver sees the device as new. */
	bring_up(e, false);
	device_ready(e);
	guest_ctrl(e, 1, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_ctrl(e, 1, VIRTIO_CONSOLE_PORT_NAME, 0, AGENT_NAME,
		    strlen(AGENT_NAME));
	expect_ctrl(e, 1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL, 0);
	expect_no_ctrl(e);
	fg_post_out(&e->v[txq(1)], "again", 5);
	kick(e, txq(1));
	{
		char out[8];

		assert_int_equal(host_read(e, 1, out, sizeof(out)), 5);
		assert_memory_equal(out, "again", 5);
	}
}

static void test_not_live(void **state)
{
	struct env *e = *state;
	char c;

	/* Before DRIVER_OK nothing moves, whatever is in the rings. */
	fg_wr(&e->c.t, VIRTIO_MMIO_STATUS, 0);
	fg_mmio_negotiate(&e->c.t, 1ULL << VIRTIO_F_VERSION_1 |
					   1ULL << VIRTIO_CONSOLE_F_MULTIPORT);
	for (unsigned i = 0; i < NQ; i++) {
		fg_vq_init(&e->v[i], &e->g, QSIZE);
		fg_mmio_queue(&e->c.t, i, &e->v[i]);
	}
	fg_post_out(&e->v[txq(0)], "x", 1);
	kick(e, txq(0));
	vcon_process(&e->c);
	assert_int_equal(host_read(e, 0, &c, 1), 0);
	assert_int_equal(e->irqs, 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
#define TBARE(f) cmocka_unit_test_setup_teardown(f, setup_bare, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_config_space),
		T(test_add_port_errors),
		T(test_device_ready),
		T(test_device_ready_failed),
		T(test_console_port),
		T(test_console_port_sized),
		T(test_named_port),
		T(test_guest_to_host),
		T(test_host_to_guest),
		T(test_host_eof),
		T(test_backpressure),
		T(test_budget_tx),
		T(test_budget_rx),
		T(test_bad_desc_tx_stops_rx),
		T(test_ctrl_unknown_port),
		T(test_ctrl_short),
		T(test_ctrl_write_only),
		TBARE(test_ctrl_rx_too_small),
		TBARE(test_ctrl_rx_name_too_small),
		T(test_bad_desc_tx),
		T(test_bad_desc_loop),
		T(test_bad_desc_zero_write_first),
		T(test_bad_desc_rx),
		T(test_bad_avail_idx),
		T(test_rx_readonly_buffer),
		TBARE(test_ctrl_rx_bad_desc),
		T(test_reset),
		T(test_not_live),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
