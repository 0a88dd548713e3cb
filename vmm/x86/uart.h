/* A 16550A UART at the legacy COM1 ports, output only: enough for the
 * kernel's 8250 driver to find it and print boot messages through it. */
#ifndef VMM_UART_H
#define VMM_UART_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/bus.h"

#define UART_COM1_BASE 0x3f8
#define UART_COM1_IRQ 4

struct uart {
	int out_fd;			/* where transmitted bytes go, -1 none */
	uint8_t ier, lcr, mcr, scr, fcr, dll, dlm;
	bool thre_pending;		/* THR-empty interrupt owed */
	char line[256];			/* output buffered up to a newline */
	unsigned line_len;
	void (*irq)(void *opaque, uint32_t gsi);
	void *irq_opaque;
};

void uart_init(struct uart *u, int out_fd, void (*irq)(void *, uint32_t),
	       void *irq_opaque);
/* Port access at offset off (0-7) from the base. */
uint8_t uart_read(struct uart *u, unsigned off);
void uart_write(struct uart *u, unsigned off, uint8_t v);
/* Answer the eight COM1 ports on a port I/O bus (byte accesses; wider
 * reads see 0xff, wider writes are ignored). 0 or bus_register()'s -errno. */
int uart_register(struct uart *u, struct bus *pio);
/* Write out what is buffered. */
void uart_flush(struct uart *u);

#endif
