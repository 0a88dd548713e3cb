/* Client input buffers and budgets; the window arithmetic is in the
 * header. */
#include "sshd/chan_input.h"

#include <errno.h>
#include <stdlib.h>

int sshd_in_offered(size_t len)
{
	/* What libssh holds plus the window it has left never exceeds
	 * HELD_MAX for a client that keeps to the window: each packet moves
	 * bytes from the window to the held ones, our takes and pulls only
	 * lower the sum, and a top-up (to WIN_BASE) happens only with fewer
	 * than WIN_LIMIT held. */
	return len > SSHD_IN_HELD_MAX ? -EPROTO : 0;
}

void sshd_in_taken(struct sshd_in *in, size_t len, size_t taken)
{
	in->held = taken < len ? len - taken : 0;
}

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* What the budgets let the buffer grow to (from its cap now). */
static size_t budget_cap(const struct sshd_in *in, size_t conn_used,
			 size_t total_used)
{
	size_t cap = SSHD_IN_CHAN_MAX;

	cap = min_size(cap, in->cap + (conn_used < SSHD_IN_CONN_MAX ?
				       SSHD_IN_CONN_MAX - conn_used : 0));
	cap = min_size(cap, in->cap + (total_used < SSHD_IN_TOTAL_MAX ?
				       SSHD_IN_TOTAL_MAX - total_used : 0));
	return cap;
}

ssize_t sshd_in_pull_prepare(struct sshd_in *in, size_t *conn_used,
			     size_t *total_used)
{
	size_t want, least, cap;
	uint8_t *p;

	if (!in->held || in->len)
		return 0;
	want = min_size(in->held, SSHD_IN_CHAN_MAX);
	/* Leave fewer than WIN_LIMIT held: libssh may top the window up
	 * after our read whatever it still holds, and what it holds plus
	 * a fresh window must stay within HELD_MAX. */
	least = in->held >= SSHD_IN_WIN_LIMIT ?
			in->held - (SSHD_IN_WIN_LIMIT - 1) : 1;
	if (in->cap >= want)
		return (ssize_t)want;
	cap = (want + SSHD_IN_CHUNK - 1) / SSHD_IN_CHUNK * SSHD_IN_CHUNK;
	cap = min_size(cap, budget_cap(in, *conn_used, *total_used));
	if (cap < least)
		return 0;
	if (cap <= in->cap)
		return (ssize_t)min_size(want, in->cap);
	/* Empty (len is 0): nothing to carry over. */
	p = malloc(cap);
	if (!p)
		return -ENOMEM;
	free(in->buf);
	*conn_used += cap - in->cap;
	*total_used += cap - in->cap;
	in->buf = p;
	in->cap = cap;
	in->off = 0;
	return (ssize_t)min_size(want, cap);
}

void sshd_in_pulled(struct sshd_in *in, size_t n)
{
	n = min_size(n, in->held);
	n = min_size(n, in->cap - in->off - in->len);
	in->held -= n;
	in->len += n;
}

void sshd_in_consumed(struct sshd_in *in, size_t n)
{
	n = min_size(n, in->len);
	in->off += n;
	in->len -= n;
	if (!in->len)
		in->off = 0;
}

void sshd_in_trim(struct sshd_in *in, size_t *conn_used, size_t *total_used,
		  bool all)
{
	if (!in->cap || (!all && (in->len || in->held)))
		return;
	free(in->buf);
	*conn_used -= min_size(in->cap, *conn_used);
	*total_used -= min_size(in->cap, *total_used);
	in->buf = NULL;
	in->cap = in->off = in->len = 0;
}
