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
#include <netinet/in.h>
#include <linux/tcp.h>	/* glibc's tcp_info lacks tcpi_bytes_received */
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

#include "common/clock.h"
#include "common/log.h"
#include "common/sandbox.h"
#include "config/config.h"
#include "sshd/admit.h"
#include "sshd/authkeys.h"
#include "sshd/chan_input.h"
#include "sshd/keys_monitor.h"
#include "sshd/state_dir.h"
#include "vmm/manager.h"
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
	long disk_kib;		/* its suspended image, while U_SUSPENDED */
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
	ssh_message auth_msg;	/* waiting for the keys monitor, or NULL */
	uint32_t auth_op;	/* what it was asked: enum keys_op */
	struct sockaddr_storage peer;
	char peer_str[64];	/* for log lines */
	time_t unused_since;	/* authenticated, with no channel since */
	time_t last_rx;		/* the client last sent something */
	uint64_t rx_bytes;	/* TCP bytes from it, as of last_rx */
	time_t alive_sent;	/* our last keepalive */
	unsigned alive_missed;	/* keepalives sent since last_rx */
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
	struct keys_client kc;	/* the keys monitor */
	bool keys_asked;	/* the manager is starting one */
	time_t keys_asked_at;
	struct admit_signups signups;	/* the last hour's */
	struct worker_jail jail;	/* the clone user: the front-end's */
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

static void conn_messages(struct conn *k);
static void conn_free(int i);
static void keys_replace(void);

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

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
		/* Not read while its auth request waits for the keys
		 * monitor, or while its channels are full: what it sends
		 * meanwhile waits in the kernel; its going is seen. */
		pfd[n] = (struct pollfd){ .fd = fd, .events =
			k->auth_msg || k->dead || conn_input_stopped(k) ?
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
			conn_messages(S.conns[-1 - who]);
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

/* ---- the VM manager (vmm/manager.c) ----------------------------------- */

/* Our side of the manager's socket (S.mgr is its fd). It forks, kills and
 * reaps the workers: we are not their parent, and ask. */
static struct manager MG;

static int manager_event(socket_t fd, int revents, void *userdata);

/* The manager's socket is polled for POLLOUT only while requests wait. */
static void mgr_watch(void)
{
	short ev = (short)(POLLIN | (manager_pending(&MG) ? POLLOUT : 0));

	if (S.mgr >= 0 && ev_w[S.mgr].cb == manager_event &&
	    ev_w[S.mgr].events != ev)
		ev_add(S.mgr, ev, manager_event, NULL);
}

/* The keys monitor runs as a child of the manager, which alone can kill
 * and replace it (we are the clone user, and may not fork). */
static void keys_main_hook(int sock, void *arg)
{
	keys_monitor_main(sock, arg);
}

static int mgr_start(void)
{
	static struct manager_hooks hooks = { .keys_main = keys_main_hook };
	int r;

	hooks.arg = S.cfg;
	r = manager_start(S.cfg, &hooks, &MG);

	if (r == 0) {
		S.mgr = MG.sock;
		S.mgr_pid = MG.pid;
	}
	return r;
}

/* A worker we no longer talk to: the manager ends it (SIGKILL after its
 * grace period) and reaps it; until it says MGR_GONE the worker counts
 * against max_vms (manager_ending()). */
static void worker_let_go(struct worker *w)
{
	pid_t pid = w->pid;
	int r;

	if (w->ctl >= 0)
		ev_del(w->ctl);
	worker_close(w);
	w->pid = -1;
	if (pid > 0 && (r = manager_end(&MG, pid)) < 0)
		log_warnx("worker %d: asking the manager to end it: %s",
			  (int)pid, strerror(-r));
	mgr_watch();
}

/* ---- the keys monitor -------------------------------------------------- */

/* keys_monitor.h: the monitor answers, asynchronously, whether a key lets
 * a user in. Its answers come here and go on with the login that asked. */
static void keys_done(void *owner, int r);

static int keys_event(socket_t fd, int revents, void *userdata)
{
	(void)fd;
	(void)revents;
	(void)userdata;
	if (keys_client_read(&S.kc, keys_done) < 0)
		keys_replace();
	return 0;
}

/* Ask the manager for a (new) keys monitor: it kills the old one, if
 * any, and forks another; MGR_KEYS_READY brings its socket. At most one
 * request in flight, and one a second: a monitor that dies at once must
 * not make the manager fork in a loop (tick() asks again). */
static void keys_start(void)
{
	time_t now = time(NULL);
	int r;

	if (S.keys_asked || now == S.keys_asked_at)
		return;
	S.keys_asked_at = now;
	if ((r = manager_keys(&MG)) < 0) {
		log_warnx("keys monitor: asking the manager: %s", strerror(-r));
		return;
	}
	S.keys_asked = true;
	mgr_watch();
}

static void keys_ready(int fd)
{
	S.keys_asked = false;
	keys_client_attach(&S.kc, fd, mono_ms());
	ev_add(S.kc.fd, POLLIN, keys_event, NULL);
	log_info("keys monitor ready");
}

/* The monitor went away or stopped answering: the lookups in flight wait
 * for the next one (or their deadlines), which the manager starts after
 * killing this one. */
static void keys_replace(void)
{
	if (S.kc.fd >= 0) {
		ev_del(S.kc.fd);
		log_warnx("keys monitor: gone or not answering; replacing it");
	}
	keys_client_attach(&S.kc, -1, mono_ms());
	keys_start();
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
	/* and workers the manager has yet to kill and reap */
	return n + manager_ending(&MG);
}

static int worker_event(socket_t fd, int revents, void *userdata);

static void uvm_lost(struct uvm *u, const char *why);

/* Answers come in the order asked: u waits at the tail for its worker. */
static void uvm_request(struct uvm *u)
{
	int r;

	u->state = U_WAITING;
	clock_gettime(CLOCK_MONOTONIC, &u->t_req);
	u->next_wait = NULL;
	r = manager_spawn(&MG);
	if (r < 0) {
		/* no answer will come for it */
		log_warnx("vm %s: asking the manager: %s", u->user,
			  strerror(-r));
		uvm_lost(u, "could not be started");
		return;
	}
	mgr_watch();
	if (S.wait_tail)
		S.wait_tail->next_wait = u;
	else
		S.wait_head = u;
	S.wait_tail = u;
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
static void uvm_end(struct uvm *u, const char *why)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "clone: your VM %s\r\n", why);
	worker_let_go(&u->w);
	u->state = U_FREE;
	for_each_chan(u, end_chan_cb, msg);
	/* A suspended copy is dropped with the VM: a restart must not bring
	 * back a state older than the one lost. The manager alone may touch
	 * suspended/. */
	if (manager_drop(&MG, u->user) < 0)
		log_warnx("vm %s: asking the manager to drop its suspended "
			  "copy failed", u->user);
	mgr_watch();
}

