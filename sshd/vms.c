/* Users' VMs: the per-user state machine (clone, detach, suspend,
 * resume, reap), the disk caps on suspended images, and our side of the
 * VM manager, which forks, kills and reaps the workers. */
#include "sshd/front.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

#define GUEST_UID 1000

/* ---- the VM manager (vmm/manager.c) ----------------------------------- */

/* Our side of the manager's socket (S.mgr is its fd). It forks, kills and
 * reaps the workers: we are not their parent, and ask. */
struct manager vms_mg;

/* The manager's socket is polled for POLLOUT only while requests wait. */
void vms_mgr_watch(void)
{
	short ev = (short)(POLLIN | (manager_pending(&vms_mg) ? POLLOUT : 0));

	ev_rewatch(S.mgr, ev, vms_manager_event, NULL);
}

/* The keys monitor runs as a child of the manager, which alone can kill
 * and replace it (we are the clone user, and may not fork). */
static void keys_main_hook(int sock, void *arg)
{
	keys_monitor_main(sock, arg);
}

int vms_mgr_start(void)
{
	static struct manager_hooks hooks = { .keys_main = keys_main_hook };
	int r;

	hooks.arg = S.cfg;
	r = manager_start(S.cfg, &hooks, &vms_mg);

	if (r == 0) {
		S.mgr = vms_mg.sock;
		S.mgr_pid = vms_mg.pid;
	}
	return r;
}

/* A worker we no longer talk to: the manager ends it (SIGKILL after its
 * grace period) and reaps it; until it says MGR_GONE the worker counts
 * against max_vms (manager_ending()). */
void vms_let_go(struct worker *w)
{
	pid_t pid = w->pid;
	int r;

	if (w->ctl >= 0)
		ev_del(w->ctl);
	worker_close(w);
	w->pid = -1;
	if (pid > 0 && (r = manager_end(&vms_mg, pid)) < 0)
		log_warnx("worker %d: asking the manager to end it: %s",
			  (int)pid, strerror(-r));
	vms_mgr_watch();
}

/* ---- users' VMs -------------------------------------------------------- */

struct uvm *vms_find(const char *user, bool create)
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

unsigned vms_active(void)
{
	unsigned n = 0;

	for (int i = 0; i < MAX_USERS; i++)
		if (S.users[i] && S.users[i]->state != U_FREE &&
		    S.users[i]->state != U_SUSPENDED)
			n++;
	/* and workers the manager has yet to kill and reap */
	return n + manager_ending(&vms_mg);
}

/* Answers come in the order asked: u waits at the tail for its worker. */
static void uvm_request(struct uvm *u)
{
	int r;

	u->state = U_WAITING;
	clock_gettime(CLOCK_MONOTONIC, &u->t_req);
	u->next_wait = NULL;
	r = manager_spawn(&vms_mg);
	if (r < 0) {
		/* no answer will come for it */
		log_warnx("vm %s: asking the manager: %s", u->user,
			  strerror(-r));
		vms_lost(u, "could not be started");
		return;
	}
	vms_mgr_watch();
	if (S.wait_tail)
		S.wait_tail->next_wait = u;
	else
		S.wait_head = u;
	S.wait_tail = u;
}

/* Make sure u's VM is running or on its way. false: at capacity. */
bool vms_want(struct uvm *u)
{
	if (u->state != U_FREE && u->state != U_SUSPENDED)
		return true;
	if (vms_active() >= S.cfg->vm.max_vms)
		return false;
	u->resume = u->state == U_SUSPENDED;
	uvm_request(u);
	return true;
}

void vms_for_each_chan(struct uvm *u, void (*fn)(struct chan *, void *),
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

/* The VM is gone (powered off, crashed, killed): its sessions end with a
 * line saying so; the next login clones anew. */
void vms_end(struct uvm *u, const char *why)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "clone: your VM %s\r\n", why);
	vms_let_go(&u->w);
	u->state = U_FREE;
	vms_for_each_chan(u, end_chan_cb, msg);
	/* A suspended copy is dropped with the VM: a restart must not bring
	 * back a state older than the one lost. The manager alone may touch
	 * suspended/. */
	if (manager_drop(&vms_mg, u->user) < 0)
		log_warnx("vm %s: asking the manager to drop its suspended "
			  "copy failed", u->user);
	vms_mgr_watch();
}

void vms_lost(struct uvm *u, const char *why)
{
	log_info("vm %s: %s", u->user, why);
	vms_end(u, why);
}

/* The worker's socket is polled for POLLOUT only while messages wait. */
void vms_watch(struct uvm *u)
{
	int fd = u->w.ctl;
	short ev = (short)(POLLIN | (worker_pending(&u->w) ? POLLOUT : 0));

	ev_rewatch(fd, ev, vms_worker_event, u);
}

/* worker_send(), never blocking. A worker that stops reading is dropped
 * from vms_worker_event() (see worker_send()), not here: callers are in the
 * middle of walking channels and connections. So -EPIPE and -ENOBUFS
 * need nothing of a caller; -EINVAL (a message the worker's state does
 * not take) is the caller's to handle, or to ignore when harmless. */
int vms_send(struct uvm *u, const struct worker_msg *m)
{
	int r = worker_send(&u->w, m);

	vms_watch(u);
	return r;
}

static void on_stashed(const struct worker_msg *m)
{
	struct uvm *u = vms_find(m->text, false);

	if (!u || u->state != U_SUSPENDING)
		return;		/* lost meanwhile: MGR_DROP follows */
	if ((int64_t)m->b < 0) {
		vms_lost(u, "could not be suspended");
		return;
	}
	u->state = U_SUSPENDED;
	if (u->refs > 0)	/* someone came back meanwhile */
		vms_want(u);
}

