/* clone serve: the SSH front-end. One libssh event loop serves every
 * connection; it never opens /dev/kvm nor maps guest memory. A manager
 * process (forked at start, before any client) holds the template and
 * hands us ready VM worker processes (their control sockets, over
 * SCM_RIGHTS); we talk to workers directly and bridge each SSH channel to
 * the guest ports a worker gives us. */
#include "sshd/server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sandbox.h"
#include "sshd/front.h"
#include "sshd/state_dir.h"

struct front S;

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

static void tick(void)
{
	time_t now = time(NULL);

	if (S.kc.fd < 0 && !S.stopping)
		auth_keys_start();
	conn_tick(now);
	vms_tick(now);
	status_write();
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
	if (vms_mgr_start() < 0)
		fatal("starting the VM manager");
	auth_keys_start();
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
	ev_add(ssh_bind_get_fd(S.bind), POLLIN, conn_accept_event,
			 NULL);
	ev_add(S.mgr, POLLIN, vms_manager_event, NULL);
	sdir_load_suspended(susp_fd, vms_suspended_found, &susp_fd);
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
		if (keys_client_expire(&S.kc, ev_mono_ms(), auth_keys_done))
			auth_keys_replace();
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
		if (S.stopping && ((vms_active() == 0 || vms_busy() == 0) &&
				   vms_active() == 0)) {
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
	keys_client_close(&S.kc, auth_keys_done);
	log_info("stopped");
	return r;
}
