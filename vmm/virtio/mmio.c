#include "vmm/virtio/mmio.h"

#include <errno.h>
#include <string.h>

#include "common/log.h"

/* Guest mistakes are logged, but a hostile guest must not flood the log:
 * through a time-window limiter (common/log.h), the VM's when it gives
 * one. */
static void guest_error(struct virtio_mmio *t, const char *what, uint64_t off)
{
	log_limit_warnx(t->glog, "%s: guest error: %s (register 0x%03llx)",
			t->ops->name, what, (unsigned long long)off);
}

void virtio_mmio_set_log_limit(struct virtio_mmio *t, struct log_limit *l)
{
	t->glog = l ? l : &t->own_log;
}

int virtio_mmio_init(struct virtio_mmio *t, const struct virtio_dev_ops *ops,
		     void *dev, const struct gmem *mem, uint64_t base,
		     uint32_t gsi, virtio_irq_fn irq, void *irq_opaque)
{
	if (ops->nqueues > VIRTIO_MMIO_MAX_QUEUES ||
	    ops->queue_max > VIRTQ_MAX_SIZE)
		return -EINVAL;
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	t->ops = ops;
	t->dev = dev;
	t->mem = mem;
	t->base = base;
	t->gsi = gsi;
	t->irq = irq;
	t->irq_opaque = irq_opaque;
	log_limit_init(&t->own_log, ops->name);
	t->glog = &t->own_log;
	for (unsigned i = 0; i < ops->nqueues; i++)
		t->vq[i].max_size = ops->queue_max;
	return 0;
}

void virtio_mmio_destroy(struct virtio_mmio *t)
{
	if (t->ops) {
		pthread_mutex_destroy(&t->lock);
		log_limit_flush(&t->own_log);
		log_limit_destroy(&t->own_log);
	}
	t->ops = NULL;
}

static uint64_t dev_features(const struct virtio_mmio *t)
{
	return t->ops->features | (1ULL << VIRTIO_F_VERSION_1);
}

static void reset(struct virtio_mmio *t)
{
	t->status = 0;
	t->dev_feat_sel = t->drv_feat_sel = 0;
	t->drv_features = 0;
	t->queue_sel = 0;
	t->int_status = 0;
	for (unsigned i = 0; i < t->ops->nqueues; i++)
		virtq_reset(&t->vq[i]);
	if (t->ops->reset)
		t->ops->reset(t);
}

static struct virtq *cur_queue(struct virtio_mmio *t)
{
	return t->queue_sel < t->ops->nqueues ? &t->vq[t->queue_sel] : NULL;
}

static uint32_t reg_read(struct virtio_mmio *t, uint64_t off)
{
	struct virtq *q = cur_queue(t);

	switch (off) {
	case VIRTIO_MMIO_MAGIC: return VIRTIO_MMIO_MAGIC_VALUE;
	case VIRTIO_MMIO_VERSION: return 2;
	case VIRTIO_MMIO_DEVICE_ID: return t->ops->device_id;
	case VIRTIO_MMIO_VENDOR_ID: return VIRTIO_MMIO_VENDOR;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		if (t->dev_feat_sel > 1)
			return 0;
		return (uint32_t)(dev_features(t) >> (32 * t->dev_feat_sel));
	case VIRTIO_MMIO_QUEUE_NUM_MAX: return q ? q->max_size : 0;
	case VIRTIO_MMIO_QUEUE_READY: return q ? q->ready : 0;
	case VIRTIO_MMIO_INTERRUPT_STATUS: return t->int_status;
	case VIRTIO_MMIO_STATUS: return t->status;
	case VIRTIO_MMIO_CONFIG_GENERATION: return t->config_gen;
	default:
		guest_error(t, "read of unknown register", off);
		return 0;
	}
}

