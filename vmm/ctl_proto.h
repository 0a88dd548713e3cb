/* The control protocol between our own processes: the front-end, the VM
 * manager and the VM workers. Each message is one SOCK_SEQPACKET packet:
 * a header (type, payload length) and a payload whose layout and size the
 * type fixes, with up to CTL_FDS_MAX descriptors (SCM_RIGHTS).
 *
 * Each direction has a table (ctl_dir) of the types it may carry: the
 * payload fields, how many fds, and in which of the receiver's states the
 * message is allowed; OpenSSH's monitor dispatch table is the model. A
 * receiver decodes with ctl_decode() against its table and its state:
 * anything else (an unknown type, a payload of the wrong size, fds on a
 * message that takes none, a message not allowed now) makes the sender
 * hostile. The receiver drops the sender (the front-end drops that VM, the
 * manager kills the worker); it never dies of it itself.
 *
 * Sends from the front-end and the manager never block: ctl_send() queues
 * what the socket does not take at once, up to CTL_QUEUE_MAX messages;
 * beyond that the peer is not reading and is dropped. */
#ifndef VMM_CTL_PROTO_H
#define VMM_CTL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "console/agent_proto.h"

enum worker_msg_type {
	WORKER_READY = 1,	/* worker: VM created and restored (a = ns the
				 * restore took), waiting for go */
	WORKER_GO,		/* parent: identity; restore and run */
	WORKER_STARTED,		/* worker: running (a = first KVM_RUN, ns) + fd */
	WORKER_ACKED,		/* worker: the agent applied the identity */
	WORKER_PAUSE,		/* parent: stop the vCPU */
	WORKER_PAUSED,		/* worker: stopped */
	WORKER_RESUME,		/* parent: run again */
	WORKER_RESUMED,		/* worker: running (a = vCPU back in KVM_RUN) */
	WORKER_SUSPEND,		/* parent: to disk, into directory text (a
				 * jailed worker: its own; text names the
				 * user) */
	WORKER_SUSPENDED,	/* worker: written (a = pages); it then exits */
	WORKER_GO_RESUME,	/* parent: instead of go, resume from directory
				 * text (a VM suspended from this template; a
				 * jailed worker: its own, text the user) */
	WORKER_SESSION_OPEN,	/* parent: spawn (a = session id) */
	WORKER_SESSION_OPENED,	/* worker: a = session id, b = 0 or -errno;
				 * fds: stdout (or terminal), stderr, stdin;
				 * one with a pty, none on failure */
	WORKER_SESSION_RESIZE,	/* parent: a = session, spawn.rows/cols */
	WORKER_SESSION_SIGNAL,	/* parent: a = session, b = signal */
	WORKER_SESSION_EXIT,	/* worker: a = session, b = (how << 8) | code */
	WORKER_EXITED,		/* worker: the VM ended (a = why); text */
	WORKER_FAILED,		/* worker: could not do what was asked; text */
	WORKER_STAT,		/* parent: how much memory is yours? */
	WORKER_STATS,		/* worker: a = Private_Dirty KiB (-1: unknown) */

	/* Front-end and manager (manager.h). */
	MGR_SPAWN = 32,		/* front-end: a ready worker, please */
	MGR_WORKER,		/* manager: a = pid, b = restore ns; fd: its
				 * control socket */
	MGR_END,		/* front-end: a = pid: end that worker */
	MGR_GONE,		/* manager: a = pid, b = wait status: reaped */
	MGR_KEYS,		/* front-end: a new keys monitor */
	MGR_KEYS_READY,		/* manager: a = pid; fd: its socket */
	MGR_FAILED,		/* manager: a = the request type (b = the pid,
				 * for MGR_END); text */
	MGR_STASH,		/* front-end: a = pid, text = user: once that
				 * worker is reaped, keep the VM it suspended
				 * as user's (sent before its MGR_END) */
	MGR_STASHED,		/* manager: a = pid, b = 0 or -errno, text =
				 * user: kept in suspended/<user>, or not */
	MGR_UNSTASH,		/* front-end: a = pid, text = user: give user's
				 * suspended VM to that (idle) worker */
	MGR_UNSTASHED,		/* manager: a = pid, b = 0 or -errno, text =
				 * user: in the worker's directory, or not */
	MGR_DROP,		/* front-end: text = user: that suspended VM
				 * is gone (no answer) */
	CTL_TYPE_MAX
};

