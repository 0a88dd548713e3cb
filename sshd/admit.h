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

/* "ADDR:PORT" or "[ADDR6]:PORT" for log lines; "?" if unknown. */
void admit_format(const struct sockaddr_storage *a, char *out, size_t len);

#endif
