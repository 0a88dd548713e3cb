/* clone serve: the SSH front-end. One libssh event loop serves every
 * connection; it never opens /dev/kvm nor maps guest memory. A manager
 * process (forked at start, before any client) holds the template and
 * hands us ready VM worker processes (their control sockets, over
 * SCM_RIGHTS); we talk to workers directly and bridge each SSH channel to
 * the guest ports a worker gives us. */
#include "sshd/server.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sandbox.h"
#include "config/config.h"
#include "sshd/authkeys.h"
#include "sshd/chan_input.h"
#include "vmm/worker.h"

/* sshd/chan_input.h models libssh 0.10's channel window; another libssh
 * may grant it otherwise, and a client keeping to it could then be taken
 * for one that ignores it. */
#if LIBSSH_VERSION_INT < SSH_VERSION_INT(0, 10, 0) || \
	LIBSSH_VERSION_INT >= SSH_VERSION_INT(0, 11, 0)
#error "libssh 0.10 expected: check the window model in sshd/chan_input.h"
#endif

#define MAX_CONNS 1024
#define MAX_USERS 4096
#define MAX_CHANNELS 8		/* session channels per connection */
#define GUEST_UID 1000
#define CAPACITY_MSG "clone: host at capacity, try again later\r\n"

enum uvm_state { U_FREE, U_WAITING, U_STARTING, U_RUNNING, U_SUSPENDING,
		 U_SUSPENDED };

static const char *const state_name[] = {
	"none", "waiting", "starting", "running", "suspending", "suspended",
};

struct uvm {
	char user[33];
	enum uvm_state state;
	bool resume;		/* start from the suspended state on disk */
	struct worker w;
	int refs;		/* authenticated connections using it */
	time_t detached;	/* when refs dropped to 0 */
	time_t started;
	long priv_kib;		/* the worker's last WORKER_STATS, or -1 */
	struct timespec t_req;	/* when its clone or resume was asked for */
	struct uvm *next_wait;	/* queue for a worker from the manager */
};

struct conn;

struct chan {
	struct conn *conn;
	ssh_channel ch;
	struct ssh_channel_callbacks_struct cb;
	uint32_t id;
	bool pty, requested, opened, exited, client_eof, done;
	uint16_t rows, cols, status;
	char term[64];
	char env[AGENT_ENV_MAX];	/* LANG, LC_*: NAME=value\0... */
	uint16_t env_len;
	char *cmd;		/* NULL: login shell */
	int in_fd, io_fd, err_fd;	/* stdin (-1 with a pty), out, err */
	struct sshd_in in;	/* client input the guest has not taken yet */
	bool in_polled;		/* in_fd registered for POLLOUT */
	bool in_closed;		/* stdin closed for good: input is dropped */
	bool in_waiting;	/* a pull waits for the input budgets */
	bool out_paused;	/* client window full: io/err fds not polled */
	/* What the front-end itself adds (server-side clock): request to
	 * SESSION_OPEN sent, and guest output read to handed to libssh. */
	uint64_t t_req, req_ns, out_ns, out_reads;
};

struct conn {
	ssh_session s;
	struct ssh_server_callbacks_struct cb;
	char user[33];
	bool authed, capacity, dead;
	unsigned fails;
	ssh_event ev;		/* this connection's alone (see ev_poll) */
	time_t t0;
	struct uvm *vm;
	struct chan *chans[MAX_CHANNELS];
	/* Channel input: what its channels' buffers take (chan_input.h). */
	size_t in_used;
};

static struct {
	struct cfg *cfg;
	ssh_bind bind;
	int mgr;		/* manager socket */
	pid_t mgr_pid;
	int keys;		/* keys monitor socket */
	struct worker_jail jail;	/* the clone user, suspended/ */
	int susp_fd;		/* <state_dir>/suspended, opened as root */
	int run_fd;		/* <state_dir>/run: the status table */
	struct conn *conns[MAX_CONNS];
	struct uvm *users[MAX_USERS];
	struct uvm *wait_head, *wait_tail;
	uint32_t next_id;
	volatile sig_atomic_t stop;
	bool stopping;
} S;

/* ---- the event loop ---------------------------------------------------- */

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
#define EV_MAX_FD 65536

static struct {
	ssh_event_callback cb;	/* NULL: not watched */
	void *ud;
	short events;
	unsigned gen;		/* bumped by ev_add(): a poll of the fd's
				 * previous owner is not passed on */
} ev_w[EV_MAX_FD];
static int ev_top;		/* above the highest fd watched */

static int ev_add(int fd, short events, ssh_event_callback cb, void *ud)
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

static void ev_del(int fd)
{
	if (fd >= 0 && fd < EV_MAX_FD)
		ev_w[fd].cb = NULL;
}

static bool conn_input_stopped(const struct conn *k);
static void in_retry_waiters(void);

static void ev_poll(int timeout_ms)
{
	static struct pollfd *pfd;
	static struct { int who; unsigned gen; } *slot;	/* who: fd, or
							 * -1 - conn */
	static size_t cap;
	size_t n = 0, want = (size_t)ev_top + MAX_CONNS;

	in_retry_waiters();
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
		/* not read while its channels are full; its going is seen */
		pfd[n] = (struct pollfd){ .fd = fd, .events =
				conn_input_stopped(k) ? POLLRDHUP : POLLIN };
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
		}
	}
}

/* ---- the manager process ----------------------------------------------- */

static void reap_workers(void)
{
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		if (WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS)
			log_warnx("worker %d killed by SIGSYS: a system call "
				  "outside its seccomp filter", (int)pid);
		else if (WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL)
			log_warnx("worker %d killed by signal %d", (int)pid,
				  WTERMSIG(st));
		else if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
			log_warnx("worker %d exited with status %d", (int)pid,
				  WEXITSTATUS(st));
	}
}

