#include "vmm/ctl_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define S CTL_ST
#define LIVE (S(WORKER_S_RUNNING) | S(WORKER_S_SUSPENDING))

/* Parent to worker: the worker is IDLE until it goes, then RUNNING. */
static const struct ctl_rule to_worker[] = {
	{ WORKER_GO, CTL_P_ID, 0, 0, S(WORKER_S_IDLE), 0 },
	{ WORKER_GO_RESUME, CTL_P_TEXT, 0, 0, S(WORKER_S_IDLE), 0 },
	{ WORKER_PAUSE, 0, 0, 0, S(WORKER_S_RUNNING), 0 },
	{ WORKER_RESUME, 0, 0, 0, S(WORKER_S_RUNNING), 0 },
	{ WORKER_SUSPEND, CTL_P_TEXT, 0, 0, S(WORKER_S_RUNNING), 0 },
	{ WORKER_SESSION_OPEN, CTL_P_A | CTL_P_SPAWN, 0, 0,
	  S(WORKER_S_RUNNING), 0 },
	{ WORKER_SESSION_RESIZE, CTL_P_A | CTL_P_ROWCOL, 0, 0,
	  S(WORKER_S_RUNNING), 0 },
	{ WORKER_SESSION_SIGNAL, CTL_P_A | CTL_P_B, 0, 0,
	  S(WORKER_S_RUNNING), 0 },
	{ WORKER_STAT, 0, 0, 0, S(WORKER_S_RUNNING), 0 },
};

/* Worker to parent, in the parent's view of the worker's state. */
static const struct ctl_rule from_worker[] = {
	{ WORKER_READY, CTL_P_A, 0, 0, S(WORKER_S_SPAWNED), 0 },
	{ WORKER_FAILED, CTL_P_TEXT, 0, 0,
	  S(WORKER_S_SPAWNED) | S(WORKER_S_GOING) | LIVE, 0 },
	{ WORKER_STARTED, CTL_P_A, 1, 1, S(WORKER_S_GOING), 0 },
	{ WORKER_ACKED, CTL_P_A, 0, 0, LIVE, 0 },
	{ WORKER_PAUSED, CTL_P_A, 0, 0, S(WORKER_S_RUNNING), WORKER_PAUSE },
	{ WORKER_RESUMED, CTL_P_A, 0, 0, S(WORKER_S_RUNNING), WORKER_RESUME },
	{ WORKER_SUSPENDED, CTL_P_A, 0, 0, S(WORKER_S_SUSPENDING), 0 },
	{ WORKER_SESSION_OPENED, CTL_P_A | CTL_P_B, 0, 3, LIVE, 0 },
	{ WORKER_SESSION_EXIT, CTL_P_A | CTL_P_B, 0, 0, LIVE, 0 },
	{ WORKER_EXITED, CTL_P_A | CTL_P_TEXT, 0, 0, LIVE, 0 },
	{ WORKER_STATS, CTL_P_A, 0, 0, LIVE, WORKER_STAT },
};

/* Front-end and manager: one state each way. */
static const struct ctl_rule to_manager[] = {
	{ MGR_SPAWN, 0, 0, 0, CTL_ANY, 0 },
	{ MGR_END, CTL_P_A, 0, 0, CTL_ANY, 0 },
	{ MGR_KEYS, 0, 0, 0, CTL_ANY, 0 },
	{ MGR_STASH, CTL_P_A | CTL_P_TEXT, 0, 0, CTL_ANY, 0 },
	{ MGR_UNSTASH, CTL_P_A | CTL_P_TEXT, 0, 0, CTL_ANY, 0 },
	{ MGR_DROP, CTL_P_TEXT, 0, 0, CTL_ANY, 0 },
};

