/* The merge of the operator's clearcpuid= into the VMM's (vmm/x86/cmdline.c),
 * on plain strings, and the config line it is reported against. */
#include "vmm/x86/cmdline.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>

#include "config/config.h"
#include "vmm/x86/cpu_flags.h"
#include "vmm/x86/pvm.h"

static char out[2048], why[256];

static int merge(const char *own, const char *extra)
{
	memset(out, 'x', sizeof(out));
	memset(why, 'x', sizeof(why));
	why[sizeof(why) - 1] = '\0';
	return cmdline_merge(own, extra, out, sizeof(out), why, sizeof(why));
}

static void expect_ok(const char *own, const char *extra, const char *want)
{
	int r = merge(own, extra);

	if (r != 0)
		fail_msg("merge('%s', '%s') = %d: %s", own ? own : "(null)",
			 extra ? extra : "(null)", r, why);
	assert_string_equal(out, want);
	assert_string_equal(why, "");
}

static void expect_err(const char *own, const char *extra, int err,
		       const char *fragment)
{
	int r = merge(own, extra);

	if (r != err)
		fail_msg("merge('%s', '%s') = %d (want %d), out '%s'",
			 own ? own : "(null)", extra, r, err, out);
	assert_string_equal(out, "");
	if (!strstr(why, fragment))
		fail_msg("'%s' not in '%s'", fragment, why);
}

/* How many times the kernel's early parser would see "clearcpuid=". */
static unsigned count_clearcpuid(const char *s)
{
	unsigned n = 0;

	for (const char *p = s; (p = strstr(p, "clearcpuid=")); p++)
		if (p == s || (unsigned char)p[-1] <= ' ')
			n++;
	return n;
}

static void test_nothing(void **state)
{
	(void)state;
	expect_ok(NULL, NULL, "");
	expect_ok(NULL, "", "");
	expect_ok(NULL, "   ", "");
	expect_ok("", "", "");
	expect_ok(NULL, "quiet loglevel=3", "quiet loglevel=3");
}

static void test_own_only(void **state)
{
	(void)state;
	expect_ok("xsave,cx16", NULL, "clearcpuid=xsave,cx16");
	expect_ok("xsave,cx16", "quiet", "clearcpuid=xsave,cx16 quiet");
}

/* The case of the issue: the operator's list used to replace the VMM's. */
static void test_operator_list_joins_ours(void **state)
{
	(void)state;
	expect_ok("xsave,cx16", "clearcpuid=erms,fsrm",
		  "clearcpuid=xsave,cx16,erms,fsrm");
	expect_ok("xsave,cx16", "quiet clearcpuid=erms loglevel=3",
		  "clearcpuid=xsave,cx16,erms quiet loglevel=3");
}

static void test_several_tokens(void **state)
{
	(void)state;
	expect_ok("xsave", "clearcpuid=erms a=1 clearcpuid=fsrm b=2 "
		  "clearcpuid=rdseed",
		  "clearcpuid=xsave,erms,fsrm,rdseed a=1 b=2");
	/* No own list (no PVM): still one clearcpuid=. */
	expect_ok(NULL, "clearcpuid=erms clearcpuid=fsrm",
		  "clearcpuid=erms,fsrm");
	/* After "--" too: the early parser reads the whole line. */
	expect_ok("xsave", "-- clearcpuid=erms", "clearcpuid=xsave,erms --");
}

static void test_duplicates(void **state)
{
	(void)state;
	expect_ok("xsave,cx16", "clearcpuid=cx16,erms,xsave,erms",
		  "clearcpuid=xsave,cx16,erms");
	expect_ok("xsave,xsave", NULL, "clearcpuid=xsave");
	/* A bit number and its name are the same flag: 4*32+26 is xsave,
	 * 9*32+9 erms. */
	expect_ok("xsave", "clearcpuid=154,297,erms",
		  "clearcpuid=xsave,297");
	expect_ok(NULL, "clearcpuid=+297 clearcpuid=erms", "clearcpuid=+297");
}

static void test_empty_lists(void **state)
{
	(void)state;
	expect_ok("xsave", "clearcpuid=", "clearcpuid=xsave");
	expect_ok(NULL, "clearcpuid= quiet", "quiet");
	expect_ok("xsave", "clearcpuid=,erms,,", "clearcpuid=xsave,erms");
	expect_ok(NULL, "clearcpuid=,", "");
}

