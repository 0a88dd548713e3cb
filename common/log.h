/* Logging: one line per event to stderr, prefixed with the program tag.
 * log_warn() appends strerror(errno) (the call failed and errno says why);
 * log_warnx() does not (the condition is ours). Same for log_info/debug. */
#ifndef COMMON_LOG_H
#define COMMON_LOG_H

#include <stdarg.h>

enum log_level { LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG };

/* Set the prefix ("clone", "clone[vm alice]") and the most verbose level
 * printed. Not thread-safe against concurrent logging; call at start-up. */
void log_init(const char *tag, enum log_level max);
void log_set_tag(const char *tag);
enum log_level log_level(void);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Start-up only: log and exit(1). */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
