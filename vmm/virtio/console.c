#include "vmm/virtio/console.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/log.h"

#define CTRL_RX 2	/* device -> driver control messages */
#define CTRL_TX 3	/* driver -> device control messages */
#define NQUEUES (2 * (VCON_MAX_PORTS + 1))
/* Bytes one port may move per vcon_process() call, so that one busy port
 * cannot starve the others or the vCPU waiting on the lock. */
#define PORT_BUDGET (256 * 1024)
/* What a chain costs of that budget whatever its length: popping and
 * pushing it is the work, so zero-length chains (which a guest can
 * publish from its vCPU as fast as we take them) must count too, or one
 * call never ends. At most PORT_BUDGET / PORT_CHAIN_COST chains a call. */
#define PORT_CHAIN_COST 4096
/* Control messages taken from the guest per call, for the same reason. */
#define CTRL_BUDGET 64

static unsigned rxq(unsigned port)
{
	return port == 0 ? 0 : 2 + 2 * port;
}

static unsigned txq(unsigned port)
{
	return port == 0 ? 1 : 3 + 2 * port;
}

static void guest_error(struct vcon *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void guest_error(struct vcon *c, const char *fmt, ...)
{
	char msg[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_limit_warnx(c->glog, "virtio-console: guest error: %s", msg);
	virtio_mmio_needs_reset(&c->t);
}

static void queue_error(struct vcon *c, unsigned q, int err)
{
	log_limit_warnx(c->glog, "virtio-console: guest error on queue %u: "
			"%s; device stopped until reset", q,
			virtq_strerror((enum virtq_err)-err));
	virtio_mmio_needs_reset(&c->t);
}

static void send_ctrl(struct vcon *c, uint32_t id, uint16_t event,
		      uint16_t value, const void *payload, uint16_t len)
{
	struct vcon_ctrl_msg *m;
	if (c->ctrl_len == VCON_CTRL_QUEUE) {
		/* The guest takes no control messages: its doing. */
		log_limit_warnx(c->glog, "virtio-console: control queue full, "
				"event %u for port %u dropped", event, id);
		return;
	}
	m = &c->ctrl[(c->ctrl_head + c->ctrl_len++) % VCON_CTRL_QUEUE];
	m->hdr = (struct virtio_console_control){ id, event, value };
	m->len = len > VCON_NAME_MAX ? VCON_NAME_MAX : len;
	if (m->len)
		memcpy(m->payload, payload, m->len);
}

static void send_resize(struct vcon *c, unsigned nr)
{
	const struct vcon_port *p = &c->port[nr];
	/* Linux reads cols then rows (drivers/char/virtio_console.c),
	 * whatever the order in the spec's prose. */
	uint16_t size[2] = { p->cols, p->rows };

	if (p->rows && p->cols)
		send_ctrl(c, nr, VIRTIO_CONSOLE_RESIZE, 0, size, sizeof(size));
}

static void flush_ctrl(struct vcon *c)
{
	struct virtq *q = &c->t.vq[CTRL_RX];
	struct virtq_chain ch;

	while (c->ctrl_len && q->ready) {
		struct vcon_ctrl_msg *m = &c->ctrl[c->ctrl_head];
		uint32_t need = sizeof(m->hdr) + m->len;
		int r = virtq_pop(q, c->t.mem, &ch);

		if (r == 0)
			return;
		if (r < 0) {
			queue_error(c, CTRL_RX, r);
			return;
		}
		if (ch.write_len < need) {
			virtq_push(q, c->t.mem, &ch, 0);
			guest_error(c, "control buffer of %u bytes too small",
				    ch.write_len);
			return;
		}
		virtq_chain_write(&ch, 0, &m->hdr, sizeof(m->hdr));
		virtq_chain_write(&ch, sizeof(m->hdr), m->payload, m->len);
		virtq_push(q, c->t.mem, &ch, need);
		c->pending_irq = 1;
		c->ctrl_head = (c->ctrl_head + 1) % VCON_CTRL_QUEUE;
		c->ctrl_len--;
	}
}

static void port_ready(struct vcon *c, unsigned nr)
{
	struct vcon_port *p = &c->port[nr];

	p->guest_ready = true;
	if (p->console) {
		send_ctrl(c, nr, VIRTIO_CONSOLE_CONSOLE_PORT, 1, NULL, 0);
		send_resize(c, nr);
	}
	if (p->name[0])
		send_ctrl(c, nr, VIRTIO_CONSOLE_PORT_NAME, 0, p->name,
			  (uint16_t)strlen(p->name));
	if (p->host_open)
		send_ctrl(c, nr, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL, 0);
}

static void handle_ctrl(struct vcon *c, const struct virtio_console_control *m)
{
	struct vcon_port *p = NULL;

	if (m->event != VIRTIO_CONSOLE_DEVICE_READY) {
		if (m->id >= VCON_MAX_PORTS || !c->port[m->id].used) {
			guest_error(c, "control message for unknown port %u",
				    m->id);
			return;
		}
		p = &c->port[m->id];
	}
	switch (m->event) {
	case VIRTIO_CONSOLE_DEVICE_READY:
		if (m->value != 1) {
			log_limit_warnx(c->glog, "virtio-console: guest driver "
					"failed to start");
			return;
		}
		if (c->device_ready)
			return;
		c->device_ready = true;
		for (unsigned i = 0; i < VCON_MAX_PORTS; i++)
			if (c->port[i].used)
				send_ctrl(c, i, VIRTIO_CONSOLE_DEVICE_ADD, 1,
					  NULL, 0);
		return;
	case VIRTIO_CONSOLE_PORT_READY:
		if (m->value != 1) {
			log_limit_warnx(c->glog, "virtio-console: guest failed "
					"to add port %u", m->id);
			return;
		}
		if (!p->guest_ready)
			port_ready(c, m->id);
		return;
	case VIRTIO_CONSOLE_PORT_OPEN:
		p->guest_open = m->value != 0;
		/* What the guest wrote before closing is already queued
		 * (same vCPU, earlier): port_tx sends EOF after it. */
		p->eof_pending = !p->guest_open;
		return;
	default:
		guest_error(c, "unexpected control event %u", m->event);
		return;
	}
}

static void kick(struct vcon *c);

static void drain_ctrl(struct vcon *c)
{
	struct virtq *q = &c->t.vq[CTRL_TX];
	struct virtq_chain ch;
	int r;

	for (unsigned n = 0; n < CTRL_BUDGET; n++) {
		struct virtio_console_control m;

		if (!q->ready || (r = virtq_pop(q, c->t.mem, &ch)) == 0)
			return;
		if (r < 0) {
			queue_error(c, CTRL_TX, r);
			return;
		}
		if (virtq_chain_read(&ch, 0, &m, sizeof(m)) < sizeof(m))
			guest_error(c, "short control message (%u bytes)",
				    ch.read_len);
		else
			handle_ctrl(c, &m);
		virtq_push(q, c->t.mem, &ch, 0);
		c->pending_irq = 1;
		if (!virtio_mmio_live(&c->t))
			return;
	}
	kick(c);	/* budget spent: the rest on the next call */
}

/* iovec over a chain's segments of one kind, starting off bytes in. */
static int chain_iov(const struct virtq_chain *ch, bool write, uint32_t off,
		     struct iovec *iov)
{
	unsigned from = write ? ch->nread : 0;
	unsigned to = write ? ch->nsegs : ch->nread;
	int n = 0;

	for (unsigned i = from; i < to; i++) {
		const struct virtq_seg *s = &ch->seg[i];

		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		iov[n].iov_base = s->host + off;
		iov[n].iov_len = s->len - off;
		off = 0;
		n++;
	}
	return n;
}

static uint32_t spend(uint32_t budget, uint32_t n)
{
	return n >= budget ? 0 : budget - n;
}

/* Wake the I/O thread: the vCPU saw a notify, or a port stopped on its
 * budget with work left that no fd will announce. */
static void kick(struct vcon *c)
{
	uint64_t one = 1;

	/* Every guest notify lands here: a failing eventfd must not turn
	 * them into as many log lines. */
	if (write(c->kick_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_limit_warn(c->glog, "virtio-console: kick");
}

/* Guest to host: write the port's transmit buffers to out_fd. */
static void port_tx(struct vcon *c, unsigned nr)
{
	struct vcon_port *p = &c->port[nr];
	struct virtq *q = &c->t.vq[txq(nr)];
	struct iovec iov[VIRTQ_MAX_SEGS];
	uint32_t budget = PORT_BUDGET;

	p->tx_blocked = false;
	while (q->ready && budget) {
		if (!p->tx_busy) {
			int r = virtq_pop(q, c->t.mem, &p->tx);

			if (r == 0) {
				if (p->eof_pending && p->out_fd >= 0)
					shutdown(p->out_fd, SHUT_WR);
				p->eof_pending = false;
				return;
			}
			if (r < 0) {
				queue_error(c, txq(nr), r);
				return;
			}
			p->tx_busy = true;
			p->tx_off = 0;
			budget = spend(budget, PORT_CHAIN_COST);
		}
		while (p->tx_off < p->tx.read_len) {
			ssize_t n;
			int cnt;

			if (p->out_fd < 0) {	/* nobody listening: drop */
				p->tx_off = p->tx.read_len;
				break;
			}
			cnt = chain_iov(&p->tx, false, p->tx_off, iov);
			n = writev(p->out_fd, iov, cnt);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN) {
				p->tx_blocked = true;
				return;
			}
			if (n < 0) {
				/* EPIPE: nobody listens any more; drop. */
				if (errno != EPIPE)
					log_warn("virtio-console: port %u "
						 "output", nr);
				p->out_fd = -1;
				continue;
			}
			p->tx_off += (uint32_t)n;
			p->bytes_out += (uint64_t)n;
			budget = spend(budget, (uint32_t)n);
		}
		virtq_push(q, c->t.mem, &p->tx, 0);
		p->tx_busy = false;
		c->pending_irq = 1;
	}
	if (!budget)
		kick(c);
}

/* Host to guest: read in_fd straight into the guest's receive buffers. */
static void port_rx(struct vcon *c, unsigned nr)
{
	struct vcon_port *p = &c->port[nr];
	struct virtq *q = &c->t.vq[rxq(nr)];
	struct iovec iov[VIRTQ_MAX_SEGS];
	uint32_t budget = PORT_BUDGET;

	p->rx_starved = false;
	/* Linux drops what reaches a closed generic port: wait for the
	 * guest to open it (console ports take data at any time). */
	if (!p->guest_ready || !p->host_open || p->in_fd < 0 ||
	    (!p->console && !p->guest_open))
		return;
	while (q->ready && budget) {
		ssize_t n;

		if (!p->rx_busy) {
			int r = virtq_pop(q, c->t.mem, &p->rx);

			if (r == 0) {
				p->rx_starved = true;
				return;
			}
			if (r < 0) {
				queue_error(c, rxq(nr), r);
				return;
			}
			p->rx_busy = true;
			budget = spend(budget, PORT_CHAIN_COST);
			if (p->rx.write_len == 0) {
				guest_error(c, "receive buffer on port %u has "
					    "no writable space", nr);
				return;
			}
		}
		n = readv(p->in_fd, iov, chain_iov(&p->rx, true, 0, iov));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			if (n < 0 && errno != EIO && errno != ECONNRESET)
				log_warn("virtio-console: port %u input", nr);
			p->host_open = false;
			if (!p->console)
				send_ctrl(c, nr, VIRTIO_CONSOLE_PORT_OPEN, 0,
					  NULL, 0);
			return;
		}
		virtq_push(q, c->t.mem, &p->rx, (uint32_t)n);
		p->rx_busy = false;
		p->bytes_in += (uint64_t)n;
		c->pending_irq = 1;
		budget = spend(budget, (uint32_t)n);
	}
	if (!budget)
		kick(c);
}

void vcon_process(struct vcon *c)
{
	uint64_t v;

	if (read(c->kick_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_limit_warn(c->glog, "virtio-console: kick");
	pthread_mutex_lock(&c->t.lock);
	if (virtio_mmio_live(&c->t)) {
		drain_ctrl(c);
		for (unsigned i = 0; i < VCON_MAX_PORTS; i++) {
			if (!c->port[i].used || !virtio_mmio_live(&c->t))
				continue;
			port_tx(c, i);
			if (virtio_mmio_live(&c->t))
				port_rx(c, i);
		}
		if (virtio_mmio_live(&c->t))
			flush_ctrl(c);
		if (c->pending_irq)
			virtio_mmio_interrupt(&c->t, VIRTIO_INT_VRING);
	}
	c->pending_irq = 0;
	pthread_mutex_unlock(&c->t.lock);
}

int vcon_pollfds(struct vcon *c, struct pollfd *pfd, int max)
{
	int n = 0;

	pthread_mutex_lock(&c->t.lock);
	for (unsigned i = 0; i < VCON_MAX_PORTS && n < max; i++) {
		struct vcon_port *p = &c->port[i];

		if (!p->used || !virtio_mmio_live(&c->t))
			continue;
		if (p->tx_blocked && p->out_fd >= 0)
			pfd[n++] = (struct pollfd){ .fd = p->out_fd,
						    .events = POLLOUT };
		/* The same conditions as port_rx(): an fd we would not read
		 * must not be polled, or a hung-up peer spins this thread. */
		if (n < max && p->rx_busy && p->host_open && p->in_fd >= 0 &&
		    (p->console || p->guest_open))
			pfd[n++] = (struct pollfd){ .fd = p->in_fd,
						    .events = POLLIN };
	}
	pthread_mutex_unlock(&c->t.lock);
	return n;
}

static void vcon_config_read(struct virtio_mmio *t, uint32_t off, void *data,
			     uint32_t len)
{
	struct vcon *c = t->dev;
	struct {
		uint16_t cols, rows;
		uint32_t max_nr_ports, emerg_wr;
	} __attribute__((packed)) cfg = { c->cfg_cols, c->cfg_rows,
					  VCON_MAX_PORTS, 0 };

	memcpy(data, (uint8_t *)&cfg + off, len);
}

static void vcon_notify(struct virtio_mmio *t, unsigned q)
{
	(void)q;
	kick(t->dev);
}

static void vcon_reset(struct virtio_mmio *t)
{
	struct vcon *c = t->dev;

	c->device_ready = false;
	c->ctrl_head = c->ctrl_len = 0;
	c->pending_irq = 0;
	for (unsigned i = 0; i < VCON_MAX_PORTS; i++) {
		struct vcon_port *p = &c->port[i];

		p->guest_ready = p->guest_open = false;
		p->tx_busy = p->tx_blocked = p->rx_busy = false;
		p->rx_starved = false;
	}
}

/* A receive buffer we took but did not fill goes back on a save: the
 * driver has not reused it, it is the last one popped. */
static uint16_t vcon_queue_held(const struct virtio_mmio *t, unsigned q)
{
	const struct vcon *c = t->dev;

	for (unsigned i = 0; i < VCON_MAX_PORTS; i++)
		if (rxq(i) == q)
			return c->port[i].rx_busy ? 1 : 0;
	return 0;
}

static const struct virtio_dev_ops vcon_ops = {
	.name = "virtio-console",
	.device_id = VIRTIO_ID_CONSOLE,
	.features = 1ULL << VIRTIO_CONSOLE_F_SIZE |
		    1ULL << VIRTIO_CONSOLE_F_MULTIPORT,
	.nqueues = NQUEUES,
	.queue_max = 256,
	.config_size = 12,
	.config_read = vcon_config_read,
	.queue_notify = vcon_notify,
	.reset = vcon_reset,
	.queue_held = vcon_queue_held,
};

int vcon_init(struct vcon *c, const struct gmem *mem, uint64_t base,
	      uint32_t gsi, virtio_irq_fn irq, void *irq_opaque)
{
	int r;

	memset(c, 0, sizeof(*c));
	for (unsigned i = 0; i < VCON_MAX_PORTS; i++)
		c->port[i].in_fd = c->port[i].out_fd = -1;
	c->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->kick_fd < 0)
		return -errno;
	log_limit_init(&c->own_log, "guest");
	c->glog = &c->own_log;
	r = virtio_mmio_init(&c->t, &vcon_ops, c, mem, base, gsi, irq,
			     irq_opaque);
	if (r < 0) {
		close(c->kick_fd);
		c->kick_fd = -1;
		log_limit_destroy(&c->own_log);
		return r;
	}
	/* The transport's guest errors and the device's: one budget. */
	virtio_mmio_set_log_limit(&c->t, c->glog);
	return 0;
}

void vcon_destroy(struct vcon *c)
{
	/* kick_fd says whether vcon_init() succeeded (and not yet undone). */
	if (c->kick_fd >= 0) {
		close(c->kick_fd);
		log_limit_flush(&c->own_log);
		log_limit_destroy(&c->own_log);
	}
	c->kick_fd = -1;
	c->glog = NULL;
	virtio_mmio_destroy(&c->t);
}

void vcon_set_log_limit(struct vcon *c, struct log_limit *l)
{
	c->glog = l ? l : &c->own_log;
	virtio_mmio_set_log_limit(&c->t, c->glog);
}

int vcon_add_port(struct vcon *c, unsigned nr, const char *name, bool console,
		  int in_fd, int out_fd)
{
	struct vcon_port *p;

	if (nr >= VCON_MAX_PORTS || (name && strlen(name) >= VCON_NAME_MAX))
		return -EINVAL;
	pthread_mutex_lock(&c->t.lock);
	p = &c->port[nr];
	if (p->used) {
		pthread_mutex_unlock(&c->t.lock);
		return -EBUSY;
	}
	p->used = true;
	p->console = console;
	snprintf(p->name, sizeof(p->name), "%s", name ? name : "");
	p->in_fd = in_fd;
	p->out_fd = out_fd;
	p->host_open = in_fd >= 0;
	if (c->device_ready)
		send_ctrl(c, nr, VIRTIO_CONSOLE_DEVICE_ADD, 1, NULL, 0);
	pthread_mutex_unlock(&c->t.lock);
	kick(c);
	return 0;
}

int vcon_attach_port(struct vcon *c, unsigned nr, int in_fd, int out_fd)
{
	struct vcon_port *p;

	if (nr >= VCON_MAX_PORTS)
		return -EINVAL;
	pthread_mutex_lock(&c->t.lock);
	p = &c->port[nr];
	if (!p->used) {
		pthread_mutex_unlock(&c->t.lock);
		return -EINVAL;
	}
	p->in_fd = in_fd;
	p->out_fd = out_fd;
	p->host_open = in_fd >= 0;
	p->tx_blocked = false;
	if (p->guest_ready && p->host_open)
		send_ctrl(c, nr, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL, 0);
	pthread_mutex_unlock(&c->t.lock);
	kick(c);
	return 0;
}

void vcon_detach_port(struct vcon *c, unsigned nr)
{
	struct vcon_port *p;

	if (nr >= VCON_MAX_PORTS)
		return;
	pthread_mutex_lock(&c->t.lock);
	p = &c->port[nr];
	p->in_fd = p->out_fd = -1;
	if (p->tx_busy && virtio_mmio_live(&c->t)) {
		virtq_push(&c->t.vq[txq(nr)], c->t.mem, &p->tx, 0);
		c->pending_irq = 1;
	}
	p->tx_busy = p->tx_blocked = false;
	if (p->used && p->guest_ready && p->host_open)
		send_ctrl(c, nr, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL, 0);
	p->host_open = false;
	p->eof_pending = false;
	pthread_mutex_unlock(&c->t.lock);
	kick(c);
}

bool vcon_port_state(struct vcon *c, unsigned nr, bool *guest_open)
{
	bool used;

	*guest_open = false;
	if (nr >= VCON_MAX_PORTS)
		return false;
	pthread_mutex_lock(&c->t.lock);
	used = c->port[nr].used;
	*guest_open = c->port[nr].guest_open;
	pthread_mutex_unlock(&c->t.lock);
	return used;
}

/* Lock held. */
static void push_size(struct vcon *c, unsigned nr)
{
	struct vcon_port *p = &c->port[nr];

	if (p->used && p->console && p->guest_ready &&
	    virtio_mmio_live(&c->t)) {
		send_resize(c, nr);
		flush_ctrl(c);
		if (c->pending_irq)
			virtio_mmio_interrupt(&c->t, VIRTIO_INT_VRING);
		c->pending_irq = 0;
	}
}

void vcon_resize(struct vcon *c, unsigned nr, uint16_t rows, uint16_t cols)
{
	struct vcon_port *p;

	if (nr >= VCON_MAX_PORTS)
		return;
	pthread_mutex_lock(&c->t.lock);
	p = &c->port[nr];
	p->rows = rows;
	p->cols = cols;
	if (nr == 0) {
		c->cfg_rows = rows;
		c->cfg_cols = cols;
	}
	push_size(c, nr);
	pthread_mutex_unlock(&c->t.lock);
}

/* ---- snapshot ---------------------------------------------------------- */

void vcon_lock(struct vcon *c)
{
	pthread_mutex_lock(&c->t.lock);
}

void vcon_unlock(struct vcon *c)
{
	pthread_mutex_unlock(&c->t.lock);
}

int vcon_save(const struct vcon *c, struct vcon_state *st)
{
	if (c->ctrl_len)
		return -EBUSY;
	memset(st, 0, sizeof(*st));
	for (unsigned i = 0; i < VCON_MAX_PORTS; i++) {
		const struct vcon_port *p = &c->port[i];

		if (p->tx_busy)
			return -EBUSY;	/* guest output on its way out */
		st->port[i].used = p->used;
		st->port[i].console = p->console;
		st->port[i].guest_ready = p->guest_ready;
		st->port[i].guest_open = p->guest_open;
		st->port[i].rows = p->rows;
		st->port[i].cols = p->cols;
		memcpy(st->port[i].name, p->name, sizeof(p->name));
	}
	st->cfg_rows = c->cfg_rows;
	st->cfg_cols = c->cfg_cols;
	st->device_ready = c->device_ready;
	return 0;
}

/* Why each kind of busy is settled the way it is:
 * - Guest output held because the host end does not read (tx_busy): the
 *   chain is completed as if written, its bytes dropped. The guest sees
 *   what it sees when a port's reader goes away (vcon_detach_port), and
 *   the bytes would be lost anyway: the worker exits after a suspend and
 *   a resumed VM's ports get new host ends.
 * - Control messages on a device that needs a reset, or whose driver has
 *   not started: dropped. The driver has to reset the device before it
 *   can take any, and a reset drops them (vcon_reset()) and announces
 *   every port again.
 * - Control messages a live driver leaves undelivered (no receive
 *   buffers on the control queue): nothing. They carry port events
 *   (DEVICE_ADD, PORT_NAME, PORT_OPEN) that the saved port state already
 *   counts as said; dropping them restores a guest that never learns of
 *   a port or its name, so no session could open on it, and marking the
 *   device as needing a reset restores a console Linux cannot recover
 *   (its driver has no reset handling): in both the user could never
 *   reach the VM again. A driver that takes no control messages for the
 *   whole wait has no working console anyway; the caller ends the VM. */
int vcon_settle(struct vcon *c, char *why, size_t len)
{
	bool live = virtio_mmio_live(&c->t);
	uint64_t dropped = 0;
	unsigned held = 0, ctrl = c->ctrl_len;

	if (ctrl && live) {
		snprintf(why, len, "the guest took none of %u console control "
			 "messages", ctrl);
		return -EBUSY;
	}
	c->ctrl_head = c->ctrl_len = 0;
	for (unsigned i = 0; i < VCON_MAX_PORTS; i++) {
		struct vcon_port *p = &c->port[i];

		if (!p->tx_busy)
			continue;
		held++;
		dropped += p->tx.read_len - p->tx_off;
		/* A device needing reset touches no ring: the reset frees
		 * the chain. */
		if (live) {
			virtq_push(&c->t.vq[txq(i)], c->t.mem, &p->tx, 0);
			c->pending_irq = 1;
		}
		p->tx_busy = p->tx_blocked = false;
	}
	if (c->pending_irq && live)
		virtio_mmio_interrupt(&c->t, VIRTIO_INT_VRING);
	c->pending_irq = 0;
	snprintf(why, len, "%llu bytes of guest output nobody read (%u "
		 "buffers) and %u control messages for a %s driver dropped",
		 (unsigned long long)dropped, held, ctrl,
		 live ? "live" : "stopped");
	return 0;
}

int vcon_restore(struct vcon *c, const struct vcon_state *st)
{
	struct virtio_mmio *t = &c->t;
	int r = 0;

	pthread_mutex_lock(&t->lock);
	for (unsigned i = 0; i < VCON_MAX_PORTS && r == 0; i++) {
		struct vcon_port *p = &c->port[i];

		/* Session ports of a suspended VM come back without host
		 * fds: they get new ones when a session next needs them. */
		if (!p->used && st->port[i].used && i >= 2) {
			p->used = true;
			p->console = st->port[i].console;
			memcpy(p->name, st->port[i].name, sizeof(p->name));
			p->name[sizeof(p->name) - 1] = 0;
			p->in_fd = p->out_fd = -1;
			p->host_open = false;
		}
		/* The restoring VMM adds the same ports, with new host fds. */
		if (p->used != st->port[i].used ||
		    (p->used && (p->console != st->port[i].console ||
				 strncmp(p->name, st->port[i].name,
					 VCON_NAME_MAX) != 0))) {
			r = -EINVAL;
			break;
		}
		p->guest_ready = st->port[i].guest_ready;
		p->guest_open = st->port[i].guest_open;
		if (!p->rows) {
			p->rows = st->port[i].rows;
			p->cols = st->port[i].cols;
		}
	}
	c->cfg_rows = st->cfg_rows;
	c->cfg_cols = st->cfg_cols;
	c->device_ready = st->device_ready;
	pthread_mutex_unlock(&t->lock);
	if (r == 0)
		kick(c);	/* receive buffers are waiting in the rings */
	return r;
}
