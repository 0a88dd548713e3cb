#include "console/term.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int console_raw(struct console_term *t, int fd)
{
	struct termios raw;

	t->fd = fd;
	t->raw = false;
	if (!isatty(fd))
		return -ENOTTY;
	if (tcgetattr(fd, &t->saved) < 0)
		return -errno;
	raw = t->saved;
	cfmakeraw(&raw);
	raw.c_oflag |= OPOST | ONLCR;
	if (tcsetattr(fd, TCSAFLUSH, &raw) < 0)
		return -errno;
	t->raw = true;
	return 0;
}

void console_restore(struct console_term *t)
{
	if (t->raw)
		tcsetattr(t->fd, TCSAFLUSH, &t->saved);
	t->raw = false;
}

int console_size(int fd, uint16_t *rows, uint16_t *cols)
{
	struct winsize ws;

	if (ioctl(fd, TIOCGWINSZ, &ws) < 0)
		return -errno;
	if (!ws.ws_row || !ws.ws_col)
		return -EINVAL;
	*rows = ws.ws_row;
	*cols = ws.ws_col;
	return 0;
}

long console_escape_at(const uint8_t *buf, size_t len)
{
	const uint8_t *p = memchr(buf, CONSOLE_ESCAPE, len);

	return p ? (long)(p - buf) : -1;
}
