/* The parent's side of a worker's control socket: what it sends, and the
 * checks on what it receives. The worker runs a guest, so every message
 * from it is hostile until checked: against the table (ctl_proto.c), and
 * here against what was asked of it. */
#include "vmm/worker.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"

void worker_init(struct worker *w)
{
	memset(w, 0, sizeof(*w));
	w->pid = -1;
	w->ctl = w->term_fd = -1;
	w->sess_fd[0] = w->sess_fd[1] = w->sess_fd[2] = -1;
}

void worker_adopt(struct worker *w, pid_t pid, int ctl)
{
	worker_init(w);
	w->pid = pid;
	w->ctl = ctl;
	w->state = WORKER_S_IDLE;	/* its READY went to the manager */
}

static struct worker_sess *sess_find(struct worker *w, uint64_t id,
				     uint8_t st)
{
	for (int i = 0; i < WORKER_SESSIONS_MAX; i++)
		if (w->sess[i].st == st && w->sess[i].id == id)
			return &w->sess[i];
	return NULL;
}

int worker_send(struct worker *w, const struct worker_msg *m)
{
	const struct ctl_rule *r = ctl_rule_of(&ctl_to_worker, m->type);
	struct worker_sess *s = NULL;
	int ret;

	if (w->ctl < 0)
		return -EPIPE;
	/* Our own table holds for us too: a request the worker would refuse
	 * is not sent. */
	if (!r || !(r->states & CTL_ST(w->state)))
		return -EINVAL;
	if (m->type == WORKER_SESSION_OPEN) {
		if (!m->a || m->a > UINT32_MAX ||
		    sess_find(w, m->a, 1) || sess_find(w, m->a, 2))
			return -EINVAL;
		s = sess_find(w, 0, 0);
		if (!s)
			return -ENOSPC;
	}
	if (w->overflow)
		return -ENOBUFS;
	ret = ctl_send_msg(w->ctl, &w->out, &ctl_to_worker, m, NULL, 0);
	if (ret == -ENOBUFS) {
		w->overflow = true;
		shutdown(w->ctl, SHUT_RDWR);
	}
	if (ret < 0)
		return ret;
	ctl_asked_sent(&w->asked, m->type);
	if (s)
		*s = (struct worker_sess){ .id = (uint32_t)m->a, .st = 1,
					   .pty = m->spawn.pty != 0 };
	if (m->type == WORKER_GO || m->type == WORKER_GO_RESUME)
		w->state = WORKER_S_GOING;
	else if (m->type == WORKER_SUSPEND)
		w->state = WORKER_S_SUSPENDING;
	return 0;
}

bool worker_pending(const struct worker *w)
{
	return ctl_pending(&w->out);
}

int worker_flush(struct worker *w)
{
	return w->ctl < 0 ? -EPIPE : ctl_flush(w->ctl, &w->out);
}

/* What the table cannot know: answers to what we asked, sessions we
 * asked for, the descriptors each carries. Moves w's state on. */
static enum ctl_err check(struct worker *w, const struct ctl_rule *r,
			  const struct worker_msg *m, int nfds)
{
	enum ctl_err e = CTL_OK;
	struct worker_sess *s;
	int64_t rc;

	if (ctl_asked_answer(&w->asked, r, m, &e) < 0)
		return e;
	switch (m->type) {
	case WORKER_READY:
		w->state = WORKER_S_IDLE;
		break;
	case WORKER_STARTED:
		w->state = WORKER_S_RUNNING;
		break;
	case WORKER_ACKED:
		if (w->acked)
			return CTL_E_ONCE;
		w->acked = true;
		break;
	case WORKER_SESSION_OPENED:
		s = sess_find(w, m->a, 1);
		rc = (int64_t)m->b;
		if (!s || !m->a)
			return CTL_E_SESSION;
		if (rc > 0 || rc < -4095)
			return CTL_E_FIELD;
		if (nfds != (rc < 0 ? 0 : s->pty ? 1 : 3))
			return CTL_E_FDS;
		s->st = rc < 0 ? 0 : 2;
		break;
	case WORKER_SESSION_EXIT:
		s = sess_find(w, m->a, 2);
		if (!s || !m->a)
			return CTL_E_SESSION;
		if (m->b > 0xffff)
			return CTL_E_FIELD;
		s->st = 0;
		break;
	case WORKER_SUSPENDED:
	case WORKER_EXITED:
		w->state = WORKER_S_DONE;
		break;
	case WORKER_FAILED:
		/* a failed suspend leaves the VM running; a failed start
		 * leaves nothing */
		if (w->state == WORKER_S_SUSPENDING)
			w->state = WORKER_S_RUNNING;
		else if (w->state != WORKER_S_RUNNING)
			w->state = WORKER_S_DONE;
		break;
	default:
		break;
	}
	return CTL_OK;
}