static void manager_main(int sock, const struct cfg *cfg)
{
	struct vm_config vc = {
		.kernel = cfg->template.kernel, .initrd = cfg->template.initrd,
		.cmdline = cfg->template.cmdline,
		.memory_mb = cfg->template.memory_mb,
		.vcpus = cfg->template.vcpus,
	};
	struct template *t = NULL;
	char err[512];
	uint8_t req;
	sigset_t chld;
	int sfd;

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	log_set_tag("clone[manager]");
	signal(SIGPIPE, SIG_IGN);
	if (template_open(&vc, cfg->server.state_dir, &t, err, sizeof(err)) < 0)
		fatalx("%s", err);
	log_info("template %s ready", t->key);
	/* Workers are our children: reap them, and say why one died. */
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	sfd = signalfd(-1, &chld, SFD_CLOEXEC);
	for (;;) {
		struct pollfd p[2] = { { .fd = sock, .events = POLLIN },
				       { .fd = sfd, .events = POLLIN } };

		if (poll(p, sfd >= 0 ? 2 : 1, -1) < 0 && errno != EINTR)
			break;
		if (sfd >= 0 && p[1].revents) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) < 0 && errno != EAGAIN)
				break;
			reap_workers();
		}
		if (!p[0].revents)
			continue;
		if (recv(sock, &req, 1, 0) != 1)
			break;
		struct worker w;
		struct worker_msg m = { .type = WORKER_READY };
		struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
		union {
			char buf[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} u = { 0 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = u.buf,
				     .msg_controllen = sizeof(u.buf) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

		if (worker_spawn_ready(t, &S.jail, &w, NULL) < 0) {
			m.type = WORKER_FAILED;
			mh.msg_control = NULL;
			mh.msg_controllen = 0;
		} else {
			m.a = (uint64_t)w.pid;
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(c), &w.ctl, sizeof(int));
		}
		sendmsg(sock, &mh, MSG_NOSIGNAL);
		if (w.ctl >= 0)
			close(w.ctl);
	}
	template_close(t);
	_exit(0);
}

static int manager_start(void)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	S.mgr_pid = fork();
	if (S.mgr_pid < 0)
		return -errno;
	if (S.mgr_pid == 0) {
		close(sv[0]);
		manager_main(sv[1], S.cfg);
	}
	close(sv[1]);
	S.mgr = sv[0];
	return 0;
}

/* ---- the keys monitor -------------------------------------------------- */

/* The front-end runs as the clone user and cannot read authorized_keys
 * files, which may be anywhere (%u) and belong to root. A small process
 * forked before the drop keeps root's view of them and answers one
 * question, as OpenSSH's monitor does: does this key let this user in?
 * It trusts nothing of the request: the name and key are checked again,
 * and it signs a user up only if open_signup is on and the user has no
 * keys file. */
enum { KEYS_MATCH = 1, KEYS_SIGNUP };

struct keys_req {
	uint32_t op;
	char user[33];
	char type[40];
	char b64[4096];
};

static int keys_answer(const struct keys_req *q)
{
	char path[4096];
	ssh_key key = NULL;
	int r;

	if (!sshd_valid_user(q->user) || !sshd_key_type_ok(q->type))
		return -EINVAL;
	if (sshd_keys_path(S.cfg->server.authorized_keys, q->user, path,
			   sizeof(path)) < 0)
		return -ENAMETOOLONG;
	if (ssh_pki_import_pubkey_base64(q->b64, ssh_key_type_from_name(
						 q->type), &key) != SSH_OK)
		return -EINVAL;
	r = sshd_authkeys_file_match(path, key);
	if (q->op == KEYS_SIGNUP) {
		if (r == -ENOENT && S.cfg->server.open_signup)
			r = sshd_authkeys_write(path, key);
		else
			r = r == 1 ? 0 : -EPERM;
		if (r < 0)
			log_warnx("signup %s: %s: %s", q->user, path,
				  strerror(-r));
	}
	ssh_key_free(key);
	return r;
}

static void keys_main(int sock)
{
	struct keys_req q;
	ssize_t n;

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	log_set_tag("clone[keys]");
	sandbox_no_dumps();
	if (sandbox_install(sshd_keys_rules, sshd_keys_nrules) < 0)
		fatalx("keys monitor: seccomp");
	while ((n = recv(sock, &q, sizeof(q), 0)) > 0) {
		int32_t r = -EPROTO;

		if (n == (ssize_t)sizeof(q)) {
			q.user[sizeof(q.user) - 1] = 0;
			q.type[sizeof(q.type) - 1] = 0;
			q.b64[sizeof(q.b64) - 1] = 0;
			r = keys_answer(&q);
		}
		if (send(sock, &r, sizeof(r), MSG_NOSIGNAL) != sizeof(r))
			break;
	}
	_exit(0);
}

static int keys_start(void)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		close(sv[0]);
		close(S.mgr);
		close(S.susp_fd);
		close(S.run_fd);
		keys_main(sv[1]);
	}
	close(sv[1]);
	S.keys = sv[0];
	return 0;
}

/* Ask the keys monitor. 1 the key is the user's, 0 it is not, -ENOENT no
 * such user; for KEYS_SIGNUP 0 the key now is. Else -errno. */
static int keys_ask(uint32_t op, const char *user, ssh_key key)
{
	struct keys_req q = { .op = op };
	struct pollfd p = { .fd = S.keys, .events = POLLIN };
	const char *type = ssh_key_type_to_char(ssh_key_type(key));
	char *b64 = NULL;
	int32_t r;

	snprintf(q.user, sizeof(q.user), "%s", user);
	snprintf(q.type, sizeof(q.type), "%s", type ? type : "");
	if (ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK)
		return -EINVAL;
	if (strlen(b64) >= sizeof(q.b64)) {
		ssh_string_free_char(b64);
		return -E2BIG;
	}
	snprintf(q.b64, sizeof(q.b64), "%s", b64);
	ssh_string_free_char(b64);
	if (send(S.keys, &q, sizeof(q), MSG_NOSIGNAL) != sizeof(q))
		return -EPIPE;
	/* One small file read: answered in microseconds, or gone. */
	if (poll(&p, 1, 5000) != 1 ||
	    recv(S.keys, &r, sizeof(r), 0) != sizeof(r)) {
		log_warnx("the keys monitor did not answer");
		return -EPIPE;
	}
	return r;
}

/* ---- users' VMs -------------------------------------------------------- */

static struct uvm *uvm_find(const char *user, bool create)
{
	int free_slot = -1;

	for (int i = 0; i < MAX_USERS; i++) {
		if (S.users[i] && strcmp(S.users[i]->user, user) == 0)
			return S.users[i];
		if (!S.users[i] && free_slot < 0)
			free_slot = i;
	}
	if (!create || free_slot < 0)
		return NULL;
	S.users[free_slot] = calloc(1, sizeof(struct uvm));
	if (!S.users[free_slot])
		return NULL;
	snprintf(S.users[free_slot]->user, sizeof(S.users[0]->user), "%s",
		 user);
	S.users[free_slot]->w = (struct worker){ .pid = -1, .ctl = -1,
						 .term_fd = -1,
						 .sess_fd = { -1, -1, -1 } };
	return S.users[free_slot];
}

