/* virtio-console with VIRTIO_CONSOLE_F_MULTIPORT (VIRTIO 1.x, 5.3).
 * Port 0 is a console (the terminal, hvc0 in the guest); further ports are
 * named (the agent's control port, more terminals). Each port's host side
 * is a pair of file descriptors; the device moves bytes between them and
 * the guest. All queue work happens in vcon_process(), on the VMM's I/O
 * thread; the vCPU only registers kicks. */
#ifndef VMM_VIRTIO_CONSOLE_H
#define VMM_VIRTIO_CONSOLE_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/log.h"
#include "vmm/virtio/mmio.h"

#define VCON_MAX_PORTS 16
#define VCON_NAME_MAX 32
#define VCON_CTRL_QUEUE 64

#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_CONSOLE_F_SIZE 0
#define VIRTIO_CONSOLE_F_MULTIPORT 1

/* Control message events (VIRTIO 1.x 5.3.6.2) */
enum {
	VIRTIO_CONSOLE_DEVICE_READY = 0,
	VIRTIO_CONSOLE_DEVICE_ADD = 1,
	VIRTIO_CONSOLE_DEVICE_REMOVE = 2,
	VIRTIO_CONSOLE_PORT_READY = 3,
	VIRTIO_CONSOLE_CONSOLE_PORT = 4,
	VIRTIO_CONSOLE_RESIZE = 5,
	VIRTIO_CONSOLE_PORT_OPEN = 6,
	VIRTIO_CONSOLE_PORT_NAME = 7,
};

struct virtio_console_control {
	uint32_t id;
	uint16_t event;
	uint16_t value;
};

struct vcon_ctrl_msg {
	struct virtio_console_control hdr;
	uint16_t len;		/* payload bytes */
	uint8_t payload[VCON_NAME_MAX];
};

struct vcon_port {
	bool used;
	bool console;		/* announced as a console port (hvcN) */
	char name[VCON_NAME_MAX];	/* "" for none */
	int in_fd, out_fd;	/* host side: to the guest, from the guest */
	bool host_open;		/* in_fd not at EOF */
	bool guest_ready;	/* driver sent PORT_READY */
	bool guest_open;	/* guest has the port open */
	bool eof_pending;	/* guest closed it: EOF to the host once drained */
	uint16_t rows, cols;

	/* guest -> host: a chain being written out */
	bool tx_busy;
	struct virtq_chain tx;
	uint32_t tx_off;
	bool tx_blocked;	/* out_fd full: wait for POLLOUT */
	/* host -> guest: a receive buffer taken but not yet filled */
	bool rx_busy;
	struct virtq_chain rx;
	bool rx_starved;	/* no receive buffers: wait for a kick */
	uint64_t bytes_in, bytes_out;
};

struct vcon {
	struct virtio_mmio t;
	int kick_fd;		/* eventfd: the vCPU saw a queue notify */
	bool device_ready;	/* driver sent DEVICE_READY */
	uint16_t cfg_cols, cfg_rows;
	struct vcon_port port[VCON_MAX_PORTS];
	struct vcon_ctrl_msg ctrl[VCON_CTRL_QUEUE];
	unsigned ctrl_head, ctrl_len;
	uint32_t pending_irq;	/* used buffers pushed since the last interrupt */
	struct log_limit own_log;	/* glog unless the owner gives one */
	struct log_limit *glog;	/* every line the guest can cause */
};

/* Set up the device (ports added with vcon_add_port before the guest
 * driver starts). kick_fd is created here. 0 or -errno. */
int vcon_init(struct vcon *c, const struct gmem *mem, uint64_t base,
	      uint32_t gsi, virtio_irq_fn irq, void *irq_opaque);
void vcon_destroy(struct vcon *c);
/* Lines the guest can cause (its errors, its driver's complaints) go
 * through l, the VM's one limiter, which must outlive the device. Without
 * this call the device uses a limiter of its own. Before the VM runs. */
void vcon_set_log_limit(struct vcon *c, struct log_limit *l);

/* Add port nr with the given host fds (-1: none). The device does not own
 * the fds. Once the guest driver is up, the port is hot-added (the guest
 * sees DEVICE_ADD). 0 or -EINVAL/-EBUSY (already added). */
int vcon_add_port(struct vcon *c, unsigned nr, const char *name, bool console,
		  int in_fd, int out_fd);
/* Give an added port new host fds (a new session on a port used before):
 * the guest sees the host side open again. 0 or -EINVAL. */
int vcon_attach_port(struct vcon *c, unsigned nr, int in_fd, int out_fd);
/* Take a port's host fds away (the caller closes them): the guest sees the
 * host side closed; guest output still queued is dropped. */
void vcon_detach_port(struct vcon *c, unsigned nr);
/* Whether port nr exists; *guest_open whether the guest has it open. */
bool vcon_port_state(struct vcon *c, unsigned nr, bool *guest_open);

/* New terminal size for a console port; reaches the guest as a resize. */
void vcon_resize(struct vcon *c, unsigned nr, uint16_t rows, uint16_t cols);

/* I/O thread: move what can move without blocking. */
void vcon_process(struct vcon *c);
/* I/O thread: fds to wait on before the next vcon_process(). Returns the
 * number of entries written (at most max). */
int vcon_pollfds(struct vcon *c, struct pollfd *pfd, int max);

/* The device's own part of a snapshot (its transport and queues save
 * theirs: virtio_mmio_save). */
struct vcon_state {
	struct {
		uint8_t used, console, guest_ready, guest_open;
		uint16_t rows, cols;
		char name[VCON_NAME_MAX];
	} port[VCON_MAX_PORTS];
	uint16_t cfg_rows, cfg_cols;
	uint8_t device_ready, pad[3];
};

/* Snapshot support. The caller holds the device still with vcon_lock()
 * between vcon_save() (then virtio_mmio_save() of its transport) and
 * copying guest memory, so that no device write lands in between.
 * vcon_save returns 0, or -EBUSY when the device is mid-transfer (try
 * again after letting it run). */
void vcon_lock(struct vcon *c);
void vcon_unlock(struct vcon *c);
int vcon_save(const struct vcon *c, struct vcon_state *st);
/* The caller waited long enough for vcon_save() to stop saying -EBUSY (a
 * guest can keep the device busy for ever). Lock held, vCPU paused.
 * Settles what can be settled without the restored guest seeing a device
 * other than the one it had (see the comment in console.c): 0 when
 * vcon_save() will now succeed, with what was given up said in why; or
 * -EBUSY when control messages a live driver never took remain, and why
 * says so: no saved state would be true, the caller ends the VM. */
int vcon_settle(struct vcon *c, char *why, size_t len);
/* Before the VM runs, with the same ports added (new host fds), after
 * virtio_mmio_restore() of its transport. 0, or -EINVAL if the state
 * does not fit this device. */
int vcon_restore(struct vcon *c, const struct vcon_state *st);

#endif
