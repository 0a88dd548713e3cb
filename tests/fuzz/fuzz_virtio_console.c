/* libFuzzer harness: the split virtqueue and the virtio-console device
 * driven by a hostile guest, on plain malloc'd guest memory, with
 * socketpairs as the ports' host side.
 *
 * The input is a script. Its first byte picks the queue size (1 << (b % 9));
 * the driver then negotiates, lays out every queue and sets DRIVER_OK. The
 * rest is a sequence of steps, an op byte then its fields (little-endian):
 *
 *   0 DESC        q u8, i u16, off u16, len u16, flags u8, next u16
 *                 (addr = data area + off % DATA_SIZE)
 *   1 DESC_RAW    q u8, i u16, addr u64, len u32, flags u16, next u16
 *   2 PUBLISH     q u8, head u16 (next available slot, then avail->idx++)
 *   3 AVAIL_IDX   q u8, idx u16 (written as is)
 *   4 AVAIL_FLAGS q u8, flags u16
 *   5 POST_OUT    q u8, n u8, n bytes (a device-readable buffer)
 *   6 POST_IN     q u8, len u16 (a device-writable buffer)
 *   7 CTRL        id u32, event u16, value u16 (posted on the control
 *                 transmit queue, notified, processed)
 *   8 NOTIFY      q u8 (QueueNotify, then the I/O thread runs)
 *   9 PROCESS
 *  10 MMIO_WRITE  off u16, value u32
 *  11 MMIO_READ   off u16, len u8
 *  12 HOST_WRITE  port u8, n u16, n bytes
 *  13 HOST_DRAIN  port u8
 *  14 HOST_EOF    port u8 (the host stops writing)
 *  15 DETACH      port u8
 *  16 ATTACH      port u8 (new host fds)
 *  17 ADD_PORT    port u8, console u8
 *  18 RESIZE      port u8, rows u16, cols u16
 *  19 SNAPSHOT    (save, restore into a new device as a clone does)
 *  20 POLLFDS     max u8
 *  21 MEM         gpa u32, n u8, n bytes (anywhere in guest memory)
 *  22 RESET       (device reset, fresh rings, the bring-up again)
 *
 * (q is taken modulo the number of queues, i modulo the queue size, port
 * modulo VCON_MAX_PORTS.) After every step each chain the device holds
 * must lie inside guest memory; ASan and UBSan watch everything else. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "tests/fuzz/fuzz_input.h"
#include "vmm/snapshot.h"
#include "vmm/virtio/console.h"

#define NQ (2 * (VCON_MAX_PORTS + 1))
#define CTRL_TX 3
#define DATA_SIZE 16384
#define RING_BASE 4096	/* page 0 holds nothing */
#define BASE 0xd0000000ULL
#define GSI 5

enum op {
	OP_DESC, OP_DESC_RAW, OP_PUBLISH, OP_AVAIL_IDX, OP_AVAIL_FLAGS,
	OP_POST_OUT, OP_POST_IN, OP_CTRL, OP_NOTIFY, OP_PROCESS,
	OP_MMIO_WRITE, OP_MMIO_READ, OP_HOST_WRITE, OP_HOST_DRAIN, OP_HOST_EOF,
	OP_DETACH, OP_ATTACH, OP_ADD_PORT, OP_RESIZE, OP_SNAPSHOT, OP_POLLFDS,
	OP_MEM, OP_RESET, OP_COUNT
};

struct drv_q {
	uint64_t desc, avail, used;
	uint16_t avail_idx, next_desc;
};

struct env {
	struct gmem m;
	uint16_t qsize;
	uint64_t data;		/* guest address of the data area */
	uint32_t brk;		/* next free byte in it; wraps */
	struct drv_q q[NQ];
	struct vcon *c;
	int host[VCON_MAX_PORTS], dev[VCON_MAX_PORTS];	/* -1: none */
};

static void irq(void *opaque, uint32_t gsi)
{
	(void)opaque;
	(void)gsi;
}

static void put(struct env *e, uint64_t gpa, const void *v, size_t n)
{
	memcpy(e->m.host + gpa, v, n);
}

static void wr(struct env *e, uint64_t off, uint32_t v)
{
	virtio_mmio_write(&e->c->t, off, &v, 4);
}

/* Rings packed one queue after another, then the data area. */
static void layout(struct env *e, uint16_t qs)
{
	uint64_t a = RING_BASE;

	e->qsize = qs;
	for (unsigned i = 0; i < NQ; i++) {
		e->q[i].desc = a;
		e->q[i].avail = a + 16ULL * qs;
		e->q[i].used = (e->q[i].avail + 6 + 2ULL * qs + 3) & ~3ULL;
		a = (e->q[i].used + 6 + 8ULL * qs + 15) & ~15ULL;
	}
	e->data = a;
	e->m.size = a + DATA_SIZE;
}

