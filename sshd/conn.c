/* Connections: accept, admission (MaxStartups), per-connection state
 * and timers (login grace, unused timeout, keepalives). */
#include "sshd/front.h"

#include <netinet/in.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <linux/tcp.h>	/* glibc's tcp_info lacks tcpi_bytes_received */

#include "common/log.h"

void conn_free(int i)
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

				/* ignored: the connection goes either way */
				(void)vms_send(k->vm, &m);
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

int conn_accept_event(socket_t fd, int revents, void *userdata)
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
		.channel_open_request_session_function = chan_cb_open,
	};
	/* set once authenticated: until then auth_messages() answers */
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
	if (chan_input_stopped(k)) {
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

/* Once a second (tick()): the log line for connections refused, then
 * each connection's grace time, channels and timers; one that is done
 * with is freed. */
void conn_tick(time_t now)
{
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
		chan_reap(k);
		conn_timers(k, i, now);
		if (k->dead || (st & (SSH_CLOSED | SSH_CLOSED_ERROR)) ||
		    !ssh_is_connected(k->s)) {
			log_info("connection %d closed", i);
			conn_free(i);
		}
	}
}
