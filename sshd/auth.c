/* Logins: public-key authentication through the keys monitor (libssh's
 * message API, answered asynchronously), sign-up limits, fingerprints. */
#include "sshd/front.h"

#include <errno.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "sshd/authkeys.h"

/* ---- the keys monitor -------------------------------------------------- */

/* keys_monitor.h: the monitor answers, asynchronously, whether a key lets
 * a user in. Its answers come here and go on with the login that asked. */

static int keys_event(socket_t fd, int revents, void *userdata)
{
	(void)fd;
	(void)revents;
	(void)userdata;
	if (keys_client_read(&S.kc, auth_keys_done) < 0)
		auth_keys_replace();
	return 0;
}

/* Ask the manager for a (new) keys monitor: it kills the old one, if
 * any, and forks another; MGR_KEYS_READY brings its socket. At most one
 * request in flight, and one a second: a monitor that dies at once must
 * not make the manager fork in a loop (tick() asks again). */
void auth_keys_start(void)
{
	time_t now = time(NULL);
	int r;

	if (S.keys_asked || now == S.keys_asked_at)
		return;
	S.keys_asked_at = now;
	if ((r = manager_keys(&vms_mg)) < 0) {
		log_warnx("keys monitor: asking the manager: %s", strerror(-r));
		return;
	}
	S.keys_asked = true;
	vms_mgr_watch();
}

void auth_keys_ready(int fd)
{
	S.keys_asked = false;
	keys_client_attach(&S.kc, fd, ev_mono_ms());
	ev_add(S.kc.fd, POLLIN, keys_event, NULL);
	log_info("keys monitor ready");
}

/* The monitor went away or stopped answering: the lookups in flight wait
 * for the next one (or their deadlines), which the manager starts after
 * killing this one. */
void auth_keys_replace(void)
{
	if (S.kc.fd >= 0) {
		ev_del(S.kc.fd);
		log_warnx("keys monitor: gone or not answering; replacing it");
	}
	keys_client_attach(&S.kc, -1, ev_mono_ms());
	auth_keys_start();
}

/* ---- authentication ---------------------------------------------------- */

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
	/* From here on libssh calls us for channels (chan_cb_open). */
	ssh_set_server_callbacks(k->s, &k->cb);
	ssh_message_auth_reply_success(m, 0);
	ssh_message_free(m);
	k->authed = true;
	k->unused_since = time(NULL);
	k->vm = vms_find(k->user, true);
	if (!k->vm) {
		k->capacity = true;
		return;
	}
	k->vm->refs++;
	/* Start the clone now, while the client sets up its channel. */
	if (!vms_want(k->vm)) {
		log_info("vm %s: refused, host at capacity (%u VMs)", k->user,
			 vms_active());
		k->capacity = true;
		k->vm->refs--;
		k->vm = NULL;
	}
}

static void auth_ask(struct conn *k, ssh_message m, uint32_t op)
{
	int r = keys_client_ask(&S.kc, op, k->user, msg_pubkey(m), k,
				ev_mono_ms());

	if (r < 0) {
		log_warnx("auth: %s: keys lookup: %s", k->user, strerror(-r));
		auth_fail(k, m);
		return;
	}
	k->auth_msg = m;
	k->auth_op = op;
	if (S.kc.fd < 0)
		auth_keys_replace();
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
void auth_keys_done(void *owner, int r)
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
	} else if (r == -ENOENT && vms_active() >= S.cfg->vm.max_vms) {
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
	auth_messages(k);
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
void auth_messages(struct conn *k)
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