static void set_status(struct virtio_mmio *t, uint32_t val)
{
	if (val == 0) {
		reset(t);
		return;
	}
	/* The driver may only add bits (VIRTIO 1.x 2.1.2). */
	if ((t->status & ~val) & ~(uint32_t)VIRTIO_STATUS_NEEDS_RESET) {
		guest_error(t, "status bit cleared without reset",
			    VIRTIO_MMIO_STATUS);
		return;
	}
	val |= t->status & VIRTIO_STATUS_NEEDS_RESET;
	if ((val & VIRTIO_STATUS_FEATURES_OK) &&
	    !(t->status & VIRTIO_STATUS_FEATURES_OK)) {
		/* Refuse features we did not offer, and legacy drivers: the
		 * driver reads FEATURES_OK back and gives up. */
		if ((t->drv_features & ~dev_features(t)) ||
		    !(t->drv_features >> VIRTIO_F_VERSION_1 & 1))
			val &= ~(uint32_t)VIRTIO_STATUS_FEATURES_OK;
	}
	if ((val & VIRTIO_STATUS_DRIVER_OK) &&
	    !(val & VIRTIO_STATUS_FEATURES_OK)) {
		guest_error(t, "DRIVER_OK without FEATURES_OK",
			    VIRTIO_MMIO_STATUS);
		val &= ~(uint32_t)VIRTIO_STATUS_DRIVER_OK;
	}
	uint32_t was = t->status;
	t->status = val;
	if ((val & VIRTIO_STATUS_DRIVER_OK) && !(was & VIRTIO_STATUS_DRIVER_OK) &&
	    t->ops->driver_ok)
		t->ops->driver_ok(t);
}

/* Queue registers may change only while the queue is not ready. */
static struct virtq *settable_queue(struct virtio_mmio *t, uint64_t off)
{
	struct virtq *q = cur_queue(t);

	if (!q) {
		guest_error(t, "queue register with no queue selected", off);
		return NULL;
	}
	if (q->ready) {
		guest_error(t, "queue register written while ready", off);
		return NULL;
	}
	return q;
}

static void set_half(uint64_t *v, bool high, uint32_t val)
{
	if (high)
		*v = (*v & 0xffffffffULL) | (uint64_t)val << 32;
	else
		*v = (*v & ~0xffffffffULL) | val;
}

static void reg_write(struct virtio_mmio *t, uint64_t off, uint32_t val)
{
	struct virtq *q;
	enum virtq_err e;

	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		t->dev_feat_sel = val;
		return;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		t->drv_feat_sel = val;
		return;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		if (t->status & VIRTIO_STATUS_FEATURES_OK ||
		    t->drv_feat_sel > 1) {
			guest_error(t, "driver features write refused", off);
			return;
		}
		set_half(&t->drv_features, t->drv_feat_sel, val);
		return;
	case VIRTIO_MMIO_QUEUE_SEL:
		t->queue_sel = val;
		return;
	case VIRTIO_MMIO_QUEUE_NUM:
		if ((q = settable_queue(t, off)))
			q->size = val > UINT16_MAX ? 0 : (uint16_t)val;
		return;
	case VIRTIO_MMIO_QUEUE_READY:
		q = cur_queue(t);
		if (!q) {
			guest_error(t, "QueueReady with no queue selected", off);
			return;
		}
		if (val == 0) {
			q->ready = false;
			return;
		}
		if (q->ready)
			return;
		e = virtq_enable(q, t->mem);
		if (e != VIRTQ_OK)
			guest_error(t, virtq_strerror(e), off);
		return;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		if (val >= t->ops->nqueues || !t->vq[val].ready) {
			guest_error(t, "notify of a queue not ready", off);
			return;
		}
		if (!virtio_mmio_live(t))
			return;
		if (t->ops->queue_notify)
			t->ops->queue_notify(t, val);
		return;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		t->int_status &= ~val;
		return;
	case VIRTIO_MMIO_STATUS:
		set_status(t, val);
		return;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		if ((q = settable_queue(t, off)))
			set_half(&q->desc_gpa, off & 4, val);
		return;
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
		if ((q = settable_queue(t, off)))
			set_half(&q->avail_gpa, off & 4, val);
		return;
	case VIRTIO_MMIO_QUEUE_USED_LOW:
	case VIRTIO_MMIO_QUEUE_USED_HIGH:
		if ((q = settable_queue(t, off)))
			set_half(&q->used_gpa, off & 4, val);
		return;
	default:
		guest_error(t, "write of unknown or read-only register", off);
		return;
	}
}

