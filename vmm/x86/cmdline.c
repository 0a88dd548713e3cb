#include "vmm/x86/cmdline.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/text.h"
#include "vmm/x86/cpu_flags.h"
#include "vmm/x86/pvm.h"

#define KEY "clearcpuid"
#define KEY_LEN (sizeof(KEY) - 1)

/* A bitmap wide enough for any NCAPINTS yet seen (22 words in 6.1);
 * bits at or above cpu_flags_ncapints * 32 are refused before they get
 * here, and a table that outgrows it is refused as a whole. */
#define MAX_BITS 2048

struct merge {
	char list[CMDLINE_CLEARCPUID_MAX + 1];
	size_t len;		/* of the whole list, even past list[] */
	uint64_t seen[MAX_BITS / 64];
	char *why;
	size_t whylen;
};

struct word {
	const char *s, *gap;	/* gap: the spaces before it */
	size_t n, gapn;
	bool quoted;		/* inside "..." as the generic parser sees it */
};

static int fail(struct merge *m, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct merge *m, int err, const char *fmt, ...)
{
	va_list ap;

	if (m->why && m->whylen) {
		va_start(ap, fmt);
		vsnprintf(m->why, m->whylen, fmt, ap);
		va_end(ap);
	}
	return err;
}

/* As the kernel's early parser (arch/x86/lib/cmdline.c, myisspace): every
 * byte up to ' ' ends a word, and it knows nothing of quotes. */
static bool is_space(char c)
{
	return (unsigned char)c <= ' ';
}

/* The next word of *p; the generic parser's quote state is carried in
 * *in_quote, for words that the two parsers would read differently. */
static bool next_word(const char **p, bool *in_quote, struct word *w)
{
	const char *s = *p;

	w->gap = s;
	while (*s && is_space(*s))
		s++;
	w->gapn = (size_t)(s - w->gap);
	if (!*s)
		return false;
	w->s = s;
	w->quoted = *in_quote;
	while (*s && !is_space(*s)) {
		if (*s == '"')
			*in_quote = !*in_quote;
		s++;
	}
	w->n = (size_t)(s - w->s);
	*p = s;
	return true;
}

static bool starts(const char *s, size_t n, const char *prefix)
{
	size_t k = strlen(prefix);

	return n >= k && memcmp(s, prefix, k) == 0;
}

/* A flag as the 6.1 parser reads one: a decimal bit number (kstrtouint:
 * an optional '+', digits) or a name of x86_cap_flags[]. */
static int flag_bit(struct merge *m, const char *s, size_t n, unsigned *bit)
{
	size_t i = (n > 1 && s[0] == '+') ? 1 : 0, d = i;
	unsigned long v = 0, lim = (unsigned long)cpu_flags_ncapints * 32;
	char buf[48];

	while (d < n && s[d] >= '0' && s[d] <= '9') {
		if (v < lim)
			v = v * 10 + (unsigned long)(s[d] - '0');
		d++;
	}
	if (d == n && d > i) {
		if (v >= lim)
			return fail(m, -EINVAL, "clearcpuid: bit %s out of "
				    "range (0-%lu)", text_show(buf, sizeof(buf), s, n),
				    lim - 1);
		*bit = (unsigned)v;
		return 0;
	}
	for (unsigned k = 0; k < cpu_flags_count; k++)
		if (strlen(cpu_flags[k].name) == n &&
		    memcmp(cpu_flags[k].name, s, n) == 0) {
			*bit = cpu_flags[k].bit;
			return 0;
		}
	return fail(m, -EINVAL, "clearcpuid: unknown CPU flag '%s' (the "
		    "guest kernel's names are those of /proc/cpuinfo's flags)",
		    text_show(buf, sizeof(buf), s, n));
}

/* Append one comma-separated list; "" and empty items add nothing (the
 * kernel would report an empty item as unknown and clear nothing). */
static int add_list(struct merge *m, const char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t j = i;
		unsigned bit = 0;
		int r;

		while (j < n && s[j] != ',')
			j++;
		if (j > i) {
			r = flag_bit(m, s + i, j - i, &bit);
			if (r < 0)
				return r;
			if (!(m->seen[bit / 64] & (1ULL << (bit % 64)))) {
				size_t add = (m->len ? 1 : 0) + (j - i);

				m->seen[bit / 64] |= 1ULL << (bit % 64);
				if (m->len + add <= CMDLINE_CLEARCPUID_MAX)
					snprintf(m->list + m->len,
						 sizeof(m->list) - m->len,
						 "%s%.*s", m->len ? "," : "",
						 (int)(j - i), s + i);
				m->len += add;
			}
		}
		i = j + 1;
	}
	return 0;
}

