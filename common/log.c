#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
