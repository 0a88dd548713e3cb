/* libFuzzer harness: the clearcpuid= merge (cmdline_merge), the operator's
 * [template] cmdline as input. The first byte picks the VMM's own list and
 * the size of the output buffer; the rest is the operator's text. A merge
 * that succeeds must leave one clearcpuid= at most, of known flags, none
 * twice, no longer than the kernel reads, the VMM's first, and every other
 * word of the input in its order; merging its result again must change
 * nothing. One that fails must leave out empty and say why in one
 * printable line. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/x86/cmdline.h"
#include "vmm/x86/cpu_flags.h"
#include "vmm/x86/pvm.h"

#define KEY "clearcpuid="

static bool space(char c)
{
	return (unsigned char)c <= ' ';
}

/* The next word as the kernel's early parser splits them. */
static const char *word(const char **p, size_t *n)
{
	const char *s = *p, *w;

	while (*s && space(*s))
		s++;
	if (!*s)
		return NULL;
	for (w = s; *s && !space(*s); s++)
		;
	*n = (size_t)(s - w);
	*p = s;
	return w;
}

static bool ours(const char *w, size_t n)
{
	return n >= strlen(KEY) && memcmp(w, KEY, strlen(KEY)) == 0;
}

static unsigned bit_of(const char *s, size_t n)
{
	size_t i = (n > 1 && s[0] == '+') ? 1 : 0;
	unsigned long v = 0;

	if (i < n && s[i] >= '0' && s[i] <= '9') {
		for (; i < n; i++) {
			if (s[i] < '0' || s[i] > '9' || v > 100000)
				abort();
			v = v * 10 + (unsigned long)(s[i] - '0');
		}
		if (v >= cpu_flags_ncapints * 32)
			abort();
		return (unsigned)v;
	}
	for (unsigned k = 0; k < cpu_flags_count; k++)
		if (strlen(cpu_flags[k].name) == n &&
		    !memcmp(cpu_flags[k].name, s, n))
			return cpu_flags[k].bit;
	abort();
}

/* The merged list: known flags, none twice. */
static void check_list(const char *s, size_t n)
{
	static uint8_t seen[4096];
	size_t i = 0;

	if (n == 0 || n > CMDLINE_CLEARCPUID_MAX)
		abort();
	memset(seen, 0, sizeof(seen));
	while (i <= n) {
		size_t j = i;
		unsigned b;

		while (j < n && s[j] != ',')
			j++;
		if (j == i)
			abort();	/* empty items are dropped */
		b = bit_of(s + i, j - i);
		if (seen[b]++)
			abort();
		i = j + 1;
	}
}

static void check_ok(const char *own, const char *extra, const char *out,
		     size_t outlen)
{
	const char *p = out, *q = extra, *w, *x;
	size_t n, m, lists = 0;
	char again[2048];

	if (strlen(out) >= outlen)
		abort();
	while ((w = word(&p, &n))) {
		if (!ours(w, n)) {
			/* the same word, next in the input's order */
			do {
				x = word(&q, &m);
				if (!x)
					abort();
			} while (ours(x, m));
			if (m != n || memcmp(w, x, n))
				abort();
			continue;
		}
		if (lists++ || w != out)
			abort();	/* one, in front */
		check_list(w + strlen(KEY), n - strlen(KEY));
		if (memchr(w, '"', n))
			abort();
		if (own && *own &&
		    (n - strlen(KEY) < strlen(own) ||
		     strncmp(w + strlen(KEY), own, strlen(own)) != 0 ||
		     (n - strlen(KEY) > strlen(own) &&
		      w[strlen(KEY) + strlen(own)] != ',')))
			abort();	/* the VMM's list first, as it was */
	}
	if (own && *own && !lists)
		abort();
	while ((x = word(&q, &m)))
		if (!ours(x, m))
			abort();	/* a word of the input lost */
	if (cmdline_merge(NULL, out, again, sizeof(again), NULL, 0) != 0 ||
	    strcmp(again, out) != 0)
		abort();
}

static void check_err(const char *out, const char *why)
{
	size_t n = strlen(why);

	if (out[0] || n == 0)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)why[i] < 0x20 || why[i] >= 0x7f)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const owns[] = { NULL, "", "xsave,cx16",
					    PVM_CLEARCPUID };
	char *extra, *out, why[256];
	const char *own;
	size_t outlen;
	int r;

	if (size < 1 || size > 4096)
		return 0;
	own = owns[data[0] & 3];
	/* 1 to 2048 bytes: small ones reach the too-small path */
	outlen = (data[0] >> 2) == 0 ? 2048 : (size_t)(data[0] >> 2);
	extra = malloc(size);
	out = malloc(outlen);
	if (!extra || !out)
		abort();
	memcpy(extra, data + 1, size - 1);
	extra[size - 1] = '\0';
	memset(why, 0, sizeof(why));
	r = cmdline_merge(own, extra, out, outlen, why, sizeof(why));
	if (r == 0)
		check_ok(own, extra, out, outlen);
	else if (r == -EINVAL || r == -E2BIG)
		check_err(out, why);
	else
		abort();
	free(extra);
	free(out);
	return 0;
}