/* Other words are kept as written, spacing inside quotes included. */
static void test_rest_kept(void **state)
{
	(void)state;
	expect_ok("xsave", "  a   clearcpuid=erms\tb  ",
		  "clearcpuid=xsave,erms a\tb");
	expect_ok(NULL, "x=\"two  spaces\" clearcpuid=erms",
		  "clearcpuid=erms x=\"two  spaces\"");
	/* Not ours: a longer parameter name. */
	expect_ok(NULL, "clearcpuidx=1", "clearcpuidx=1");
}

static void test_unknown_names(void **state)
{
	(void)state;
	expect_err("xsave", "clearcpuid=erms,bogus", -EINVAL, "'bogus'");
	/* The kernel compares names exactly. */
	expect_err(NULL, "clearcpuid=ERMS", -EINVAL, "'ERMS'");
	/* The kernel has these bits but no names for them. */
	expect_err(NULL, "clearcpuid=always", -EINVAL, "'always'");
	expect_err(NULL, "clearcpuid=osxsave", -EINVAL, "'osxsave'");
	/* Bug names are not clearcpuid='s. */
	expect_err(NULL, "clearcpuid=fxsave_leak", -EINVAL, "unknown");
	expect_err(NULL, "clearcpuid=+", -EINVAL, "unknown");
	expect_err(NULL, "clearcpuid=-5", -EINVAL, "unknown");
	expect_err(NULL, "clearcpuid=a=b", -EINVAL, "unknown");
	/* A hostile name is echoed harmlessly. */
	expect_err(NULL, "clearcpuid=\xff[2J", -EINVAL, "'?[2J'");
	/* So is the VMM's own list, should it ever be wrong. */
	expect_err("xsave,nosuch", NULL, -EINVAL, "'nosuch'");
}

static void test_numbers(void **state)
{
	(void)state;
	expect_ok(NULL, "clearcpuid=0,703", "clearcpuid=0,703");
	expect_err(NULL, "clearcpuid=704", -EINVAL, "out of range (0-703)");
	expect_err(NULL, "clearcpuid=99999999999999999999999", -EINVAL,
		   "out of range");
}

/* The kernel's parser knows no quotes: a quoted clearcpuid= is either not
 * seen at all or seen with the quotes in its names. */
static void test_quotes(void **state)
{
	(void)state;
	expect_err(NULL, "clearcpuid=\"erms,fsrm\"", -EINVAL, "quotes");
	expect_err(NULL, "\"clearcpuid=erms\"", -EINVAL, "quotes");
	expect_err(NULL, "foo=\"a clearcpuid=erms b\"", -EINVAL, "quotes");
	expect_err(NULL, "clearcpuid", -EINVAL, "without '='");
}

static void test_too_long(void **state)
{
	char list[200], extra[220];

	(void)state;
	/* 127 characters of value is what fits: char arg[128], less NUL. */
	snprintf(list, sizeof(list), "%s", "0");
	while (strlen(list) + 4 <= CMDLINE_CLEARCPUID_MAX) {
		size_t n = strlen(list);

		snprintf(list + n, sizeof(list) - n, ",%03zu", 100 + n / 4);
	}
	assert_int_equal(strlen(list), 125);
	snprintf(extra, sizeof(extra), "clearcpuid=%s,99", list);
	assert_int_equal(strlen(extra) - strlen("clearcpuid="), 128);
	expect_err(NULL, extra, -E2BIG, "128 characters");
	snprintf(extra, sizeof(extra), "clearcpuid=%s,9", list);
	assert_int_equal(merge(NULL, extra), 0);
	assert_int_equal(strlen(out), strlen("clearcpuid=") + 127);
	/* Duplicates do not count against it. */
	snprintf(extra, sizeof(extra), "clearcpuid=%s clearcpuid=0,9", list);
	assert_int_equal(merge(NULL, extra), 0);

	/* The VMM's own PVM list leaves room, but not for much. */
	expect_ok(PVM_CLEARCPUID, NULL, "clearcpuid=" PVM_CLEARCPUID);
	assert_true(strlen(PVM_CLEARCPUID) <= CMDLINE_CLEARCPUID_MAX);
	expect_err(PVM_CLEARCPUID, "clearcpuid=rdseed,rdrand,clwb,movbe,"
		   "clflushopt,avx512f,avx512bw", -E2BIG, "the kernel reads 127");
}

