#include "vmm/worker.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/proc.h"

uint64_t worker_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int send_fds(int fd, const struct worker_msg *m, const int *fds,
		    int nfds)
{
	struct iovec iov = { .iov_base = (void *)(uintptr_t)m,
			     .iov_len = sizeof(*m) };
	union {
		char buf[CMSG_SPACE(3 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nfds > 0) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	}
	for (;;) {
		ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		return n == (ssize_t)sizeof(*m) ? 0 : -EIO;
	}
}

static int send_msg(int fd, const struct worker_msg *m, int pass_fd)
{
	return send_fds(fd, m, &pass_fd, pass_fd >= 0 ? 1 : 0);
}

int worker_send(struct worker *w, const struct worker_msg *m)
{
	return send_msg(w->ctl, m, -1);
}

int worker_recv(struct worker *w, struct worker_msg *m, int timeout_ms)
{
	struct pollfd p = { .fd = w->ctl, .events = POLLIN };
	union {
		char buf[CMSG_SPACE(3 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = m, .iov_len = sizeof(*m) };
	int fds[3] = { -1, -1, -1 }, nfds = 0;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;
	ssize_t n;
	int r;

	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return -ETIMEDOUT;
	n = recvmsg(w->ctl, &mh, MSG_CMSG_CLOEXEC);
	if (n == 0)
		return -EPIPE;
	if (n < 0)
		return -errno;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; CMSG_LEN((i + 1) * sizeof(int)) <=
				   c->cmsg_len; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (nfds < 3)
				fds[nfds++] = fd;
			else
				close(fd);
		}
	}
	/* The worker runs a guest: trust nothing of its messages' shape. */
	if (n != (ssize_t)sizeof(*m) || (mh.msg_flags & MSG_TRUNC) ||
	    m->type < WORKER_READY || m->type > WORKER_STATS) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		return -EPROTO;
	}
	m->text[sizeof(m->text) - 1] = 0;
	if (m->type == WORKER_STARTED && nfds >= 1) {
		if (w->term_fd >= 0)
			close(w->term_fd);
		w->term_fd = fds[0];
		fds[0] = -1;
	} else if (m->type == WORKER_SESSION_OPENED) {
		for (int i = 0; i < 3; i++) {
			w->sess_fd[i] = fds[i];
			fds[i] = -1;
		}
	}
	for (int i = 0; i < nfds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
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

/* ---- the worker process ------------------------------------------------ */

static void close_fds_except(int a, int b)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int self = d ? dirfd(d) : -1;

	while (d && (e = readdir(d))) {
		int fd = atoi(e->d_name);

		if (e->d_name[0] != '.' && fd > 2 && fd != a && fd != b &&
		    fd != self)
			close(fd);
	}
	if (d)
		closedir(d);
}

static void reply(int ctl, uint32_t type, uint64_t a, const char *text)
{
	struct worker_msg m = { .type = type, .a = a };

	if (text)
		snprintf(m.text, sizeof(m.text), "%.159s", text);
	send_msg(ctl, &m, -1);
}

static int wait_go(int ctl, struct worker_msg *m)
{
	ssize_t n;

	do
		n = recv(ctl, m, sizeof(*m), 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(*m) ||
	    (m->type != WORKER_GO && m->type != WORKER_GO_RESUME))
		return -1;
	m->text[sizeof(m->text) - 1] = 0;
	return 0;
}

static int run_vm(int ctl, struct vm *vm, int smaps)
{
	bool acked = vm_identity_acked(vm);	/* a resumed VM has been */

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = ctl, .events = POLLIN },
			{ .fd = vm_event_fd(vm), .events = POLLIN },
		};
		struct worker_msg m;
		struct vm_stats st;
		uint64_t v;
		ssize_t n;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return 1;
		if (p[1].revents) {
			if (read(vm_event_fd(vm), &v, sizeof(v)) < 0 &&
			    errno != EAGAIN)
				return 1;
			uint32_t sid;
			uint16_t st16;

			while (vm_session_exit(vm, &sid, &st16)) {
				struct worker_msg x = {
					.type = WORKER_SESSION_EXIT, .a = sid,
					.b = st16 };
				send_msg(ctl, &x, -1);
			}
			if (!acked && vm_identity_acked(vm)) {
				acked = true;
				vm_get_stats(vm, &st);
				reply(ctl, WORKER_ACKED, st.ack_ns, NULL);
			}
			if (vm_state(vm) != VM_RUNNING) {
				reply(ctl, WORKER_EXITED, vm_exit_reason(vm),
				      vm_exit_detail(vm));
				return 0;
			}
		}
		if (!p[0].revents)
			continue;
		n = recv(ctl, &m, sizeof(m), 0);
		if (n <= 0)
			return 0;	/* the parent is done with us */
		if (n != (ssize_t)sizeof(m))
			continue;
		switch (m.type) {
		case WORKER_PAUSE:
			if (vm_pause(vm) == 0)
				reply(ctl, WORKER_PAUSED, worker_now_ns(), NULL);
			else
				reply(ctl, WORKER_FAILED, 0, "pause");
			break;
		case WORKER_RESUME:
			vm_resume(vm);
			reply(ctl, WORKER_RESUMED, vm_wait_running(vm), NULL);
			break;
		case WORKER_SESSION_OPEN: {
			int fds[3], r;

			m.spawn.session = (uint32_t)m.a;
			m.spawn.cmd[sizeof(m.spawn.cmd) - 1] = 0;
			m.spawn.term[sizeof(m.spawn.term) - 1] = 0;
			/* sent in the order stdout, stderr, stdin */
			r = vm_session_open(vm, &m.spawn, &fds[2], &fds[0],
					    &fds[1]);
			if (r < 0)
				log_warnx("session %llu: %s",
					  (unsigned long long)m.a, strerror(-r));
			m = (struct worker_msg){ .type = WORKER_SESSION_OPENED,
						 .a = m.a, .b = (uint64_t)r };
			send_fds(ctl, &m, fds, r < 0 ? 0 : fds[1] >= 0 ? 3 : 1);
			for (int i = 0; i < 3; i++)
				if (fds[i] >= 0)
					close(fds[i]);
			break;
		}
		case WORKER_SESSION_RESIZE:
			vm_session_resize(vm, (uint32_t)m.a, m.spawn.rows,
					  m.spawn.cols);
			break;
		case WORKER_SESSION_SIGNAL:
			vm_session_signal(vm, (uint32_t)m.a, (int)m.b);
			break;
		case WORKER_STAT:	/* not dumpable: only we may read it */
			reply(ctl, WORKER_STATS, (uint64_t)proc_smaps_fd_kib(
				      smaps, "Private_Dirty"), NULL);
			break;
		case WORKER_SUSPEND: {
			char err[256];
			uint64_t pages = 0;

			m.text[sizeof(m.text) - 1] = 0;
			if (vm_suspend_to_disk(vm, m.text, &pages, err,
					       sizeof(err)) < 0) {
				reply(ctl, WORKER_FAILED, 0, err);
				vm_resume(vm);
				break;
			}
			reply(ctl, WORKER_SUSPENDED, pages, NULL);
			return 0;
		}
		default:
			reply(ctl, WORKER_FAILED, 0, "unexpected request");
			break;
		}
	}
}