static int wait_ready(struct worker *w, int timeout_ms)
{
	uint64_t end = clock_mono_ns() + (uint64_t)timeout_ms * 1000000ULL;

	for (;;) {
		struct pollfd p = { .fd = w->ctl, .events = POLLIN };
		int t = timeout_ms, r;

		if (worker_pending(w)) {
			p.events |= POLLOUT;
			if (worker_flush(w) < 0)
				return -EPIPE;
			if (!worker_pending(w))
				p.events &= (short)~POLLOUT;
		}
		if (timeout_ms >= 0) {
			uint64_t now = clock_mono_ns();

			t = now >= end ? 0 : (int)((end - now) / 1000000ULL);
		}
		r = poll(&p, 1, t);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (p.revents & (POLLIN | POLLHUP | POLLERR))
			return 0;
		if (r == 0 || (timeout_ms >= 0 && clock_mono_ns() >= end))
			return -ETIMEDOUT;
	}
}

int worker_recv(struct worker *w, struct worker_msg *m, int timeout_ms)
{
	uint8_t buf[CTL_MSG_MAX];
	const struct ctl_rule *rule = NULL;
	int fds[CTL_FDS_MAX], nfds = 0, r;
	enum ctl_err e = CTL_OK;
	uint32_t type = 0;
	ssize_t n;

	memset(m, 0, sizeof(*m));
	if (w->ctl < 0)
		return -EPIPE;
	if (w->overflow)
		return -ENOBUFS;
	r = wait_ready(w, timeout_ms);
	if (r < 0)
		return r;
	n = ctl_recv(w->ctl, buf, fds, &nfds, &e);
	if (n == -EAGAIN)
		return -ETIMEDOUT;
	if (n == 0 || n == -ECONNRESET)
		return -EPIPE;
	if (n < 0 && n != -EPROTO)
		return (int)n;
	if (n >= 4)
		memcpy(&type, buf, 4);
	if (n > 0 && ctl_decode(&ctl_from_worker, w->state, buf, (size_t)n,
				nfds, m, &rule, &e) == 0)
		e = check(w, rule, m, nfds);
	if (e != CTL_OK) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		w->why = e;
		w->why_type = type;
		return -EPROTO;
	}
	if (m->type == WORKER_STARTED) {
		if (w->term_fd >= 0)
			close(w->term_fd);
		w->term_fd = fds[0];
	} else if (m->type == WORKER_SESSION_OPENED) {
		/* one fd with a pty: the terminal */
		for (int i = 0; i < 3; i++)
			w->sess_fd[i] = i < nfds ? fds[i] : -1;
	}
	return 0;
}

int worker_expect(struct worker *w, uint32_t type, struct worker_msg *m,
		  int timeout_ms)
{
	int r = worker_recv(w, m, timeout_ms);

	if (r == 0 && m->type != type)
		r = -EPROTO;
	return r;
}

void worker_close(struct worker *w)
{
	if (w->ctl >= 0)
		close(w->ctl);
	if (w->term_fd >= 0)
		close(w->term_fd);
	/* sess_fd are the caller's (and a worker record made with only
	 * pid, ctl and term_fd set has zeros there) */
	ctl_queue_clear(&w->out);
	w->ctl = w->term_fd = -1;
	w->state = WORKER_S_DONE;
}

void worker_destroy(struct worker *w, int timeout_ms)
{
	int status;

	worker_close(w);
	if (w->pid <= 0)
		return;
	for (int waited = 0;; waited += 5) {
		pid_t r = waitpid(w->pid, &status, WNOHANG);

		if (r == w->pid || (r < 0 && errno == ECHILD))
			break;
		if (waited >= timeout_ms) {
			kill(w->pid, SIGKILL);
			waitpid(w->pid, &status, 0);
			break;
		}
		usleep(5000);
	}
	w->pid = -1;
}

int worker_spawn_ready(const struct template *t,
		       const struct worker_jail *jail, struct worker *w,
		       uint64_t *restore_ns)
{
	struct worker_msg m = { 0 };
	int r = worker_spawn(t, jail, w);

	if (r == 0)
		r = worker_expect(w, WORKER_READY, &m, 60000);
	if (r < 0) {
		log_warnx("VM worker: %s%s%s", strerror(-r),
			  m.text[0] ? ": " : "", m.text);
		worker_destroy(w, 1000);
		return r;
	}
	if (restore_ns)
		*restore_ns = m.a;
	return 0;
}