static unsigned active_vms(void)
{
	unsigned n = 0;

	for (int i = 0; i < MAX_USERS; i++)
		if (S.users[i] && S.users[i]->state != U_FREE &&
		    S.users[i]->state != U_SUSPENDED)
			n++;
	return n;
}

/* A suspended VM's copy on disk is dropped once the VM runs again (its
 * pages are in the worker's memory by then) or is gone: a restart after a
 * crash must not bring back a state older than the one lost with it. */
static void suspend_remove(const char *user)
{
	char p[64];

	snprintf(p, sizeof(p), "%s/state", user);
	unlinkat(S.susp_fd, p, 0);
	snprintf(p, sizeof(p), "%s/pages", user);
	unlinkat(S.susp_fd, p, 0);
	unlinkat(S.susp_fd, user, AT_REMOVEDIR);
}

static int worker_event(socket_t fd, int revents, void *userdata);

static void uvm_request(struct uvm *u)
{
	uint8_t req = 'W';

	u->state = U_WAITING;
	clock_gettime(CLOCK_MONOTONIC, &u->t_req);
	u->next_wait = NULL;
	if (S.wait_tail)
		S.wait_tail->next_wait = u;
	else
		S.wait_head = u;
	S.wait_tail = u;
	if (send(S.mgr, &req, 1, MSG_NOSIGNAL) != 1)
		log_warn("manager");
}

/* Make sure u's VM is running or on its way. false: at capacity. */
static bool uvm_want(struct uvm *u)
{
	if (u->state != U_FREE && u->state != U_SUSPENDED)
		return true;
	if (active_vms() >= S.cfg->vm.max_vms)
		return false;
	u->resume = u->state == U_SUSPENDED;
	uvm_request(u);
	return true;
}

static void chan_send_and_close(struct chan *c, const char *msg, int status);
static void chan_try_open(struct chan *c);

static void for_each_chan(struct uvm *u, void (*fn)(struct chan *, void *),
			  void *arg)
{
	for (int i = 0; i < MAX_CONNS; i++) {
		struct conn *k = S.conns[i];

		if (!k || k->vm != u)
			continue;
		for (int j = 0; j < MAX_CHANNELS; j++)
			if (k->chans[j])
				fn(k->chans[j], arg);
	}
}

static void end_chan_cb(struct chan *c, void *arg)
{
	if (!c->done)
		chan_send_and_close(c, arg, 255);
}

static void open_chan_cb(struct chan *c, void *arg)
{
	(void)arg;
	chan_try_open(c);
}

/* The VM is gone (powered off, crashed, killed): its sessions end with a
 * line saying so; the next login clones anew. */
static void uvm_lost(struct uvm *u, const char *why)
{
	char msg[256];

	log_info("vm %s: %s", u->user, why);
	snprintf(msg, sizeof(msg), "clone: your VM %s\r\n", why);
	if (u->w.ctl >= 0)
		ev_del(u->w.ctl);
	worker_destroy(&u->w, 0);
	u->state = U_FREE;
	for_each_chan(u, end_chan_cb, msg);
	suspend_remove(u->user);
}

static int manager_event(socket_t fd, int revents, void *userdata)
{
	struct worker_msg m;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;
	struct uvm *vm = S.wait_head;
	ssize_t n;
	int wfd = -1;

	(void)userdata;
	(void)revents;
	n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	if (n <= 0) {
		log_warnx("the VM manager is gone; stopping");
		S.stop = 1;
		ev_del(fd);
		return 0;
	}
	c = CMSG_FIRSTHDR(&mh);
	if (c && c->cmsg_type == SCM_RIGHTS)
		memcpy(&wfd, CMSG_DATA(c), sizeof(int));
	if (!vm) {
		if (wfd >= 0)
			close(wfd);
		return 0;
	}
	S.wait_head = vm->next_wait;
	if (!S.wait_head)
		S.wait_tail = NULL;
	if (n != (ssize_t)sizeof(m) || m.type != WORKER_READY || wfd < 0) {
		if (wfd >= 0)
			close(wfd);
		uvm_lost(vm, "could not be started");
		return 0;
	}
	vm->w = (struct worker){ .pid = (pid_t)m.a, .ctl = wfd, .term_fd = -1,
				 .sess_fd = { -1, -1, -1 } };
	memset(&m, 0, sizeof(m));
	if (vm->resume) {
		m.type = WORKER_GO_RESUME;	/* from suspended/<user> */
		snprintf(m.text, sizeof(m.text), "%s", vm->user);
	} else {
		char home[64];

		m.type = WORKER_GO;
		snprintf(home, sizeof(home), "/home/%s", vm->user);
		/* root = yes: uid 0, but the same name and home, so that
		 * the key changes who the user is, not where things are. */
		if (vm_identity_make(&m.id, vm->user,
				     S.cfg->vm.root ? 0 : GUEST_UID, home,
				     vm->user) < 0) {
			uvm_lost(vm, "could not be given an identity");
			return 0;
		}
	}
	vm->state = U_STARTING;
	vm->started = time(NULL);
	vm->priv_kib = -1;
	worker_send(&vm->w, &m);
	sodium_memzero(&m, sizeof(m));
	ev_add(wfd, POLLIN, worker_event, vm);
	return 0;
}

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

static int chan_fd_event(socket_t fd, int revents, void *userdata);
static void chan_maybe_finish(struct chan *c);
static void flush_input(struct chan *c);
static void in_chan_free(struct chan *c);

