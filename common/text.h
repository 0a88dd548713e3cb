/* Text from outside (a config line, a command line) in our messages. */
#ifndef COMMON_TEXT_H
#define COMMON_TEXT_H

#include <stddef.h>

/* s[0..n) made harmless to a terminal or a log line in buf (size bytes,
 * NUL-terminated): non-printables become '?', text that does not fit is
 * cut and ends in "...". Returns buf. */
const char *text_show(char *buf, size_t size, const char *s, size_t n);

#endif
