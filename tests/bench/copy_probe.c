/* In the guest (tests/bench/cpuid.py copies it in): what an anonymous page
 * fault and a 64 KiB read() from the page cache cost, the two kernel paths
 * that ERMS/FSRM switch between byte-wise and quadword string copies.
 * No libc: the binary is typed into the guest through its console, so it
 * must be small. Prints "anon_fault_us N" and "read64k_us N" (medians of
 * the rounds, microseconds per fault and per read). x86-64 Linux only. */
#include <stddef.h>
#include <stdint.h>

#define SYS_read 0
#define SYS_write 1
#define SYS_open 2
#define SYS_close 3
#define SYS_pread64 17
#define SYS_mmap 9
#define SYS_munmap 11
#define SYS_exit 60
#define SYS_clock_gettime 228

#define PAGES 64
#define ROUNDS 5
#define READS 8
#define BUF (64 * 1024)

static long sys6(long n, long a, long b, long c, long d, long e, long f)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;

	__asm__ volatile("syscall" : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8),
			   "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

static uint64_t now_ns(void)
{
	struct { long s, ns; } ts;

	sys6(SYS_clock_gettime, 1 /* CLOCK_MONOTONIC */, (long)&ts, 0, 0, 0, 0);
	return (uint64_t)ts.s * 1000000000u + (uint64_t)ts.ns;
}

static void put(const char *name, uint64_t v)
{
	char buf[64];
	size_t n = 0, i;
	char digits[24];
	size_t d = 0;

	while (name[n]) {
		buf[n] = name[n];
		n++;
	}
	buf[n++] = ' ';
	do {
		digits[d++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (i = 0; i < d; i++)
		buf[n++] = digits[d - 1 - i];
	buf[n++] = '\n';
	sys6(SYS_write, 1, (long)buf, (long)n, 0, 0, 0);
}

static uint64_t median(uint64_t *v, int n)
{
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
			uint64_t t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return v[n / 2];
}

static char buf[BUF] __attribute__((aligned(4096)));

void _start(void);
void _start(void)
{
	uint64_t fault[ROUNDS], rd[ROUNDS], t0;
	long fd, i, r;

	/* Anonymous faults: each write to a fresh page clears it. */
	for (r = 0; r < ROUNDS; r++) {
		volatile char *p = (volatile char *)sys6(SYS_mmap, 0,
							 PAGES * 4096, 3, 0x22,
							 -1, 0);

		if ((long)p < 0 && (long)p > -4096)
			sys6(SYS_exit, 1, 0, 0, 0, 0, 0);
		t0 = now_ns();
		for (i = 0; i < PAGES; i++)
			p[i * 4096] = 1;
		fault[r] = (now_ns() - t0) / PAGES / 1000;
		sys6(SYS_munmap, (long)p, PAGES * 4096, 0, 0, 0, 0);
	}
	/* 64 KiB from the page cache into a buffer already faulted in. */
	fd = sys6(SYS_open, (long)"/tmp/copy_probe.dat", 0, 0, 0, 0, 0);
	if (fd < 0)
		sys6(SYS_exit, 2, 0, 0, 0, 0, 0);
	for (i = 0; i < BUF; i += 4096)
		buf[i] = 0;
	sys6(SYS_pread64, fd, (long)buf, BUF, 0, 0, 0);
	for (r = 0; r < ROUNDS; r++) {
		t0 = now_ns();
		for (i = 0; i < READS; i++)
			if (sys6(SYS_pread64, fd, (long)buf, BUF, 0, 0, 0) !=
			    BUF)
				sys6(SYS_exit, 3, 0, 0, 0, 0, 0);
		rd[r] = (now_ns() - t0) / READS / 1000;
	}
	sys6(SYS_close, fd, 0, 0, 0, 0, 0);
	put("anon_fault_us", median(fault, ROUNDS));
	put("read64k_us", median(rd, ROUNDS));
	sys6(SYS_exit, 0, 0, 0, 0, 0, 0);
}