static int worker_event(socket_t fd, int revents, void *userdata)
{
	struct uvm *u = userdata;
	struct worker_msg m;
	struct chan *c;
	char dir[4096];
	int r;

	(void)fd;
	(void)revents;
	r = worker_recv(&u->w, &m, 0);
	if (r == -ETIMEDOUT)
		return 0;
	if (r < 0) {
		if (u->state == U_SUSPENDING) {
			/* the worker exits after suspending */
			ev_del(u->w.ctl);
			worker_destroy(&u->w, 0);
			u->state = U_SUSPENDED;
			return 0;
		}
		uvm_lost(u, "stopped unexpectedly");
		return 0;
	}
	switch (m.type) {
	case WORKER_STARTED:
		if (u->w.term_fd >= 0) {
			close(u->w.term_fd);
			u->w.term_fd = -1;
		}
		u->state = U_RUNNING;
		if (u->resume)
			suspend_remove(u->user);
		{
			struct timespec now;

			clock_gettime(CLOCK_MONOTONIC, &now);
			log_info("vm %s: %s in %.1f ms", u->user,
				 u->resume ? "resumed" : "cloned",
				 (double)(now.tv_sec - u->t_req.tv_sec) * 1e3 +
					 (double)(now.tv_nsec -
						  u->t_req.tv_nsec) / 1e6);
		}
		for_each_chan(u, open_chan_cb, NULL);
		break;
	case WORKER_ACKED:
		log_info("vm %s: identity applied in %.1f ms", u->user,
			 (double)m.a / 1e6);
		break;
	case WORKER_SESSION_OPENED:
		c = chan_by_id(u, (uint32_t)m.a);
		if (!c || (int64_t)m.b < 0) {
			for (int i = 0; i < 3; i++)
				if (u->w.sess_fd[i] >= 0)
					close(u->w.sess_fd[i]);
			if (c)
				chan_send_and_close(c, "clone: could not start "
						    "your session\r\n", 1);
			break;
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
			ev_add(c->err_fd, POLLIN,
					 chan_fd_event, c);
		}
		if (c->in_fd < 0)
			c->in_fd = dup(c->io_fd);	/* a pty: one fd */
		else
			fcntl(c->in_fd, F_SETFL, O_NONBLOCK);
		flush_input(c);
		break;
	case WORKER_SESSION_EXIT:
		c = chan_by_id(u, (uint32_t)m.a);
		if (c) {
			c->exited = true;
			c->status = (uint16_t)m.b;
			chan_maybe_finish(c);
		}
		break;
	case WORKER_SUSPENDED:
		log_info("vm %s: suspended to disk (%llu pages)", u->user,
			 (unsigned long long)m.a);
		ev_del(u->w.ctl);
		worker_destroy(&u->w, 5000);
		u->state = U_SUSPENDED;
		if (u->refs > 0)	/* someone came back meanwhile */
			uvm_want(u);
		break;
	case WORKER_EXITED: {
		char why[200];

		snprintf(why, sizeof(why), "ended (%s)",
			 m.text[0] ? m.text : "no reason given");
		uvm_lost(u, why);
		break;
	}
	case WORKER_STATS:
		u->priv_kib = (long)m.a;
		break;
	case WORKER_FAILED:
		log_warnx("vm %s: %s", u->user, m.text);
		if (u->state == U_SUSPENDING)
			u->state = U_RUNNING;
		else if (u->state == U_STARTING)
			uvm_lost(u, "could not be started");
		break;
	default:
		break;
	}
	(void)dir;
	return 0;
}

/* ---- channels ---------------------------------------------------------- */

static void chan_free(struct chan *c)
{
	/* libssh keeps a closed channel until the session ends and still
	 * calls its callbacks (write-wontblock whenever the socket drains):
	 * they must not see c once it is freed. */
	ssh_remove_channel_callbacks(c->ch, &c->cb);
	if (c->in_fd >= 0) {
		if (c->in_polled)
			ev_del(c->in_fd);
		close(c->in_fd);
	}
	if (c->io_fd >= 0) {
		if (!c->out_paused)
			ev_del(c->io_fd);
		close(c->io_fd);
	}
	if (c->err_fd >= 0) {
		if (!c->out_paused)
			ev_del(c->err_fd);
		close(c->err_fd);
	}
	free(c->cmd);
	in_chan_free(c);
	free(c);
}

static void chan_send_and_close(struct chan *c, const char *msg, int status)
{
	if (c->done)
		return;
	c->done = true;
	if (msg)
		ssh_channel_write_stderr(c->ch, msg, (uint32_t)strlen(msg));
	ssh_channel_request_send_exit_status(c->ch, status);
	ssh_channel_send_eof(c->ch);
	ssh_channel_close(c->ch);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void chan_maybe_finish(struct chan *c)
{
	static const char *const sig[32] = {
		[1] = "HUP", [2] = "INT", [3] = "QUIT", [4] = "ILL",
		[6] = "ABRT", [8] = "FPE", [9] = "KILL", [11] = "SEGV",
		[13] = "PIPE", [14] = "ALRM", [15] = "TERM",
	};

	if (c->done || !c->exited || c->io_fd >= 0 || c->err_fd >= 0)
		return;
	c->done = true;
	log_info("session %u: front-end overhead %.3f ms (request %.3f, "
		 "output %.3f over %llu reads)", c->id,
		 (double)(c->req_ns + c->out_ns) / 1e6, (double)c->req_ns / 1e6,
		 (double)c->out_ns / 1e6, (unsigned long long)c->out_reads);
	if (c->status >> 8) {
		int s = c->status & 0xff;

		ssh_channel_request_send_exit_signal(c->ch, s < 32 && sig[s] ?
						     sig[s] : "KILL", 0, "", "");
	} else {
		ssh_channel_request_send_exit_status(c->ch, c->status & 0xff);
	}
	ssh_channel_send_eof(c->ch);
	ssh_channel_close(c->ch);
}

/* Guest output goes out only as fast as the client's window allows: with
 * the window full, the session's output fds leave the poll set until it
 * opens again (and the guest's writes back up to the guest). */
static void output_pause(struct chan *c, bool pause)
{
	if (pause == c->out_paused)
		return;
	c->out_paused = pause;
	for (int i = 0; i < 2; i++) {
		int fd = i ? c->err_fd : c->io_fd;

		if (fd < 0)
			continue;
		if (pause)
			ev_del(fd);
		else
			ev_add(fd, POLLIN, chan_fd_event, c);
	}
}

static int cb_wontblock(ssh_session s, ssh_channel ch, uint32_t bytes,
			void *userdata)
{
	(void)s;
	(void)ch;
	if (bytes > 0)
		output_pause(userdata, false);
	return 0;
}

static int chan_fd_event(socket_t fd, int revents, void *userdata)
{
	struct chan *c = userdata;
	uint8_t buf[16384];
	uint32_t win = ssh_channel_window_size(c->ch);
	uint64_t t0;
	ssize_t n;

	(void)revents;
	if (win == 0 && !c->done) {
		output_pause(c, true);
		return 0;
	}
	/* No more than the window takes: libssh then sends it all now. */
	n = read(fd, buf, win && win < sizeof(buf) ? win : sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0) {
		ev_del(fd);
		close(fd);
		if (fd == c->io_fd)
			c->io_fd = -1;
		else
			c->err_fd = -1;
		chan_maybe_finish(c);
		return 0;
	}
	t0 = mono_ns();
	if (fd == c->err_fd)
		ssh_channel_write_stderr(c->ch, buf, (uint32_t)n);
	else
		ssh_channel_write(c->ch, buf, (uint32_t)n);
	c->out_ns += mono_ns() - t0;
	c->out_reads++;
	return 0;
}

static void chan_try_open(struct chan *c)
{
	struct uvm *u = c->conn->vm;
	struct worker_msg m = { .type = WORKER_SESSION_OPEN };

	if (!c->requested || c->opened || c->done || !u)
		return;
	/* Its VM was lost after this connection authenticated: a new clone,
	 * as for a new login. */
	if (u->state == U_FREE && !uvm_want(u)) {
		chan_send_and_close(c, CAPACITY_MSG, 1);
		return;
	}
	if (u->state != U_RUNNING)
		return;
	m.a = c->id;
	m.spawn.pty = c->pty;
	m.spawn.rows = c->rows ? c->rows : 24;
	m.spawn.cols = c->cols ? c->cols : 80;
	m.spawn.err_port = -1;
	snprintf(m.spawn.term, sizeof(m.spawn.term), "%s", c->term);
	if (c->cmd)
		snprintf(m.spawn.cmd, sizeof(m.spawn.cmd), "%s", c->cmd);
	memcpy(m.spawn.env, c->env, c->env_len);
	m.spawn.env_len = c->env_len;
	c->opened = true;	/* asked; the fds follow */
	/* Counted only when the VM was already up at the request: the wait
	 * for a clone is the VM's time, not the front-end's. */
	if (c->t_req)
		c->req_ns = mono_ns() - c->t_req;
	if (worker_send(&u->w, &m) < 0)
		chan_send_and_close(c, "clone: your VM is not answering\r\n",
				    255);
}

static void chan_start(struct chan *c, const char *cmd)
{
	if (c->requested)
		return;
	c->requested = true;
	if (cmd)
		c->cmd = strdup(cmd);
	if (c->conn->capacity || !c->conn->vm) {
		chan_send_and_close(c, CAPACITY_MSG, 1);
		return;
	}
	log_info("session %u for %s: %s%s", c->id, c->conn->user,
		 cmd ? "exec" : "shell", c->pty ? " with a pty" : "");
	c->opened = false;
	if (c->conn->vm->state == U_RUNNING)
		c->t_req = mono_ns();
	chan_try_open(c);
}

/* ---- channel input ----------------------------------------------------- */

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

static void in_chan_free(struct chan *c)
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
static void flush_input(struct chan *c)
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
	flush_input(userdata);
	return 0;
}

