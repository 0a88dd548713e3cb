/* The VM manager process (see manager.h). One poll loop: the front-end's
 * socket, SIGCHLD through a signalfd, the control sockets of workers still
 * restoring, and the deadlines of workers asked to end. It trusts nothing
 * the front-end says (the front-end talks to the network): a pid to end
 * or to move files for must be one of its own workers, user names are
 * checked again, and requests beyond its caps are refused. */
#include "vmm/manager.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "vmm/manager_jail.h"

#define SPAWN_TIMEOUT_MS 60000	/* a restore takes milliseconds */

enum { M_FREE, M_FORKING, M_HANDED, M_ENDING, M_REAPED };

struct mworker {
	int st;
	pid_t pid;
	struct worker *w;	/* M_FORKING: in forks[], its control socket */
	uint64_t deadline;	/* M_FORKING: give up; M_ENDING: SIGKILL */
	int status;		/* M_REAPED: how it ended */
	unsigned req;		/* M_FORKING: the request it answers */
	bool handed;		/* the front-end has it: MGR_GONE is news */
	bool reaped;		/* waited for: its pid is nobody's now */
	struct mjail jail;	/* its uid and directory */
};

/* A spawn request, answered in the order asked. */
struct mreq {
	bool done;
	uint32_t type;		/* MGR_WORKER or MGR_FAILED */
	uint64_t a, b;
	char why[64];
	int fd;			/* MGR_WORKER's control socket */
};

static struct {
	int sock;
	const struct template *t;
	const struct manager_jail *jail;
	struct jail_uids uids;
	const struct manager_hooks *hooks;
	unsigned max_vms;
	struct ctl_queue out;
	struct mworker *ws;
	unsigned nws;		/* slots in ws (max_vms) */
	struct worker forks[MANAGER_FORKS_MAX];	/* restoring */
	struct mreq *reqs;	/* ring of max_vms */
	unsigned rhead, rn, rstarted;	/* rstarted: given to a fork */
	unsigned forking;
	pid_t keys_pid;
	pid_t keys_old;		/* killed, not yet reaped */
	bool gone;		/* the front-end is */
} M;

static void up(const struct worker_msg *m, int fd)
{
	int r = ctl_send_msg(M.sock, &M.out, &ctl_from_manager, m, &fd,
			     fd >= 0 ? 1 : 0);

	/* A front-end that stops reading has stopped serving: nobody is
	 * left to ask us anything. */
	if (r < 0) {
		log_warnx("front-end: %s; stopping", strerror(-r));
		M.gone = true;
	}
}

static void failed(uint32_t req, uint64_t b, const char *why)
{
	struct worker_msg m = { .type = MGR_FAILED, .a = req, .b = b };

	snprintf(m.text, sizeof(m.text), "%s", why);
	up(&m, -1);
}

static struct mworker *by_pid(pid_t pid)
{
	for (unsigned i = 0; i < M.nws; i++)
		if (M.ws[i].st != M_FREE && M.ws[i].pid == pid)
			return &M.ws[i];
	return NULL;
}

/* Answer spawn requests in order, as far as they are done. */
static void answer(void)
{
	while (M.rn && M.reqs[M.rhead].done) {
		struct mreq *q = &M.reqs[M.rhead];
		struct worker_msg m = { .type = q->type, .a = q->a,
					.b = q->b };

		snprintf(m.text, sizeof(m.text), "%s", q->why);
		up(&m, q->fd);
		if (q->fd >= 0)
			close(q->fd);
		q->fd = -1;
		q->done = false;
		M.rhead = (M.rhead + 1) % M.nws;
		M.rn--;
		M.rstarted--;
	}
}

static void req_fail(unsigned i, const char *why)
{
	struct mreq *q = &M.reqs[i];

	*q = (struct mreq){ .type = MGR_FAILED, .a = MGR_SPAWN, .fd = -1 };
	snprintf(q->why, sizeof(q->why), "%s", why);
	q->done = true;
}

/* Its control socket is no longer ours to hold. */
static void let_go(struct mworker *mw)
{
	if (!mw->w)
		return;
	worker_close(mw->w);
	worker_init(mw->w);
	mw->w = NULL;
}