static uint64_t alloc(struct env *e, uint32_t len)
{
	uint64_t gpa;

	if (len > DATA_SIZE)
		len = DATA_SIZE;
	if (DATA_SIZE - e->brk < len)
		e->brk = 0;
	gpa = e->data + e->brk;
	e->brk += len;
	return gpa;
}

static void desc(struct env *e, unsigned q, uint16_t i, uint64_t addr,
		 uint32_t len, uint16_t flags, uint16_t next)
{
	uint64_t d = e->q[q].desc + 16ULL * (i % e->qsize);

	put(e, d, &addr, 8);
	put(e, d + 8, &len, 4);
	put(e, d + 12, &flags, 2);
	put(e, d + 14, &next, 2);
}

static void publish(struct env *e, unsigned q, uint16_t head)
{
	struct drv_q *v = &e->q[q];

	put(e, v->avail + 4 + 2ULL * (v->avail_idx % e->qsize), &head, 2);
	v->avail_idx++;
	put(e, v->avail + 2, &v->avail_idx, 2);
}

static void post(struct env *e, unsigned q, const void *data, uint32_t len,
		 bool writable)
{
	uint64_t gpa = alloc(e, len);
	uint16_t i = e->q[q].next_desc++ % e->qsize;

	if (data)
		put(e, gpa, data, len);
	desc(e, q, i, gpa, len, writable ? VIRTQ_DESC_F_WRITE : 0, 0);
	publish(e, q, i);
}

static void notify(struct env *e, uint32_t q)
{
	wr(e, VIRTIO_MMIO_QUEUE_NOTIFY, q);
	vcon_process(e->c);
}

static void bring_up(struct env *e)
{
	const uint64_t f = 1ULL << VIRTIO_F_VERSION_1 |
			   1ULL << VIRTIO_CONSOLE_F_SIZE |
			   1ULL << VIRTIO_CONSOLE_F_MULTIPORT;

	wr(e, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACK);
	wr(e, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER);
	wr(e, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(e, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)f);
	wr(e, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(e, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(f >> 32));
	wr(e, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER |
					  VIRTIO_STATUS_FEATURES_OK);
	for (unsigned i = 0; i < NQ; i++) {
		wr(e, VIRTIO_MMIO_QUEUE_SEL, i);
		wr(e, VIRTIO_MMIO_QUEUE_NUM, e->qsize);
		wr(e, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)e->q[i].desc);
		wr(e, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)e->q[i].avail);
		wr(e, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)e->q[i].used);
		wr(e, VIRTIO_MMIO_QUEUE_READY, 1);
	}
	wr(e, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER |
					  VIRTIO_STATUS_FEATURES_OK |
					  VIRTIO_STATUS_DRIVER_OK);
}

static void close_pair(struct env *e, unsigned nr)
{
	if (e->host[nr] >= 0)
		close(e->host[nr]);
	if (e->dev[nr] >= 0)
		close(e->dev[nr]);
	e->host[nr] = e->dev[nr] = -1;
}

static int new_pair(struct env *e, unsigned nr)
{
	int sv[2];

	close_pair(e, nr);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		       sv) < 0)
		abort();
	e->host[nr] = sv[0];
	e->dev[nr] = sv[1];
	return sv[1];
}

static void add_port(struct env *e, struct vcon *c, unsigned nr, bool console)
{
	static const char *const fixed[] = { NULL, "clone.agent", "clone.term" };
	char name[VCON_NAME_MAX];
	int fd = new_pair(e, nr);

	if (nr < 3)
		snprintf(name, sizeof(name), "%s", fixed[nr] ? fixed[nr] : "");
	else
		snprintf(name, sizeof(name), "clone.s%u", nr);
	if (vcon_add_port(c, nr, name[0] ? name : NULL, console, fd, fd) < 0)
		close_pair(e, nr);
}

/* What a clone does: save the device, then restore it in a new VMM that
 * has added ports 0 and 1; session ports come back without host fds. */
