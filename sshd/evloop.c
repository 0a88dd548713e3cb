/* The front-end's event loop: one poll() over our fds and every
 * connection's socket (front.h). */
#include "sshd/front.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/log.h"

/* One poll() of our own, over the fds ev_add() watches and every
 * connection's socket; each connection has an ssh_event of its own, run
 * when its socket is ready. libssh polls a session's event again from
 * inside its own calls (a write that cannot go out at once waits in
 * ssh_blocking_flush), and with every session and fd in one event those
 * nested polls ran other sessions' callbacks and ours; a client's EOF seen
 * in one makes libssh close that socket and free its poll handle, under
 * the poll loops around it (ssh_poll_ctx_dopoll keeps a count of handles
 * and the slot it is in): SIGSEGV there, or a connection never polled
 * again, with 200 logins at once. Now a nested poll sees one session's
 * socket only, and only ev_poll() calls ev_add()'s callbacks, so
 * ev_del() takes effect at once. */

static struct {
	ssh_event_callback cb;	/* NULL: not watched */
	void *ud;
	short events;
	unsigned gen;		/* bumped by ev_add(): a poll of the fd's
				 * previous owner is not passed on */
} ev_w[EV_MAX_FD];
static int ev_top;		/* above the highest fd watched */

int ev_add(int fd, short events, ssh_event_callback cb, void *ud)
{
	if (fd < 0 || fd >= EV_MAX_FD)
		return -EMFILE;
	ev_w[fd].cb = cb;
	ev_w[fd].ud = ud;
	ev_w[fd].events = events;
	ev_w[fd].gen++;
	if (fd >= ev_top)
		ev_top = fd + 1;
	return 0;
}

void ev_del(int fd)
{
	if (fd >= 0 && fd < EV_MAX_FD)
		ev_w[fd].cb = NULL;
}

void ev_rewatch(int fd, short events, ssh_event_callback cb, void *ud)
{
	if (fd >= 0 && fd < EV_MAX_FD && ev_w[fd].cb == cb &&
	    ev_w[fd].events != events)
		ev_add(fd, events, cb, ud);
}

void ev_poll(int timeout_ms)
{
	static struct pollfd *pfd;
	static struct { int who; unsigned gen; } *slot;	/* who: fd, or
							 * -1 - conn */
	static size_t cap;
	size_t n = 0, want = (size_t)ev_top + MAX_CONNS;

	chan_in_retry();
	if (want > cap) {
		struct pollfd *p = realloc(pfd, want * sizeof(*pfd));
		void *q = p ? realloc(slot, want * sizeof(*slot)) : NULL;

		if (p)
			pfd = p;
		if (!q) {
			log_warnx("event loop: out of memory");
			usleep(100000);
			return;
		}
		slot = q;
		cap = want;
	}
	for (int fd = 0; fd < ev_top; fd++) {
		if (!ev_w[fd].cb)
			continue;
		pfd[n] = (struct pollfd){ .fd = fd, .events = ev_w[fd].events };
		slot[n].who = fd;
		slot[n++].gen = ev_w[fd].gen;
	}
	for (int i = 0; i < MAX_CONNS; i++) {
		struct conn *k = S.conns[i];
		socket_t fd;

		if (!k || (fd = ssh_get_fd(k->s)) == SSH_INVALID_SOCKET)
			continue;
		/* Not read while its auth request waits for the keys
		 * monitor, or while its channels are full: what it sends
		 * meanwhile waits in the kernel; its going is seen. */
		pfd[n] = (struct pollfd){ .fd = fd, .events =
			k->auth_msg || k->dead || chan_input_stopped(k) ?
			POLLRDHUP : POLLIN };
		if (ssh_get_status(k->s) & SSH_WRITE_PENDING)
			pfd[n].events |= POLLOUT;
		slot[n++].who = -1 - i;
	}
	if (poll(pfd, n, timeout_ms) <= 0)
		return;
	for (size_t j = 0; j < n; j++) {
		int who = slot[j].who;

		if (!pfd[j].revents)
			continue;
		if (who >= 0) {
			if (ev_w[who].cb && ev_w[who].gen == slot[j].gen)
				ev_w[who].cb(who, pfd[j].revents,
					     ev_w[who].ud);
		} else if (S.conns[-1 - who]) {
			/* connections are freed by tick() only */
			ssh_event_dopoll(S.conns[-1 - who]->ev, 0);
			auth_messages(S.conns[-1 - who]);
		}
	}
	/* Dropped now, not at the next tick(): a client refused for good
	 * holds no session state (and no memory) a moment longer. */
	for (int i = 0; i < MAX_CONNS; i++)
		if (S.conns[i] && (S.conns[i]->dead ||
				   (ssh_get_status(S.conns[i]->s) &
				    (SSH_CLOSED | SSH_CLOSED_ERROR)))) {
			log_info("connection %d closed", i);
			conn_free(i);
		}
}