/* Reaped (or never forked): its directory and uid can be another's. */
static void slot_free(struct mworker *mw)
{
	let_go(mw);
	mjail_release(M.jail, &M.uids, &mw->jail);
	*mw = (struct mworker){ .st = M_FREE, .pid = -1 };
}

/* Reaped, and the front-end done with it: the VM it suspended kept if
 * asked (no process of its uid is left to change its files now), then
 * MGR_GONE, and its uid and directory are free. */
static void worker_done(struct mworker *mw)
{
	struct worker_msg m = { .type = MGR_GONE, .a = (uint64_t)mw->pid,
				.b = (uint64_t)mw->status };

	if (mw->jail.stash[0]) {
		struct worker_msg a = { .type = MGR_STASHED,
					.a = (uint64_t)mw->pid };

		a.b = (uint64_t)(int64_t)mjail_stash(M.jail, &mw->jail,
						     mw->pid);
		snprintf(a.text, sizeof(a.text), "%s", mw->jail.stash);
		up(&a, -1);
	}
	if (mw->handed)
		up(&m, -1);
	slot_free(mw);
}

/* Start forks for waiting requests, MANAGER_FORKS_MAX at a time. */
static void start_forks(void)
{
	while (M.rstarted < M.rn && M.forking < MANAGER_FORKS_MAX) {
		unsigned i = (M.rhead + M.rstarted++) % M.nws;
		struct mworker *mw = NULL;
		struct worker *w = NULL;
		struct worker_jail wj;
		char path[4096], why[64];
		int r;

		for (unsigned k = 0; k < M.nws && !mw; k++)
			if (M.ws[k].st == M_FREE)
				mw = &M.ws[k];
		for (unsigned k = 0; k < MANAGER_FORKS_MAX && !w; k++)
			if (M.forks[k].pid <= 0)
				w = &M.forks[k];
		if (!M.t || !mw) {
			req_fail(i, !M.t ? "no template" : "at capacity");
			continue;
		}
		*mw = (struct mworker){ .st = M_FREE, .pid = -1 };
		if (M.jail && mjail_take(M.jail, &M.uids, &mw->jail, &wj, path,
					 sizeof(path), why, sizeof(why)) < 0) {
			req_fail(i, why);
			continue;
		}
		r = worker_spawn(M.t, M.jail ? &wj : NULL, w);
		if (r < 0) {
			log_warnx("forking a worker: %s", strerror(-r));
			worker_init(w);
			slot_free(mw);
			req_fail(i, "fork failed");
			continue;
		}
		mw->pid = w->pid;
		mw->w = w;
		mw->st = M_FORKING;
		mw->req = i;
		mw->deadline = clock_mono_ns() + SPAWN_TIMEOUT_MS * 1000000ULL;
		M.forking++;
	}
	answer();
}

/* Never handed out: SIGKILL at the next look (or gone already). */
static void end_now(struct mworker *mw)
{
	let_go(mw);
	if (mw->reaped) {
		slot_free(mw);
		return;
	}
	mw->st = M_ENDING;
	mw->deadline = 0;
}

/* A restoring worker said something (or went away). */
static void forking_event(struct mworker *mw)
{
	struct worker_msg m;
	struct mreq *q = &M.reqs[mw->req];
	int r = worker_recv(mw->w, &m, 0);

	if (r == -ETIMEDOUT)
		return;
	M.forking--;
	if (r == 0 && m.type == WORKER_READY) {
		*q = (struct mreq){ .done = true, .type = MGR_WORKER,
				    .a = (uint64_t)mw->pid, .b = m.a,
				    .fd = mw->w->ctl };
		mw->w->ctl = -1;	/* passed on with the answer */
		let_go(mw);
		mw->st = mw->reaped ? M_REAPED : M_HANDED;
		mw->handed = true;
	} else {
		log_warnx("worker %d: %s%s%s", (int)mw->pid,
			  r == -EPROTO ? ctl_strerror(mw->w->why) :
			  strerror(-r), m.text[0] ? ": " : "", m.text);
		req_fail(mw->req, m.text[0] ? m.text : "the worker failed");
		end_now(mw);
	}
	start_forks();
}