static void snapshot(struct env *e)
{
	struct snapshot_console st;
	struct vcon *n;
	int r;

	vcon_lock(e->c);
	r = vcon_save(e->c, &st.dev);
	if (r == 0)
		r = virtio_mmio_save(&e->c->t, &st.mmio, st.vq,
				     SNAPSHOT_NQUEUES);
	vcon_unlock(e->c);
	if (r < 0)
		return;
	n = malloc(sizeof(*n));
	if (!n || vcon_init(n, &e->m, BASE, GSI, irq, e) < 0)
		abort();
	vcon_add_port(n, 0, NULL, true, e->dev[0], e->dev[0]);
	vcon_add_port(n, 1, "clone.agent", false, e->dev[1], e->dev[1]);
	if (virtio_mmio_restore(&n->t, &st.mmio, st.vq, SNAPSHOT_NQUEUES) < 0 ||
	    vcon_restore(n, &st.dev) < 0) {
		vcon_destroy(n);
		free(n);
		return;
	}
	for (unsigned i = 2; i < VCON_MAX_PORTS; i++)
		close_pair(e, i);
	vcon_destroy(e->c);
	free(e->c);
	e->c = n;
}

static bool in_guest(const struct env *e, const uint8_t *p, uint64_t len)
{
	uintptr_t a = (uintptr_t)p, base = (uintptr_t)e->m.host;

	return a >= base && len <= e->m.size && a - base <= e->m.size - len;
}

static void check_chain(const struct env *e, const struct virtq_chain *ch)
{
	if (ch->nsegs > VIRTQ_MAX_SEGS || ch->nread > ch->nsegs)
		abort();
	for (unsigned i = 0; i < ch->nsegs; i++)
		if (!in_guest(e, ch->seg[i].host, ch->seg[i].len))
			abort();
}

static void check(const struct env *e)
{
	const struct vcon *c = e->c;

	if (c->ctrl_len > VCON_CTRL_QUEUE || c->ctrl_head >= VCON_CTRL_QUEUE)
		abort();
	for (unsigned i = 0; i < VCON_MAX_PORTS; i++) {
		if (c->port[i].tx_busy)
			check_chain(e, &c->port[i].tx);
		if (c->port[i].rx_busy)
			check_chain(e, &c->port[i].rx);
	}
}

