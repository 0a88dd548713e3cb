/* Worker uids (vmm/jail_uids.c): no two holders of one uid, a uid back
 * only when given back, a clear refusal when none is left, and the check
 * at start that no account or group already has one. */
#include "vmm/jail_uids.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

static void test_init_refuses(void **state)
{
	struct jail_uids u;

	(void)state;
	assert_int_equal(jail_uids_init(&u, 200000, 0), -EINVAL);
	assert_int_equal(jail_uids_init(&u, 0, 10), -EINVAL);	/* root */
	/* reaching (uid_t)-1, "no change" to setresuid() */
	assert_int_equal(jail_uids_init(&u, 4294967290u, 6), -EINVAL);
	assert_int_equal(jail_uids_init(&u, 4294967290u, 5), 0);
	jail_uids_free(&u);
	jail_uids_free(&u);	/* twice: harmless */
}

/* Every uid handed out is in the range and held by one at a time; the
 * range exhausted is refused with a line saying so. */
static void test_unique_until_exhausted(void **state)
{
	struct jail_uids u;
	bool seen[10] = { false };
	char err[128] = "";
	uid_t uid;

	(void)state;
	assert_int_equal(jail_uids_init(&u, 200000, 10), 0);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(jail_uid_get(&u, &uid, err, sizeof(err)), 0);
		assert_true(uid >= 200000 && uid < 200010);
		assert_false(seen[uid - 200000]);
		seen[uid - 200000] = true;
	}
	assert_int_equal(jail_uid_get(&u, &uid, err, sizeof(err)), -EAGAIN);
	assert_string_equal(err, "no worker uid free: all 10 of [vm] "
				 "worker_uids are held");
	assert_int_equal(jail_uid_get(&u, &uid, NULL, 0), -EAGAIN);
	/* one given back (its worker reaped): that one, and only it */
	assert_int_equal(jail_uid_put(&u, 200004), 0);
	assert_int_equal(jail_uid_get(&u, &uid, err, sizeof(err)), 0);
	assert_int_equal(uid, 200004);
	assert_int_equal(jail_uid_get(&u, &uid, err, sizeof(err)), -EAGAIN);
	jail_uids_free(&u);
}

/* A uid just given back is the last to come round again. */
static void test_freed_comes_back_last(void **state)
{
	struct jail_uids u;
	uid_t a, b, c;

	(void)state;
	assert_int_equal(jail_uids_init(&u, 500, 3), 0);
	assert_int_equal(jail_uid_get(&u, &a, NULL, 0), 0);
	assert_int_equal(jail_uid_put(&u, a), 0);
	assert_int_equal(jail_uid_get(&u, &b, NULL, 0), 0);
	assert_int_equal(jail_uid_get(&u, &c, NULL, 0), 0);
	assert_true(b != a && c != a && b != c);
	assert_int_equal(jail_uid_get(&u, &b, NULL, 0), 0);
	assert_int_equal(b, a);
	jail_uids_free(&u);
}

/* Giving back what is not held changes nothing: a second put of one uid
 * must not let two workers get it. */
static void test_put_not_held(void **state)
{
	struct jail_uids u;
	uid_t a, b;

	(void)state;
	assert_int_equal(jail_uids_init(&u, 1000, 2), 0);
	assert_int_equal(jail_uid_put(&u, 1000), -ENOENT);
	assert_int_equal(jail_uid_put(&u, 999), -ENOENT);
	assert_int_equal(jail_uid_put(&u, 1002), -ENOENT);
	assert_int_equal(jail_uid_get(&u, &a, NULL, 0), 0);
	assert_int_equal(jail_uid_put(&u, a), 0);
	assert_int_equal(jail_uid_put(&u, a), -ENOENT);
	assert_int_equal(jail_uid_get(&u, &a, NULL, 0), 0);
	assert_int_equal(jail_uid_get(&u, &b, NULL, 0), 0);
	assert_true(a != b);
	assert_int_equal(jail_uid_get(&u, &b, NULL, 0), -EAGAIN);
	jail_uids_free(&u);
}