/* Channels whose pull waited for the budgets try again once a buffer has
 * been freed (ev_poll: outside libssh's callbacks). */
static void in_retry_waiters(void)
{
	if (!in_waiters || !in_released)
		return;
	in_released = false;
	for (int i = 0; i < MAX_CONNS && in_waiters; i++) {
		struct conn *k = S.conns[i];

		for (int j = 0; k && j < MAX_CHANNELS; j++)
			if (k->chans[j] && k->chans[j]->in_waiting)
				flush_input(k->chans[j]);
	}
}

/* Whether k's socket should not be read for now: every channel of it has
 * input held that its guest does not take yet, so that what a client
 * sends beyond the window waits in its own TCP buffers, not in ours. Not
 * while a channel waits for the client's window adjust (its guest may be
 * stopped on output, and take no input before), nor before a channel has
 * its stdin (its exec request is still to be read): then reading goes on,
 * and cb_data bounds what a client may send. */
static bool conn_input_stopped(const struct conn *k)
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
static int cb_data(ssh_session s, ssh_channel ch, void *data, uint32_t len,
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

static void cb_eof(ssh_session s, ssh_channel ch, void *userdata)
{
	struct chan *c = userdata;

	(void)s;
	(void)ch;
	c->client_eof = true;
	/* stdin's EOF: its port's host side closes once what came before is
	 * written (by flush_input, if some is still held). A terminal has
	 * none. */
	if (c->in_fd >= 0 && !c->in.len && !c->in.held && !c->pty)
		in_close(c);
}

static void cb_close(ssh_session s, ssh_channel ch, void *userdata)
{
	struct chan *c = userdata;
	struct uvm *u = c->conn->vm;

	(void)s;
	(void)ch;
	if (!c->done && c->requested && u && u->state == U_RUNNING) {
		struct worker_msg m = { .type = WORKER_SESSION_SIGNAL,
					.a = c->id, .b = SIGHUP };

		worker_send(&u->w, &m);
	}
	c->done = true;
}

static int cb_pty(ssh_session s, ssh_channel ch, const char *term, int w,
		  int h, int pw, int ph, void *userdata)
{
	struct chan *c = userdata;

	(void)s;
	(void)ch;
	(void)pw;
	(void)ph;
	c->pty = true;
	c->cols = (uint16_t)(w > 0 && w < 10000 ? w : 80);
	c->rows = (uint16_t)(h > 0 && h < 10000 ? h : 24);
	snprintf(c->term, sizeof(c->term), "%s", term);
	for (char *p = c->term; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
		      *p == '+' || *p == '_'))
			*p = '_';
	return SSH_OK;
}

static int cb_resize(ssh_session s, ssh_channel ch, int w, int h, int pw,
		     int ph, void *userdata)
{
	struct chan *c = userdata;
	struct uvm *u = c->conn->vm;
	struct worker_msg m = { .type = WORKER_SESSION_RESIZE };

	(void)s;
	(void)ch;
	(void)pw;
	(void)ph;
	c->cols = (uint16_t)(w > 0 && w < 10000 ? w : 80);
	c->rows = (uint16_t)(h > 0 && h < 10000 ? h : 24);
	if (u && u->state == U_RUNNING && c->opened) {
		m.a = c->id;
		m.spawn.rows = c->rows;
		m.spawn.cols = c->cols;
		worker_send(&u->w, &m);
	}
	return SSH_OK;
}