#define CTL_TEXT_MAX 159
#define CTL_FDS_MAX 3
#define CTL_QUEUE_MAX 128	/* messages waiting for a peer that does not
				 * read; then it is dropped */

/* One message, decoded: the fields its type carries are set, the others
 * zero. text is always NUL-terminated. */
struct worker_msg {
	uint32_t type;
	uint32_t pad;
	uint64_t a, b;
	struct agent_identity id;
	struct agent_spawn spawn;
	char text[CTL_TEXT_MAX + 1];
};

/* Payload fields, in this order on the wire. */
enum {
	CTL_P_A = 1 << 0,	/* u64 a */
	CTL_P_B = 1 << 1,	/* u64 b */
	CTL_P_ROWCOL = 1 << 2,	/* u16 spawn.rows, u16 spawn.cols */
	CTL_P_ID = 1 << 3,	/* struct agent_identity, as is */
	CTL_P_SPAWN = 1 << 4,	/* spawn: pty, rows, cols, then term, cmd and
				 * env, each with its length */
	CTL_P_TEXT = 1 << 5,	/* the rest: 0..CTL_TEXT_MAX bytes, no NUL */
};

#define CTL_HDR_SIZE 8		/* u32 type, u32 payload length */
#define CTL_MSG_MAX (CTL_HDR_SIZE + 16 + 12 + 63 + AGENT_CMD_MAX + \
		     AGENT_ENV_MAX)

/* Why a message was refused: one kind per way it can be wrong. */
enum ctl_err {
	CTL_OK = 0,
	CTL_E_SHORT,		/* shorter than a header */
	CTL_E_TRUNC,		/* longer than CTL_MSG_MAX, or fds cut off */
	CTL_E_LEN,		/* header length is not the packet's */
	CTL_E_TYPE,		/* not a type this direction carries */
	CTL_E_SIZE,		/* payload size wrong for the type */
	CTL_E_FIELD,		/* a field out of range (lengths, NUL in text) */
	CTL_E_FDS,		/* fds on a message that takes none, or too
				 * many, or too few */
	CTL_E_STATE,		/* not allowed in the receiver's state */
	CTL_E_UNASKED,		/* an answer to nothing asked */
	CTL_E_SESSION,		/* a session not asked for, or opened twice */
	CTL_E_ONCE,		/* a second one of a message sent once */
	CTL_E_MAX
};

const char *ctl_strerror(enum ctl_err e);
const char *ctl_type_name(uint32_t type);

struct ctl_rule {
	uint32_t type;
	unsigned fields;	/* CTL_P_* */
	uint8_t min_fds, max_fds;
	uint32_t states;	/* bit n: allowed in the receiver's state n */
	uint32_t reply_to;	/* an answer to this request type (0: none;
				 * MGR_FAILED: the type in a) */
};

struct ctl_dir {
	const char *name;
	const struct ctl_rule *rules;
	size_t n;
};

/* The worker's states, as seen by both ends of its control socket. */
enum worker_state {
	WORKER_S_SPAWNED,	/* forked; READY or FAILED next */
	WORKER_S_IDLE,		/* ready: GO or GO_RESUME next */
	WORKER_S_GOING,		/* asked to go: STARTED or FAILED next */
	WORKER_S_RUNNING,
	WORKER_S_SUSPENDING,	/* asked to suspend */
	WORKER_S_DONE,		/* said it ends: nothing more is allowed */
};

