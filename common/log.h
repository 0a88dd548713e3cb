/* Logging: one line per event to stderr, prefixed with the program tag.
 * log_warn() appends strerror(errno) (the call failed and errno says why);
 * log_warnx() does not (the condition is ours). Same for log_info/debug. */
#ifndef COMMON_LOG_H
#define COMMON_LOG_H

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>

enum log_level { LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG };

/* Set the prefix ("clone", "clone[vm alice]") and the most verbose level
 * printed. Not thread-safe against concurrent logging; call at start-up. */
void log_init(const char *tag, enum log_level max);
void log_set_tag(const char *tag);
/* The same, formatted: log_set_tagf("clone[vm %s %d]", user, pid). */
void log_set_tagf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
enum log_level log_level(void);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Start-up only: log and exit(1). */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Lines a guest (or any peer) can cause as often as it likes go through a
 * limiter: at most LOG_LIMIT_BURST printed per LOG_LIMIT_WINDOW_NS, the
 * rest counted; the first line of a later window (or log_limit_flush)
 * says how many were dropped. One limiter per source that must not drown
 * the others (one per VM); it may be shared between threads. Lines below
 * the log level neither print nor count. */
#define LOG_LIMIT_BURST 20
#define LOG_LIMIT_WINDOW_NS 10000000000ULL

struct log_limit {
	pthread_mutex_t lock;
	const char *what;	/* names the source in the dropped line */
	uint64_t window;	/* this window's start, CLOCK_MONOTONIC ns */
	unsigned lines, dropped;
};

/* what: a static string such as "guest". */
void log_limit_init(struct log_limit *l, const char *what);
void log_limit_destroy(struct log_limit *l);
/* Say now how many lines were dropped, if any (the source is going). */
void log_limit_flush(struct log_limit *l);
/* log_warnx / log_warn / log_info / log_debug through l (NULL: none). */
void log_limit_warnx(struct log_limit *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_limit_warn(struct log_limit *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_limit_info(struct log_limit *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_limit_debug(struct log_limit *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