static void uvm_lost(struct uvm *u, const char *why)
{
	log_info("vm %s: %s", u->user, why);
	uvm_end(u, why);
}

static int worker_event(socket_t fd, int revents, void *userdata);

/* The worker's socket is polled for POLLOUT only while messages wait. */
static void vm_watch(struct uvm *u)
{
	int fd = u->w.ctl;
	short ev = (short)(POLLIN | (worker_pending(&u->w) ? POLLOUT : 0));

	if (fd >= 0 && fd < EV_MAX_FD && ev_w[fd].cb == worker_event &&
	    ev_w[fd].events != ev)
		ev_add(fd, ev, worker_event, u);
}

/* worker_send(), never blocking. A worker that stops reading is dropped
 * from worker_event() (see worker_send()), not here: callers are in the
 * middle of walking channels and connections. */
static int vm_send(struct uvm *u, const struct worker_msg *m)
{
	int r = worker_send(&u->w, m);

	vm_watch(u);
	return r;
}

static void on_stashed(const struct worker_msg *m);
static void on_unstashed(const struct worker_msg *m);

static int manager_event(socket_t fd, int revents, void *userdata)
{
	struct worker_msg m;
	struct uvm *vm = S.wait_head;
	char home[64];
	int wfd = -1, r;

	(void)userdata;
	if ((revents & POLLOUT) && manager_flush(&MG) < 0)
		revents |= POLLHUP;	/* the read below says how */
	mgr_watch();
	if (!(revents & (POLLIN | POLLHUP | POLLERR)))
		return 0;
	r = manager_recv(&MG, &m, &wfd);
	if (r == -EAGAIN || r == -EPROTO)	/* -EPROTO: logged */
		return 0;
	if (r < 0) {
		log_warnx("the VM manager is gone; stopping");
		S.stop = 1;
		ev_del(fd);
		return 0;
	}
	switch (m.type) {
	case MGR_WORKER:
		break;
	case MGR_FAILED:
		if (m.a == MGR_SPAWN)
			break;
		if (m.a == MGR_KEYS)
			S.keys_asked = false;	/* tick() asks again */
		log_warnx("VM manager: %s", m.text);
		return 0;
	case MGR_KEYS_READY:
		keys_ready(wfd);
		return 0;
	case MGR_STASHED:
		on_stashed(&m);
		return 0;
	case MGR_UNSTASHED:
		on_unstashed(&m);
		return 0;
	default:		/* MGR_GONE: manager_ending() counts it no more */
		return 0;
	}
	if (!vm) {		/* cannot be: manager_recv() checks answers */
		if (wfd >= 0)
			close(wfd);
		if (m.type == MGR_WORKER)
			manager_end(&MG, (pid_t)m.a);
		mgr_watch();
		return 0;
	}
	S.wait_head = vm->next_wait;
	if (!S.wait_head)
		S.wait_tail = NULL;
	if (m.type == MGR_FAILED) {
		log_warnx("vm %s: %s", vm->user, m.text);
		uvm_lost(vm, "could not be started");
		return 0;
	}
	worker_adopt(&vm->w, (pid_t)m.a, wfd);
	ev_add(wfd, POLLIN, worker_event, vm);
	memset(&m, 0, sizeof(m));
	vm->state = U_STARTING;
	vm->started = time(NULL);
	vm->priv_kib = -1;
	if (vm->resume) {
		/* Its suspended VM goes into the worker's own directory
		 * first; GO_RESUME once the manager says it is there
		 * (on_unstashed()). */
		if (manager_unstash(&MG, vm->w.pid, vm->user) < 0)
			uvm_lost(vm, "could not be resumed");
		mgr_watch();
		return 0;
	}
	m.type = WORKER_GO;
	snprintf(home, sizeof(home), "/home/%s", vm->user);
	/* root = yes: uid 0, but the same name and home, so that the key
	 * changes who the user is, not where things are. */
	if (vm_identity_make(&m.id, vm->user, S.cfg->vm.root ? 0 : GUEST_UID,
			     home, vm->user) < 0) {
		uvm_lost(vm, "could not be given an identity");
		return 0;
	}
	vm_send(vm, &m);
	sodium_memzero(&m, sizeof(m));
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
	for_each_chan(u, open_chan_cb, NULL);
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
	flush_input(c);
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
	r = manager_stash(&MG, u->w.pid, u->user);
	worker_let_go(&u->w);	/* it exits by itself */
	if (r < 0)
		uvm_lost(u, "could not be suspended");
}