/* Whether w is one of ours; refuse the forms the early parser would not
 * read as clearcpuid= although the operator surely meant one. */
static int classify(struct merge *m, const struct word *w, bool *ours)
{
	const char *s = w->s;
	size_t n = w->n;

	*ours = false;
	if (n > 0 && s[0] == '"' && starts(s + 1, n - 1, KEY))
		return fail(m, -EINVAL, "\"clearcpuid...\" in quotes: the "
			    "kernel's clearcpuid parser does not read it");
	if (!starts(s, n, KEY))
		return 0;
	if (n == KEY_LEN)
		return fail(m, -EINVAL, "clearcpuid without '=' and a list "
			    "clears nothing");
	if (s[KEY_LEN] != '=')
		return 0;	/* another parameter, clearcpuidfoo= */
	if (w->quoted || memchr(s, '"', n))
		return fail(m, -EINVAL, "clearcpuid= in quotes: the kernel's "
			    "clearcpuid parser does not honour quotes");
	*ours = true;
	return 0;
}

static int append(char *out, size_t outlen, size_t *o, const char *s,
		  size_t n)
{
	if (*o + n >= outlen)
		return -E2BIG;
	memcpy(out + *o, s, n);
	*o += n;
	out[*o] = '\0';
	return 0;
}

const char *cmdline_own_clearcpuid(bool pvm)
{
	return pvm ? PVM_CLEARCPUID : NULL;
}

int cmdline_merge(const char *own, const char *extra, char *out,
		  size_t outlen, char *why, size_t whylen)
{
	struct merge m = { .why = why, .whylen = whylen };
	bool in_quote = false, kept = false, ours;
	const char *p;
	struct word w;
	size_t o = 0;
	char buf[64];
	int r = 0;

	if (why && whylen)
		why[0] = '\0';
	if (!out || !outlen)
		return -E2BIG;
	out[0] = '\0';
	if (cpu_flags_ncapints * 32 > MAX_BITS) {
		r = fail(&m, -EINVAL, "clearcpuid: flag table too large");
		goto out;
	}
	if (own) {
		r = add_list(&m, own, strlen(own));
		if (r < 0)
			goto out;
	}
	/* Every word, "--" and init's arguments included: the early parser
	 * reads the whole line. */
	for (p = extra ? extra : ""; next_word(&p, &in_quote, &w);) {
		r = classify(&m, &w, &ours);
		if (r < 0)
			goto out;
		if (ours) {
			r = add_list(&m, w.s + KEY_LEN + 1, w.n - KEY_LEN - 1);
			if (r < 0)
				goto out;
		}
	}
	if (m.len > CMDLINE_CLEARCPUID_MAX) {
		r = fail(&m, -E2BIG, "clearcpuid: the merged list (the VMM's "
			 "and yours) is %zu characters, '%s'; the kernel reads "
			 "%d and drops the rest without a word", m.len,
			 text_show(buf, sizeof(buf), m.list, strlen(m.list)),
			 CMDLINE_CLEARCPUID_MAX);
		goto out;
	}
	if (m.len) {
		r = append(out, outlen, &o, KEY "=", KEY_LEN + 1);
		if (r == 0)
			r = append(out, outlen, &o, m.list, m.len);
	}
	in_quote = false;
	for (p = extra ? extra : ""; r == 0 && next_word(&p, &in_quote, &w);) {
		classify(&m, &w, &ours);
		if (ours)
			continue;
		/* The gaps between kept words as written (inside quotes they
		 * are part of a value); one space after our list. */
		if (o)
			r = kept && w.gapn ? append(out, outlen, &o, w.gap, w.gapn)
					   : append(out, outlen, &o, " ", 1);
		if (r == 0)
			r = append(out, outlen, &o, w.s, w.n);
		kept = true;
	}
	if (r < 0)
		fail(&m, r, "kernel command line longer than %zu bytes",
		     outlen - 1);
out:
	if (r < 0)
		out[0] = '\0';
	return r;
}
