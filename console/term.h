/* The user's terminal, for `clone boot`: raw mode, its size, and the
 * escape key that ends a console session. */
#ifndef CONSOLE_TERM_H
#define CONSOLE_TERM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <termios.h>

#define CONSOLE_ESCAPE 0x1d	/* Ctrl-] as in telnet and virsh console */

struct console_term {
	int fd;
	bool raw;
	struct termios saved;
};

/* Put fd into raw mode (if it is a terminal), keeping output processing so
 * the VMM's own log lines still start at the left margin. 0 or -errno;
 * -ENOTTY leaves it as it is. */
int console_raw(struct console_term *t, int fd);
/* Restore what console_raw changed. Safe to call twice. */
void console_restore(struct console_term *t);
/* Size of the terminal on fd: 0 and rows/cols set, or -errno. */
int console_size(int fd, uint16_t *rows, uint16_t *cols);
/* Index of the first escape byte in buf, or -1. */
long console_escape_at(const uint8_t *buf, size_t len);

#endif