static void on_stashed(const struct worker_msg *m)
{
	struct uvm *u = uvm_find(m->text, false);

	if (!u || u->state != U_SUSPENDING)
		return;		/* lost meanwhile: MGR_DROP follows */
	if ((int64_t)m->b < 0) {
		uvm_lost(u, "could not be suspended");
		return;
	}
	u->state = U_SUSPENDED;
	if (u->refs > 0)	/* someone came back meanwhile */
		uvm_want(u);
}

/* The suspended VM is in the worker's directory: it may resume. */
static void on_unstashed(const struct worker_msg *m)
{
	struct worker_msg go = { .type = WORKER_GO_RESUME };
	struct uvm *u = uvm_find(m->text, false);

	if (!u || u->state != U_STARTING || !u->resume ||
	    u->w.pid != (pid_t)m->a)
		return;		/* that worker is gone already */
	if ((int64_t)m->b < 0) {
		uvm_lost(u, "could not be resumed");
		return;
	}
	snprintf(go.text, sizeof(go.text), "%s", u->user);
	vm_send(u, &go);
}

static void on_exited(struct uvm *u, const struct worker_msg *m)
{
	char why[200];

	snprintf(why, sizeof(why), "ended (%s)",
		 m->text[0] ? m->text : "no reason given");
	uvm_lost(u, why);
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
		uvm_lost(u, "could not be started");
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

static int worker_event(socket_t fd, int revents, void *userdata)
{
	struct uvm *u = userdata;
	struct worker_msg m;
	int r;

	(void)fd;
	if (revents & POLLOUT)
		worker_flush(&u->w);	/* an error: the read says it */
	vm_watch(u);
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
		uvm_end(u, "was stopped: its VM process misbehaved");
		return 0;
	}
	if (r < 0) {
		if (u->state == U_SUSPENDING) {
			/* the worker exits after suspending */
			worker_let_go(&u->w);
			u->state = U_SUSPENDED;
			return 0;
		}
		uvm_lost(u, "stopped unexpectedly");
		return 0;
	}
	if (m.type < CTL_TYPE_MAX && from_worker[m.type])
		from_worker[m.type](u, &m);
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
	return clock_mono_ns();
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
	if (vm_send(u, &m) < 0)
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

		vm_send(u, &m);
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
		vm_send(u, &m);
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

/* libssh's message API is its way to answer a request later; its getters
 * for the key are marked deprecated in favour of the auth callback, which
 * must answer before it returns, that is before the monitor has. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static ssh_key msg_pubkey(ssh_message m)
{
	return ssh_message_auth_pubkey(m);
}

static int msg_pubkey_state(ssh_message m)
{
	return (int)ssh_message_auth_publickey_state(m);
}
#pragma GCC diagnostic pop

/* A failed attempt: the client hears which methods remain; past
 * max_auth_tries it is disconnected at once, before another request of
 * its is read. */
static void auth_fail(struct conn *k, ssh_message m)
{
	ssh_message_reply_default(m);
	ssh_message_free(m);
	if (++k->fails >= S.cfg->server.max_auth_tries) {
		log_info("auth: too many failures for %s; disconnecting",
			 k->user[0] ? k->user : "?");
		k->dead = true;
		ssh_disconnect(k->s);
	}
}

static void auth_success(struct conn *k, ssh_message m)
{
	ssh_key key = msg_pubkey(m);
	const char *type = ssh_key_type_to_char(ssh_key_type(key));
	char fp[128];

	fingerprint(key, fp, sizeof(fp));
	log_info("auth: %s accepted with %s %s", k->user, type, fp);
	/* From here on libssh calls us for channels (cb_channel_open). */
	ssh_set_server_callbacks(k->s, &k->cb);
	ssh_message_auth_reply_success(m, 0);
	ssh_message_free(m);
	k->authed = true;
	k->unused_since = time(NULL);
	k->vm = uvm_find(k->user, true);
	if (!k->vm) {
		k->capacity = true;
		return;
	}
	k->vm->refs++;
	/* Start the clone now, while the client sets up its channel. */
	if (!uvm_want(k->vm)) {
		log_info("vm %s: refused, host at capacity (%u VMs)", k->user,
			 active_vms());
		k->capacity = true;
		k->vm->refs--;
		k->vm = NULL;
	}
}

static void auth_ask(struct conn *k, ssh_message m, uint32_t op)
{
	int r = keys_client_ask(&S.kc, op, k->user, msg_pubkey(m), k,
				mono_ms());

	if (r < 0) {
		log_warnx("auth: %s: keys lookup: %s", k->user, strerror(-r));
		auth_fail(k, m);
		return;
	}
	k->auth_msg = m;
	k->auth_op = op;
	if (S.kc.fd < 0)
		keys_replace();
}

static void key_hash(ssh_key key, uint8_t out[16])
{
	char *b64 = NULL;

	memset(out, 0, 16);
	if (ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK)
		return;
	crypto_generichash(out, 16, (const unsigned char *)b64, strlen(b64),
			   NULL, 0);
	ssh_string_free_char(b64);
}

/* open_signup's limits: a name claimed is nobody else's, so one key or
 * one address claims only so many an hour. */
static bool signup_allowed(struct conn *k, ssh_message m)
{
	static const char *const why[] = {
		[ADMIT_SIGNUP_PER_KEY] = "signup_per_key_per_hour",
		[ADMIT_SIGNUP_PER_SOURCE] = "signup_per_source_per_hour",
		[ADMIT_SIGNUP_FULL] = "too many sign-ups in the last hour",
	};
	enum admit_signup_verdict v;
	uint8_t h[16];

	key_hash(msg_pubkey(m), h);
	v = admit_signup_check(&S.signups, h, &k->peer, time(NULL),
			       S.cfg->server.signup_per_key_per_hour,
			       S.cfg->server.signup_per_source_per_hour);
	if (v != ADMIT_SIGNUP_OK) {
		log_info("signup: %s from %s refused: %s", k->user,
			 k->peer_str, why[v]);
		return false;
	}
	return true;
}

/* The keys monitor's answer for k's pending request (keys_done_fn). */
static void keys_done(void *owner, int r)
{
	struct conn *k = owner;
	ssh_message m = k->auth_msg;
	int state = msg_pubkey_state(m);
	const char *type = ssh_key_type_to_char(ssh_key_type(msg_pubkey(m)));
	char fp[128];

	k->auth_msg = NULL;
	if (k->auth_op == KEYS_SIGNUP) {
		if (r < 0) {
			auth_fail(k, m);
		} else {
			uint8_t h[16];

			key_hash(msg_pubkey(m), h);
			admit_signup_record(&S.signups, h, &k->peer,
					    time(NULL));
			fingerprint(msg_pubkey(m), fp, sizeof(fp));
			log_info("signup: %s claimed with %s %s from %s",
				 k->user, type, fp, k->peer_str);
			auth_success(k, m);
		}
		goto more;
	}
	if (r == -ENOENT && !S.cfg->server.open_signup) {
		if (state == SSH_PUBLICKEY_STATE_VALID)
			log_info("auth: unknown user %s", k->user);
		auth_fail(k, m);
	} else if (r == 0 || (r < 0 && r != -ENOENT)) {
		if (r == -ETIMEDOUT || r == -EPIPE)
			log_warnx("auth: %s refused: the keys monitor %s",
				  k->user, r == -EPIPE ? "is gone" :
				  "did not answer in time");
		auth_fail(k, m);
	} else if (state == SSH_PUBLICKEY_STATE_NONE) {
		/* "would this key do?": yes, sign with it */
		ssh_message_auth_reply_pk_ok_simple(m);
		ssh_message_free(m);
	} else if (r == -ENOENT && active_vms() >= S.cfg->vm.max_vms) {
		/* In, to be told the host is full, but the name stays free:
		 * claimed now, it would be taken with no VM to show for it. */
		log_info("signup: %s from %s not claimed: host at capacity",
			 k->user, k->peer_str);
		auth_success(k, m);
	} else if (r == -ENOENT) {
		if (!signup_allowed(k, m)) {
			auth_fail(k, m);
			goto more;
		}
		auth_ask(k, m, KEYS_SIGNUP);
		return;
	} else {
		auth_success(k, m);
	}
more:
	conn_messages(k);
}

static void auth_request(struct conn *k, ssh_message m)
{
	const char *user = ssh_message_auth_user(m);
	int method = ssh_message_subtype(m);
	ssh_key key;
	const char *type;

	if (!user || !sshd_valid_user(user)) {
		log_info("auth: invalid user name refused");
		auth_fail(k, m);
		return;
	}
	/* As OpenSSH: one user name per connection. */
	if (k->user[0] && strcmp(k->user, user) != 0) {
		log_info("auth: connection changed its user name from %s; "
			 "disconnecting", k->user);
		ssh_message_free(m);
		k->dead = true;
		ssh_disconnect(k->s);
		return;
	}
	snprintf(k->user, sizeof(k->user), "%s", user);
	if (method == SSH_AUTH_METHOD_NONE) {
		/* what methods are there? (not a failure: OpenSSH's too) */
		ssh_message_reply_default(m);
		ssh_message_free(m);
		return;
	}
	if (method != SSH_AUTH_METHOD_PUBLICKEY || !(key = msg_pubkey(m)) ||
	    !(type = ssh_key_type_to_char(ssh_key_type(key))) ||
	    !sshd_key_type_ok(type) ||
	    (msg_pubkey_state(m) != SSH_PUBLICKEY_STATE_NONE &&
	     msg_pubkey_state(m) != SSH_PUBLICKEY_STATE_VALID)) {
		auth_fail(k, m);
		return;
	}
	auth_ask(k, m, KEYS_MATCH);
}

/* Before it authenticates a session has no server callbacks: libssh
 * queues what its client asks for (the ssh-userauth service, auth
 * requests) and we answer here, in our own time, so that a key's lookup
 * waits for the keys monitor while other connections go on. One request
 * at a time: while one waits, the connection is not read (ev_poll). */
static void conn_messages(struct conn *k)
{
	ssh_message m;

	while (!k->authed && !k->dead && !k->auth_msg &&
	       (m = ssh_message_get(k->s))) {
		const char *svc;

		switch (ssh_message_type(m)) {
		case SSH_REQUEST_AUTH:
			auth_request(k, m);
			continue;
		case SSH_REQUEST_SERVICE:
			svc = ssh_message_service_service(m);
			if (svc && strcmp(svc, "ssh-userauth") == 0) {
				ssh_message_service_reply_success(m);
				break;
			}
			/* fall through */
		case SSH_REQUEST_CHANNEL_OPEN:
		case SSH_REQUEST_CHANNEL:
		case SSH_REQUEST_GLOBAL:
		default:
			log_info("connection: request %d before "
				 "authentication; disconnecting",
				 ssh_message_type(m));
			k->dead = true;
			ssh_disconnect(k->s);
			break;
		}
		ssh_message_free(m);
	}
}

static void conn_free(int i)
{
	struct conn *k = S.conns[i];

	if (k->auth_msg) {
		keys_client_cancel(&S.kc, k);
		ssh_message_free(k->auth_msg);
	}

	for (int j = 0; j < MAX_CHANNELS; j++)
		if (k->chans[j]) {
			struct chan *c = k->chans[j];

			if (!c->done && c->requested && k->vm &&
			    k->vm->state == U_RUNNING) {
				struct worker_msg m = {
					.type = WORKER_SESSION_SIGNAL,
					.a = c->id, .b = SIGHUP };

				vm_send(k->vm, &m);
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

/* Connections refused before their key exchange, counted for one log
 * line a second (tick) rather than one each: a flood must not flood. */
static struct {
	unsigned long startups, per_source;
} dropped;

/* MaxStartups and PerSourceMaxStartups: unauthenticated connections,
 * all and from k's source, are few enough to let k in. */
static bool admit(struct conn *k)
{
	const struct cfg *c = S.cfg;
	socklen_t len = sizeof(k->peer);
	unsigned unauth = 0, same = 0;

	if (getpeername(ssh_get_fd(k->s), (struct sockaddr *)&k->peer,
			&len) < 0)
		memset(&k->peer, 0, sizeof(k->peer));
	admit_format(&k->peer, k->peer_str, sizeof(k->peer_str));
	for (int i = 0; i < MAX_CONNS; i++) {
		struct conn *o = S.conns[i];

		if (!o || o->authed || o->dead)
			continue;
		unauth++;
		same += admit_same_source(&o->peer, &k->peer);
	}
	if (!admit_startup(unauth, c->server.max_startups_begin,
			   c->server.max_startups_rate,
			   c->server.max_startups_full,
			   randombytes_uniform(100))) {
		dropped.startups++;
		return false;
	}
	if (c->server.per_source_max_startups &&
	    same >= c->server.per_source_max_startups) {
		dropped.per_source++;
		return false;
	}
	return true;
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
	if (slot < 0 || S.stopping || !admit(k)) {
		ssh_disconnect(k->s);
		ssh_free(k->s);
		free(k);
		return 0;
	}
	k->t0 = k->last_rx = time(NULL);
	k->cb = (struct ssh_server_callbacks_struct){
		.userdata = k,
		.channel_open_request_session_function = cb_channel_open,
	};
	/* set once authenticated: until then conn_messages() answers */
	ssh_callbacks_init(&k->cb);
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
	log_info("connection %d from %s", slot, k->peer_str);
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

/* An authenticated connection that holds no channel holds its user's VM
 * awake all the same: unused_connection_timeout ends it. One whose client
 * has gone silent (a phone that lost its network) is found by keepalives
 * as OpenSSH's ClientAliveInterval/CountMax do: sent only when the client
 * has sent nothing for an interval; any byte from it resets the count. */
static uint64_t tcp_bytes_received(struct conn *k)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(ssh_get_fd(k->s), IPPROTO_TCP, TCP_INFO, &ti,
		       &len) < 0)
		return 0;
	return ti.tcpi_bytes_received;
}

static void conn_timers(struct conn *k, int i, time_t now)
{
	const struct cfg *c = S.cfg;
	bool chans = false;

	if (!k->authed || k->dead)
		return;
	for (int j = 0; j < MAX_CHANNELS; j++)
		chans |= k->chans[j] != NULL;
	if (chans)
		k->unused_since = now;
	else if (c->server.unused_connection_timeout &&
		 now - k->unused_since >=
			 (time_t)c->server.unused_connection_timeout) {
		log_info("connection %d: no channel for %u s; closing", i,
			 c->server.unused_connection_timeout);
		k->dead = true;
		return;
	}
	if (!c->server.client_alive_interval)
		return;
	/* Not read (its guest is not taking its input), the client cannot
	 * send, not even a keepalive's answer: not its silence. */
	if (conn_input_stopped(k)) {
		k->last_rx = now;
		k->alive_missed = 0;
		return;
	}
	/* Whoever read them (our loop, or libssh inside one of its calls,
	 * which may take a keepalive's reply unseen), bytes from the client
	 * prove it is there. */
	if (tcp_bytes_received(k) != k->rx_bytes) {
		k->rx_bytes = tcp_bytes_received(k);
		k->last_rx = now;
		k->alive_missed = 0;
	}
	if (now - k->last_rx < (time_t)c->server.client_alive_interval ||
	    now - k->alive_sent < (time_t)c->server.client_alive_interval)
		return;
	if (k->alive_missed >= c->server.client_alive_count_max) {
		log_info("connection %d: %s answered no keepalive in %u s; "
			 "closing", i, k->peer_str,
			 (unsigned)(now - k->last_rx));
		k->dead = true;
		return;
	}
	/* libssh answers the previous request's reply, if one came, before
	 * it sends a new one: the second call makes sure one goes out. */
	ssh_send_keepalive(k->s);
	ssh_send_keepalive(k->s);
	k->alive_sent = now;
	k->alive_missed++;
}

/* Suspended images take disk: one user's at most
 * suspend_max_mib_per_user, all of them suspend_max_mib_total. A VM whose
 * image would not fit is ended rather than suspended (its RAM is what we
 * would free by suspending it), with a line saying why. Its size is the
 * worker's last count of the pages it owns, which is what a suspend
 * writes; unknown, the whole of RAM. */
static bool suspend_fits(const struct uvm *u)
{
	const struct cfg *c = S.cfg;
	long est = u->priv_kib >= 0 ? u->priv_kib :
				      (long)c->template.memory_mb * 1024;
	long total = 0;

	for (int i = 0; i < MAX_USERS; i++)
		if (S.users[i] && S.users[i]->state == U_SUSPENDED)
			total += S.users[i]->disk_kib;
	if (c->vm.suspend_max_mib_per_user &&
	    est > (long)c->vm.suspend_max_mib_per_user * 1024) {
		log_info("vm %s: not suspended: its %.1f MiB are more than "
			 "suspend_max_mib_per_user (%u)", u->user,
			 (double)est / 1024, c->vm.suspend_max_mib_per_user);
		return false;
	}
	if (c->vm.suspend_max_mib_total &&
	    total + est > (long)c->vm.suspend_max_mib_total * 1024) {
		log_info("vm %s: not suspended: its %.1f MiB beside the %.1f "
			 "MiB suspended would pass suspend_max_mib_total (%u)",
			 u->user, (double)est / 1024, (double)total / 1024,
			 c->vm.suspend_max_mib_total);
		return false;
	}
	return true;
}

static void tick(void)
{
	time_t now = time(NULL);

	if (S.kc.fd < 0 && !S.stopping)
		keys_start();
	if (dropped.startups || dropped.per_source) {
		log_info("connections dropped before key exchange: %lu past "
			 "max_startups, %lu past per_source_max_startups",
			 dropped.startups, dropped.per_source);
		dropped.startups = dropped.per_source = 0;
	}

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
		conn_timers(k, i, now);
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
			if (!suspend_fits(u)) {
				uvm_lost(u, "ended: too large to suspend");
				continue;
			}
			/* into its own directory (the text names the user);
			 * the manager keeps it once the worker is gone */
			snprintf(m.text, sizeof(m.text), "%s", u->user);
			u->state = U_SUSPENDING;
			log_info("vm %s: suspending", u->user);
			vm_send(u, &m);
		} else if (u->state == U_SUSPENDED && !S.stopping &&
			   now - u->detached >= S.cfg->vm.reap_timeout) {
			uvm_lost(u, "reaped");
		}
	}
	for (int i = 0; i < MAX_USERS; i++) {
		struct worker_msg m = { .type = WORKER_STAT };
		struct uvm *u = S.users[i];

		if (u && u->state == U_RUNNING)
			vm_send(u, &m);
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

/* Who the front-end becomes: [vm] user; and the uids the workers get,
 * which no account may have. Not being root (a developer's own account
 * in the kvm group), we and the workers stay who we are. Returns an fd
 * of suspended/, for sdir_load_suspended() while we are still root; the
 * front-end keeps none (the manager alone touches suspended/). */
static int jail_init(void)
{
	char err[512];
	int r, susp_fd = -1;

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
		/* [vm] user among them is caught here too: it is in
		 * /etc/passwd. */
		if (jail_uids_check("/etc/passwd", "/etc/group",
				    S.cfg->vm.worker_uid_first,
				    S.cfg->vm.worker_uid_count, err,
				    sizeof(err)) < 0)
			fatalx("%s", err);
	}
	/* run/ is opened now, while we are root, so that the front-end
	 * needs no path above it. */
	if (sdir_setup(S.cfg->server.state_dir, S.jail.uid, S.jail.gid,
		       &susp_fd, &S.run_fd, err, sizeof(err)) < 0)
		fatalx("%s", err);
	return susp_fd;
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

/* A VM suspended by an earlier run (sdir_load_suspended) comes back as
 * suspended. */
static void suspended_found(const char *user, void *arg)
{
	struct uvm *u = uvm_find(user, true);
	const int *susp_fd = arg;
	struct stat st;
	char pages[64];

	if (!u)
		return;
	u->state = U_SUSPENDED;
	u->detached = time(NULL);
	/* Counted against the disk caps: its pages file, or all of RAM. */
	snprintf(pages, sizeof(pages), "%s/pages", user);
	u->disk_kib = fstatat(*susp_fd, pages, &st, AT_SYMLINK_NOFOLLOW) == 0
			      ? (long)(st.st_blocks / 2)
			      : (long)S.cfg->template.memory_mb * 1024;
	log_info("vm %s: suspended (from an earlier run)", u->user);
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
	int r = 1, port = cfg->server.listen_port, susp_fd;
	time_t last = 0, stop_at = 0;
	char err[512];

	S.cfg = cfg;
	S.mgr = S.run_fd = -1;
	keys_client_init(&S.kc);
	signal(SIGPIPE, SIG_IGN);
	/* A few fds per connection and per session: use what we may, up to
	 * what the event table holds. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max < EV_MAX_FD ? rl.rlim_max : EV_MAX_FD;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	susp_fd = jail_init();
	if (sdir_host_key(cfg->server.host_key, err, sizeof(err)) < 0)
		fatalx("%s", err);
	if (mgr_start() < 0)
		fatal("starting the VM manager");
	keys_start();
	S.bind = ssh_bind_new();
	ssh_bind_options_set(S.bind, SSH_BIND_OPTIONS_BINDADDR,
			     cfg->server.listen_host);
	ssh_bind_options_set(S.bind, SSH_BIND_OPTIONS_BINDPORT, &port);
	ssh_bind_options_set(S.bind, SSH_BIND_OPTIONS_HOSTKEY,
			     cfg->server.host_key);
	if (ssh_bind_options_set(S.bind, SSH_BIND_OPTIONS_KEY_EXCHANGE,
				 cfg->server.kex_algorithms) != SSH_OK)
		fatalx("%s: kex_algorithms: libssh supports none of %s",
		       cfg->path ? cfg->path : "defaults",
		       cfg->server.kex_algorithms);
	if (ssh_bind_listen(S.bind) != SSH_OK)
		fatalx("listen on %s:%d: %s", cfg->server.listen_host, port,
		       ssh_get_error(S.bind));
	ssh_bind_set_blocking(S.bind, 0);
	ev_add(ssh_bind_get_fd(S.bind), POLLIN, accept_event,
			 NULL);
	ev_add(S.mgr, POLLIN, manager_event, NULL);
	sdir_load_suspended(susp_fd, suspended_found, &susp_fd);
	close(susp_fd);		/* the manager's alone from here on */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	frontend_confine();
	log_info("listening on %s:%d", cfg->server.listen_host, port);

	for (;;) {
		time_t now;

		ev_poll(200);
		now = time(NULL);
		if (keys_client_expire(&S.kc, mono_ms(), keys_done))
			keys_replace();
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
	keys_client_close(&S.kc, keys_done);
	log_info("stopped");
	return r;
}
