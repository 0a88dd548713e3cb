/* The virtio-console test fixture: a device with NPORTS ports on plain
 * memory (the fake guest), socketpairs as the ports' host side, and the
 * driver's moves as the Linux virtio_console driver makes them. Shared by
 * the device's test files. Include after <cmocka.h>. */
#ifndef TESTS_UNIT_VCON_ENV_H
#define TESTS_UNIT_VCON_ENV_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/unit/fake_guest.h"
#include "vmm/virtio/console.h"

#define MEM_SIZE (8 * 1024 * 1024)
#define BASE 0xd0000000ULL
#define GSI 5
#define NQ (2 * (VCON_MAX_PORTS + 1))
#define QSIZE 64
#define CTRL_RX 2
#define CTRL_TX 3
#define CTRL_BUF 128
#define NPORTS 3	/* ports the fixture adds */
#define BAD_ID 0xffffffffU	/* VIRTIO_CONSOLE_BAD_ID, for DEVICE_READY */
#define AGENT_NAME "org.clone.agent"
#define TERM_NAME "clone.term"

struct env {
	struct fg g;
	struct fg_vq v[NQ];
	struct vcon c;
	unsigned irqs;
	int host[VCON_MAX_PORTS];	/* the test's end */
	int dev[VCON_MAX_PORTS];	/* the device's end */
};

struct ctrl {
	uint32_t id;
	uint16_t event, value;
	uint8_t payload[CTRL_BUF];
	uint32_t len;		/* payload bytes */
};

static inline unsigned rxq(unsigned port)
{
	return port == 0 ? 0 : 2 + 2 * port;
}

static inline unsigned txq(unsigned port)
{
	return port == 0 ? 1 : 3 + 2 * port;
}

static inline void count_irq(void *opaque, uint32_t gsi)
{
	struct env *e = opaque;

	assert_int_equal(gsi, GSI);
	e->irqs++;
}

