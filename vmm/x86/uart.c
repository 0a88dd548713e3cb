#include "vmm/x86/uart.h"

#include <string.h>
#include <unistd.h>

#define LCR_DLAB 0x80
#define MCR_LOOP 0x10
#define IER_THRI 0x02
#define LSR_THRE_TEMT 0x60
#define IIR_NONE 0x01
#define IIR_THRI 0x02
#define IIR_FIFO 0xc0

void uart_init(struct uart *u, int out_fd, void (*irq)(void *, uint32_t),
	       void *irq_opaque)
{
	memset(u, 0, sizeof(*u));
	u->out_fd = out_fd;
	u->irq = irq;
	u->irq_opaque = irq_opaque;
}

void uart_flush(struct uart *u)
{
	if (u->line_len && u->out_fd >= 0 &&
	    write(u->out_fd, u->line, u->line_len) < 0)
		u->out_fd = -1;	/* nobody reads it any more */
	u->line_len = 0;
}

static void raise_thre(struct uart *u)
{
	u->thre_pending = true;
	if ((u->ier & IER_THRI) && u->irq)
		u->irq(u->irq_opaque, UART_COM1_IRQ);
}

static uint8_t msr(const struct uart *u)
{
	/* Loopback wires DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD: the 8250
	 * driver's probe checks this. Otherwise: DCD, DSR, CTS. */
	if (u->mcr & MCR_LOOP)
		return (uint8_t)((u->mcr & 0x02) << 3 | (u->mcr & 0x01) << 5 |
				 (u->mcr & 0x0c) << 4);
	return 0xb0;
}

uint8_t uart_read(struct uart *u, unsigned off)
{
	uint8_t iir;

	switch (off) {
	case 0: return (u->lcr & LCR_DLAB) ? u->dll : 0;
	case 1: return (u->lcr & LCR_DLAB) ? u->dlm : u->ier;
	case 2:
		iir = (u->fcr & 1) ? IIR_FIFO : 0;
		if ((u->ier & IER_THRI) && u->thre_pending) {
			u->thre_pending = false;
			return iir | IIR_THRI;
		}
		return iir | IIR_NONE;
	case 3: return u->lcr;
	case 4: return u->mcr;
	case 5: return LSR_THRE_TEMT;
	case 6: return msr(u);
	case 7: return u->scr;
	default: return 0xff;
	}
}

void uart_write(struct uart *u, unsigned off, uint8_t v)
{
	switch (off) {
	case 0:
		if (u->lcr & LCR_DLAB) {
			u->dll = v;
			return;
		}
		if (!(u->mcr & MCR_LOOP)) {
			u->line[u->line_len++] = (char)v;
			if (v == '\n' || u->line_len == sizeof(u->line))
				uart_flush(u);
		}
		raise_thre(u);
		return;
	case 1:
		if (u->lcr & LCR_DLAB) {
			u->dlm = v;
			return;
		}
		u->ier = v & 0x0f;
		if (u->ier & IER_THRI)
			raise_thre(u);
		return;
	case 2: u->fcr = v; return;
	case 3: u->lcr = v; return;
	case 4: u->mcr = v & 0x1f; return;
	case 7: u->scr = v; return;
	default: return;
	}
}

static void bus_io(void *opaque, uint64_t off, void *data, uint32_t len,
		   bool write)
{
	uint8_t *b = data;

	if (len != 1) {
		if (!write)
			memset(data, 0xff, len);	/* nothing that wide here */
	} else if (write) {
		uart_write(opaque, (unsigned)off, *b);
	} else {
		*b = uart_read(opaque, (unsigned)off);
	}
}

int uart_register(struct uart *u, struct bus *pio)
{
	return bus_register(pio, UART_COM1_BASE, 8, bus_io, u);
}