void virtio_mmio_read(struct virtio_mmio *t, uint64_t off, void *data,
		      uint32_t len)
{
	uint32_t v;

	memset(data, 0, len);
	pthread_mutex_lock(&t->lock);
	if (off >= VIRTIO_MMIO_CONFIG) {
		uint64_t coff = off - VIRTIO_MMIO_CONFIG;

		if (len <= 8 && coff + len <= t->ops->config_size &&
		    t->ops->config_read)
			t->ops->config_read(t, (uint32_t)coff, data, len);
		else
			guest_error(t, "config read out of range", off);
	} else if (len != 4 || (off & 3)) {
		guest_error(t, "register read not 32 bits aligned", off);
	} else {
		v = reg_read(t, off);
		memcpy(data, &v, 4);
	}
	pthread_mutex_unlock(&t->lock);
}

void virtio_mmio_write(struct virtio_mmio *t, uint64_t off, const void *data,
		       uint32_t len)
{
	uint32_t v;

	pthread_mutex_lock(&t->lock);
	if (off >= VIRTIO_MMIO_CONFIG) {
		/* No device here has writable config. */
		guest_error(t, "config write ignored", off);
	} else if (len != 4 || (off & 3)) {
		guest_error(t, "register write not 32 bits aligned", off);
	} else {
		memcpy(&v, data, 4);
		reg_write(t, off, v);
	}
	pthread_mutex_unlock(&t->lock);
}

void virtio_mmio_interrupt(struct virtio_mmio *t, uint32_t cause)
{
	t->int_status |= cause;
	if (t->irq)
		t->irq(t->irq_opaque, t->gsi);
}

void virtio_mmio_needs_reset(struct virtio_mmio *t)
{
	if (t->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	t->status |= VIRTIO_STATUS_NEEDS_RESET;
	if (t->status & VIRTIO_STATUS_DRIVER_OK)
		virtio_mmio_interrupt(t, VIRTIO_INT_CONFIG);
}

static void bus_io(void *opaque, uint64_t off, void *data, uint32_t len,
		   bool write)
{
	if (write)
		virtio_mmio_write(opaque, off, data, len);
	else
		virtio_mmio_read(opaque, off, data, len);
}

int virtio_mmio_register(struct virtio_mmio *t, struct bus *mmio)
{
	return bus_register(mmio, t->base, VIRTIO_MMIO_SIZE, bus_io, t);
}

int virtio_mmio_save(const struct virtio_mmio *t, struct virtio_mmio_state *st,
		     struct virtq_state *vq, unsigned nq)
{
	if (nq != t->ops->nqueues)
		return -EINVAL;
	*st = (struct virtio_mmio_state){
		.status = t->status, .dev_feat_sel = t->dev_feat_sel,
		.drv_feat_sel = t->drv_feat_sel, .queue_sel = t->queue_sel,
		.int_status = t->int_status, .config_gen = t->config_gen,
		.drv_features = t->drv_features,
	};
	for (unsigned i = 0; i < nq; i++)
		virtq_save(&t->vq[i], t->ops->queue_held ?
			   t->ops->queue_held(t, i) : 0,
			   &vq[i]);
	return 0;
}

int virtio_mmio_restore(struct virtio_mmio *t,
			const struct virtio_mmio_state *st,
			const struct virtq_state *vq, unsigned nq)
{
	int r = 0;

	if (nq != t->ops->nqueues)
		return -EINVAL;
	pthread_mutex_lock(&t->lock);
	t->status = st->status;
	t->dev_feat_sel = st->dev_feat_sel;
	t->drv_feat_sel = st->drv_feat_sel;
	t->queue_sel = st->queue_sel;
	t->int_status = st->int_status;
	t->config_gen = st->config_gen;
	t->drv_features = st->drv_features;
	for (unsigned i = 0; i < nq && r == 0; i++)
		r = virtq_restore(&t->vq[i], &vq[i], t->mem);
	pthread_mutex_unlock(&t->lock);
	return r;
}