static int cb_env(ssh_session s, ssh_channel ch, const char *name,
		  const char *value, void *userdata)
{
	struct chan *c = userdata;

	(void)s;
	(void)ch;
	if (strcmp(name, "TERM") == 0) {
		snprintf(c->term, sizeof(c->term), "%s", value);
		return SSH_OK;
	}
	if (agent_env_ok(name, value)) {
		size_t l = strlen(name) + 1 + strlen(value) + 1;

		if (c->env_len + l > sizeof(c->env))
			return SSH_ERROR;
		snprintf(c->env + c->env_len, l, "%s=%s", name, value);
		c->env_len = (uint16_t)(c->env_len + l);
		return SSH_OK;
	}
	return SSH_ERROR;
}

static int cb_shell(ssh_session s, ssh_channel ch, void *userdata)
{
	(void)s;
	(void)ch;
	chan_start(userdata, NULL);
	return SSH_OK;
}

static int cb_exec(ssh_session s, ssh_channel ch, const char *cmd,
		   void *userdata)
{
	(void)s;
	(void)ch;
	if (strlen(cmd) > AGENT_CMD_MAX)
		return SSH_ERROR;
	chan_start(userdata, cmd);
	return SSH_OK;
}

static ssh_channel cb_channel_open(ssh_session s, void *userdata)
{
	struct conn *k = userdata;
	struct chan *c;
	int slot = -1;

	if (!k->authed)
		return NULL;
	for (int i = 0; i < MAX_CHANNELS; i++)
		if (!k->chans[i]) {
			slot = i;
			break;
		}
	if (slot < 0 || !(c = calloc(1, sizeof(*c))))
		return NULL;
	c->ch = ssh_channel_new(s);
	if (!c->ch) {
		free(c);
		return NULL;
	}
	c->conn = k;
	c->id = ++S.next_id ? S.next_id : ++S.next_id;
	c->in_fd = c->io_fd = c->err_fd = -1;
	c->cb = (struct ssh_channel_callbacks_struct){
		.userdata = c,
		.channel_data_function = cb_data,
		.channel_eof_function = cb_eof,
		.channel_close_function = cb_close,
		.channel_pty_request_function = cb_pty,
		.channel_pty_window_change_function = cb_resize,
		.channel_env_request_function = cb_env,
		.channel_shell_request_function = cb_shell,
		.channel_exec_request_function = cb_exec,
		.channel_write_wontblock_function = cb_wontblock,
	};
	ssh_callbacks_init(&c->cb);
	ssh_set_channel_callbacks(c->ch, &c->cb);
	k->chans[slot] = c;
	return c->ch;
}

/* ---- connections and authentication ------------------------------------ */

static void fingerprint(ssh_key key, char *out, size_t len)
{
	unsigned char *hash = NULL;
	size_t hlen = 0;
	char *fp;

	snprintf(out, len, "?");
	if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash,
				   &hlen) < 0)
		return;
	fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
	if (fp)
		snprintf(out, len, "%s", fp);
	ssh_string_free_char(fp);
	ssh_clean_pubkey_hash(&hash);
}

static int auth_denied(struct conn *k)
{
	if (++k->fails >= S.cfg->server.max_auth_tries) {
		log_info("auth: too many failures for %s; disconnecting",
			 k->user);
		k->dead = true;
	}
	return SSH_AUTH_DENIED;
}

static int cb_auth_pubkey(ssh_session s, const char *user,
			  struct ssh_key_struct *key, char state,
			  void *userdata)
{
	struct conn *k = userdata;
	char fp[128];
	const char *type = ssh_key_type_to_char(ssh_key_type(key));
	int r;

	(void)s;
	snprintf(k->user, sizeof(k->user), "%s", user);
	if (!sshd_valid_user(user)) {
		log_info("auth: invalid user name refused");
		return auth_denied(k);
	}
	if (!type || !sshd_key_type_ok(type))
		return auth_denied(k);
	r = keys_ask(KEYS_MATCH, user, key);
	if (r == -ENOENT && !S.cfg->server.open_signup) {
		if (state == SSH_PUBLICKEY_STATE_VALID)
			log_info("auth: unknown user %s", user);
		return auth_denied(k);
	}
	if (r == 0 || (r < 0 && r != -ENOENT))
		return auth_denied(k);
	if (state == SSH_PUBLICKEY_STATE_NONE)
		return SSH_AUTH_SUCCESS;	/* this key would do: sign */
	if (state != SSH_PUBLICKEY_STATE_VALID)
		return auth_denied(k);
	fingerprint(key, fp, sizeof(fp));
	if (r == -ENOENT) {
		if (keys_ask(KEYS_SIGNUP, user, key) < 0)
			return auth_denied(k);
		log_info("signup: %s claimed with %s %s", user, type, fp);
	}
	log_info("auth: %s accepted with %s %s", user, type, fp);
	k->authed = true;
	k->vm = uvm_find(user, true);
	if (!k->vm) {
		k->capacity = true;
		return SSH_AUTH_SUCCESS;
	}
	k->vm->refs++;
	/* Start the clone now, while the client sets up its channel. */
	if (!uvm_want(k->vm)) {
		log_info("vm %s: refused, host at capacity (%u VMs)", user,
			 active_vms());
		k->capacity = true;
		k->vm->refs--;
		k->vm = NULL;
	}
	return SSH_AUTH_SUCCESS;
}

static void conn_free(int i)
{
	struct conn *k = S.conns[i];

	for (int j = 0; j < MAX_CHANNELS; j++)
		if (k->chans[j]) {
			struct chan *c = k->chans[j];

			if (!c->done && c->requested && k->vm &&
			    k->vm->state == U_RUNNING) {
				struct worker_msg m = {
					.type = WORKER_SESSION_SIGNAL,
					.a = c->id, .b = SIGHUP };

				worker_send(&k->vm->w, &m);
			}
			chan_free(c);
		}
	if (k->vm && --k->vm->refs == 0) {
		k->vm->detached = time(NULL);
		log_info("vm %s: detached", k->vm->user);
	}
	if (k->ev) {
		ssh_event_remove_session(k->ev, k->s);
		ssh_event_free(k->ev);
	}
	ssh_disconnect(k->s);
	ssh_free(k->s);
	free(k);
	S.conns[i] = NULL;
}