static void end_request(uint64_t pid)
{
	struct mworker *mw = pid > 0 && pid < INT32_MAX ? by_pid((pid_t)pid) :
							NULL;

	/* Only a worker we handed out, once: never a pid of someone
	 * else's, nor one still restoring. */
	if (!mw || (mw->st != M_HANDED && mw->st != M_REAPED)) {
		if (ctl_log_ok())
			log_warnx("front-end asked to end %llu: not a worker "
				  "it holds", (unsigned long long)pid);
		failed(MGR_END, pid, "not a worker you hold");
		return;
	}
	if (mw->st == M_REAPED) {
		worker_done(mw);
		return;
	}
	mw->st = M_ENDING;
	mw->deadline = clock_mono_ns() + MANAGER_GRACE_MS * 1000000ULL;
}

/* A worker handed to the front-end and not asked to end (reaped_ok: or
 * already reaped, not yet ended): the only ones whose files the front-end
 * may ask about. */
static struct mworker *held(uint64_t pid, bool reaped_ok)
{
	struct mworker *mw = pid > 0 && pid < INT32_MAX ? by_pid((pid_t)pid) :
							NULL;

	if (mw && (mw->st == M_HANDED || (reaped_ok && mw->st == M_REAPED)))
		return mw;
	return NULL;
}

static void files_answer(uint32_t type, uint64_t pid, const char *user,
			 int r, const char *why)
{
	struct worker_msg m = { .type = type, .a = pid,
				.b = (uint64_t)(int64_t)r };

	if (why && ctl_log_ok())
		log_warnx("front-end asked %s for worker %llu: %s",
			  ctl_type_name(type == MGR_STASHED ? MGR_STASH :
					MGR_UNSTASH),
			  (unsigned long long)pid, why);
	/* echoed only if it is a name: the front-end looks it up */
	if (agent_valid_user(user))
		snprintf(m.text, sizeof(m.text), "%s", user);
	up(&m, -1);
}

static void stash_request(const struct worker_msg *m)
{
	struct mworker *mw = held(m->a, true);
	const char *why = mjail_refused(M.jail, m->text, mw);

	if (!why && mw->jail.stash[0])
		why = "asked twice";
	if (why) {
		files_answer(MGR_STASHED, m->a, m->text, -EPERM, why);
		return;
	}
	/* answered once it is reaped (worker_done()) */
	snprintf(mw->jail.stash, sizeof(mw->jail.stash), "%.32s", m->text);
}

static void unstash_request(const struct worker_msg *m)
{
	struct mworker *mw = held(m->a, false);
	const char *why = mjail_refused(M.jail, m->text, mw);

	if (!why && mw->jail.unstashed)
		why = "asked twice";
	if (why) {
		files_answer(MGR_UNSTASHED, m->a, m->text, -EPERM, why);
		return;
	}
	files_answer(MGR_UNSTASHED, m->a, m->text,
		     mjail_unstash(M.jail, &mw->jail, mw->pid, m->text), NULL);
}

/* sock becomes fd 3, and every fd above it is closed. */
static int only_fd3(int sock)
{
	if (sock != 3) {
		if (dup2(sock, 3) < 0)
			return -errno;
		close(sock);
	}
	syscall(SYS_close_range, 4, ~0U, 0);
	return 3;
}

static void keys_child(int sock)
{
	sigset_t none;
	int null;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);	/* ours blocks SIGCHLD */
	/* only its socket (as fd 3) and stderr */
	if (only_fd3(sock) < 0)
		_exit(1);
	null = open("/dev/null", O_RDWR);
	if (null >= 0 && (dup2(null, 0) < 0 || dup2(null, 1) < 0))
		_exit(1);
	if (null > 1 && null != 3)
		close(null);
	log_set_tag("clone[keys]");
	M.hooks->keys_main(3, M.hooks->arg);
	_exit(1);
}

static void keys_request(void)
{
	struct worker_msg m = { .type = MGR_KEYS_READY };
	int sv[2];
	pid_t pid;

	if (!M.hooks || !M.hooks->keys_main) {
		failed(MGR_KEYS, 0, "no keys monitor");
		return;
	}
	/* One at a time: the old one may have been talked into anything.
	 * Reaped by reap(), not waited for here: one stuck in disk I/O dies
	 * only when that ends, and must not stop us meanwhile. */
	if (M.keys_pid > 0) {
		kill(M.keys_pid, SIGKILL);
		log_info("keys monitor %d killed", (int)M.keys_pid);
		M.keys_old = M.keys_pid;
		M.keys_pid = -1;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		failed(MGR_KEYS, 0, "socketpair failed");
		return;
	}
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		keys_child(sv[1]);
	}
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		failed(MGR_KEYS, 0, "fork failed");
		return;
	}
	M.keys_pid = pid;
	log_info("keys monitor %d started", (int)pid);
	m.a = (uint64_t)pid;
	up(&m, sv[0]);
	close(sv[0]);
}

