#include "sshd/admit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

bool admit_startup(unsigned unauth, unsigned begin, unsigned rate,
		   unsigned full, uint32_t rnd)
{
	uint64_t p;

	if (unauth < begin)
		return true;
	if (unauth >= full)
		return false;
	/* OpenSSH's drop probability: rate at begin, 100 at full. */
	p = rate + (uint64_t)(100 - rate) * (unauth - begin) / (full - begin);
	return rnd >= p;
}

/* The address's 16 bytes as IPv6 (IPv4 mapped); false if neither. */
static bool as_v6(const struct sockaddr_storage *a, uint8_t out[16])
{
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)a;

		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &s->sin_addr, 4);
		return true;
	}
	if (a->ss_family == AF_INET6) {
		memcpy(out, &((const struct sockaddr_in6 *)a)->sin6_addr, 16);
		return true;
	}
	return false;
}

bool admit_same_source(const struct sockaddr_storage *a,
		       const struct sockaddr_storage *b)
{
	uint8_t x[16], y[16];

	return as_v6(a, x) && as_v6(b, y) && memcmp(x, y, 16) == 0;
}

void admit_format(const struct sockaddr_storage *a, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)a;

		if (inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host))) {
			snprintf(out, len, "%s:%u", host, ntohs(s->sin_port));
			return;
		}
	} else if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)a;

		if (inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host))) {
			snprintf(out, len, "[%s]:%u", host,
				 ntohs(s->sin6_port));
			return;
		}
	}
	snprintf(out, len, "?");
}

static void expire(struct admit_signups *l, int64_t now)
{
	while (l->n && now - l->e[l->head].t >= 3600) {
		l->head = (l->head + 1) % ADMIT_SIGNUP_LOG;
		l->n--;
	}
}

enum admit_signup_verdict admit_signup_check(struct admit_signups *l,
					     const uint8_t key[16],
					     const struct sockaddr_storage *src,
					     int64_t now, unsigned per_key,
					     unsigned per_source)
{
	unsigned by_key = 0, by_src = 0;
	uint8_t a[16];
	bool have_src = as_v6(src, a);

	expire(l, now);
	if (l->n == ADMIT_SIGNUP_LOG)
		return ADMIT_SIGNUP_FULL;
	for (unsigned i = 0; i < l->n; i++) {
		unsigned j = (l->head + i) % ADMIT_SIGNUP_LOG;

		by_key += memcmp(l->e[j].key, key, 16) == 0;
		by_src += have_src && memcmp(l->e[j].src, a, 16) == 0;
	}
	if (by_key >= per_key)
		return ADMIT_SIGNUP_PER_KEY;
	if (by_src >= per_source)
		return ADMIT_SIGNUP_PER_SOURCE;
	return ADMIT_SIGNUP_OK;
}

void admit_signup_record(struct admit_signups *l, const uint8_t key[16],
			 const struct sockaddr_storage *src, int64_t now)
{
	unsigned j;

	expire(l, now);
	if (l->n == ADMIT_SIGNUP_LOG) {	/* checked before: cannot happen */
		l->head = (l->head + 1) % ADMIT_SIGNUP_LOG;
		l->n--;
	}
	j = (l->head + l->n++) % ADMIT_SIGNUP_LOG;
	l->e[j].t = now;
	memcpy(l->e[j].key, key, 16);
	if (!as_v6(src, l->e[j].src))
		memset(l->e[j].src, 0, 16);
}