static void step(struct env *e, struct fin *in)
{
	unsigned op = fin_u8(in) % OP_COUNT;
	const uint8_t *b;
	unsigned q, nr;
	size_t n;

	switch ((enum op)op) {
	case OP_DESC: {
		uint16_t i, off, len, next;
		uint8_t flags;

		q = fin_u8(in) % NQ;
		i = fin_u16(in);
		off = fin_u16(in);
		len = fin_u16(in);
		flags = fin_u8(in);
		next = fin_u16(in);
		desc(e, q, i, e->data + off % DATA_SIZE, len, flags, next);
		return;
	}
	case OP_DESC_RAW: {
		uint16_t i, flags, next;
		uint64_t addr;
		uint32_t len;

		q = fin_u8(in) % NQ;
		i = fin_u16(in);
		addr = fin_u64(in);
		len = fin_u32(in);
		flags = fin_u16(in);
		next = fin_u16(in);
		desc(e, q, i, addr, len, flags, next);
		return;
	}
	case OP_PUBLISH:
		q = fin_u8(in) % NQ;
		publish(e, q, fin_u16(in));
		return;
	case OP_AVAIL_IDX:
		q = fin_u8(in) % NQ;
		e->q[q].avail_idx = fin_u16(in);
		put(e, e->q[q].avail + 2, &e->q[q].avail_idx, 2);
		return;
	case OP_AVAIL_FLAGS: {
		uint16_t flags;

		q = fin_u8(in) % NQ;
		flags = fin_u16(in);
		put(e, e->q[q].avail, &flags, 2);
		return;
	}
	case OP_POST_OUT:
		q = fin_u8(in) % NQ;
		n = fin_bytes(in, fin_u8(in), &b);
		post(e, q, b, (uint32_t)n, false);
		return;
	case OP_POST_IN:
		q = fin_u8(in) % NQ;
		post(e, q, NULL, fin_u16(in), true);
		return;
	case OP_CTRL: {
		uint8_t m[8];

		n = fin_bytes(in, sizeof(m), &b);
		memset(m, 0, sizeof(m));
		memcpy(m, b, n);
		post(e, CTRL_TX, m, sizeof(m), false);
		notify(e, CTRL_TX);
		return;
	}
	case OP_NOTIFY:
		notify(e, fin_u8(in));
		return;
	case OP_PROCESS:
		vcon_process(e->c);
		return;
	case OP_MMIO_WRITE: {
		uint16_t off = fin_u16(in) % VIRTIO_MMIO_SIZE;

		wr(e, off, fin_u32(in));
		return;
	}
	case OP_MMIO_READ: {
		uint16_t off = fin_u16(in) % VIRTIO_MMIO_SIZE;
		uint8_t data[8];

		virtio_mmio_read(&e->c->t, off, data, fin_u8(in) % 9);
		return;
	}
	case OP_HOST_WRITE:
		nr = fin_u8(in) % VCON_MAX_PORTS;
		n = fin_bytes(in, fin_u16(in), &b);
		if (e->host[nr] >= 0 && write(e->host[nr], b, n) < 0 &&
		    errno != EAGAIN && errno != EPIPE)
			abort();
		return;
	case OP_HOST_DRAIN: {
		uint8_t buf[4096];

		nr = fin_u8(in) % VCON_MAX_PORTS;
		while (e->host[nr] >= 0 && read(e->host[nr], buf, sizeof(buf)) > 0)
			;
		return;
	}
	case OP_HOST_EOF:
		nr = fin_u8(in) % VCON_MAX_PORTS;
		if (e->host[nr] >= 0)
			shutdown(e->host[nr], SHUT_WR);
		return;
	case OP_DETACH:
		nr = fin_u8(in) % VCON_MAX_PORTS;
		vcon_detach_port(e->c, nr);
		close_pair(e, nr);
		return;
	case OP_ATTACH: {
		int host, dev, fd;

		nr = fin_u8(in) % VCON_MAX_PORTS;
		/* The device lets go of the old fds before they close. */
		host = e->host[nr];
		dev = e->dev[nr];
		e->host[nr] = e->dev[nr] = -1;
		fd = new_pair(e, nr);
		if (vcon_attach_port(e->c, nr, fd, fd) < 0) {
			close_pair(e, nr);
			e->host[nr] = host;
			e->dev[nr] = dev;
			return;
		}
		if (host >= 0)
			close(host);
		if (dev >= 0)
			close(dev);
		return;
	}
	case OP_ADD_PORT:
		nr = fin_u8(in) % VCON_MAX_PORTS;
		if (!e->c->port[nr].used)
			add_port(e, e->c, nr, fin_u8(in) & 1);
		return;
	case OP_RESIZE: {
		uint16_t rows, cols;

		nr = fin_u8(in) % VCON_MAX_PORTS;
		rows = fin_u16(in);
		cols = fin_u16(in);
		vcon_resize(e->c, nr, rows, cols);
		return;
	}
	case OP_SNAPSHOT:
		snapshot(e);
		return;
	case OP_POLLFDS: {
		struct pollfd pfd[2 * VCON_MAX_PORTS];
		int max = fin_u8(in) % (2 * VCON_MAX_PORTS + 1);
		int got = vcon_pollfds(e->c, pfd, max);

		if (got < 0 || got > max)
			abort();
		for (int i = 0; i < got; i++)
			if (pfd[i].fd < 0)
				abort();
		return;
	}
	case OP_MEM: {
		uint64_t gpa = fin_u32(in) % e->m.size;

		n = fin_bytes(in, fin_u8(in), &b);
		if (n > e->m.size - gpa)
			n = e->m.size - gpa;
		put(e, gpa, b, n);
		return;
	}
	case OP_RESET:
		wr(e, VIRTIO_MMIO_STATUS, 0);
		memset(e->m.host, 0, e->data);
		memset(e->q, 0, sizeof(e->q));
		layout(e, e->qsize);
		bring_up(e);
		return;
	case OP_COUNT:
		break;
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_init("fuzz", LOG_ERR);	/* guest errors are expected here */
	signal(SIGPIPE, SIG_IGN);	/* as in the server and its workers */
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fin in = { data, size };
	struct env e = { 0 };

	for (unsigned i = 0; i < VCON_MAX_PORTS; i++)
		e.host[i] = e.dev[i] = -1;
	layout(&e, (uint16_t)(1U << (fin_u8(&in) % 9)));
	e.m.host = calloc(1, e.m.size);
	e.c = malloc(sizeof(*e.c));
	if (!e.m.host || !e.c || vcon_init(e.c, &e.m, BASE, GSI, irq, &e) < 0)
		abort();
	add_port(&e, e.c, 0, true);
	add_port(&e, e.c, 1, false);
	add_port(&e, e.c, 2, true);
	bring_up(&e);
	while (fin_left(&in)) {
		step(&e, &in);
		check(&e);
	}
	vcon_destroy(e.c);
	free(e.c);
	for (unsigned i = 0; i < VCON_MAX_PORTS; i++)
		close_pair(&e, i);
	free(e.m.host);
	return 0;
}
