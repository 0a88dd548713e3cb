/* The keys monitor: a root process that answers one question for the
 * front-end, as OpenSSH's monitor does: does this key let this user in?
 * (and, with open_signup, writes a new user's keys file). The front-end
 * runs as the clone user and cannot read authorized_keys files, which may
 * be anywhere (%u) and belong to root.
 *
 * Both sides are here. Every request carries an id and every answer the id
 * of its request: an answer is matched to the login that asked, or
 * dropped. The front-end never waits for an answer: a login's
 * authentication reply waits while other connections go on; a lookup not
 * answered in time is refused for that login alone, and a monitor that
 * stops answering is replaced (by the manager, which forks it). */
#ifndef SSHD_KEYS_MONITOR_H
#define SSHD_KEYS_MONITOR_H

#include <libssh/libssh.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"

enum keys_op {
	KEYS_MATCH = 1,		/* 1: the key is the user's, 0: it is not,
				 * -ENOENT: no keys file for the user */
	KEYS_SIGNUP,		/* 0: the user is now the key's */
};

/* One request, one SOCK_SEQPACKET message, always this size. */
struct keys_req {
	uint32_t id;		/* never 0 */
	uint32_t op;
	char user[33];
	char type[40];
	char b64[4096];
};

struct keys_ans {
	uint32_t id;
	int32_t r;		/* as enum keys_op says, or -errno */
};

/* How long a lookup may take before its login is refused and the monitor
 * is taken to be stuck: reading one small local file takes microseconds;
 * an fsync during a sign-up, milliseconds. */
#define KEYS_TIMEOUT_MS 5000
/* Lookups in flight at once: one per connection at most. */
#define KEYS_MAX_PENDING 1024

/* The monitor's loop: answer requests on sock until the front-end goes,
 * then _exit(0). cfg gives authorized_keys and open_signup. */
void keys_monitor_main(int sock, const struct cfg *cfg);

/* The answer to one request (the monitor's logic, without the socket):
 * the request's fields are checked again here, as a front-end taken over
 * may send anything. */
int keys_monitor_answer(const struct cfg *cfg, struct keys_req *q);

/* ---- the front-end's side ---- */

struct keys_pending {
	uint32_t id;		/* 0: slot free */
	void *owner;		/* the login waiting, for keys_done */
	uint64_t deadline_ms;
	struct keys_req *req;	/* kept to ask a new monitor again */
	bool sent;		/* on the monitor's socket */
};

struct keys_client {
	int fd;			/* -1: no monitor now */
	uint32_t last_id;
	unsigned npending;
	uint64_t dropped;	/* answers that matched no request */
	struct keys_pending pend[KEYS_MAX_PENDING];
};

/* The result of one lookup (r as enum keys_op says, -ETIMEDOUT when the
 * monitor took too long, -EPIPE when it went away), for its owner. */
typedef void keys_done_fn(void *owner, int r);

void keys_client_init(struct keys_client *kc);

/* Ask about key for user on owner's behalf; the answer comes through
 * keys_client_read(). 0, -EBUSY (too many in flight), -E2BIG, -EINVAL,
 * -ENOMEM. A send that fails marks the monitor gone (fd -1; the caller
 * replaces it), and the request waits for the next one. */
int keys_client_ask(struct keys_client *kc, uint32_t op, const char *user,
		    ssh_key key, void *owner, uint64_t now_ms);

/* Read every answer waiting on kc->fd and hand each to done(); an answer
 * with an id in flight nowhere, or of the wrong size, is dropped and
 * counted. 0, or -EPIPE if the monitor is gone (kc->fd is then closed and
 * -1; the requests in flight stay, for keys_client_attach()). */
int keys_client_read(struct keys_client *kc, keys_done_fn *done);

/* Refuse (-ETIMEDOUT) every lookup past its deadline. true if any was: the
 * monitor answers in order, so it is stuck; the caller replaces it. */
bool keys_client_expire(struct keys_client *kc, uint64_t now_ms,
			keys_done_fn *done);

/* The owner is gone: its lookup, if any, is forgotten (a late answer to it
 * is then dropped, never given to whoever comes next). */
void keys_client_cancel(struct keys_client *kc, const void *owner);

/* A new monitor's socket (kc takes it): the lookups in flight that were
 * not refused are asked again, with new deadlines. */
void keys_client_attach(struct keys_client *kc, int fd, uint64_t now_ms);

/* Close the socket; done(-EPIPE) for every lookup in flight. */
void keys_client_close(struct keys_client *kc, keys_done_fn *done);

#endif
