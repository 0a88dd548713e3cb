/* The keys monitor and the front-end's client of it (keys_monitor.h). */
#include "sshd/keys_monitor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <signal.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sandbox.h"
#include "sshd/authkeys.h"
#include "sshd/server.h"

/* ---- the monitor ---- */

int keys_monitor_answer(const struct cfg *cfg, struct keys_req *q)
{
	char path[4096];
	ssh_key key = NULL;
	int r;

	q->user[sizeof(q->user) - 1] = 0;
	q->type[sizeof(q->type) - 1] = 0;
	q->b64[sizeof(q->b64) - 1] = 0;
	if ((q->op != KEYS_MATCH && q->op != KEYS_SIGNUP) ||
	    !sshd_valid_user(q->user) || !sshd_key_type_ok(q->type))
		return -EINVAL;
	if (sshd_keys_path(cfg->server.authorized_keys, q->user, path,
			   sizeof(path)) < 0)
		return -ENAMETOOLONG;
	if (ssh_pki_import_pubkey_base64(q->b64, ssh_key_type_from_name(
						 q->type), &key) != SSH_OK)
		return -EINVAL;
	r = sshd_authkeys_file_match(path, q->user, key);
	if (q->op == KEYS_SIGNUP) {
		if (r == -ENOENT && cfg->server.open_signup)
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

void keys_monitor_main(int sock, const struct cfg *cfg)
{
	union {
		struct keys_req q;
		char buf[sizeof(struct keys_req) + 1];	/* see below */
	} u;
	ssize_t n;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	log_set_tag("clone[keys]");
	sandbox_no_dumps();
	if (sandbox_install(sshd_keys_rules, sshd_keys_nrules) < 0)
		fatalx("keys monitor: seccomp");
	/* A byte more than a request: a longer one is not cut to size. */
	while ((n = recv(sock, &u, sizeof(u), 0)) > 0) {
		struct keys_ans a = { .id = u.q.id, .r = -EPROTO };

		/* A request of the wrong size has no id we can trust: its
		 * answer carries id 0, which the front-end never asks with. */
		if (n != (ssize_t)sizeof(u.q))
			a.id = 0;
		else
			a.r = keys_monitor_answer(cfg, &u.q);
		if (send(sock, &a, sizeof(a), MSG_NOSIGNAL) != sizeof(a))
			break;
	}
	_exit(0);
}

/* ---- the front-end's side ---- */

void keys_client_init(struct keys_client *kc)
{
	memset(kc, 0, sizeof(*kc));
	kc->fd = -1;
}

static void slot_free(struct keys_client *kc, struct keys_pending *p)
{
	free(p->req);
	*p = (struct keys_pending){ 0 };
	kc->npending--;
}

/* Send what has not gone out yet. A full socket (the monitor is slow)
 * keeps the rest for later; any other failure means the monitor is gone. */
static void flush(struct keys_client *kc)
{
	for (size_t i = 0; i < KEYS_MAX_PENDING && kc->fd >= 0; i++) {
		struct keys_pending *p = &kc->pend[i];

		if (!p->id || p->sent)
			continue;
		if (send(kc->fd, p->req, sizeof(*p->req),
			 MSG_DONTWAIT | MSG_NOSIGNAL) == sizeof(*p->req)) {
			p->sent = true;
			continue;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
			return;
		log_warn("keys monitor");
		close(kc->fd);
		kc->fd = -1;
	}
}

int keys_client_ask(struct keys_client *kc, uint32_t op, const char *user,
		    ssh_key key, void *owner, uint64_t now_ms)
{
	const char *type = ssh_key_type_to_char(ssh_key_type(key));
	struct keys_pending *p = NULL;
	struct keys_req *q;
	char *b64 = NULL;

	for (size_t i = 0; i < KEYS_MAX_PENDING && !p; i++)
		if (!kc->pend[i].id)
			p = &kc->pend[i];
	if (!p)
		return -EBUSY;
	if (!type || ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK)
		return -EINVAL;
	if (strlen(b64) >= sizeof(q->b64) || strlen(user) >= sizeof(q->user) ||
	    strlen(type) >= sizeof(q->type)) {
		ssh_string_free_char(b64);
		return -E2BIG;
	}
	q = calloc(1, sizeof(*q));
	if (!q) {
		ssh_string_free_char(b64);
		return -ENOMEM;
	}
	if (++kc->last_id == 0)
		kc->last_id = 1;
	q->id = kc->last_id;
	q->op = op;
	memcpy(q->user, user, strlen(user));
	memcpy(q->type, type, strlen(type));
	memcpy(q->b64, b64, strlen(b64));
	ssh_string_free_char(b64);
	*p = (struct keys_pending){ .id = q->id, .owner = owner, .req = q,
				    .deadline_ms = now_ms + KEYS_TIMEOUT_MS };
	kc->npending++;
	flush(kc);
	return 0;
}

int keys_client_read(struct keys_client *kc, keys_done_fn *done)
{
	for (;;) {
		/* One byte more than an answer: a longer message would be
		 * cut to the right size and taken for one. */
		union {
			struct keys_ans a;
			char buf[sizeof(struct keys_ans) + 1];
		} u;
		struct keys_ans a;
		struct keys_pending *p = NULL;
		ssize_t n;

		if (kc->fd < 0)
			return -EPIPE;
		n = recv(kc->fd, &u, sizeof(u), MSG_DONTWAIT);
		memcpy(&a, &u.a, sizeof(a));
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_warnx("the keys monitor is gone");
			close(kc->fd);
			kc->fd = -1;
			return -EPIPE;
		}
		for (size_t i = 0; n == (ssize_t)sizeof(a) && a.id &&
				   i < KEYS_MAX_PENDING; i++)
			if (kc->pend[i].id == a.id && kc->pend[i].sent) {
				p = &kc->pend[i];
				break;
			}
		if (!p) {
			/* Late (its login already refused or gone), or not
			 * ours at all: never the answer to anyone else. */
			if (kc->dropped++ < 10 || kc->dropped % 1000 == 0)
				log_warnx("keys monitor: an answer matching no "
					  "request dropped (%llu so far)",
					  (unsigned long long)kc->dropped);
			continue;
		}
		void *owner = p->owner;

		slot_free(kc, p);
		done(owner, a.r);
	}
	flush(kc);
	return 0;
}

bool keys_client_expire(struct keys_client *kc, uint64_t now_ms,
			keys_done_fn *done)
{
	bool stuck = false;

	for (size_t i = 0; i < KEYS_MAX_PENDING; i++) {
		struct keys_pending *p = &kc->pend[i];
		void *owner = p->owner;

		if (!p->id || now_ms < p->deadline_ms)
			continue;
		log_warnx("keys monitor: no answer for %s in %d ms; login "
			  "refused", p->req->user, KEYS_TIMEOUT_MS);
		/* Not sent: the socket was full; sent: the monitor took the
		 * request and did not answer. Both mean it is not keeping up. */
		stuck = true;
		slot_free(kc, p);
		done(owner, -ETIMEDOUT);
	}
	return stuck;
}

void keys_client_cancel(struct keys_client *kc, const void *owner)
{
	for (size_t i = 0; i < KEYS_MAX_PENDING; i++)
		if (kc->pend[i].id && kc->pend[i].owner == owner)
			slot_free(kc, &kc->pend[i]);
}

void keys_client_attach(struct keys_client *kc, int fd, uint64_t now_ms)
{
	if (kc->fd >= 0)
		close(kc->fd);
	kc->fd = fd;
	for (size_t i = 0; i < KEYS_MAX_PENDING; i++)
		if (kc->pend[i].id) {
			kc->pend[i].sent = false;
			kc->pend[i].deadline_ms = now_ms + KEYS_TIMEOUT_MS;
		}
	flush(kc);
}

void keys_client_close(struct keys_client *kc, keys_done_fn *done)
{
	if (kc->fd >= 0)
		close(kc->fd);
	kc->fd = -1;
	for (size_t i = 0; i < KEYS_MAX_PENDING; i++)
		if (kc->pend[i].id) {
			void *owner = kc->pend[i].owner;

			slot_free(kc, &kc->pend[i]);
			done(owner, -EPIPE);
		}
}
