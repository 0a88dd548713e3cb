/* The VM worker process: forked by worker_spawn(), it makes its VM,
 * confines itself, and then runs the guest and answers its parent's
 * requests. What the parent sends is checked against ctl_to_worker too: a
 * request the worker cannot take now is refused, not obeyed. */
#include "vmm/worker.h"

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
#include <sys/syscall.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/proc.h"

static void close_fds_except(int a, int b)
{
	int lo = a < b ? a : b, hi = a < b ? b : a;

	/* close_range: no /proc walk, and nothing left behind on error */
	if (lo > 3)
		syscall(SYS_close_range, 3, lo - 1, 0);
	if (hi > lo + 1)
		syscall(SYS_close_range, lo + 1, hi - 1, 0);
	syscall(SYS_close_range, hi + 1, ~0U, 0);
}

static void send_up(int ctl, const struct worker_msg *m, const int *fds,
		    int nfds)
{
	int r = ctl_send_msg(ctl, NULL, &ctl_from_worker, m, fds, nfds);

	if (r < 0 && r != -EPIPE)
		log_warnx("control message %s: %s", ctl_type_name(m->type),
			  strerror(-r));
}

static void reply(int ctl, uint32_t type, uint64_t a, const char *text)
{
	struct worker_msg m = { .type = type, .a = a };

	if (text)
		snprintf(m.text, sizeof(m.text), "%.*s", CTL_TEXT_MAX, text);
	send_up(ctl, &m, NULL, 0);
}

/* One request from the parent, checked against ctl_to_worker in state.
 * 1 a request, 0 the parent is done with us, -1 a request we refuse. */
static int next_request(int ctl, unsigned state, struct worker_msg *m)
{
	uint8_t buf[CTL_MSG_MAX];
	int fds[CTL_FDS_MAX], nfds = 0, r = 1;
	enum ctl_err e = CTL_OK;
	struct pollfd p = { .fd = ctl, .events = POLLIN };
	ssize_t n;

	do {
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			return 0;
		n = ctl_recv(ctl, buf, fds, &nfds, &e);
	} while (n == -EAGAIN);
	if (n <= 0 && n != -EPROTO)
		return 0;
	if (n < 0 || ctl_decode(&ctl_to_worker, state, buf, (size_t)n, nfds,
				m, NULL, &e) < 0) {
		if (ctl_log_ok())
			log_warnx("control message refused: %s",
				  ctl_strerror(e));
		r = -1;
	}
	for (int i = 0; i < nfds; i++)	/* none is ever sent to us */
		close(fds[i]);
	explicit_bzero(buf, sizeof(buf));
	return r;
}

/* A session that cannot open is logged, but a client that asks for one
 * again and again (or a guest that keeps its ports from opening) must not
 * flood the log: one limiter for this worker's VM. */
static struct log_limit session_log;

