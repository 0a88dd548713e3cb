#include "common/log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"

static char log_tag[64] = "clone";
static enum log_level log_max = LOG_INFO;

void log_init(const char *tag, enum log_level max)
{
	log_set_tag(tag);
	log_max = max;
}

void log_set_tag(const char *tag)
{
	snprintf(log_tag, sizeof(log_tag), "%s", tag);
}

void log_set_tagf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(log_tag, sizeof(log_tag), fmt, ap);
	va_end(ap);
}

enum log_level log_level(void)
{
	return log_max;
}

static void vlog(enum log_level lvl, int errnum, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
static void vlog(enum log_level lvl, int errnum, const char *fmt, va_list ap)
{
	char msg[1024], line[1200];
	int n;

	if (lvl > log_max)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* Messages carry text from guests and clients: no control characters
	 * (a fake line, a terminal escape) reach the log. */
	for (char *c = msg; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	if (errnum)
		n = snprintf(line, sizeof(line), "%s: %s: %s\n", log_tag, msg,
			     strerror(errnum));
	else
		n = snprintf(line, sizeof(line), "%s: %s\n", log_tag, msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	/* One write per line so lines from several processes do not mix. */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

#define LOG_FN(name, lvl, with_errno)                                        \
	void name(const char *fmt, ...)                                      \
	{                                                                    \
		int saved = errno;                                           \
		va_list ap;                                                  \
		va_start(ap, fmt);                                           \
		vlog(lvl, with_errno ? saved : 0, fmt, ap);                  \
		va_end(ap);                                                  \
		errno = saved;                                               \
	}

LOG_FN(log_warn, LOG_WARNING, 1)
LOG_FN(log_warnx, LOG_WARNING, 0)
LOG_FN(log_info, LOG_INFO, 0)
LOG_FN(log_debug, LOG_DEBUG, 0)

void fatal(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_ERR, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_ERR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}

/* ---- rate-limited lines ------------------------------------------------ */

void log_limit_init(struct log_limit *l, const char *what)
{
	memset(l, 0, sizeof(*l));
	pthread_mutex_init(&l->lock, NULL);
	l->what = what;
}

void log_limit_destroy(struct log_limit *l)
{
	pthread_mutex_destroy(&l->lock);
}

static void say_dropped(const struct log_limit *l, unsigned n)
{
	log_warnx("%s: %u log lines dropped (more than %d in %llu s)",
		  l->what ? l->what : "peer", n, LOG_LIMIT_BURST,
		  LOG_LIMIT_WINDOW_NS / 1000000000ULL);
}

void log_limit_flush(struct log_limit *l)
{
	unsigned n;

	pthread_mutex_lock(&l->lock);
	n = l->dropped;
	l->dropped = 0;
	pthread_mutex_unlock(&l->lock);
	if (n)
		say_dropped(l, n);
}

/* Whether a line of level lvl may go out now. The count of what an ended
 * window dropped goes out first, so that it precedes the line after. */
static bool limit_pass(struct log_limit *l, enum log_level lvl)
{
	unsigned ended = 0;
	uint64_t now;
	bool pass;

	if (lvl > log_max)
		return false;
	if (!l)
		return true;
	now = clock_mono_ns();
	pthread_mutex_lock(&l->lock);
	if (now - l->window >= LOG_LIMIT_WINDOW_NS) {
		ended = l->dropped;
		l->window = now;
		l->lines = l->dropped = 0;
	}
	pass = l->lines < LOG_LIMIT_BURST;
	if (pass)
		l->lines++;
	else
		l->dropped++;
	pthread_mutex_unlock(&l->lock);
	if (ended)
		say_dropped(l, ended);
	return pass;
}

#define LOG_LIMIT_FN(name, lvl, with_errno)                                  \
	void name(struct log_limit *l, const char *fmt, ...)                 \
	{                                                                    \
		int saved = errno;                                           \
		va_list ap;                                                  \
		if (limit_pass(l, lvl)) {                                    \
			va_start(ap, fmt);                                   \
			vlog(lvl, with_errno ? saved : 0, fmt, ap);          \
			va_end(ap);                                          \
		}                                                            \
		errno = saved;                                               \
	}

LOG_LIMIT_FN(log_limit_warn, LOG_WARNING, 1)
LOG_LIMIT_FN(log_limit_warnx, LOG_WARNING, 0)
LOG_LIMIT_FN(log_limit_info, LOG_INFO, 0)
LOG_LIMIT_FN(log_limit_debug, LOG_DEBUG, 0)