static int accept_event(socket_t fd, int revents, void *userdata)
{
	struct conn *k;
	int slot = -1, r;

	(void)fd;
	(void)revents;
	(void)userdata;
	for (int i = 0; i < MAX_CONNS; i++)
		if (!S.conns[i]) {
			slot = i;
			break;
		}
	k = calloc(1, sizeof(*k));
	if (!k)
		return 0;
	k->s = ssh_new();
	if (!k->s || ssh_bind_accept(S.bind, k->s) != SSH_OK) {
		if (k->s)
			ssh_free(k->s);
		free(k);
		return 0;
	}
	if (slot < 0 || S.stopping) {
		ssh_disconnect(k->s);
		ssh_free(k->s);
		free(k);
		return 0;
	}
	k->t0 = time(NULL);
	k->cb = (struct ssh_server_callbacks_struct){
		.userdata = k,
		.auth_pubkey_function = cb_auth_pubkey,
		.channel_open_request_session_function = cb_channel_open,
	};
	ssh_callbacks_init(&k->cb);
	ssh_set_server_callbacks(k->s, &k->cb);
	ssh_set_auth_methods(k->s, SSH_AUTH_METHOD_PUBLICKEY);
	ssh_set_blocking(k->s, 0);
	r = ssh_handle_key_exchange(k->s);
	if (r == SSH_ERROR) {
		ssh_free(k->s);
		free(k);
		return 0;
	}
	k->ev = ssh_event_new();
	if (!k->ev || ssh_event_add_session(k->ev, k->s) != SSH_OK) {
		ssh_event_free(k->ev);
		ssh_free(k->s);
		free(k);
		return 0;
	}
	S.conns[slot] = k;
	log_info("connection %d accepted", slot);
	return 0;
}

/* ---- timers, status, start and stop ------------------------------------ */

static void write_status(void)
{
	time_t now = time(NULL);
	FILE *f;
	int fd;

	fd = openat(S.run_fd, "status.tmp",
		    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	fprintf(f, "%-16s %-10s %8s %8s %11s %8s\n", "USER", "STATE",
		"UPTIME", "SESSIONS", "PRIVATE_MIB", "PID");
	for (int i = 0; i < MAX_USERS; i++) {
		struct uvm *u = S.users[i];
		long priv;

		if (!u || u->state == U_FREE)
			continue;
		/* Workers are not dumpable: they tell us (WORKER_STATS). */
		priv = u->state == U_RUNNING ? u->priv_kib : -1;
		fprintf(f, "%-16s %-10s %7lds %8d ", u->user,
			state_name[u->state],
			u->state == U_SUSPENDED ? 0L : (long)(now - u->started),
			u->refs);
		if (priv >= 0)
			fprintf(f, "%11.1f", (double)priv / 1024);
		else
			fprintf(f, "%11s", "-");
		fprintf(f, " %8d\n", u->w.pid > 0 ? (int)u->w.pid : 0);
	}
	fclose(f);
	renameat(S.run_fd, "status.tmp", S.run_fd, "status");
}

static void tick(void)
{
	time_t now = time(NULL);

	for (int i = 0; i < MAX_CONNS; i++) {
		struct conn *k = S.conns[i];
		int st;

		if (!k)
			continue;
		st = ssh_get_status(k->s);
		if (!k->authed && now - k->t0 >= S.cfg->server.login_grace_time) {
			log_info("connection %d: login grace time over", i);
			k->dead = true;
		}
		for (int j = 0; j < MAX_CHANNELS; j++) {
			struct chan *c = k->chans[j];

			if (c && c->out_paused &&
			    ssh_channel_window_size(c->ch) > 0)
				output_pause(c, false);
			if (c && c->done && !ssh_channel_is_open(c->ch)) {
				ssh_channel ch = c->ch;

				chan_free(c);
				k->chans[j] = NULL;
				/* the session's own copy, freed now or when the
				 * client's CLOSE arrives (ssh_free frees those
				 * of a connection that ends) */
				ssh_channel_free(ch);
			}
		}
		if (k->dead || (st & (SSH_CLOSED | SSH_CLOSED_ERROR)) ||
		    !ssh_is_connected(k->s)) {
			log_info("connection %d closed", i);
			conn_free(i);
		}
	}
	for (int i = 0; i < MAX_USERS; i++) {
		struct uvm *u = S.users[i];
		struct worker_msg m = { .type = WORKER_SUSPEND };

		if (!u || u->refs > 0)
			continue;
		if (u->state == U_RUNNING &&
		    (now - u->detached >= S.cfg->vm.detach_timeout ||
		     S.stopping)) {
			/* suspended/<user>, where the worker is chrooted */
			mkdirat(S.susp_fd, u->user, 0700);
			snprintf(m.text, sizeof(m.text), "%s", u->user);
			u->state = U_SUSPENDING;
			log_info("vm %s: suspending", u->user);
			worker_send(&u->w, &m);
		} else if (u->state == U_SUSPENDED && !S.stopping &&
			   now - u->detached >= S.cfg->vm.reap_timeout) {
			uvm_lost(u, "reaped");
		}
	}
	for (int i = 0; i < MAX_USERS; i++) {
		struct worker_msg m = { .type = WORKER_STAT };
		struct uvm *u = S.users[i];

		if (u && u->state == U_RUNNING)
			worker_send(&u->w, &m);
		/* No VM and nobody logged in: the record goes, or every name
		 * that ever logged in (or was refused at capacity) would hold
		 * a slot until MAX_USERS locks everyone out. */
		if (u && u->state == U_FREE && u->refs == 0) {
			free(u);
			S.users[i] = NULL;
		}
	}
	write_status();
}

static void on_signal(int sig)
{
	(void)sig;
	S.stop = 1;
}

static int host_key(const char *path)
{
	ssh_key key = NULL;
	int r;

	if (access(path, R_OK) == 0)
		return 0;
	if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK)
		return -EIO;
	r = ssh_pki_export_privkey_file(key, NULL, NULL, NULL, path);
	ssh_key_free(key);
	if (r != SSH_OK)
		return -EIO;
	chmod(path, 0600);
	log_info("host key created: %s", path);
	return 0;
}

static void own_suspended(const char *user)
{
	static const char *const name[] = { "", "/state", "/pages" };
	char p[300];

	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s%s", user, name[i]);
		if (fchownat(S.susp_fd, p, S.jail.uid, S.jail.gid,
			     AT_SYMLINK_NOFOLLOW) < 0 && errno != ENOENT)
			log_warn("suspended/%s", p);
	}
}

/* A directory of state_dir the unprivileged processes write in: made if
 * missing, given to the clone user, and opened now, while we are root,
 * so that they need no path above it. */