/* Random gets and puts, as workers come and are reaped: never a uid
 * handed out twice while held. */
static void test_random_churn(void **state)
{
	struct jail_uids u;
	bool held[64] = { false };
	unsigned n = 0;

	(void)state;
	srand(1);
	assert_int_equal(jail_uids_init(&u, 300000, 64), 0);
	for (int i = 0; i < 20000; i++) {
		uid_t uid;

		if (rand() % 2) {
			int r = jail_uid_get(&u, &uid, NULL, 0);

			if (n == 64) {
				assert_int_equal(r, -EAGAIN);
				continue;
			}
			assert_int_equal(r, 0);
			assert_false(held[uid - 300000]);
			held[uid - 300000] = true;
			n++;
		} else if (n) {
			unsigned k = (unsigned)rand() % 64;

			while (!held[k])
				k = (k + 1) % 64;
			assert_int_equal(jail_uid_put(&u, 300000 + k), 0);
			held[k] = false;
			n--;
		}
	}
	jail_uids_free(&u);
}

static char passwd[64], group[64];

static int setup(void **state)
{
	int fd;

	(void)state;
	snprintf(passwd, sizeof(passwd), "/tmp/clone-pw-XXXXXX");
	snprintf(group, sizeof(group), "/tmp/clone-gr-XXXXXX");
	fd = mkstemp(passwd);
	assert_true(fd >= 0);
	close(fd);
	fd = mkstemp(group);
	assert_true(fd >= 0);
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(passwd);
	unlink(group);
	return 0;
}

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

static void expect_uids_check(int want, const char *msg)
{
	char err[256] = "";
	int r = jail_uids_check(passwd, group, 200000, 65536, err,
				sizeof(err));

	if (r != want || (msg && !strstr(err, msg)))
		fail_msg("check: %d \"%s\", wanted %d \"...%s...\"", r, err,
			 want, msg ? msg : "");
}

static const char base_pw[] =
	"root:x:0:0:root:/root:/bin/bash\n"
	"clone:x:999:995::/nonexistent:/usr/sbin/nologin\n"
	"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
	"last:x:265536:1000::/:/bin/false\n";
static const char base_gr[] =
	"root:x:0:\nclone:x:995:\nnogroup:x:65534:\nhigh:x:199999:\n";

/* A range no account or group uses: fine. One that does: refused,
 * naming the file, the account and the range. */
static void test_check(void **state)
{
	char text[512];

	(void)state;
	put(passwd, base_pw);
	put(group, base_gr);
	expect_uids_check(0, NULL);
	snprintf(text, sizeof(text), "%sdyn:x:200000:1000::/:/bin/false\n",
		 base_pw);
	put(passwd, text);
	expect_uids_check(-EEXIST, "user dyn has uid 200000 (gid 1000), inside "
			      "[vm] worker_uids 200000-265535");
	snprintf(text, sizeof(text), "%sdyn:x:1001:265535::/:/bin/false\n",
		 base_pw);
	put(passwd, text);
	expect_uids_check(-EEXIST, "user dyn has uid 1001 (gid 265535)");
	put(passwd, base_pw);
	snprintf(text, sizeof(text), "%sworkers:x:230000:\n", base_gr);
	put(group, text);
	expect_uids_check(-EEXIST, "group workers has gid 230000, inside [vm] "
			      "worker_uids 200000-265535");
	unlink(group);
	expect_uids_check(-ENOENT, "No such file");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_refuses),
		cmocka_unit_test(test_unique_until_exhausted),
		cmocka_unit_test(test_freed_comes_back_last),
		cmocka_unit_test(test_put_not_held),
		cmocka_unit_test(test_random_churn),
		cmocka_unit_test_setup_teardown(test_check, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