#define CTL_ST(s) (1u << (s))
#define CTL_ANY 0xffffffffu

extern const struct ctl_dir ctl_to_worker;	/* parent -> worker */
extern const struct ctl_dir ctl_from_worker;	/* worker -> parent */
extern const struct ctl_dir ctl_to_manager;	/* front-end -> manager */
extern const struct ctl_dir ctl_from_manager;	/* manager -> front-end */

/* The rule for type in dir, or NULL. */
const struct ctl_rule *ctl_rule_of(const struct ctl_dir *dir, uint32_t type);

/* Encode m (its type must be in dir) into out. The length, or -EINVAL (a
 * type dir does not carry, a field too long) or -EMSGSIZE. */
ssize_t ctl_encode(const struct ctl_dir *dir, const struct worker_msg *m,
		   uint8_t *out, size_t outlen);

/* Decode the packet p[0..n), which came with nfds descriptors, as a
 * message of dir in the receiver's state. 0 with m filled (and *rule set,
 * if rule is not NULL), or -EPROTO with *err saying why. Checks the shape
 * and the state; answers and sessions are the receiver's to check. */
int ctl_decode(const struct ctl_dir *dir, unsigned state, const uint8_t *p,
	       size_t n, int nfds, struct worker_msg *m,
	       const struct ctl_rule **rule, enum ctl_err *err);

/* One recvmsg() of a whole packet into buf (CTL_MSG_MAX bytes), without
 * waiting. Its length, with fds[0..*nfds) now the caller's; 0 at EOF;
 * -EAGAIN; -EPROTO (*err: CTL_E_TRUNC, fds closed); or -errno. */
ssize_t ctl_recv(int sock, uint8_t *buf, int fds[CTL_FDS_MAX], int *nfds,
		 enum ctl_err *err);

/* Requests sent and not yet answered, per type: an answer to nothing
 * asked is refused (CTL_E_UNASKED). */
struct ctl_asked {
	uint16_t n[CTL_TYPE_MAX];
};

void ctl_asked_sent(struct ctl_asked *a, uint32_t type);
/* Take the answer m (by rule) off a: 0, or -EPROTO with *err. */
int ctl_asked_answer(struct ctl_asked *a, const struct ctl_rule *rule,
		     const struct worker_msg *m, enum ctl_err *err);

/* A bounded queue of encoded messages (and their fds, duplicated) that
 * the peer's socket did not take yet. Zero-initialised is empty. */
struct ctl_qent;
struct ctl_queue {
	struct ctl_qent *e[CTL_QUEUE_MAX];
	unsigned head, n;
};

/* Send buf[0..len) with fds[0..nfds) (still the caller's), never
 * blocking: at once if nothing waits before it and the socket takes it,
 * else queued. 0, -ENOBUFS (the queue is full: the peer is not reading),
 * -EPIPE (the peer is gone) or -errno. With q NULL: a blocking send, for
 * processes that have nothing else to do meanwhile (the worker). */
int ctl_send(int sock, struct ctl_queue *q, const uint8_t *buf, size_t len,
	     const int *fds, int nfds);
/* Encode m for dir and ctl_send() it. */
int ctl_send_msg(int sock, struct ctl_queue *q, const struct ctl_dir *dir,
		 const struct worker_msg *m, const int *fds, int nfds);
/* Send what waits, as far as the socket takes it (on POLLOUT). 0 (all
 * sent), 1 (some still waits) or -errno. */
int ctl_flush(int sock, struct ctl_queue *q);
static inline bool ctl_pending(const struct ctl_queue *q)
{
	return q && q->n > 0;
}
/* Drop what waits (closing its fds). */
void ctl_queue_clear(struct ctl_queue *q);

/* Whether a line about a hostile peer may be logged now: at most a few a
 * second, however many peers misbehave. */
bool ctl_log_ok(void);

#endif
