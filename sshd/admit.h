/* Which new connections are let in before they authenticate: OpenSSH's
 * MaxStartups and PerSourceMaxStartups, as pure decisions (the front-end
 * counts; these decide). */
#ifndef SSHD_ADMIT_H
#define SSHD_ADMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* With unauth connections already unauthenticated, may one more come in?
 * Below begin: yes; from begin, refused with probability rate% rising
 * linearly to 100% at full (random early drop); rnd is a uniform random
 * number in [0, 100). */
bool admit_startup(unsigned unauth, unsigned begin, unsigned rate,
		   unsigned full, uint32_t rnd);

/* Whether two peers are the same source: the same IPv4 or IPv6 address
 * (an IPv4-mapped IPv6 address is the IPv4 one), whatever the port. */
bool admit_same_source(const struct sockaddr_storage *a,
		       const struct sockaddr_storage *b);

/* Sign-ups of the last hour, to limit how many names one key and one
 * source address may claim (open_signup): a name claimed is a name
 * nobody else can have, and each may hold a VM. */
#define ADMIT_SIGNUP_LOG 4096

struct admit_signups {
	struct {
		int64_t t;
		uint8_t key[16];	/* a hash of the public key */
		uint8_t src[16];	/* IPv6, or IPv4 mapped */
	} e[ADMIT_SIGNUP_LOG];
	unsigned head, n;		/* a ring, oldest at head */
};

enum admit_signup_verdict {
	ADMIT_SIGNUP_OK,
	ADMIT_SIGNUP_PER_KEY,		/* this key claimed per_key names */
	ADMIT_SIGNUP_PER_SOURCE,	/* so did this address, per_source */
	ADMIT_SIGNUP_FULL,		/* ADMIT_SIGNUP_LOG in the hour */
};

/* May key (a hash) from src claim one more name at now? Entries older
 * than an hour no longer count. */
enum admit_signup_verdict admit_signup_check(struct admit_signups *l,
					     const uint8_t key[16],
					     const struct sockaddr_storage *src,
					     int64_t now, unsigned per_key,
					     unsigned per_source);
/* A name was claimed. */
void admit_signup_record(struct admit_signups *l, const uint8_t key[16],
			 const struct sockaddr_storage *src, int64_t now);

/* "ADDR:PORT" or "[ADDR6]:PORT" for log lines; "?" if unknown. */
void admit_format(const struct sockaddr_storage *a, char *out, size_t len);

#endif