/* The suspended VM is in the worker's directory: it may resume. */
static void on_unstashed(const struct worker_msg *m)
{
	struct worker_msg go = { .type = WORKER_GO_RESUME };
	struct uvm *u = vms_find(m->text, false);

	if (!u || u->state != U_STARTING || !u->resume ||
	    u->w.pid != (pid_t)m->a)
		return;		/* that worker is gone already */
	if ((int64_t)m->b < 0) {
		vms_lost(u, "could not be resumed");
		return;
	}
	snprintf(go.text, sizeof(go.text), "%s", u->user);
	if (vms_send(u, &go) == -EINVAL)	/* cannot be: it was just adopted */
		vms_lost(u, "could not be resumed");
}

int vms_manager_event(socket_t fd, int revents, void *userdata)
{
	struct worker_msg m;
	struct uvm *vm = S.wait_head;
	char home[64];
	int wfd = -1, r;

	(void)userdata;
	if ((revents & POLLOUT) && manager_flush(&vms_mg) < 0)
		revents |= POLLHUP;	/* the read below says how */
	vms_mgr_watch();
	if (!(revents & (POLLIN | POLLHUP | POLLERR)))
		return 0;
	r = manager_recv(&vms_mg, &m, &wfd);
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
		auth_keys_ready(wfd);
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
			manager_end(&vms_mg, (pid_t)m.a);
		vms_mgr_watch();
		return 0;
	}
	S.wait_head = vm->next_wait;
	if (!S.wait_head)
		S.wait_tail = NULL;
	if (m.type == MGR_FAILED) {
		log_warnx("vm %s: %s", vm->user, m.text);
		vms_lost(vm, "could not be started");
		return 0;
	}
	worker_adopt(&vm->w, (pid_t)m.a, wfd);
	ev_add(wfd, POLLIN, vms_worker_event, vm);
	memset(&m, 0, sizeof(m));
	vm->state = U_STARTING;
	vm->started = time(NULL);
	vm->priv_kib = -1;
	if (vm->resume) {
		/* Its suspended VM goes into the worker's own directory
		 * first; GO_RESUME once the manager says it is there
		 * (on_unstashed()). */
		if (manager_unstash(&vms_mg, vm->w.pid, vm->user) < 0)
			vms_lost(vm, "could not be resumed");
		vms_mgr_watch();
		return 0;
	}
	m.type = WORKER_GO;
	snprintf(home, sizeof(home), "/home/%s", vm->user);
	/* root = yes: uid 0, but the same name and home, so that the key
	 * changes who the user is, not where things are. */
	if (vm_identity_make(&m.id, vm->user, S.cfg->vm.root ? 0 : GUEST_UID,
			     home, vm->user) < 0) {
		vms_lost(vm, "could not be given an identity");
		return 0;
	}
	if (vms_send(vm, &m) == -EINVAL)	/* cannot be: it was just adopted */
		vms_lost(vm, "could not be started");
	sodium_memzero(&m, sizeof(m));
	return 0;
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

/* A VM suspended by an earlier run (sdir_load_suspended) comes back as
 * suspended. */
void vms_suspended_found(const char *user, void *arg)
{
	struct uvm *u = vms_find(user, true);
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

int vms_busy(void)
{
	int n = 0;

	for (int i = 0; i < MAX_USERS; i++)
		if (S.users[i] && (S.users[i]->state == U_SUSPENDING ||
				   S.users[i]->state == U_STARTING ||
				   S.users[i]->state == U_WAITING))
			n++;
	return n;
}

/* Once a second (tick()): the suspend policy. A VM nobody has used for
 * detach_timeout (or any, when stopping) is suspended to disk, if it
 * fits; one suspended for reap_timeout goes; running ones are asked
 * for their memory figures, and records of no VM and nobody go. */
void vms_tick(time_t now)
{
	for (int i = 0; i < MAX_USERS; i++) {
		struct uvm *u = S.users[i];
		struct worker_msg m = { .type = WORKER_SUSPEND };

		if (!u || u->refs > 0)
			continue;
		if (u->state == U_RUNNING &&
		    (now - u->detached >= S.cfg->vm.detach_timeout ||
		     S.stopping)) {
			if (!suspend_fits(u)) {
				vms_lost(u, "ended: too large to suspend");
				continue;
			}
			/* into its own directory (the text names the user);
			 * the manager keeps it once the worker is gone */
			snprintf(m.text, sizeof(m.text), "%s", u->user);
			u->state = U_SUSPENDING;
			log_info("vm %s: suspending", u->user);
			/* ignored: a running worker's state takes SUSPEND,
			 * and one that fails it is dropped (vms_send()) */
			(void)vms_send(u, &m);
		} else if (u->state == U_SUSPENDED && !S.stopping &&
			   now - u->detached >= S.cfg->vm.reap_timeout) {
			vms_lost(u, "reaped");
		}
	}
	for (int i = 0; i < MAX_USERS; i++) {
		struct worker_msg m = { .type = WORKER_STAT };
		struct uvm *u = S.users[i];

		/* ignored: a missed figure is asked for next tick */
		if (u && u->state == U_RUNNING)
			(void)vms_send(u, &m);
		/* No VM and nobody logged in: the record goes, or every name
		 * that ever logged in (or was refused at capacity) would hold
		 * a slot until MAX_USERS locks everyone out. */
		if (u && u->state == U_FREE && u->refs == 0) {
			free(u);
			S.users[i] = NULL;
		}
	}
}
