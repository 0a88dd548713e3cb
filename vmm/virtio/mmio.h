/* virtio-mmio transport, version 2 (VIRTIO 1.x, 4.2.2): the register file
 * and the device status state machine. Knows only registers: queue logic is
 * in virtq, device behaviour behind an ops table. */
#ifndef VMM_VIRTIO_MMIO_H
#define VMM_VIRTIO_MMIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/log.h"
#include "vmm/bus.h"
#include "vmm/virtio/virtq.h"

#define VIRTIO_MMIO_SIZE 0x1000
#define VIRTIO_MMIO_MAX_QUEUES 64

#define VIRTIO_F_VERSION_1 32

#define VIRTIO_STATUS_ACK 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

#define VIRTIO_INT_VRING 1
#define VIRTIO_INT_CONFIG 2

/* Register offsets */
#define VIRTIO_MMIO_MAGIC 0x000
#define VIRTIO_MMIO_VERSION 0x004
#define VIRTIO_MMIO_DEVICE_ID 0x008
#define VIRTIO_MMIO_VENDOR_ID 0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES 0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES 0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL 0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX 0x034
#define VIRTIO_MMIO_QUEUE_NUM 0x038
#define VIRTIO_MMIO_QUEUE_READY 0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY 0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS 0x060
#define VIRTIO_MMIO_INTERRUPT_ACK 0x064
#define VIRTIO_MMIO_STATUS 0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW 0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH 0x084
#define VIRTIO_MMIO_QUEUE_AVAIL_LOW 0x090
#define VIRTIO_MMIO_QUEUE_AVAIL_HIGH 0x094
#define VIRTIO_MMIO_QUEUE_USED_LOW 0x0a0
#define VIRTIO_MMIO_QUEUE_USED_HIGH 0x0a4
#define VIRTIO_MMIO_CONFIG_GENERATION 0x0fc
#define VIRTIO_MMIO_CONFIG 0x100

#define VIRTIO_MMIO_MAGIC_VALUE 0x74726976 /* "virt" */
#define VIRTIO_MMIO_VENDOR 0x454e4f43	   /* "CONE" */

struct virtio_mmio;

/* A device behind the transport. Every callback runs with the transport
 * lock held. */
struct virtio_dev_ops {
	const char *name;
	uint32_t device_id;
	uint64_t features;	/* device-specific; VERSION_1 is added */
	unsigned nqueues;
	uint16_t queue_max;
	uint32_t config_size;
	/* Device config space: copy len bytes at off into data. */
	void (*config_read)(struct virtio_mmio *t, uint32_t off, void *data,
			    uint32_t len);
	/* The driver notified queue q (already checked to be ready). */
	void (*queue_notify)(struct virtio_mmio *t, unsigned q);
	/* Status became DRIVER_OK. */
	void (*driver_ok)(struct virtio_mmio *t);
	/* The driver reset the device (status 0) or the VMM did. */
	void (*reset)(struct virtio_mmio *t);
	/* For a save (may be NULL: none): how many chains the device holds
	 * on queue q that it took but will not complete. */
	uint16_t (*queue_held)(const struct virtio_mmio *t, unsigned q);
};

/* Raises an edge on the device's interrupt line. */
typedef void (*virtio_irq_fn)(void *opaque, uint32_t gsi);

struct virtio_mmio {
	pthread_mutex_t lock;
	const struct virtio_dev_ops *ops;
	void *dev;		/* the device's own state */
	const struct gmem *mem;
	uint64_t base;		/* guest physical address of the registers */
	uint32_t gsi;
	virtio_irq_fn irq;
	void *irq_opaque;
	struct log_limit own_log;	/* glog unless the owner gives one */
	struct log_limit *glog;		/* every line the guest can cause */

	uint32_t status;
	uint32_t dev_feat_sel, drv_feat_sel;
	uint64_t drv_features;
	uint32_t queue_sel;
	uint32_t int_status;
	uint32_t config_gen;
	struct virtq vq[VIRTIO_MMIO_MAX_QUEUES];
};

/* Set up the transport for a device. Returns 0 or -EINVAL (too many
 * queues). The transport does not own dev or mem. */
int virtio_mmio_init(struct virtio_mmio *t, const struct virtio_dev_ops *ops,
		     void *dev, const struct gmem *mem, uint64_t base,
		     uint32_t gsi, virtio_irq_fn irq, void *irq_opaque);
void virtio_mmio_destroy(struct virtio_mmio *t);

/* Log the guest's mistakes through l (shared with the rest of its VM) in
 * place of the transport's own limiter; NULL goes back to that one. */
void virtio_mmio_set_log_limit(struct virtio_mmio *t, struct log_limit *l);

/* Register access from a vCPU at offset off (relative to base). Reads of
 * unknown or misaligned registers return 0; writes to them are ignored
 * (logged, rate-limited). Takes the lock. */
void virtio_mmio_read(struct virtio_mmio *t, uint64_t off, void *data,
		      uint32_t len);
void virtio_mmio_write(struct virtio_mmio *t, uint64_t off, const void *data,
		       uint32_t len);

/* Answer the transport's register window [base, base + VIRTIO_MMIO_SIZE)
 * on an MMIO bus. 0 or bus_register()'s -errno. */
int virtio_mmio_register(struct virtio_mmio *t, struct bus *mmio);

/* The transport's part of a snapshot: its registers. */
struct virtio_mmio_state {
	uint32_t status, dev_feat_sel, drv_feat_sel, queue_sel, int_status;
	uint32_t config_gen;
	uint64_t drv_features;
};

/* Lock held (the device still): the registers into st and the first nq
 * queues into vq[] (virtq_save, with what the device holds given back).
 * 0, or -EINVAL if the device has fewer queues. */
int virtio_mmio_save(const struct virtio_mmio *t, struct virtio_mmio_state *st,
		     struct virtq_state *vq, unsigned nq);
/* Before the VM runs: the registers and nq queues back. 0, or -EINVAL if
 * they do not fit this device or guest memory. Takes the lock. */
int virtio_mmio_restore(struct virtio_mmio *t,
			const struct virtio_mmio_state *st,
			const struct virtq_state *vq, unsigned nq);

/* Device side, lock held: set interrupt cause bits and raise the line. */
void virtio_mmio_interrupt(struct virtio_mmio *t, uint32_t cause);
/* Device side, lock held: the device saw hostile input; it stops until the
 * driver resets it. */
void virtio_mmio_needs_reset(struct virtio_mmio *t);
/* The negotiated feature bits, once FEATURES_OK. */
static inline bool virtio_mmio_has(const struct virtio_mmio *t, unsigned bit)
{
	return (t->status & VIRTIO_STATUS_FEATURES_OK) &&
	       (t->drv_features >> bit & 1);
}
static inline bool virtio_mmio_live(const struct virtio_mmio *t)
{
	return (t->status & VIRTIO_STATUS_DRIVER_OK) &&
	       !(t->status & VIRTIO_STATUS_NEEDS_RESET);
}

#endif
