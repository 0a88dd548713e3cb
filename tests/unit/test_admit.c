/* Admission before authentication: MaxStartups' random early drop, and
 * what counts as one source. */
#include "sshd/admit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static unsigned admitted(unsigned unauth, unsigned begin, unsigned rate,
			 unsigned full)
{
	unsigned n = 0;

	for (uint32_t rnd = 0; rnd < 100; rnd++)
		n += admit_startup(unauth, begin, rate, full, rnd);
	return n;	/* out of 100: the percentage let in */
}

static void test_startups(void **state)
{
	(void)state;
	/* OpenSSH's default 10:30:100 */
	assert_int_equal(admitted(0, 10, 30, 100), 100);
	assert_int_equal(admitted(9, 10, 30, 100), 100);
	assert_int_equal(admitted(10, 10, 30, 100), 70);
	assert_int_equal(admitted(55, 10, 30, 100), 35);
	assert_int_equal(admitted(99, 10, 30, 100), 1);
	assert_int_equal(admitted(100, 10, 30, 100), 0);
	assert_int_equal(admitted(5000, 10, 30, 100), 0);
	/* "N": refused past N, never at random */
	assert_int_equal(admitted(2, 3, 100, 3), 100);
	assert_int_equal(admitted(3, 3, 100, 3), 0);
	/* begin == full with a rate: no division by zero */
	assert_int_equal(admitted(3, 3, 30, 3), 0);
	assert_int_equal(admitted(0xffffffffu, 1, 1, 0xffffffffu), 0);
}

static void v4(struct sockaddr_storage *a, const char *ip, unsigned port)
{
	struct sockaddr_in *s = (struct sockaddr_in *)a;

	memset(a, 0, sizeof(*a));
	s->sin_family = AF_INET;
	s->sin_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET, ip, &s->sin_addr), 1);
}

static void v6(struct sockaddr_storage *a, const char *ip, unsigned port)
{
	struct sockaddr_in6 *s = (struct sockaddr_in6 *)a;

	memset(a, 0, sizeof(*a));
	s->sin6_family = AF_INET6;
	s->sin6_port = htons((uint16_t)port);
	assert_int_equal(inet_pton(AF_INET6, ip, &s->sin6_addr), 1);
}

static void test_sources(void **state)
{
	struct sockaddr_storage a, b, none;
	char buf[64];

	(void)state;
	memset(&none, 0, sizeof(none));
	v4(&a, "127.0.0.1", 1000);
	v4(&b, "127.0.0.1", 2000);
	assert_true(admit_same_source(&a, &b));
	v4(&b, "127.0.0.2", 1000);
	assert_false(admit_same_source(&a, &b));
	v6(&b, "::ffff:127.0.0.1", 5);
	assert_true(admit_same_source(&a, &b));
	v6(&a, "2001:db8::1", 22);
	v6(&b, "2001:db8::2", 22);
	assert_false(admit_same_source(&a, &b));
	assert_false(admit_same_source(&a, &none));
	assert_false(admit_same_source(&none, &none));
	admit_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, "[2001:db8::1]:22");
	v4(&a, "10.1.2.3", 65535);
	admit_format(&a, buf, sizeof(buf));
	assert_string_equal(buf, "10.1.2.3:65535");
	admit_format(&none, buf, sizeof(buf));
	assert_string_equal(buf, "?");
	admit_format(&a, buf, 4);
	assert_string_equal(buf, "10.");
}

static void test_signups(void **state)
{
	static struct admit_signups l;
	struct sockaddr_storage a, b;
	uint8_t k1[16] = { 1 }, k2[16] = { 2 }, k3[16] = { 3 };

	(void)state;
	v4(&a, "192.0.2.1", 1);
	v4(&b, "192.0.2.2", 1);
	/* two names a key, three an address */
	assert_int_equal(admit_signup_check(&l, k1, &a, 1000, 2, 3),
			 ADMIT_SIGNUP_OK);
	admit_signup_record(&l, k1, &a, 1000);
	admit_signup_record(&l, k1, &a, 1001);
	assert_int_equal(admit_signup_check(&l, k1, &b, 1002, 2, 3),
			 ADMIT_SIGNUP_PER_KEY);
	assert_int_equal(admit_signup_check(&l, k2, &a, 1002, 2, 3),
			 ADMIT_SIGNUP_OK);
	admit_signup_record(&l, k2, &a, 1002);
	assert_int_equal(admit_signup_check(&l, k3, &a, 1003, 2, 3),
			 ADMIT_SIGNUP_PER_SOURCE);
	/* the same address as IPv4-mapped IPv6 is the same source */
	v6(&b, "::ffff:192.0.2.1", 9);
	assert_int_equal(admit_signup_check(&l, k3, &b, 1003, 2, 3),
			 ADMIT_SIGNUP_PER_SOURCE);
	v4(&b, "192.0.2.2", 1);
	assert_int_equal(admit_signup_check(&l, k3, &b, 1003, 2, 3),
			 ADMIT_SIGNUP_OK);
	/* an hour later they no longer count */
	assert_int_equal(admit_signup_check(&l, k1, &a, 1000 + 3599, 2, 3),
			 ADMIT_SIGNUP_PER_KEY);
	assert_int_equal(admit_signup_check(&l, k1, &a, 1001 + 3600, 2, 3),
			 ADMIT_SIGNUP_OK);
	assert_int_equal(l.n, 1);
	/* a full hour's log refuses everyone until it drains */
	for (unsigned i = 0; l.n < ADMIT_SIGNUP_LOG; i++) {
		uint8_t k[16] = { 0 };

		memcpy(k, &i, sizeof(i));
		k[15] = 0xee;
		admit_signup_record(&l, k, &b, 5000);
	}
	assert_int_equal(admit_signup_check(&l, k3, &a, 5001, 100000, 100000),
			 ADMIT_SIGNUP_FULL);
	assert_int_equal(admit_signup_check(&l, k3, &a, 8600, 100000, 100000),
			 ADMIT_SIGNUP_OK);
	assert_int_equal(l.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_startups),
		cmocka_unit_test(test_sources),
		cmocka_unit_test(test_signups),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