static const struct ctl_rule from_manager[] = {
	{ MGR_WORKER, CTL_P_A | CTL_P_B, 1, 1, CTL_ANY, MGR_SPAWN },
	{ MGR_GONE, CTL_P_A | CTL_P_B, 0, 0, CTL_ANY, MGR_END },
	{ MGR_KEYS_READY, CTL_P_A, 1, 1, CTL_ANY, MGR_KEYS },
	{ MGR_FAILED, CTL_P_A | CTL_P_B | CTL_P_TEXT, 0, 0, CTL_ANY,
	  MGR_FAILED },
	{ MGR_STASHED, CTL_P_A | CTL_P_B | CTL_P_TEXT, 0, 0, CTL_ANY,
	  MGR_STASH },
	{ MGR_UNSTASHED, CTL_P_A | CTL_P_B | CTL_P_TEXT, 0, 0, CTL_ANY,
	  MGR_UNSTASH },
};

#undef S
#define DIR(v, nm) { nm, v, sizeof(v) / sizeof(v[0]) }
const struct ctl_dir ctl_to_worker = DIR(to_worker, "to worker");
const struct ctl_dir ctl_from_worker = DIR(from_worker, "from worker");
const struct ctl_dir ctl_to_manager = DIR(to_manager, "to manager");
const struct ctl_dir ctl_from_manager = DIR(from_manager, "from manager");

static const char *const err_name[CTL_E_MAX] = {
	[CTL_OK] = "ok",
	[CTL_E_SHORT] = "shorter than a header",
	[CTL_E_TRUNC] = "too long, or descriptors cut off",
	[CTL_E_LEN] = "length is not the packet's",
	[CTL_E_TYPE] = "a type not allowed this way",
	[CTL_E_SIZE] = "payload size wrong for its type",
	[CTL_E_FIELD] = "a field out of range",
	[CTL_E_FDS] = "wrong number of descriptors",
	[CTL_E_STATE] = "not allowed in this state",
	[CTL_E_UNASKED] = "an answer to nothing asked",
	[CTL_E_SESSION] = "a session not asked for, or opened twice",
	[CTL_E_ONCE] = "sent twice",
};

const char *ctl_strerror(enum ctl_err e)
{
	return (unsigned)e < CTL_E_MAX ? err_name[e] : "?";
}

const char *ctl_type_name(uint32_t type)
{
	static const char *const name[CTL_TYPE_MAX] = {
		[WORKER_READY] = "READY", [WORKER_GO] = "GO",
		[WORKER_STARTED] = "STARTED", [WORKER_ACKED] = "ACKED",
		[WORKER_PAUSE] = "PAUSE", [WORKER_PAUSED] = "PAUSED",
		[WORKER_RESUME] = "RESUME", [WORKER_RESUMED] = "RESUMED",
		[WORKER_SUSPEND] = "SUSPEND", [WORKER_SUSPENDED] = "SUSPENDED",
		[WORKER_GO_RESUME] = "GO_RESUME",
		[WORKER_SESSION_OPEN] = "SESSION_OPEN",
		[WORKER_SESSION_OPENED] = "SESSION_OPENED",
		[WORKER_SESSION_RESIZE] = "SESSION_RESIZE",
		[WORKER_SESSION_SIGNAL] = "SESSION_SIGNAL",
		[WORKER_SESSION_EXIT] = "SESSION_EXIT",
		[WORKER_EXITED] = "EXITED", [WORKER_FAILED] = "FAILED",
		[WORKER_STAT] = "STAT", [WORKER_STATS] = "STATS",
		[MGR_SPAWN] = "MGR_SPAWN", [MGR_WORKER] = "MGR_WORKER",
		[MGR_END] = "MGR_END", [MGR_GONE] = "MGR_GONE",
		[MGR_KEYS] = "MGR_KEYS", [MGR_KEYS_READY] = "MGR_KEYS_READY",
		[MGR_FAILED] = "MGR_FAILED", [MGR_STASH] = "MGR_STASH",
		[MGR_STASHED] = "MGR_STASHED", [MGR_UNSTASH] = "MGR_UNSTASH",
		[MGR_UNSTASHED] = "MGR_UNSTASHED", [MGR_DROP] = "MGR_DROP",
	};

	return type < CTL_TYPE_MAX && name[type] ? name[type] : "unknown";
}

const struct ctl_rule *ctl_rule_of(const struct ctl_dir *dir, uint32_t type)
{
	for (size_t i = 0; i < dir->n; i++)
		if (dir->rules[i].type == type)
			return &dir->rules[i];
	return NULL;
}

/* ---- encoding ----------------------------------------------------------- */