static void frontend_event(void)
{
	uint8_t buf[CTL_MSG_MAX];
	int fds[CTL_FDS_MAX], nfds = 0;
	enum ctl_err e = CTL_OK;
	struct worker_msg m;
	ssize_t n = ctl_recv(M.sock, buf, fds, &nfds, &e);

	if (n == -EAGAIN)
		return;
	if (n == 0 || (n < 0 && n != -EPROTO)) {
		M.gone = true;
		return;
	}
	if (n < 0 || ctl_decode(&ctl_to_manager, 0, buf, (size_t)n, nfds, &m,
				NULL, &e) < 0) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		if (ctl_log_ok())
			log_warnx("front-end message refused: %s",
				  ctl_strerror(e));
		return;
	}
	switch (m.type) {
	case MGR_SPAWN:
		/* A front-end that keeps count never has more waiting than
		 * max_vms; one that does not is not answered beyond that. */
		if (M.rn >= M.nws) {
			if (ctl_log_ok())
				log_warnx("front-end: too many spawn requests");
			return;
		}
		M.reqs[(M.rhead + M.rn++) % M.nws] = (struct mreq){ .fd = -1 };
		start_forks();
		break;
	case MGR_END:
		end_request(m.a);
		break;
	case MGR_KEYS:
		keys_request();
		break;
	case MGR_STASH:
		stash_request(&m);
		break;
	case MGR_UNSTASH:
		unstash_request(&m);
		break;
	case MGR_DROP:
		mjail_drop(M.jail, m.text);
		break;
	default:
		break;
	}
}

static void why_died(pid_t pid, int st)
{
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS)
		log_warnx("worker %d killed by SIGSYS: a system call outside "
			  "its seccomp filter", (int)pid);
	else if (WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL)
		log_warnx("worker %d killed by signal %d", (int)pid,
			  WTERMSIG(st));
	else if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
		log_warnx("worker %d exited with status %d", (int)pid,
			  WEXITSTATUS(st));
}

static void reap(void)
{
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		struct mworker *mw = by_pid(pid);

		if (pid == M.keys_pid) {
			log_warnx("the keys monitor ended (status 0x%x)", st);
			M.keys_pid = -1;
			continue;
		}
		if (pid == M.keys_old) {	/* the one we killed */
			M.keys_old = -1;
			continue;
		}
		why_died(pid, st);
		if (!mw)
			continue;
		mw->status = st;
		mw->reaped = true;
		if (mw->st == M_ENDING)
			worker_done(mw);
		else if (mw->st == M_HANDED)
			mw->st = M_REAPED;	/* until the front-end ends it */
		/* M_FORKING: its socket's EOF fails the request */
	}
}

/* SIGKILL the workers whose time is up; the next wake-up, in ms. */
static int deadlines(void)
{
	uint64_t now = clock_mono_ns(), next = UINT64_MAX;

	for (unsigned i = 0; i < M.nws; i++) {
		struct mworker *mw = &M.ws[i];

		if (mw->st != M_ENDING && mw->st != M_FORKING)
			continue;
		if (mw->deadline > now) {
			next = mw->deadline < next ? mw->deadline : next;
			continue;
		}
		if (mw->st == M_FORKING) {
			log_warnx("worker %d: not ready after %d s",
				  (int)mw->pid, SPAWN_TIMEOUT_MS / 1000);
			M.forking--;
			req_fail(mw->req, "not ready in time");
			end_now(mw);
			start_forks();
		} else if (mw->deadline) {
			log_warnx("worker %d: still running %d ms after its "
				  "control socket closed: killed",
				  (int)mw->pid, MANAGER_GRACE_MS);
		}
		if (!mw->reaped)	/* else the pid may be another's */
			kill(mw->pid, SIGKILL);
		mw->deadline = UINT64_MAX;	/* reap() ends it */
	}
	if (next == UINT64_MAX)
		return -1;
	return (int)((next - now) / 1000000ULL) + 1;
}

