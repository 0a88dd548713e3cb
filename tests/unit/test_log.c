/* Log lines carry text from guests and clients: one line each, whatever
 * that text holds. */
#include "common/log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static void test_control_characters_are_replaced(void **state)
{
	char buf[256] = "";
	int p[2], saved;
	ssize_t n;

	(void)state;
	assert_int_equal(pipe(p), 0);
	saved = dup(STDERR_FILENO);
	dup2(p[1], STDERR_FILENO);
	log_set_tag("t");
	log_info("guest: %s", "a\nclone: fake line\r\x1b[31mred\x7f");
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(p[1]);
	n = read(p[0], buf, sizeof(buf) - 1);
	close(p[0]);
	assert_true(n > 0);
	assert_string_equal(buf, "t: guest: a?clone: fake line??[31mred?\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_control_characters_are_replaced),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