/* Everything from here on runs with a guest in it: no root, no way back
 * to it, no files outside the suspend directory, no core dumps (they
 * would hold the user's memory), and only the system calls in
 * worker_seccomp.c. */
static int confine(const struct worker_jail *jail, char *err, size_t len)
{
	int r;

	/* Not root (a developer's own account): names are still taken in
	 * root, by cwd, but only root may chroot. */
	if (jail && jail->root &&
	    (chdir(jail->root) < 0 || (geteuid() == 0 && chroot(".") < 0))) {
		snprintf(err, len, "chroot %s: %s", jail->root,
			 strerror(errno));
		return -1;
	}
	if (jail && (r = sandbox_drop(jail->uid, jail->gid)) < 0) {
		snprintf(err, len, "dropping to uid %u: %s",
			 (unsigned)jail->uid, strerror(-r));
		return -1;
	}
	sandbox_no_dumps();	/* again: a uid change resets dumpability
				 * to fs.suid_dumpable */
	r = sandbox_install(vmm_worker_rules, vmm_worker_nrules);
	if (r < 0) {
		snprintf(err, len, "seccomp: %s", strerror(-r));
		return -1;
	}
	return 0;
}

static int worker_main(const struct template *t,
		       const struct worker_jail *jail, int ctl)
{
	struct worker_msg m;
	struct vm *vm = NULL;
	struct vm_stats st;
	char err[256];
	const char *who;
	uint64_t t0;
	int term, r, smaps = -1;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	sandbox_no_dumps();
	close_fds_except(ctl, t->mem_fd);
	log_set_tagf("clone[vm %d]", (int)getpid());
	/* Everything that does not depend on who connects, done ahead. */
	r = vm_new(&vm, err, sizeof(err));
	if (r < 0) {
		reply(ctl, WORKER_FAILED, 0, err);
		return 1;
	}
	term = vm_add_terminal(vm, 0);
	if (term < 0) {
		reply(ctl, WORKER_FAILED, 0, "terminal port");
		return 1;
	}
	/* Restoring depends on the template only, not on who connects:
	 * done ahead too, so going is starting two threads. */
	t0 = worker_now_ns();
	r = vm_restore_setup(vm, t->snap, t->mem_fd, err, sizeof(err));
	if (r < 0) {
		reply(ctl, WORKER_FAILED, 0, err);
		return 1;
	}
	/* The template's memory is mapped: its fd is not needed again. */
	close(t->mem_fd);
	smaps = open("/proc/self/smaps_rollup", O_RDONLY | O_CLOEXEC);
	if (confine(jail, err, sizeof(err)) < 0) {
		reply(ctl, WORKER_FAILED, 0, err);
		return 1;
	}
	reply(ctl, WORKER_READY, worker_now_ns() - t0, NULL);
	if (wait_go(ctl, &m) < 0)
		return 0;
	/* Every line from here names the user: the identity's, or the last
	 * part of the directory resumed from (suspended/<user>). */
	who = m.type == WORKER_GO ? m.id.user : m.text;
	if (m.type == WORKER_GO_RESUME && strrchr(who, '/'))
		who = strrchr(who, '/') + 1;
	log_set_tagf("clone[vm %.32s %d]", who, (int)getpid());
	if (m.type == WORKER_GO_RESUME)
		r = vm_resume_disk_setup(vm, m.text, err, sizeof(err));
	else if ((r = vm_set_identity(vm, &m.id)) < 0)
		snprintf(err, sizeof(err), "identity: %s", strerror(-r));
	sodium_memzero(&m, sizeof(m));
	if (r == 0 && (r = vm_start(vm)) < 0)
		snprintf(err, sizeof(err), "start: %s", strerror(-r));
	if (r < 0) {
		reply(ctl, WORKER_FAILED, 0, err);
		return 1;
	}
	vm_get_stats(vm, &st);
	while (!st.first_entry_ns) {	/* set by the vCPU thread */
		usleep(50);
		vm_get_stats(vm, &st);
	}
	m = (struct worker_msg){ .type = WORKER_STARTED,
				 .a = st.first_entry_ns };
	send_msg(ctl, &m, term);
	close(term);
	r = run_vm(ctl, vm, smaps);
	vm_free(vm);
	return r;
}

int worker_spawn(const struct template *t, const struct worker_jail *jail,
		 struct worker *w)
{
	int sv[2];

	w->pid = -1;
	w->ctl = w->term_fd = -1;
	w->sess_fd[0] = w->sess_fd[1] = w->sess_fd[2] = -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	w->pid = fork();
	if (w->pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -errno;
	}
	if (w->pid == 0) {
		close(sv[0]);
		_exit(worker_main(t, jail, sv[1]));
	}
	close(sv[1]);
	w->ctl = sv[0];
	return 0;
}

void worker_destroy(struct worker *w, int timeout_ms)
{
	int status;

	if (w->ctl >= 0)
		close(w->ctl);
	if (w->term_fd >= 0)
		close(w->term_fd);
	w->ctl = w->term_fd = -1;
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