#define SPAWN_FIXED 12		/* u8 pty, u8 0, u16 rows, cols, term, cmd
				 * and env lengths */

static void put(uint8_t **p, const void *v, size_t n)
{
	memcpy(*p, v, n);
	*p += n;
}

static void put16(uint8_t **p, uint16_t v)
{
	put(p, &v, sizeof(v));
}

ssize_t ctl_encode(const struct ctl_dir *dir, const struct worker_msg *m,
		   uint8_t *out, size_t outlen)
{
	const struct ctl_rule *r = ctl_rule_of(dir, m->type);
	uint8_t buf[CTL_MSG_MAX], *p = buf + CTL_HDR_SIZE;
	uint32_t len;

	if (!r)
		return -EINVAL;
	if (r->fields & CTL_P_A)
		put(&p, &m->a, 8);
	if (r->fields & CTL_P_B)
		put(&p, &m->b, 8);
	if (r->fields & CTL_P_ROWCOL) {
		put16(&p, m->spawn.rows);
		put16(&p, m->spawn.cols);
	}
	if (r->fields & CTL_P_ID)
		put(&p, &m->id, sizeof(m->id));
	if (r->fields & CTL_P_SPAWN) {
		const struct agent_spawn *sp = &m->spawn;
		size_t tl = strnlen(sp->term, sizeof(sp->term));
		size_t cl = strnlen(sp->cmd, sizeof(sp->cmd));

		if (tl >= sizeof(sp->term) || cl > AGENT_CMD_MAX ||
		    sp->env_len > AGENT_ENV_MAX)
			return -EINVAL;
		*p++ = sp->pty ? 1 : 0;
		*p++ = 0;
		put16(&p, sp->rows);
		put16(&p, sp->cols);
		put16(&p, (uint16_t)tl);
		put16(&p, (uint16_t)cl);
		put16(&p, sp->env_len);
		put(&p, sp->term, tl);
		put(&p, sp->cmd, cl);
		put(&p, sp->env, sp->env_len);
	}
	if (r->fields & CTL_P_TEXT)
		put(&p, m->text, strnlen(m->text, CTL_TEXT_MAX));
	len = (uint32_t)(p - buf - CTL_HDR_SIZE);
	memcpy(buf, &m->type, 4);
	memcpy(buf + 4, &len, 4);
	if ((size_t)(p - buf) > outlen)
		return -EMSGSIZE;
	memcpy(out, buf, (size_t)(p - buf));
	return p - buf;
}

/* ---- decoding ----------------------------------------------------------- */

static size_t fixed_size(unsigned f)
{
	return (f & CTL_P_A ? 8 : 0) + (f & CTL_P_B ? 8 : 0) +
	       (f & CTL_P_ROWCOL ? 4 : 0) +
	       (f & CTL_P_ID ? sizeof(struct agent_identity) : 0) +
	       (f & CTL_P_SPAWN ? SPAWN_FIXED : 0);
}

static void get(const uint8_t **p, void *v, size_t n)
{
	memcpy(v, *p, n);
	*p += n;
}

static uint16_t get16(const uint8_t **p)
{
	uint16_t v;

	get(p, &v, sizeof(v));
	return v;
}

static int decode_spawn(const uint8_t *p, size_t rest, struct agent_spawn *sp)
{
	uint16_t tl, cl, el;

	sp->pty = p[0];
	if (p[0] > 1 || p[1])
		return -1;
	p += 2;
	sp->rows = get16(&p);
	sp->cols = get16(&p);
	tl = get16(&p);
	cl = get16(&p);
	el = get16(&p);
	if (tl >= sizeof(sp->term) || cl > AGENT_CMD_MAX ||
	    el > AGENT_ENV_MAX || (size_t)tl + cl + el != rest)
		return -1;
	get(&p, sp->term, tl);
	get(&p, sp->cmd, cl);
	get(&p, sp->env, el);
	sp->env_len = el;
	if (memchr(sp->term, 0, tl) || memchr(sp->cmd, 0, cl))
		return -1;
	sp->err_port = sp->in_port = -1;	/* the worker's to choose */
	return 0;
}

