/* Unit tests' capture of what is logged: stderr into a file (a pipe would
 * fill up under a flood) between capture_start() and capture_end().
 * Include after <cmocka.h>. */
#ifndef TESTS_UNIT_CAPTURE_H
#define TESTS_UNIT_CAPTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int saved_err = -1;
static FILE *capture_f;

static inline void capture_start(void)
{
	capture_f = tmpfile();
	assert_non_null(capture_f);
	saved_err = dup(STDERR_FILENO);
	assert_true(saved_err >= 0);
	assert_true(dup2(fileno(capture_f), STDERR_FILENO) >= 0);
}

/* Everything logged since capture_start(), NUL-terminated; caller frees. */
static inline char *capture_end(void)
{
	long n;
	char *buf;

	dup2(saved_err, STDERR_FILENO);
	close(saved_err);
	saved_err = -1;
	n = ftell(capture_f);
	assert_true(n >= 0);
	buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	rewind(capture_f);
	assert_int_equal(fread(buf, 1, (size_t)n, capture_f), (size_t)n);
	fclose(capture_f);
	capture_f = NULL;
	return buf;
}

/* How many lines s holds. */
static inline unsigned capture_lines(const char *s)
{
	unsigned n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

#endif
