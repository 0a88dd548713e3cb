/* Log lines carry text from guests and clients: one line each, whatever
 * that text holds, and no more of them than the limiter lets through. */
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/unit/capture.h"

/* stderr goes to a file while a test logs (a flood would fill a pipe). */
static unsigned count(const char *s, const char *needle)
{
	unsigned n = 0;

	for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void test_control_characters_are_replaced(void **state)
{
	char *buf;

	(void)state;
	log_init("t", LOG_INFO);
	capture_start();
	log_info("guest: %s", "a\nclone: fake line\r\x1b[31mred\x7f");
	buf = capture_end();
	assert_string_equal(buf, "t: guest: a?clone: fake line??[31mred?\n");
	free(buf);
}

/* A guest repeating one message 10,000 times in a burst gets the burst's
 * lines and no more; the next window starts by saying how many went. */
static void test_limit_bounds_a_flood(void **state)
{
	struct log_limit l;
	char *buf, want[128];

	(void)state;
	log_init("t", LOG_INFO);
	log_limit_init(&l, "guest");
	capture_start();
	for (unsigned i = 0; i < 10000; i++) {
		if (i % 2)
			log_limit_info(&l, "guest agent ready (%u)", i);
		else
			log_limit_warnx(&l, "agent: bad power message");
	}
	buf = capture_end();
	assert_int_equal(count(buf, "\n"), LOG_LIMIT_BURST);
	assert_int_equal(count(buf, "dropped"), 0);
	free(buf);

	/* The window ends: the first line after says what was dropped. */
	l.window -= LOG_LIMIT_WINDOW_NS;
	capture_start();
	log_limit_warnx(&l, "agent: bad exit message");
	buf = capture_end();
	snprintf(want, sizeof(want), "t: guest: %d log lines dropped (more "
		 "than %d in 10 s)\nt: agent: bad exit message\n",
		 10000 - LOG_LIMIT_BURST, LOG_LIMIT_BURST);
	assert_string_equal(buf, want);
	free(buf);
	log_limit_destroy(&l);
}

static void test_limit_flush(void **state)
{
	struct log_limit l;
	char *buf;

	(void)state;
	log_init("t", LOG_INFO);
	log_limit_init(&l, "guest");
	capture_start();
	log_limit_flush(&l);	/* nothing dropped: nothing said */
	for (unsigned i = 0; i < LOG_LIMIT_BURST + 3; i++)
		log_limit_info(&l, "x");
	log_limit_flush(&l);
	log_limit_flush(&l);	/* said once */
	buf = capture_end();
	assert_int_equal(count(buf, "t: x\n"), LOG_LIMIT_BURST);
	assert_int_equal(count(buf, "t: guest: 3 log lines dropped"), 1);
	assert_int_equal(count(buf, "\n"), LOG_LIMIT_BURST + 1);
	free(buf);
	log_limit_destroy(&l);
}

/* Lines the log level hides use up nothing: a flood of them must not
 * silence the lines that do print. */
static void test_limit_ignores_hidden_lines(void **state)
{
	struct log_limit l;
	char *buf;

	(void)state;
	log_init("t", LOG_INFO);
	log_limit_init(&l, "guest");
	capture_start();
	for (unsigned i = 0; i < 1000; i++)
		log_limit_debug(&l, "hidden");
	log_limit_warnx(&l, "shown");
	log_limit_flush(&l);
	buf = capture_end();
	assert_string_equal(buf, "t: shown\n");
	free(buf);
	log_limit_destroy(&l);
}

static void test_tag_formatted(void **state)
{
	char *buf;

	(void)state;
	log_init("t", LOG_INFO);
	log_set_tagf("clone[vm %s %d]", "alice", 1234);
	capture_start();
	log_info("hello");
	buf = capture_end();
	assert_string_equal(buf, "clone[vm alice 1234]: hello\n");
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_control_characters_are_replaced),
		cmocka_unit_test(test_limit_bounds_a_flood),
		cmocka_unit_test(test_limit_flush),
		cmocka_unit_test(test_limit_ignores_hidden_lines),
		cmocka_unit_test(test_tag_formatted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