static int own_dir(const char *name, mode_t mode, char *path, size_t len)
{
	int fd;

	snprintf(path, len, "%s/%s", S.cfg->server.state_dir, name);
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		fatal("%s", path);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		fatal("%s", path);
	if (fchown(fd, S.jail.uid, S.jail.gid) < 0 || fchmod(fd, mode) < 0)
		fatal("%s", path);
	return fd;
}

/* Who the workers and the front-end become: [vm] user. Not being root
 * (a developer's own account in the kvm group), we stay who we are. */
static void jail_init(void)
{
	static char root[4096];
	char run[4096];
	int r;

	if (geteuid() != 0) {
		S.jail.uid = getuid();
		S.jail.gid = getgid();
		log_info("not root: workers and front-end keep uid %u; no "
			 "chroot", (unsigned)S.jail.uid);
	} else {
		r = sandbox_user(S.cfg->vm.user, &S.jail.uid, &S.jail.gid);
		if (r == -ENOENT)
			fatalx("%s: [vm] user %s does not exist; create it: "
			       "useradd --system --no-create-home --shell "
			       "/usr/sbin/nologin %s", S.cfg->path ?
			       S.cfg->path : "defaults", S.cfg->vm.user,
			       S.cfg->vm.user);
		if (r < 0)
			fatalx("[vm] user %s: %s", S.cfg->vm.user,
			       strerror(-r));
		if (S.jail.uid == 0 || S.jail.gid == 0)
			fatalx("[vm] user %s: must not be root (uid/gid 0)",
			       S.cfg->vm.user);
	}
	S.susp_fd = own_dir("suspended", 0700, root, sizeof(root));
	S.run_fd = own_dir("run", 0755, run, sizeof(run));
	S.jail.root = root;
}

/* The front-end has its socket and its host key: from here on it is the
 * clone user, cannot regain anything, and makes only the system calls in
 * frontend_seccomp.c. */
static void frontend_confine(void)
{
	int r;

	if ((r = sandbox_drop(S.jail.uid, S.jail.gid)) < 0)
		fatalx("dropping to %s: %s", S.cfg->vm.user, strerror(-r));
	sandbox_no_dumps();
	if ((r = sandbox_install(sshd_frontend_rules,
				 sshd_frontend_nrules)) < 0)
		fatalx("seccomp: %s", strerror(-r));
	log_info("front-end confined: uid %u, seccomp filter on",
		 (unsigned)S.jail.uid);
}

/* VMs suspended by an earlier run come back as suspended. */
static void load_suspended(void)
{
	char dir[4096];
	DIR *d;
	struct dirent *e;

	snprintf(dir, sizeof(dir), "%s/suspended", S.cfg->server.state_dir);
	d = opendir(dir);
	while (d && (e = readdir(d))) {
		char st[4600];
		struct uvm *u;

		snprintf(st, sizeof(st), "%s/%s/state", dir, e->d_name);
		if (!sshd_valid_user(e->d_name) || access(st, R_OK) != 0)
			continue;
		u = uvm_find(e->d_name, true);
		if (!u)
			continue;
		/* Written by an earlier run, perhaps as another user: the
		 * worker that resumes it runs as the clone user. */
		own_suspended(e->d_name);
		u->state = U_SUSPENDED;
		u->detached = time(NULL);
		log_info("vm %s: suspended (from an earlier run)", u->user);
	}
	if (d)
		closedir(d);
}

static int busy_vms(void)
{
	int n = 0;

	for (int i = 0; i < MAX_USERS; i++)
		if (S.users[i] && (S.users[i]->state == U_SUSPENDING ||
				   S.users[i]->state == U_STARTING ||
				   S.users[i]->state == U_WAITING))
			n++;
	return n;
}

int sshd_serve(struct cfg *cfg)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct rlimit rl;
	int r = 1, port = cfg->server.listen_port;
	time_t last = 0, stop_at = 0;

	S.cfg = cfg;
	S.mgr = S.keys = S.susp_fd = S.run_fd = -1;
	signal(SIGPIPE, SIG_IGN);
	/* A few fds per connection and per session: use what we may, up to
	 * what the event table holds. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max < EV_MAX_FD ? rl.rlim_max : EV_MAX_FD;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (mkdir(cfg->server.state_dir, 0700) < 0 && errno != EEXIST)
		fatal("%s", cfg->server.state_dir);
	jail_init();
	if (host_key(cfg->server.host_key) < 0)
		fatalx("%s: cannot create the host key", cfg->server.host_key);
	if (manager_start() < 0)
		fatal("starting the VM manager");
	if (keys_start() < 0)
		fatal("starting the keys monitor");
	S.bind = ssh_bind_new();
	ssh_bind_options_set(S.bind, SSH_BIND_OPTIONS_BINDADDR,
			     cfg->server.listen_host);
	ssh_bind_options_set(S.bind, SSH_BIND_OPTIONS_BINDPORT, &port);
	ssh_bind_options_set(S.bind, SSH_BIND_OPTIONS_HOSTKEY,
			     cfg->server.host_key);
	if (ssh_bind_listen(S.bind) != SSH_OK)
		fatalx("listen on %s:%d: %s", cfg->server.listen_host, port,
		       ssh_get_error(S.bind));
	ssh_bind_set_blocking(S.bind, 0);
	ev_add(ssh_bind_get_fd(S.bind), POLLIN, accept_event,
			 NULL);
	ev_add(S.mgr, POLLIN, manager_event, NULL);
	load_suspended();
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	frontend_confine();
	log_info("listening on %s:%d", cfg->server.listen_host, port);

	for (;;) {
		time_t now;

		ev_poll(200);
		now = time(NULL);
		if (S.stop && !S.stopping) {
			log_info("stopping: no new connections; suspending "
				 "running VMs to disk");
			S.stopping = true;
			stop_at = now;
			ev_del(ssh_bind_get_fd(S.bind));
			for (int i = 0; i < MAX_CONNS; i++)
				if (S.conns[i])
					S.conns[i]->dead = true;
			last = 0;
		}
		if (now != last) {
			tick();
			last = now;
		}
		if (S.stopping && ((active_vms() == 0 || busy_vms() == 0) &&
				   active_vms() == 0)) {
			r = 0;
			break;
		}
		if (S.stopping && now - stop_at > 60) {
			log_warnx("stopping: VMs still busy after 60 s");
			break;
		}
	}
	ssh_bind_free(S.bind);
	if (S.mgr >= 0)
		close(S.mgr);
	if (S.keys >= 0)
		close(S.keys);
	log_info("stopped");
	return r;
}