static int refuse(enum ctl_err *err, enum ctl_err why)
{
	if (err)
		*err = why;
	return -EPROTO;
}

int ctl_decode(const struct ctl_dir *dir, unsigned state, const uint8_t *p,
	       size_t n, int nfds, struct worker_msg *m,
	       const struct ctl_rule **rule, enum ctl_err *err)
{
	const struct ctl_rule *r;
	uint32_t type, len;
	size_t fixed, rest;

	memset(m, 0, sizeof(*m));
	if (err)
		*err = CTL_OK;
	if (n < CTL_HDR_SIZE)
		return refuse(err, CTL_E_SHORT);
	if (n > CTL_MSG_MAX)
		return refuse(err, CTL_E_TRUNC);
	memcpy(&type, p, 4);
	memcpy(&len, p + 4, 4);
	if (len != n - CTL_HDR_SIZE)
		return refuse(err, CTL_E_LEN);
	r = ctl_rule_of(dir, type);
	if (!r)
		return refuse(err, CTL_E_TYPE);
	fixed = fixed_size(r->fields);
	if (len < fixed || (!(r->fields & (CTL_P_TEXT | CTL_P_SPAWN)) &&
			    len != fixed) ||
	    ((r->fields & CTL_P_TEXT) && len > fixed + CTL_TEXT_MAX))
		return refuse(err, CTL_E_SIZE);
	if (nfds < r->min_fds || nfds > r->max_fds)
		return refuse(err, CTL_E_FDS);
	if (state >= 32 || !(r->states & CTL_ST(state)))
		return refuse(err, CTL_E_STATE);
	m->type = type;
	p += CTL_HDR_SIZE;
	rest = len - fixed;
	if (r->fields & CTL_P_A)
		get(&p, &m->a, 8);
	if (r->fields & CTL_P_B)
		get(&p, &m->b, 8);
	if (r->fields & CTL_P_ROWCOL) {
		m->spawn.rows = get16(&p);
		m->spawn.cols = get16(&p);
	}
	if (r->fields & CTL_P_ID) {
		get(&p, &m->id, sizeof(m->id));
		/* the worker checks the values (agent_identity_encode); here
		 * only that no string runs off its field */
		if (m->id.entropy_len > AGENT_ENTROPY_MAX)
			return refuse(err, CTL_E_FIELD);
		m->id.hostname[sizeof(m->id.hostname) - 1] = 0;
		m->id.user[sizeof(m->id.user) - 1] = 0;
		m->id.home[sizeof(m->id.home) - 1] = 0;
		m->id.machine_id[sizeof(m->id.machine_id) - 1] = 0;
	}
	if ((r->fields & CTL_P_SPAWN) &&
	    decode_spawn(p, rest, &m->spawn) < 0)
		return refuse(err, CTL_E_FIELD);
	if (r->fields & CTL_P_TEXT) {
		if (memchr(p, 0, rest))
			return refuse(err, CTL_E_FIELD);
		memcpy(m->text, p, rest);
	}
	if (rule)
		*rule = r;
	return 0;
}

ssize_t ctl_recv(int sock, uint8_t *buf, int fds[CTL_FDS_MAX], int *nfds,
		 enum ctl_err *err)
{
	union {
		char b[CMSG_SPACE(CTL_FDS_MAX * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = buf, .iov_len = CTL_MSG_MAX };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = u.b,
			     .msg_controllen = sizeof(u.b) };
	struct cmsghdr *c;
	ssize_t n;

	*nfds = 0;
	if (err)
		*err = CTL_OK;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (*nfds < CTL_FDS_MAX)
				fds[(*nfds)++] = fd;
			else
				close(fd);
		}
	}
	/* The kernel closed what did not fit, or the packet was cut: either
	 * way not a message of ours. */
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		for (int i = 0; i < *nfds; i++)
			close(fds[i]);
		*nfds = 0;
		if (err)
			*err = CTL_E_TRUNC;
		return -EPROTO;
	}
	return n;
}

/* ---- requests and their answers ----------------------------------------- */

void ctl_asked_sent(struct ctl_asked *a, uint32_t type)
{
	if (type < CTL_TYPE_MAX && a->n[type] < UINT16_MAX)
		a->n[type]++;
}