void manager_serve(int sock, const struct template *t, unsigned max_vms,
		   const struct manager_jail *jail,
		   const struct manager_hooks *hooks, bool confine)
{
	struct pollfd *p;
	struct mworker **pw;
	sigset_t chld;
	int sfd, r;

	M.sock = sock;
	M.t = t;
	M.jail = jail;
	M.hooks = hooks;
	M.max_vms = max_vms ? max_vms : 1;
	M.nws = M.max_vms;
	M.keys_pid = M.keys_old = -1;
	M.ws = calloc(M.nws, sizeof(*M.ws));
	M.reqs = calloc(M.nws, sizeof(*M.reqs));
	p = calloc(MANAGER_FORKS_MAX + 2, sizeof(*p));
	pw = calloc(MANAGER_FORKS_MAX + 2, sizeof(*pw));
	if (!M.ws || !M.reqs || !p || !pw)
		fatalx("manager: out of memory");
	for (unsigned i = 0; i < M.nws; i++)
		M.ws[i].pid = -1;
	if (jail && (r = jail_uids_init(&M.uids, jail->uid_first,
					jail->uid_count)) < 0)
		fatalx("manager: worker uids: %s", strerror(-r));
	for (unsigned i = 0; i < MANAGER_FORKS_MAX; i++)
		worker_init(&M.forks[i]);
	/* Workers are our children: reap them, and say why one died. */
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		fatal("manager: signalfd");
	if (confine) {
		r = sandbox_install(vmm_manager_rules, vmm_manager_nrules);
		if (r < 0)
			fatalx("manager: seccomp: %s", strerror(-r));
		log_info("manager confined: seccomp filter on");
	}
	while (!M.gone) {
		nfds_t n = 2;
		int timeout = deadlines();

		p[0] = (struct pollfd){ .fd = sock, .events = POLLIN };
		if (ctl_pending(&M.out))
			p[0].events |= POLLOUT;
		p[1] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		for (unsigned i = 0; i < M.nws; i++)
			if (M.ws[i].st == M_FORKING) {
				pw[n] = &M.ws[i];
				p[n++] = (struct pollfd){ .fd = M.ws[i].w->ctl,
							  .events = POLLIN };
			}
		if (poll(p, n, timeout) < 0 && errno != EINTR)
			fatal("manager: poll");
		if (p[1].revents) {
			struct signalfd_siginfo si;

			while (read(sfd, &si, sizeof(si)) > 0)
				;
			reap();
		}
		for (nfds_t i = 2; i < n; i++)
			if (p[i].revents && pw[i]->st == M_FORKING)
				forking_event(pw[i]);
		if ((p[0].revents & POLLOUT) && ctl_flush(sock, &M.out) < 0)
			M.gone = true;
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR))
			frontend_event();
	}
	/* Our workers and the keys monitor die with us (PDEATHSIG). */
	_exit(0);
}

void manager_main(int sock, const struct cfg *cfg,
		  const struct manager_hooks *hooks)
{
	struct vm_config vc = {
		.kernel = cfg->template.kernel, .initrd = cfg->template.initrd,
		.cmdline = cfg->template.cmdline,
		.memory_mb = cfg->template.memory_mb,
		.vcpus = cfg->template.vcpus,
	};
	static char vm_path[4096];
	struct manager_jail jail = {
		.uid_first = cfg->vm.worker_uid_first,
		.uid_count = cfg->vm.worker_uid_count,
	};
	struct template *t = NULL;
	char err[512];

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	log_set_tag("clone[manager]");
	signal(SIGPIPE, SIG_IGN);
	/* Only our socket and stderr: not the front-end's files. */
	sock = only_fd3(sock);
	if (sock < 0)
		fatalx("manager: dup2: %s", strerror(-sock));
	mjail_open(cfg->server.state_dir, &jail, vm_path, sizeof(vm_path));
	/* The template first, unconfined: building one boots a VM. */
	if (template_open(&vc, cfg->server.state_dir, &t, err, sizeof(err)) < 0)
		fatalx("%s", err);
	log_info("template %s ready", t->key);
	manager_serve(sock, t, cfg->vm.max_vms, &jail, hooks, true);
}