static inline void nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	assert_true(fl >= 0);
	assert_int_equal(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

static inline uint32_t status(struct env *e)
{
	return fg_rd(&e->c.t, VIRTIO_MMIO_STATUS);
}

static inline bool needs_reset(struct env *e)
{
	return status(e) & VIRTIO_STATUS_NEEDS_RESET;
}

/* Driver start-up: features, fresh rings for every queue (queue big_q
 * with big_size entries, the others QSIZE), DRIVER_OK, and control
 * receive buffers unless bare. */
static inline void bring_up_sized(struct env *e, bool bare, unsigned big_q,
				  uint16_t big_size)
{
	const uint64_t f = 1ULL << VIRTIO_F_VERSION_1 |
			   1ULL << VIRTIO_CONSOLE_F_SIZE |
			   1ULL << VIRTIO_CONSOLE_F_MULTIPORT;

	assert_int_equal(fg_mmio_negotiate(&e->c.t, f),
			 VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER |
				 VIRTIO_STATUS_FEATURES_OK);
	for (unsigned i = 0; i < NQ; i++) {
		fg_wr(&e->c.t, VIRTIO_MMIO_QUEUE_SEL, i);
		assert_int_equal(fg_rd(&e->c.t, VIRTIO_MMIO_QUEUE_NUM_MAX),
				 256);
		fg_vq_init(&e->v[i], &e->g, i == big_q ? big_size : QSIZE);
		fg_mmio_queue(&e->c.t, i, &e->v[i]);
		assert_int_equal(fg_rd(&e->c.t, VIRTIO_MMIO_QUEUE_READY), 1);
	}
	fg_wr(&e->c.t, VIRTIO_MMIO_STATUS, FG_STATUS_LIVE);
	assert_int_equal(status(e), FG_STATUS_LIVE);
	if (!bare)
		for (unsigned i = 0; i < 16; i++)
			fg_post_in(&e->v[CTRL_RX], CTRL_BUF, NULL);
}

static inline void bring_up(struct env *e, bool bare)
{
	bring_up_sized(e, bare, NQ, QSIZE);
}

static inline int setup_common(void **state, bool bare)
{
	struct env *e = calloc(1, sizeof(*e));
	const char *names[NPORTS] = { NULL, AGENT_NAME, TERM_NAME };
	const bool console[NPORTS] = { true, false, true };

	assert_non_null(e);
	fg_init(&e->g, MEM_SIZE);
	assert_int_equal(vcon_init(&e->c, &e->g.m, BASE, GSI, count_irq, e),
			 0);
	for (unsigned i = 0; i < VCON_MAX_PORTS; i++)
		e->host[i] = e->dev[i] = -1;
	for (unsigned i = 0; i < NPORTS; i++) {
		int sv[2];

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		nonblock(sv[0]);
		nonblock(sv[1]);
		e->host[i] = sv[0];
		e->dev[i] = sv[1];
		assert_int_equal(vcon_add_port(&e->c, i, names[i], console[i],
					       sv[1], sv[1]),
				 0);
	}
	bring_up(e, bare);
	*state = e;
	return 0;
}

static inline int setup(void **state)
{
	return setup_common(state, false);
}

static inline int setup_bare(void **state)
{
	return setup_common(state, true);
}

static inline int teardown(void **state)
{
	struct env *e = *state;

	vcon_destroy(&e->c);
	vcon_destroy(&e->c);	/* twice is harmless */
	for (unsigned i = 0; i < VCON_MAX_PORTS; i++) {
		if (e->host[i] >= 0)
			close(e->host[i]);
		if (e->dev[i] >= 0 && e->dev[i] != e->host[i])
			close(e->dev[i]);
	}
	fg_free(&e->g);
	free(e);
	return 0;
}

/* The guest kicks queue q; the I/O thread runs. */
static inline void kick(struct env *e, unsigned q)
{
	fg_wr(&e->c.t, VIRTIO_MMIO_QUEUE_NOTIFY, q);
	vcon_process(&e->c);
}

static inline void guest_ctrl(struct env *e, uint32_t id, uint16_t event,
		       uint16_t value)
{
	uint8_t m[8];

	memcpy(m, &id, 4);
	memcpy(m + 4, &event, 2);
	memcpy(m + 6, &value, 2);
	fg_post_out(&e->v[CTRL_TX], m, sizeof(m));
	kick(e, CTRL_TX);
}

/* The next control message from the device, as the driver reads it, and
 * the buffer given back. false when there is none. */
static inline bool next_ctrl(struct env *e, struct ctrl *m)
{
	struct fg_vq *v = &e->v[CTRL_RX];
	uint32_t head, len;
	const uint8_t *b;

	if (!fg_get_used(v, &head, &len))
		return false;
	assert_true(head < QSIZE);
	assert_true(len >= 8 && len <= CTRL_BUF);
	b = fg_host(&e->g, fg_desc_addr(v, (uint16_t)head));
	memcpy(&m->id, b, 4);
	memcpy(&m->event, b + 4, 2);
	memcpy(&m->value, b + 6, 2);
	m->len = len - 8;
	memcpy(m->payload, b + 8, m->len);
	fg_post_in(v, CTRL_BUF, NULL);
	return true;
}

static inline void expect_ctrl(struct env *e, uint32_t id, uint16_t event,
			uint16_t value, const void *payload, uint32_t len)
{
	struct ctrl m;

	assert_true(next_ctrl(e, &m));
	assert_int_equal(m.id, id);
	assert_int_equal(m.event, event);
	assert_int_equal(m.value, value);
	assert_int_equal(m.len, len);
	if (len)
		assert_memory_equal(m.payload, payload, len);
}

static inline void expect_no_ctrl(struct env *e)
{
	struct ctrl m;

	assert_false(next_ctrl(e, &m));
}

static inline void device_ready(struct env *e)
{
	guest_ctrl(e, BAD_ID, VIRTIO_CONSOLE_DEVICE_READY, 1);
	for (unsigned i = 0; i < NPORTS; i++)
		expect_ctrl(e, i, VIRTIO_CONSOLE_DEVICE_ADD, 1, NULL, 0);
	expect_no_ctrl(e);
}

/* PORT_READY for a port, then the guest opens it (as the agent does;
 * a generic port takes no data before), and whatever the device says
 * back dropped. */
static inline void port_ready(struct env *e, unsigned nr)
{
	struct ctrl m;

	guest_ctrl(e, nr, VIRTIO_CONSOLE_PORT_READY, 1);
	guest_ctrl(e, nr, VIRTIO_CONSOLE_PORT_OPEN, 1);
	while (next_ctrl(e, &m))
		assert_int_equal(m.id, nr);
}

static inline size_t host_read(struct env *e, unsigned nr, void *buf, size_t len)
{
	ssize_t n = recv(e->host[nr], buf, len, MSG_DONTWAIT);

	if (n < 0) {
		assert_int_equal(errno, EAGAIN);
		return 0;
	}
	return (size_t)n;
}

static inline void host_write(struct env *e, unsigned nr, const void *buf,
		       size_t len)
{
	assert_int_equal(send(e->host[nr], buf, len, MSG_DONTWAIT),
			 (ssize_t)len);
}

static inline uint16_t cfg16(struct env *e, uint32_t off)
{
	uint16_t v;

	virtio_mmio_read(&e->c.t, VIRTIO_MMIO_CONFIG + off, &v, 2);
	return v;
}

/* Whether the I/O thread's poll() would wake up now: on a kick or on one
 * of the fds vcon_pollfds() asks for. */
static inline bool would_wake(struct env *e)
{
	struct pollfd pfd[1 + 2 * VCON_MAX_PORTS];
	int n = 1;

	pfd[0] = (struct pollfd){ .fd = e->c.kick_fd, .events = POLLIN };
	n += vcon_pollfds(&e->c, pfd + 1, 2 * VCON_MAX_PORTS);
	return poll(pfd, (nfds_t)n, 0) > 0;
}

#endif