int ctl_asked_answer(struct ctl_asked *a, const struct ctl_rule *rule,
		     const struct worker_msg *m, enum ctl_err *err)
{
	uint64_t q = rule->reply_to;

	if (!q)
		return 0;
	if (q == MGR_FAILED)	/* answers the request named in a */
		q = m->a;
	if (q >= CTL_TYPE_MAX || q == MGR_FAILED || !a->n[q])
		return refuse(err, CTL_E_UNASKED);
	a->n[q]--;
	return 0;
}

/* ---- sending ------------------------------------------------------------- */

struct ctl_qent {
	size_t len;
	int nfds;
	int fds[CTL_FDS_MAX];
	uint8_t buf[];
};

static ssize_t send_one(int sock, const uint8_t *buf, size_t len,
			const int *fds, int nfds, int flags)
{
	union {
		char b[CMSG_SPACE(CTL_FDS_MAX * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = (void *)(uintptr_t)buf,
			     .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (nfds > 0) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.b;
		mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL | flags);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return n == (ssize_t)len ? 0 : -EIO;
}

static void qent_free(struct ctl_qent *e)
{
	if (!e)
		return;
	for (int i = 0; i < e->nfds; i++)
		close(e->fds[i]);
	explicit_bzero(e->buf, e->len);	/* GO holds entropy */
	free(e);
}

int ctl_send(int sock, struct ctl_queue *q, const uint8_t *buf, size_t len,
	     const int *fds, int nfds)
{
	struct ctl_qent *e;
	ssize_t r;

	if (nfds < 0 || nfds > CTL_FDS_MAX || len > CTL_MSG_MAX)
		return -EINVAL;
	if (!q)
		return (int)send_one(sock, buf, len, fds, nfds, 0);
	if (q->n == 0) {
		r = send_one(sock, buf, len, fds, nfds, MSG_DONTWAIT);
		if (r != -EAGAIN && r != -ENOBUFS)
			return (int)r;
	}
	if (q->n >= CTL_QUEUE_MAX)
		return -ENOBUFS;
	e = malloc(sizeof(*e) + len);
	if (!e)
		return -ENOMEM;
	e->len = len;
	e->nfds = 0;
	memcpy(e->buf, buf, len);
	for (int i = 0; i < nfds; i++) {
		int d = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);

		if (d < 0) {
			r = -errno;
			qent_free(e);
			return (int)r;
		}
		e->fds[e->nfds++] = d;
	}
	q->e[(q->head + q->n++) % CTL_QUEUE_MAX] = e;
	return 0;
}

int ctl_send_msg(int sock, struct ctl_queue *q, const struct ctl_dir *dir,
		 const struct worker_msg *m, const int *fds, int nfds)
{
	uint8_t buf[CTL_MSG_MAX];
	ssize_t n = ctl_encode(dir, m, buf, sizeof(buf));
	int r;

	if (n < 0)
		return (int)n;
	r = ctl_send(sock, q, buf, (size_t)n, fds, nfds);
	explicit_bzero(buf, sizeof(buf));	/* GO holds entropy */
	return r;
}

int ctl_flush(int sock, struct ctl_queue *q)
{
	while (q && q->n) {
		struct ctl_qent *e = q->e[q->head];
		ssize_t r = send_one(sock, e->buf, e->len, e->fds, e->nfds,
				     MSG_DONTWAIT);

		if (r == -EAGAIN || r == -ENOBUFS)
			return 1;
		if (r < 0)
			return (int)r;
		qent_free(e);
		q->e[q->head] = NULL;
		q->head = (q->head + 1) % CTL_QUEUE_MAX;
		q->n--;
	}
	return 0;
}

void ctl_queue_clear(struct ctl_queue *q)
{
	while (q && q->n) {
		qent_free(q->e[q->head]);
		q->e[q->head] = NULL;
		q->head = (q->head + 1) % CTL_QUEUE_MAX;
		q->n--;
	}
	if (q)
		q->head = 0;
}

bool ctl_log_ok(void)
{
	static time_t window;
	static unsigned used;
	time_t now = time(NULL);

	if (now != window) {
		window = now;
		used = 0;
	}
	return used++ < 5;
}
