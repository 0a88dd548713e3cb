/* The front-end's insides: the state its files share and what they call
 * of each other. Each file is one room (README.md, Layout): evloop.c the
 * poll loop, conn.c connections, auth.c logins, channel.c and chan_io.c
 * sessions, vms.c and vms_worker.c users' VMs, status.c the status table,
 * server.c start-up and stop. Everything runs on the one event loop:
 * nothing here blocks, and nothing is called from another thread. */
#ifndef SSHD_FRONT_H
#define SSHD_FRONT_H

#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "common/clock.h"
#include "config/config.h"
#include "sshd/admit.h"
#include "sshd/chan_input.h"
#include "sshd/keys_monitor.h"
#include "vmm/manager.h"
#include "vmm/worker.h"

#define MAX_CONNS 1024
#define MAX_USERS 4096
#define MAX_CHANNELS 8		/* session channels per connection */
#define CAPACITY_MSG "clone: host at capacity, try again later\r\n"
#define EV_MAX_FD 65536		/* the fds evloop.c can watch */

enum uvm_state { U_FREE, U_WAITING, U_STARTING, U_RUNNING, U_SUSPENDING,
		 U_SUSPENDED };

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

/* The front-end's state: one process, one thread, so nothing is locked. */
struct front {
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
};

extern struct front S;		/* server.c */

/* ---- evloop.c: our poll loop over libssh's sessions and our fds ---- */

/* Watch fd for events: cb(fd, revents, ud) from ev_poll() only. A new
 * watch of an fd replaces the old one. -EMFILE: fd beyond EV_MAX_FD. */
int ev_add(int fd, short events, ssh_event_callback cb, void *ud);
void ev_del(int fd);
/* If fd is watched by cb for other events, watch it for these instead. */
void ev_rewatch(int fd, short events, ssh_event_callback cb, void *ud);
/* One poll of every watched fd and connection, up to timeout_ms;
 * connections found closed are freed. */
void ev_poll(int timeout_ms);

/* CLOCK_MONOTONIC in ms: the keys monitor's deadlines. */
static inline uint64_t ev_mono_ms(void)
{
	return clock_mono_ns() / 1000000;
}

/* ---- conn.c: accept, admission, per-connection timers ---- */

/* The listening socket's callback: accepts, admits or refuses. */
int conn_accept_event(socket_t fd, int revents, void *userdata);
/* Frees S.conns[i], its channels (their sessions get a SIGHUP) and its
 * auth request; its VM is detached when it was the last. */
void conn_free(int i);
void conn_tick(time_t now);

/* ---- auth.c: logins, through the keys monitor ---- */

/* The requests k's client queued before it authenticated, answered one
 * at a time (ev_poll(), and once the keys monitor answered). */
void auth_messages(struct conn *k);
/* The keys monitor: ask the manager for one (at most one a second), its
 * socket from the manager (MGR_KEYS_READY), replace one gone or stuck. */
void auth_keys_start(void);
void auth_keys_ready(int fd);
void auth_keys_replace(void);
/* keys_done_fn: the monitor's answer for the conn that asked. */
void auth_keys_done(void *owner, int r);

/* ---- channel.c: sessions (pty, exec, env, output, exit status) ---- */

/* libssh's callback for a session channel: NULL refuses it. */
ssh_channel chan_cb_open(ssh_session s, void *userdata);
/* Ask c's VM for its session, once it is requested and the VM runs. */
void chan_try_open(struct chan *c);
/* The guest's output fds (io_fd, err_fd): to the client. */
int chan_fd_event(socket_t fd, int revents, void *userdata);
/* Pause or resume reading the guest's output (the client's window). */
void chan_output_pause(struct chan *c, bool pause);
/* The exit status (or signal) once the guest's side is all done. */
void chan_maybe_finish(struct chan *c);
/* End c now: msg on its stderr, then exit status, EOF and close. */
void chan_send_and_close(struct chan *c, const char *msg, int status);
void chan_free(struct chan *c);
void chan_reap(struct conn *k);

/* ---- chan_io.c: client input to the guest (chan_input.h's glue) ---- */

int chan_cb_data(ssh_session s, ssh_channel ch, void *data, uint32_t len,
		 int is_stderr, void *userdata);
void chan_cb_eof(ssh_session s, ssh_channel ch, void *userdata);
/* What waits for c's stdin, as far as it takes it; outside libssh's
 * callbacks only. */
void chan_flush_input(struct chan *c);
/* Channels that waited for the input budgets try again (ev_poll()). */
void chan_in_retry(void);
/* k's socket is not to be read for now: its guests take no input. */
bool chan_input_stopped(const struct conn *k);
/* c's share of the input budgets goes back (chan_free()). */
void chan_in_free(struct chan *c);

/* ---- vms.c: the per-user VM state machine and the manager link ---- */

/* Our side of the manager's socket (S.mgr is its fd). */
extern struct manager vms_mg;
int vms_mgr_start(void);
/* Poll the manager's socket for POLLOUT while requests wait. */
void vms_mgr_watch(void);
int vms_manager_event(socket_t fd, int revents, void *userdata);
/* user's VM record; created (if create) when there is room. */
struct uvm *vms_find(const char *user, bool create);
/* VMs running or on their way, and workers still to be reaped. */
unsigned vms_active(void);
/* Make sure u's VM is running or on its way. false: at capacity. */
bool vms_want(struct uvm *u);
/* The VM is gone: its sessions end with a line saying why. */
void vms_end(struct uvm *u, const char *why);
void vms_lost(struct uvm *u, const char *why);
/* Our link to a worker: the manager ends and reaps it. */
void vms_let_go(struct worker *w);
/* worker_send(), never blocking; POLLOUT while messages wait. */
int vms_send(struct uvm *u, const struct worker_msg *m);
void vms_watch(struct uvm *u);
void vms_for_each_chan(struct uvm *u, void (*fn)(struct chan *, void *),
		       void *arg);
void vms_tick(time_t now);
/* sdir_load_suspended()'s callback: arg is suspended/'s fd (int *). */
void vms_suspended_found(const char *user, void *arg);
/* VMs starting or suspending: a stop waits for them. */
int vms_busy(void);

/* ---- vms_worker.c: what a VM's worker tells us ---- */

int vms_worker_event(socket_t fd, int revents, void *userdata);

/* ---- status.c ---- */

/* <state_dir>/run/status: one line per user's VM, rewritten each tick. */
void status_write(void);

#endif
