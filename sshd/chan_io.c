/* Client input to the guest's stdin: libssh's window, our buffers and
 * the budgets of chan_input.h, without blocking. */
#include "sshd/front.h"

#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include "common/log.h"

/* sshd/chan_input.h models libssh 0.10's channel window; another libssh
 * may grant it otherwise, and a client keeping to it could then be taken
 * for one that ignores it. */
#if LIBSSH_VERSION_INT < SSH_VERSION_INT(0, 10, 0) || \
	LIBSSH_VERSION_INT >= SSH_VERSION_INT(0, 11, 0)
#error "libssh 0.10 expected: check the window model in sshd/chan_input.h"
#endif

/* Client input, all channels together (chan_input.h: what is bounded
 * where, and why); the channels whose pull waits for the budgets, and
 * whether a buffer was freed since they last tried. */
static size_t in_used_total;
static unsigned in_waiters;
static bool in_released;

static int in_fd_event(socket_t fd, int revents, void *userdata);

static void in_set_waiting(struct chan *c, bool waiting)
{
	if (waiting == c->in_waiting)
		return;
	c->in_waiting = waiting;
	if (waiting)
		in_waiters++;
	else
		in_waiters--;
}

static void in_trim(struct chan *c, bool all)
{
	size_t before = in_used_total;

	sshd_in_trim(&c->in, &c->conn->in_used, &in_used_total, all);
	if (in_used_total < before)
		in_released = true;
}

void chan_in_free(struct chan *c)
{
	in_set_waiting(c, false);
	in_trim(c, true);
}

/* in_fd is polled for POLLOUT while it has something to take: our buffer,
 * or what libssh holds (pulled once in_fd can take more). */
static void in_poll_update(struct chan *c)
{
	bool want = c->in_fd >= 0 &&
		    (c->in.len || (c->in.held && !c->in_waiting));

	if (want && !c->in_polled) {
		ev_add(c->in_fd, POLLOUT, in_fd_event, c);
		c->in_polled = true;
	} else if (!want && c->in_polled) {
		ev_del(c->in_fd);
		c->in_polled = false;
	}
}

/* Stdin is done with (the client's EOF once all is written, or the guest
 * side gone): its port's host side closes, and input from now on is
 * dropped. */
static void in_close(struct chan *c)
{
	if (c->in_polled)
		ev_del(c->in_fd);
	c->in_polled = false;
	if (c->in_fd >= 0)
		close(c->in_fd);
	c->in_fd = -1;
	c->in_closed = true;
	sshd_in_consumed(&c->in, c->in.len);
	in_set_waiting(c, false);
	in_trim(c, true);
}

/* What the guest's stdin takes of p[0, n) now, without blocking. */
static size_t in_write(struct chan *c, const uint8_t *p, size_t n)
{
	size_t done = 0;

	while (done < n && c->in_fd >= 0) {
		ssize_t w = write(c->in_fd, p + done, n - done);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			break;
		if (w <= 0) {		/* the guest side is gone */
			in_close(c);
			break;
		}
		done += (size_t)w;
	}
	return done;
}

/* Input held for a channel whose stdin is gone: read out of libssh and
 * thrown away, all of it at once (or libssh might grant a new window over
 * what it still holds), so that the client is not stalled. */
static void in_drop_held(struct chan *c)
{
	uint8_t junk[16384];

	while (c->in.held) {
		int n = ssh_channel_read_nonblocking(
			c->ch, junk, (uint32_t)(c->in.held < sizeof(junk) ?
						c->in.held : sizeof(junk)), 0);

		if (n <= 0)
			break;
		c->in.held -= (size_t)n < c->in.held ? (size_t)n : c->in.held;
	}
	c->in.held = 0;
}

/* Client input to the guest's stdin (or terminal) without blocking: what
 * in_fd does not take waits in our buffer, what is not pulled into it
 * waits in libssh, whose window then stays shut. It pulls from libssh
 * (ssh_channel_read), so it is never called from inside libssh's
 * callbacks. At the client's EOF, once all is written, stdin's port
 * closes. */
