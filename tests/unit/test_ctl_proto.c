/* The control protocol between front-end, manager and workers (issue 9
 * item 4): each receiver is fed every kind of malformed and out-of-order
 * message over a real socketpair and refuses it with its own error, and a
 * sender whose peer never reads never blocks. No KVM. */
#include "vmm/ctl_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "common/clock.h"
#include "vmm/manager.h"
#include "vmm/worker.h"

struct pair {
	struct worker w;	/* the parent's side */
	int peer;		/* the (hostile) worker's end */
};

static int setup(void **state)
{
	struct pair *p = calloc(1, sizeof(*p));
	int sv[2];

	assert_non_null(p);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
				    sv), 0);
	worker_init(&p->w);
	p->w.ctl = sv[0];
	p->w.pid = 1234;	/* never signalled: worker_close() only */
	p->w.state = WORKER_S_SPAWNED;
	p->peer = sv[1];
	*state = p;
	return 0;
}

static int teardown(void **state)
{
	struct pair *p = *state;

	worker_close(&p->w);
	close(p->peer);
	free(p);
	return 0;
}

static int open_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

/* Raw bytes from the worker's end, with nfds fresh descriptors. */
static void raw(struct pair *p, const void *b, size_t len, int nfds)
{
	union {
		char buf[CMSG_SPACE(8 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = (void *)(uintptr_t)b, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int fds[8];

	assert_true(nfds <= 8);
	for (int i = 0; i < nfds; i++)
		fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (nfds) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	assert_int_equal(sendmsg(p->peer, &mh, 0), (ssize_t)len);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
}

/* A well-formed message of type from the worker's end. */
static void msg(struct pair *p, uint32_t type, uint64_t a, uint64_t b,
		const char *text, int nfds)
{
	uint8_t buf[CTL_MSG_MAX];
	struct worker_msg m = { .type = type, .a = a, .b = b };
	ssize_t n;

	if (text)
		snprintf(m.text, sizeof(m.text), "%s", text);
	n = ctl_encode(&ctl_from_worker, &m, buf, sizeof(buf));
	assert_true(n > 0);
	raw(p, buf, (size_t)n, nfds);
}

static void hdr(uint8_t *buf, uint32_t type, uint32_t len)
{
	memcpy(buf, &type, 4);
	memcpy(buf + 4, &len, 4);
}

/* The parent refuses the next message with why, and leaks no fd. */
static void refused(struct pair *p, enum ctl_err why)
{
	struct worker_msg m;

	assert_int_equal(worker_recv(&p->w, &m, 1000), -EPROTO);
	if (p->w.why != why)
		fail_msg("refused as '%s', not '%s'", ctl_strerror(p->w.why),
			 ctl_strerror(why));
}

static void accepted(struct pair *p, uint32_t type)
{
	struct worker_msg m;
	int r = worker_recv(&p->w, &m, 1000);

	if (r < 0)
		fail_msg("%s refused: %s (%s)", ctl_type_name(type),
			 strerror(-r), ctl_strerror(p->w.why));
	assert_int_equal(m.type, type);
}

/* Up to RUNNING, as a real worker would get there. */
static void start(struct pair *p)
{
	struct worker_msg go = { .type = WORKER_GO };

	msg(p, WORKER_READY, 5, 0, NULL, 0);
	accepted(p, WORKER_READY);
	assert_int_equal(p->w.state, WORKER_S_IDLE);
	assert_int_equal(worker_send(&p->w, &go), 0);
	msg(p, WORKER_STARTED, 7, 0, NULL, 1);
	accepted(p, WORKER_STARTED);
	assert_true(p->w.term_fd >= 0);
	assert_int_equal(p->w.state, WORKER_S_RUNNING);
}

static void test_malformed_from_worker(void **state)
{
	struct pair *p = *state;
	uint8_t buf[CTL_MSG_MAX + 64] = { 0 };
	int before = open_fds();

	raw(p, "abc", 3, 0);
	refused(p, CTL_E_SHORT);
	hdr(buf, WORKER_READY, 4);	/* says 4, carries 8 */
	raw(p, buf, CTL_HDR_SIZE + 8, 0);
	refused(p, CTL_E_LEN);
	hdr(buf, 99, 0);
	raw(p, buf, CTL_HDR_SIZE, 0);
	refused(p, CTL_E_TYPE);
	hdr(buf, WORKER_GO, 0);		/* the other way's */
	raw(p, buf, CTL_HDR_SIZE, 0);
	refused(p, CTL_E_TYPE);
	hdr(buf, MGR_WORKER, 16);	/* the manager's */
	raw(p, buf, CTL_HDR_SIZE + 16, 1);
	refused(p, CTL_E_TYPE);
	hdr(buf, WORKER_READY, 4);	/* READY carries a u64 */
	raw(p, buf, CTL_HDR_SIZE + 4, 0);
	refused(p, CTL_E_SIZE);
	hdr(buf, WORKER_READY, 16);
	raw(p, buf, CTL_HDR_SIZE + 16, 0);
	refused(p, CTL_E_SIZE);
	hdr(buf, WORKER_FAILED, CTL_TEXT_MAX + 1);	/* text too long */
	memset(buf + CTL_HDR_SIZE, 'x', CTL_TEXT_MAX + 1);
	raw(p, buf, CTL_HDR_SIZE + CTL_TEXT_MAX + 1, 0);
	refused(p, CTL_E_SIZE);
	hdr(buf, WORKER_FAILED, 3);	/* a NUL inside the text */
	memcpy(buf + CTL_HDR_SIZE, "a\0b", 3);
	raw(p, buf, CTL_HDR_SIZE + 3, 0);
	refused(p, CTL_E_FIELD);
	hdr(buf, WORKER_READY, CTL_MSG_MAX);	/* beyond any message */
	raw(p, buf, CTL_MSG_MAX + 8, 0);
	refused(p, CTL_E_TRUNC);
	msg(p, WORKER_READY, 1, 0, NULL, 1);	/* an fd it takes none of */
	refused(p, CTL_E_FDS);
	msg(p, WORKER_READY, 1, 0, NULL, 5);	/* more than any takes */
	refused(p, CTL_E_TRUNC);
	/* every fd that came with a refused message is closed */
	assert_int_equal(open_fds(), before);
	/* and nothing of it changed the state: a good READY still works */
	assert_int_equal(p->w.state, WORKER_S_SPAWNED);
	msg(p, WORKER_READY, 5, 0, NULL, 0);
	accepted(p, WORKER_READY);
}

static void test_out_of_order_from_worker(void **state)
{
	struct pair *p = *state;

	/* before READY: nothing but READY or FAILED */
	msg(p, WORKER_STARTED, 1, 0, NULL, 1);
	refused(p, CTL_E_STATE);
	msg(p, WORKER_SESSION_OPENED, 1, 0, NULL, 3);
	refused(p, CTL_E_STATE);
	msg(p, WORKER_READY, 5, 0, NULL, 0);
	accepted(p, WORKER_READY);
	msg(p, WORKER_READY, 5, 0, NULL, 0);	/* READY twice */
	refused(p, CTL_E_STATE);
	msg(p, WORKER_STARTED, 1, 0, NULL, 1);	/* not asked to go */
	refused(p, CTL_E_STATE);
	p->w.state = WORKER_S_SPAWNED;
	start(p);
	msg(p, WORKER_STARTED, 1, 0, NULL, 1);	/* STARTED twice */
	refused(p, CTL_E_STATE);
	msg(p, WORKER_STARTED, 1, 0, NULL, 0);	/* and without its fd */
	refused(p, CTL_E_FDS);
	msg(p, WORKER_ACKED, 1, 0, NULL, 0);
	accepted(p, WORKER_ACKED);
	msg(p, WORKER_ACKED, 1, 0, NULL, 0);	/* once only */
	refused(p, CTL_E_ONCE);
	msg(p, WORKER_STATS, 100, 0, NULL, 0);	/* nobody asked */
	refused(p, CTL_E_UNASKED);
	msg(p, WORKER_PAUSED, 1, 0, NULL, 0);
	refused(p, CTL_E_UNASKED);
	msg(p, WORKER_RESUMED, 1, 0, NULL, 0);
	refused(p, CTL_E_UNASKED);
	msg(p, WORKER_SUSPENDED, 1, 0, NULL, 0);	/* not suspending */
	refused(p, CTL_E_STATE);
	msg(p, WORKER_READY, 5, 0, NULL, 0);
	refused(p, CTL_E_STATE);
}

static void test_sessions_from_worker(void **state)
{
	struct pair *p = *state;
	struct worker_msg open = { .type = WORKER_SESSION_OPEN, .a = 42 };
	struct worker_msg pty = { .type = WORKER_SESSION_OPEN, .a = 43,
				  .spawn = { .pty = 1, .rows = 24, .cols = 80 } };

	start(p);
	/* the use-after-free of issue 9: an OPENED nobody asked for */
	msg(p, WORKER_SESSION_OPENED, 42, 0, NULL, 3);
	refused(p, CTL_E_SESSION);
	msg(p, WORKER_SESSION_EXIT, 42, 0, NULL, 0);
	refused(p, CTL_E_SESSION);
	assert_int_equal(worker_send(&p->w, &open), 0);
	assert_int_equal(worker_send(&p->w, &open), -EINVAL);	/* twice */
	assert_int_equal(worker_send(&p->w, &pty), 0);
	msg(p, WORKER_SESSION_OPENED, 42, 0, NULL, 1);	/* 3 fds, not 1 */
	refused(p, CTL_E_FDS);
	msg(p, WORKER_SESSION_OPENED, 43, 0, NULL, 3);	/* a pty: 1 */
	refused(p, CTL_E_FDS);
	msg(p, WORKER_SESSION_OPENED, 42, (uint64_t)-EIO, NULL, 3);
	refused(p, CTL_E_FDS);				/* a failure: none */
	msg(p, WORKER_SESSION_OPENED, 42, 7, NULL, 3);	/* not 0 nor -errno */
	refused(p, CTL_E_FIELD);
	msg(p, WORKER_SESSION_EXIT, 42, 0, NULL, 0);	/* not open yet */
	refused(p, CTL_E_SESSION);
	msg(p, WORKER_SESSION_OPENED, 42, 0, NULL, 3);
	accepted(p, WORKER_SESSION_OPENED);
	for (int i = 0; i < 3; i++) {
		assert_true(p->w.sess_fd[i] >= 0);
		close(p->w.sess_fd[i]);
		p->w.sess_fd[i] = -1;
	}
	msg(p, WORKER_SESSION_OPENED, 42, 0, NULL, 3);	/* opened twice */
	refused(p, CTL_E_SESSION);
	msg(p, WORKER_SESSION_OPENED, 43, (uint64_t)-EIO, NULL, 0);
	accepted(p, WORKER_SESSION_OPENED);		/* failed: gone */
	msg(p, WORKER_SESSION_EXIT, 43, 0, NULL, 0);
	refused(p, CTL_E_SESSION);
	msg(p, WORKER_SESSION_EXIT, 42, 0x10000, NULL, 0);
	refused(p, CTL_E_FIELD);
	msg(p, WORKER_SESSION_EXIT, 42, 0x0102, NULL, 0);
	accepted(p, WORKER_SESSION_EXIT);
	msg(p, WORKER_SESSION_EXIT, 42, 0, NULL, 0);	/* exited twice */
	refused(p, CTL_E_SESSION);
	/* after EXITED, nothing more */
	msg(p, WORKER_EXITED, 1, 0, "poweroff", 0);
	accepted(p, WORKER_EXITED);
	msg(p, WORKER_STATS, 1, 0, NULL, 0);
	refused(p, CTL_E_STATE);
	msg(p, WORKER_FAILED, 0, 0, "x", 0);
	refused(p, CTL_E_STATE);
}

static void test_answers_from_worker(void **state)
{
	struct pair *p = *state;
	struct worker_msg stat = { .type = WORKER_STAT };
	struct worker_msg susp = { .type = WORKER_SUSPEND, .text = "alice" };

	start(p);
	assert_int_equal(worker_send(&p->w, &stat), 0);
	msg(p, WORKER_STATS, 100, 0, NULL, 0);
	accepted(p, WORKER_STATS);
	msg(p, WORKER_STATS, 100, 0, NULL, 0);	/* one answer per question */
	refused(p, CTL_E_UNASKED);
	assert_int_equal(worker_send(&p->w, &susp), 0);
	assert_int_equal(p->w.state, WORKER_S_SUSPENDING);
	assert_int_equal(worker_send(&p->w, &stat), -EINVAL);	/* not now */
	msg(p, WORKER_FAILED, 0, 0, "disk full", 0);
	accepted(p, WORKER_FAILED);		/* a failed suspend: running */
	assert_int_equal(p->w.state, WORKER_S_RUNNING);
	assert_int_equal(worker_send(&p->w, &susp), 0);
	msg(p, WORKER_SUSPENDED, 9, 0, NULL, 0);
	accepted(p, WORKER_SUSPENDED);
	msg(p, WORKER_SUSPENDED, 9, 0, NULL, 0);
	refused(p, CTL_E_STATE);
}

/* What the worker itself refuses from its parent (next_request() decodes
 * with ctl_to_worker in its state). */
static void test_malformed_to_worker(void **state)
{
	uint8_t buf[CTL_MSG_MAX];
	struct worker_msg m = { .type = WORKER_SESSION_OPEN, .a = 1,
				.spawn = { .cmd = "ls", .term = "xterm" } };
	enum ctl_err e;
	ssize_t n;

	(void)state;
	n = ctl_encode(&ctl_to_worker, &m, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(ctl_decode(&ctl_to_worker, WORKER_S_RUNNING, buf,
				    (size_t)n, 0, &m, NULL, &e), 0);
	assert_string_equal(m.spawn.cmd, "ls");
	assert_string_equal(m.spawn.term, "xterm");
	assert_int_equal(m.spawn.err_port, -1);
	/* before it runs: no sessions */
	assert_int_equal(ctl_decode(&ctl_to_worker, WORKER_S_IDLE, buf,
				    (size_t)n, 0, &m, NULL, &e), -EPROTO);
	assert_int_equal(e, CTL_E_STATE);
	/* never an fd to it */
	assert_int_equal(ctl_decode(&ctl_to_worker, WORKER_S_RUNNING, buf,
				    (size_t)n, 1, &m, NULL, &e), -EPROTO);
	assert_int_equal(e, CTL_E_FDS);
	/* lengths inside the spawn that do not add up */
	buf[CTL_HDR_SIZE + 8 + 10] ^= 1;	/* env length */
	assert_int_equal(ctl_decode(&ctl_to_worker, WORKER_S_RUNNING, buf,
				    (size_t)n, 0, &m, NULL, &e), -EPROTO);
	assert_int_equal(e, CTL_E_FIELD);
	/* GO once running, a worker's message sent to a worker */
	m = (struct worker_msg){ .type = WORKER_GO };
	n = ctl_encode(&ctl_to_worker, &m, buf, sizeof(buf));
	assert_int_equal(ctl_decode(&ctl_to_worker, WORKER_S_RUNNING, buf,
				    (size_t)n, 0, &m, NULL, &e), -EPROTO);
	assert_int_equal(e, CTL_E_STATE);
	m = (struct worker_msg){ .type = WORKER_GO };
	n = ctl_encode(&ctl_to_worker, &m, buf, sizeof(buf));
	m.id.entropy_len = 100000;
	memcpy(buf + CTL_HDR_SIZE + offsetof(struct agent_identity,
					     entropy_len),
	       &m.id.entropy_len, sizeof(m.id.entropy_len));
	assert_int_equal(ctl_decode(&ctl_to_worker, WORKER_S_IDLE, buf,
				    (size_t)n, 0, &m, NULL, &e), -EPROTO);
	assert_int_equal(e, CTL_E_FIELD);
	hdr(buf, WORKER_STATS, 8);
	assert_int_equal(ctl_decode(&ctl_to_worker, WORKER_S_RUNNING, buf,
				    CTL_HDR_SIZE + 8, 0, &m, NULL, &e),
			 -EPROTO);
	assert_int_equal(e, CTL_E_TYPE);
	/* what we may not send is not encoded */
	m = (struct worker_msg){ .type = WORKER_READY };
	assert_int_equal(ctl_encode(&ctl_to_worker, &m, buf, sizeof(buf)),
			 -EINVAL);
}

/* The front-end's side of the manager: answers only to what it asked. */
static void test_from_manager(void **state)
{
	struct manager mg = { .pid = -1 };
	struct pair *p = *state;
	struct worker_msg m = { .type = MGR_WORKER, .a = 77 };
	uint8_t buf[CTL_MSG_MAX];
	ssize_t n;
	int fd;

	mg.sock = p->w.ctl;
	n = ctl_encode(&ctl_from_manager, &m, buf, sizeof(buf));
	raw(p, buf, (size_t)n, 1);	/* a worker nobody asked for */
	assert_int_equal(manager_recv(&mg, &m, &fd), -EPROTO);
	assert_int_equal(fd, -1);
	assert_int_equal(manager_spawn(&mg), 0);
	raw(p, buf, (size_t)n, 0);	/* without its socket */
	assert_int_equal(manager_recv(&mg, &m, &fd), -EPROTO);
	raw(p, buf, (size_t)n, 1);
	assert_int_equal(manager_recv(&mg, &m, &fd), 0);
	assert_true(fd >= 0);
	close(fd);
	m = (struct worker_msg){ .type = MGR_GONE, .a = 77 };
	n = ctl_encode(&ctl_from_manager, &m, buf, sizeof(buf));
	raw(p, buf, (size_t)n, 0);	/* not asked to end */
	assert_int_equal(manager_recv(&mg, &m, &fd), -EPROTO);
	assert_int_equal(manager_end(&mg, 77), 0);
	assert_int_equal(manager_end(&mg, 77), -EALREADY);
	assert_int_equal(manager_ending(&mg), 1);
	m = (struct worker_msg){ .type = MGR_GONE, .a = 78 };
	n = ctl_encode(&ctl_from_manager, &m, buf, sizeof(buf));
	assert_int_equal(manager_end(&mg, 79), 0);
	raw(p, buf, (size_t)n, 0);	/* another pid than asked */
	assert_int_equal(manager_recv(&mg, &m, &fd), -EPROTO);
	assert_int_equal(manager_ending(&mg), 2);
	m = (struct worker_msg){ .type = MGR_GONE, .a = 77 };
	n = ctl_encode(&ctl_from_manager, &m, buf, sizeof(buf));
	raw(p, buf, (size_t)n, 0);
	assert_int_equal(manager_recv(&mg, &m, &fd), 0);
	assert_int_equal(manager_ending(&mg), 1);
	mg.sock = -1;		/* p's */
	manager_close(&mg);
}

static uint64_t now_ms(void)
{
	return clock_mono_ns() / 1000000ULL;
}

/* The measured hang of issue 9: a worker that stops reading. The
 * front-end's sends return at once; at the queue's bound the worker is
 * cut off, and what was queued goes out in order once it reads. */
static void test_peer_never_reads(void **state)
{
	struct pair *p = *state;
	struct worker_msg m = { .type = WORKER_SESSION_SIGNAL, .b = 1 };
	struct pollfd pf;
	uint64_t worst = 0;
	int r = 0, sent = 0;

	start(p);
	while (sent < 100000) {
		uint64_t t0 = now_ms(), dt;

		m.a = (uint64_t)sent + 1;
		r = worker_send(&p->w, &m);
		dt = now_ms() - t0;
		worst = dt > worst ? dt : worst;
		if (r < 0)
			break;
		sent++;
	}
	assert_int_equal(r, -ENOBUFS);
	print_message("peer never reads: %d messages sent or queued, "
		      "slowest send %llu ms\n", sent,
		      (unsigned long long)worst);
	assert_true(worst < 100);
	assert_true(sent > CTL_QUEUE_MAX);
	assert_true(worker_pending(&p->w));
	/* the drop is the caller's, at its next poll: it wakes at once */
	pf = (struct pollfd){ .fd = p->w.ctl, .events = POLLIN };
	assert_int_equal(poll(&pf, 1, 0), 1);
	assert_true(pf.revents & POLLHUP);
	assert_int_equal(worker_recv(&p->w, &m, 0), -ENOBUFS);
	m = (struct worker_msg){ .type = WORKER_SESSION_SIGNAL, .a = 1 };
	assert_int_equal(worker_send(&p->w, &m), -ENOBUFS);
}

static void test_queue_flushes_in_order(void **state)
{
	struct pair *p = *state;
	struct worker_msg m = { .type = WORKER_SESSION_SIGNAL, .b = 1 };
	uint8_t buf[CTL_MSG_MAX];
	int fds[CTL_FDS_MAX], nfds, sent = 0, got = 0;
	enum ctl_err e;
	ssize_t n;

	start(p);
	n = recv(p->peer, buf, sizeof(buf), 0);		/* its GO */
	assert_true(n > 0);
	/* fill the socket, and queue a few */
	for (;;) {
		m.a = (uint64_t)sent + 1;
		assert_int_equal(worker_send(&p->w, &m), 0);
		sent++;
		if (p->w.out.n == 10)
			break;
	}
	while (got < sent) {
		struct pollfd pf = { .fd = p->peer, .events = POLLIN };

		if (worker_pending(&p->w))
			assert_true(worker_flush(&p->w) >= 0);
		assert_int_equal(poll(&pf, 1, 1000), 1);
		n = ctl_recv(p->peer, buf, fds, &nfds, &e);
		assert_true(n > 0);
		assert_int_equal(ctl_decode(&ctl_to_worker, WORKER_S_RUNNING,
					    buf, (size_t)n, nfds, &m, NULL,
					    &e), 0);
		assert_int_equal(m.a, (uint64_t)++got);
	}
	assert_false(worker_pending(&p->w));
}

/* Descriptors wait with their message: the sender may close its own at
 * once (the manager does, after passing a worker's socket on). */
static void test_queued_fds(void **state)
{
	struct pair *p = *state;
	struct worker_msg m = { .type = MGR_GONE, .a = 1 };
	struct ctl_queue q = { 0 };
	uint8_t buf[CTL_MSG_MAX];
	int fds[CTL_FDS_MAX], nfds, pipefd[2], r;
	enum ctl_err e;
	ssize_t n;

	/* fill the socket with small messages */
	do
		r = ctl_send_msg(p->w.ctl, &q, &ctl_from_manager, &m, NULL, 0);
	while (r == 0 && q.n == 0);
	assert_int_equal(r, 0);
	assert_int_equal(pipe(pipefd), 0);
	m = (struct worker_msg){ .type = MGR_KEYS_READY, .a = 2 };
	assert_int_equal(ctl_send_msg(p->w.ctl, &q, &ctl_from_manager, &m,
				      &pipefd[0], 1), 0);
	close(pipefd[0]);
	for (;;) {
		ctl_flush(p->w.ctl, &q);
		n = ctl_recv(p->peer, buf, fds, &nfds, &e);
		assert_true(n > 0);
		assert_int_equal(ctl_decode(&ctl_from_manager, 0, buf,
					    (size_t)n, nfds, &m, NULL, &e), 0);
		if (m.type == MGR_KEYS_READY)
			break;
	}
	assert_int_equal(nfds, 1);
	assert_int_equal(write(pipefd[1], "k", 1), 1);
	assert_int_equal(read(fds[0], buf, 1), 1);
	assert_int_equal(buf[0], 'k');
	close(fds[0]);
	close(pipefd[1]);
	ctl_queue_clear(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(test_malformed_from_worker),
		T(test_out_of_order_from_worker),
		T(test_sessions_from_worker),
		T(test_answers_from_worker),
		cmocka_unit_test(test_malformed_to_worker),
		T(test_from_manager),
		T(test_peer_never_reads),
		T(test_queue_flushes_in_order),
		T(test_queued_fds),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