static void test_out_too_small(void **state)
{
	char small[24];

	(void)state;
	assert_int_equal(cmdline_merge("xsave", "quiet loglevel=3", small,
				       sizeof(small), why, sizeof(why)),
			 -E2BIG);
	assert_string_equal(small, "");
	assert_int_equal(cmdline_merge("xsave", "q", small, sizeof(small),
				       NULL, 0), 0);
	assert_string_equal(small, "clearcpuid=xsave q");
	/* why may be NULL on errors too. */
	assert_int_equal(cmdline_merge(NULL, "clearcpuid=bogus", small,
				       sizeof(small), NULL, 0), -EINVAL);
}

/* Whatever the operator writes, the result has one clearcpuid= at most. */
static void test_one_clearcpuid(void **state)
{
	static const char *const extras[] = {
		"clearcpuid=erms", "clearcpuid=erms clearcpuid=fsrm",
		"a clearcpuid=erms\tclearcpuid=fsrm\nb clearcpuid=",
		"x clearcpuid= clearcpuid=rdseed -- clearcpuid=clwb",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(extras) / sizeof(extras[0]); i++) {
		assert_int_equal(merge(PVM_CLEARCPUID, extras[i]), 0);
		assert_int_equal(count_clearcpuid(out), 1);
		assert_non_null(strstr(out, "clearcpuid=xsave,"));
	}
}

/* The generated table is the kernel's: a few names and bits checked by
 * hand against 6.1's cpufeatures.h. */
static void test_flag_table(void **state)
{
	static const struct cpu_flag want[] = {
		{ 0, "fpu" }, { 147, "sse4_1" }, { 154, "xsave" },
		{ 297, "erms" }, { 580, "fsrm" }, { 317, "sha_ni" },
		{ 128, "pni" },
	};

	(void)state;
	assert_int_equal(cpu_flags_ncapints, 22);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		unsigned k;

		for (k = 0; k < cpu_flags_count; k++)
			if (!strcmp(cpu_flags[k].name, want[i].name))
				break;
		assert_true(k < cpu_flags_count);
		assert_int_equal(cpu_flags[k].bit, want[i].bit);
	}
	for (unsigned k = 1; k < cpu_flags_count; k++)
		assert_true(cpu_flags[k - 1].bit < cpu_flags[k].bit);
}

/* The line start-up errors name: where cmdline was set, 0 if it was not. */
static void test_config_cmdline_line(void **state)
{
	struct cfg cfg;
	char err[CFG_ERRLEN];

	(void)state;
	assert_int_equal(cfg_load_string(&cfg, "t.ini",
					 "[server]\nstate_dir = /tmp\n"
					 "\n[template]\nmemory_mb = 256\n"
					 "cmdline = clearcpuid=bogus\n",
					 err, sizeof(err)), 0);
	assert_int_equal(cfg.template.cmdline_line, 6);
	assert_string_equal(cfg.template.cmdline, "clearcpuid=bogus");
	cfg_free(&cfg);
	assert_int_equal(cfg_load_string(&cfg, "t.ini", "[template]\n"
					 "memory_mb = 256\n", err,
					 sizeof(err)), 0);
	assert_int_equal(cfg.template.cmdline_line, 0);
	cfg_free(&cfg);
	assert_int_equal(cfg_defaults(&cfg), 0);
	assert_int_equal(cfg.template.cmdline_line, 0);
	cfg_free(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nothing),
		cmocka_unit_test(test_own_only),
		cmocka_unit_test(test_operator_list_joins_ours),
		cmocka_unit_test(test_several_tokens),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_empty_lists),
		cmocka_unit_test(test_rest_kept),
		cmocka_unit_test(test_unknown_names),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_quotes),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_out_too_small),
		cmocka_unit_test(test_one_clearcpuid),
		cmocka_unit_test(test_flag_table),
		cmocka_unit_test(test_config_cmdline_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