void chan_flush_input(struct chan *c)
{
	struct conn *k = c->conn;

	while (c->in_fd >= 0) {
		ssize_t r;
		int n;

		if (c->in.len) {
			size_t w = in_write(c, c->in.buf + c->in.off,
					    c->in.len);

			if (c->in_closed)
				break;
			sshd_in_consumed(&c->in, w);
			if (c->in.len)
				break;		/* in_fd is full */
		}
		r = sshd_in_pull_prepare(&c->in, &k->in_used, &in_used_total);
		/* 0 with input held: the budgets are spent; -ENOMEM alike.
		 * Tried again once some buffer is freed. */
		in_set_waiting(c, r <= 0 && c->in.held);
		if (r <= 0)
			break;
		n = ssh_channel_read_nonblocking(
			c->ch, c->in.buf + c->in.off + c->in.len, (uint32_t)r,
			0);
		if (n <= 0) {
			log_warnx("session %u: libssh holds no input, %zu bytes "
				  "expected", c->id, c->in.held);
			c->in.held = 0;
			break;
		}
		sshd_in_pulled(&c->in, (size_t)n);
	}
	if (c->in_closed)
		in_drop_held(c);
	else if (c->in_fd >= 0 && !c->in.len && !c->in.held &&
		 c->client_eof && !c->pty)
		in_close(c);
	in_trim(c, false);
	in_poll_update(c);
}

static int in_fd_event(socket_t fd, int revents, void *userdata)
{
	(void)fd;
	(void)revents;
	chan_flush_input(userdata);
	return 0;
}

/* Channels whose pull waited for the budgets try again once a buffer has
 * been freed (ev_poll: outside libssh's callbacks). */
void chan_in_retry(void)
{
	if (!in_waiters || !in_released)
		return;
	in_released = false;
	for (int i = 0; i < MAX_CONNS && in_waiters; i++) {
		struct conn *k = S.conns[i];

		for (int j = 0; k && j < MAX_CHANNELS; j++)
			if (k->chans[j] && k->chans[j]->in_waiting)
				chan_flush_input(k->chans[j]);
	}
}

/* Whether k's socket should not be read for now: every channel of it has
 * input held that its guest does not take yet, so that what a client
 * sends beyond the window waits in its own TCP buffers, not in ours. Not
 * while a channel waits for the client's window adjust (its guest may be
 * stopped on output, and take no input before), nor before a channel has
 * its stdin (its exec request is still to be read): then reading goes on,
 * and chan_cb_data bounds what a client may send. */
bool chan_input_stopped(const struct conn *k)
{
	int n = 0;

	if (k->dead)
		return true;
	for (int j = 0; j < MAX_CHANNELS; j++) {
		const struct chan *c = k->chans[j];

		if (!c)
			continue;
		if (c->done || c->in_fd < 0 || !c->in.held || c->out_paused)
			return false;
		n++;
	}
	return n > 0;
}

/* libssh offers all it holds for the channel, each time a packet comes. */
int chan_cb_data(ssh_session s, ssh_channel ch, void *data, uint32_t len,
		   int is_stderr, void *userdata)
{
	struct chan *c = userdata;
	size_t taken = 0;

	(void)s;
	(void)ch;
	/* Extended data from a client has no reader (OpenSSH drops it
	 * too). */
	if (is_stderr)
		return (int)len;
	if (!c->conn->dead && sshd_in_offered(len) < 0) {
		log_info("session %u for %s: %u bytes of input beyond the SSH "
			 "window; disconnecting", c->id, c->conn->user, len);
		c->conn->dead = true;
	}
	if (c->done || c->in_closed || c->conn->dead) {
		c->in.held = 0;
		return (int)len;	/* nobody will read it */
	}
	/* Straight to the guest unless older input waits in our buffer;
	 * the rest stays with libssh until in_fd can take more. */
	if (c->in_fd >= 0 && !c->in.len)
		taken = in_write(c, data, len);
	if (c->in_closed) {
		c->in.held = 0;
		return (int)len;
	}
	sshd_in_taken(&c->in, len, taken);
	if (!c->in.held)
		in_set_waiting(c, false);
	in_trim(c, false);
	in_poll_update(c);
	return (int)taken;
}

void chan_cb_eof(ssh_session s, ssh_channel ch, void *userdata)
{
	struct chan *c = userdata;

	(void)s;
	(void)ch;
	c->client_eof = true;
	/* stdin's EOF: its port's host side closes once what came before is
	 * written (by chan_flush_input, if some is still held). A terminal has
	 * none. */
	if (c->in_fd >= 0 && !c->in.len && !c->in.held && !c->pty)
		in_close(c);
}
