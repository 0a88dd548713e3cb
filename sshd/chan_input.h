/* Client input on its way to a guest: how much of it may wait in the
 * front-end, and where. No libssh here, only the arithmetic of its channel
 * window (libssh 0.10, which chan_io.c checks it is built with) and the
 * buffers and budgets, so that it can be tested on plain memory.
 *
 * A session channel's input waits in two places: libssh's own channel
 * buffer (what the data callback did not take: "held") and, once pulled
 * out of it with ssh_channel_read(), our buffer (what the guest's stdin did
 * not take yet). libssh grants the client window by itself:
 *   - 32000 bytes when the channel opens;
 *   - after each data packet, if the window left plus what it still holds
 *     is below WIN_LIMIT, the window is topped up to WIN_BASE;
 *   - after each ssh_channel_read(), if the window left is below
 *     WIN_LIMIT, likewise (whatever it still holds).
 * So what it holds is what throttles the client: left there, the window
 * stays shut. A client that keeps to the window can never have more than
 * WIN_BASE + WIN_LIMIT bytes held (the window plus the held bytes never
 * exceed it, as long as a pull leaves less than WIN_LIMIT held, which
 * sshd_in_pull_prepare() sees to); more proves it ignored the window. */
#ifndef SSHD_CHAN_INPUT_H
#define SSHD_CHAN_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SSHD_IN_WIN_BASE 1280000u	/* libssh channels.c WINDOWBASE */
#define SSHD_IN_WIN_LIMIT 640000u	/* WINDOWLIMIT */
#define SSHD_IN_HELD_MAX (SSHD_IN_WIN_BASE + SSHD_IN_WIN_LIMIT)

/* Our buffers, allocated when a pull needs them, freed when empty:
 *   - per channel 1.25 MiB: the largest pull that progress may need
 *     (held less WIN_LIMIT - 1, under WIN_BASE), so a channel alone always
 *     gets on once its guest drains; pulling less would leave libssh free
 *     to grant a new window over what it still holds, without bound.
 *   - per connection 4 MiB: three channels at their largest at once; a
 *     fourth waits for one of them (all the same user's).
 *   - in all 256 MiB: about 200 channels at their largest. Beyond that a
 *     channel that needs to pull waits until another's buffer drains; its
 *     input stays in libssh meanwhile, bounded by the window.
 * libssh's own share is bounded by the window: HELD_MAX per channel, 8
 * channels per connection (XXX: not under the total budget). */
#define SSHD_IN_CHUNK (64u << 10)	/* allocation granularity */
#define SSHD_IN_CHAN_MAX (20 * SSHD_IN_CHUNK)
#define SSHD_IN_CONN_MAX ((size_t)4 << 20)
#define SSHD_IN_TOTAL_MAX ((size_t)256 << 20)

struct sshd_in {
	uint8_t *buf;		/* buf[off, off + len): for the guest */
	size_t cap, off, len;
	size_t held;		/* in libssh's channel buffer, not taken */
};

/* libssh's data callback offers len bytes: everything it holds for the
 * channel. -EPROTO if a client that keeps to the window could not have
 * sent that much; 0 otherwise. */
int sshd_in_offered(size_t len);

/* The callback took taken of the len offered (the rest stays held). */
void sshd_in_taken(struct sshd_in *in, size_t len, size_t taken);

/* How many held bytes to pull out of libssh now, into buf + off + len; the
 * buffer is grown for them, charged to *conn_used and *total_used. 0: not
 * now (nothing held, the buffer not yet empty, or the budgets cannot give
 * the least pull that keeps libssh's window bounded: try again when
 * some buffer is freed). -ENOMEM if the allocation fails. */
ssize_t sshd_in_pull_prepare(struct sshd_in *in, size_t *conn_used,
			     size_t *total_used);

/* n bytes were pulled into the buffer. */
void sshd_in_pulled(struct sshd_in *in, size_t n);

/* The guest took n bytes from the front of the buffer. */
void sshd_in_consumed(struct sshd_in *in, size_t n);

/* Frees the buffer if it is empty and nothing is held (an idle channel
 * costs nothing), or at once with all set (the channel is going); gives
 * its size back to the budgets. Accepts a zeroed struct. */
void sshd_in_trim(struct sshd_in *in, size_t *conn_used, size_t *total_used,
		  bool all);

#endif