static void session_open(int ctl, struct vm *vm, struct worker_msg *m)
{
	int fds[3], r;

	m->spawn.session = (uint32_t)m->a;
	/* sent in the order stdout, stderr, stdin */
	r = vm_session_open(vm, &m->spawn, &fds[2], &fds[0], &fds[1]);
	if (r < 0)
		log_limit_warnx(&session_log, "session %llu: %s",
				(unsigned long long)m->a, strerror(-r));
	*m = (struct worker_msg){ .type = WORKER_SESSION_OPENED, .a = m->a,
				  .b = (uint64_t)(int64_t)r };
	send_up(ctl, m, fds, r < 0 ? 0 : fds[1] >= 0 ? 3 : 1);
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* The directory a suspended VM goes to or comes from: a jailed worker's
 * own (its root), whatever the parent names; else the one it names. */
static const char *vm_dir(const struct worker_jail *jail,
			  const struct worker_msg *m)
{
	return jail && jail->root ? "." : m->text;
}

/* 1: carry on; 0: done (suspended). */
static int request(int ctl, struct vm *vm, int smaps,
		   const struct worker_jail *jail, struct worker_msg *m)
{
	char err[256];
	uint64_t pages = 0;

	switch (m->type) {
	case WORKER_PAUSE:
		if (vm_pause(vm) == 0)
			reply(ctl, WORKER_PAUSED, clock_mono_ns(), NULL);
		else
			reply(ctl, WORKER_FAILED, 0, "pause");
		break;
	case WORKER_RESUME:
		vm_resume(vm);
		reply(ctl, WORKER_RESUMED, vm_wait_running(vm), NULL);
		break;
	case WORKER_SESSION_OPEN:
		session_open(ctl, vm, m);
		break;
	case WORKER_SESSION_RESIZE:
		vm_session_resize(vm, (uint32_t)m->a, m->spawn.rows,
				  m->spawn.cols);
		break;
	case WORKER_SESSION_SIGNAL:
		vm_session_signal(vm, (uint32_t)m->a, (int)m->b);
		break;
	case WORKER_STAT:	/* not dumpable: only we may read it */
		reply(ctl, WORKER_STATS, (uint64_t)proc_smaps_fd_kib(
			      smaps, "Private_Dirty"), NULL);
		break;
	case WORKER_SUSPEND:
		if (vm_suspend_to_disk(vm, vm_dir(jail, m), &pages, err,
				       sizeof(err)) < 0) {
			reply(ctl, WORKER_FAILED, 0, err);
			vm_resume(vm);
			break;
		}
		reply(ctl, WORKER_SUSPENDED, pages, NULL);
		return 0;
	default:	/* not in ctl_to_worker's RUNNING rows */
		reply(ctl, WORKER_FAILED, 0, "unexpected request");
		break;
	}
	return 1;
}

static int run_vm(int ctl, struct vm *vm, int smaps,
		  const struct worker_jail *jail)
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
		uint32_t sid;
		uint16_t st16;
		int r;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return 1;
		if (p[1].revents) {
			if (read(vm_event_fd(vm), &v, sizeof(v)) < 0 &&
			    errno != EAGAIN)
				return 1;
			while (vm_session_exit(vm, &sid, &st16)) {
				m = (struct worker_msg){
					.type = WORKER_SESSION_EXIT, .a = sid,
					.b = st16 };
				send_up(ctl, &m, NULL, 0);
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
		r = next_request(ctl, WORKER_S_RUNNING, &m);
		if (r == 0)
			return 0;	/* the parent is done with us */
		if (r < 0)
			reply(ctl, WORKER_FAILED, 0, "unexpected request");
		else if (request(ctl, vm, smaps, jail, &m) == 0)
			return 0;
	}
}

/* Everything from here on runs with a guest in it: no root, no way back
 * to it, a uid of its own, no files outside its own directory (made for
 * it by the manager, its uid's, 0700: entered here while still root), no
 * core dumps (they would hold the user's memory), and only the system
 * calls in worker_seccomp.c. */
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
	log_limit_init(&session_log, "session");
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
	t0 = clock_mono_ns();
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
	reply(ctl, WORKER_READY, clock_mono_ns() - t0, NULL);
	/* Anything but a go: our parent is done with us, or not making
	 * sense; either way this VM never starts. */
	if (next_request(ctl, WORKER_S_IDLE, &m) <= 0)
		return 0;
	/* Every line from here names the user: the identity's, or the last
	 * part of the directory resumed from (jailed: the user's name). */
	who = m.type == WORKER_GO ? m.id.user : m.text;
	if (m.type == WORKER_GO_RESUME && strrchr(who, '/'))
		who = strrchr(who, '/') + 1;
	log_set_tagf("clone[vm %.32s %d]", who, (int)getpid());
	if (m.type == WORKER_GO_RESUME)
		r = vm_resume_disk_setup(vm, vm_dir(jail, &m), err,
					 sizeof(err));
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
	send_up(ctl, &m, &term, 1);
	close(term);
	r = run_vm(ctl, vm, smaps, jail);
	vm_free(vm);
	return r;
}

int worker_spawn(const struct template *t, const struct worker_jail *jail,
		 struct worker *w)
{
	int sv[2];

	worker_init(w);
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
