/* What a VM's worker tells us over its control socket, by message
 * type: a hostile or stuck worker costs its VM, not the front-end. */
#include "sshd/front.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <unistd.h>

#include "common/log.h"

static struct chan *chan_by_id(struct uvm *u, uint32_t id)
{
	for (int i = 0; i < MAX_CONNS; i++) {
		struct conn *k = S.conns[i];

		if (!k || k->vm != u)
			continue;
		for (int j = 0; j < MAX_CHANNELS; j++)
			if (k->chans[j] && k->chans[j]->id == id)
				return k->chans[j];
	}
	return NULL;
}

static void open_chan_cb(struct chan *c, void *arg)
{
	(void)arg;
	chan_try_open(c);
}

/* What a worker tells us, by type: the table and worker_recv() have
 * checked it is allowed now (a session we asked for, a first STARTED). */
static void on_started(struct uvm *u, const struct worker_msg *m)
{
	struct timespec now;

	(void)m;
	if (u->w.term_fd >= 0) {
		close(u->w.term_fd);
		u->w.term_fd = -1;
	}
	u->state = U_RUNNING;
	/* A resumed VM's copy on disk went into its worker's directory
	 * (MGR_UNSTASH), which goes with the worker: nothing to drop. */
	clock_gettime(CLOCK_MONOTONIC, &now);
	log_info("vm %s: %s in %.1f ms", u->user,
		 u->resume ? "resumed" : "cloned",
		 (double)(now.tv_sec - u->t_req.tv_sec) * 1e3 +
			 (double)(now.tv_nsec - u->t_req.tv_nsec) / 1e6);
	vms_for_each_chan(u, open_chan_cb, NULL);
}

static void on_acked(struct uvm *u, const struct worker_msg *m)
{
	log_info("vm %s: identity applied in %.1f ms", u->user,
		 (double)m->a / 1e6);
}

static void on_session_opened(struct uvm *u, const struct worker_msg *m)
{
	struct chan *c = chan_by_id(u, (uint32_t)m->a);

	if (!c || (int64_t)m->b < 0) {
		for (int i = 0; i < 3; i++)
			if (u->w.sess_fd[i] >= 0)
				close(u->w.sess_fd[i]);
		u->w.sess_fd[0] = u->w.sess_fd[1] = u->w.sess_fd[2] = -1;
		if (c)
			chan_send_and_close(c, "clone: could not start "
					    "your session\r\n", 1);
		return;
	}
	c->io_fd = u->w.sess_fd[0];
	c->err_fd = u->w.sess_fd[1];
	c->in_fd = u->w.sess_fd[2];
	u->w.sess_fd[0] = u->w.sess_fd[1] = u->w.sess_fd[2] = -1;
	c->opened = true;
	fcntl(c->io_fd, F_SETFL, O_NONBLOCK);
	ev_add(c->io_fd, POLLIN, chan_fd_event, c);
	if (c->err_fd >= 0) {
		fcntl(c->err_fd, F_SETFL, O_NONBLOCK);
		ev_add(c->err_fd, POLLIN, chan_fd_event, c);
	}
	if (c->in_fd < 0)
		c->in_fd = dup(c->io_fd);	/* a pty: one fd */
	else
		fcntl(c->in_fd, F_SETFL, O_NONBLOCK);
	chan_flush_input(c);
}

static void on_session_exit(struct uvm *u, const struct worker_msg *m)
{
	struct chan *c = chan_by_id(u, (uint32_t)m->a);

	if (c) {
		c->exited = true;
		c->status = (uint16_t)m->b;
		chan_maybe_finish(c);
	}
}

/* The worker wrote its VM into its own directory and exits. Once it is
 * reaped, the manager keeps the files in suspended/<user> (MGR_STASH,
 * before MGR_END); the VM is U_SUSPENDED only then (on_stashed()), so
 * that a resume never asks for files still on their way, and a stop
 * waits for them. */
static void on_suspended(struct uvm *u, const struct worker_msg *m)
{
	int r;

	log_info("vm %s: suspended to disk (%llu pages)", u->user,
		 (unsigned long long)m->a);
	u->disk_kib = (long)(m->a > (1ULL << 40) ? 1ULL << 42 : m->a * 4);
	r = manager_stash(&vms_mg, u->w.pid, u->user);
	vms_let_go(&u->w);	/* it exits by itself */
	if (r < 0)
		vms_lost(u, "could not be suspended");
}

static void on_exited(struct uvm *u, const struct worker_msg *m)
{
	char why[200];

	snprintf(why, sizeof(why), "ended (%s)",
		 m->text[0] ? m->text : "no reason given");
	vms_lost(u, why);
}

static void on_stats(struct uvm *u, const struct worker_msg *m)
{
	u->priv_kib = (long)m->a;
}

static void on_failed(struct uvm *u, const struct worker_msg *m)
{
	log_warnx("vm %s: %s", u->user, m->text);
	if (u->state == U_SUSPENDING)
		u->state = U_RUNNING;
	else if (u->state == U_STARTING)
		vms_lost(u, "could not be started");
}

static void (*const from_worker[CTL_TYPE_MAX])(struct uvm *,
					       const struct worker_msg *) = {
	[WORKER_STARTED] = on_started,
	[WORKER_ACKED] = on_acked,
	[WORKER_SESSION_OPENED] = on_session_opened,
	[WORKER_SESSION_EXIT] = on_session_exit,
	[WORKER_SUSPENDED] = on_suspended,
	[WORKER_EXITED] = on_exited,
	[WORKER_STATS] = on_stats,
	[WORKER_FAILED] = on_failed,
	/* READY went to the manager; PAUSED and RESUMED answer requests
	 * we never make: worker_recv() refuses them. */
};

int vms_worker_event(socket_t fd, int revents, void *userdata)
{
	struct uvm *u = userdata;
	struct worker_msg m;
	int r;

	(void)fd;
	if (revents & POLLOUT)
		worker_flush(&u->w);	/* an error: the read says it */
	vms_watch(u);
	if (!(revents & (POLLIN | POLLHUP | POLLERR)))
		return 0;
	r = worker_recv(&u->w, &m, 0);
	if (r == -ETIMEDOUT)
		return 0;
	/* Hostile or stuck: the VM goes, we stay. One line, and not one
	 * per message of a flood. */
	if (r == -EPROTO || r == -ENOBUFS) {
		if (ctl_log_ok() && r == -EPROTO)
			log_warnx("vm %s: dropped: its worker sent %s: %s",
				  u->user, ctl_type_name(u->w.why_type),
				  ctl_strerror(u->w.why));
		else if (ctl_log_ok())
			log_warnx("vm %s: dropped: its worker does not read "
				  "its control socket", u->user);
		vms_end(u, "was stopped: its VM process misbehaved");
		return 0;
	}
	if (r < 0) {
		if (u->state == U_SUSPENDING) {
			/* the worker exits after suspending */
			vms_let_go(&u->w);
			u->state = U_SUSPENDED;
			return 0;
		}
		vms_lost(u, "stopped unexpectedly");
		return 0;
	}
	if (m.type < CTL_TYPE_MAX && from_worker[m.type])
		from_worker[m.type](u, &m);
	return 0;
}
