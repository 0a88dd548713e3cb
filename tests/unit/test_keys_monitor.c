/* The keys monitor: answers matched to their requests by id or dropped (a
 * late answer is never the answer to the next login), a monitor that is
 * slow, gone or hostile never blocks the front-end; and the monitor's own
 * checks of keys files on real files (StrictModes, links, FIFOs). */
#include "sshd/keys_monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "sshd/authkeys.h"

static ssh_key alice_key, mallory_key;

/* What keys_done_fn was told, in order. */
static struct {
	void *owner;
	int r;
} seen[64];
static int nseen;

static void done(void *owner, int r)
{
	if (nseen < 64) {
		seen[nseen].owner = owner;
		seen[nseen].r = r;
	}
	nseen++;
}

struct pair {
	struct keys_client kc;
	int mon;		/* the fake monitor's end */
};

static struct pair *pair_new(void)
{
	struct pair *p = calloc(1, sizeof(*p));
	int sv[2];

	assert_non_null(p);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
				    sv), 0);
	keys_client_init(&p->kc);
	keys_client_attach(&p->kc, sv[0], 1000);
	p->mon = sv[1];
	nseen = 0;
	return p;
}

static void pair_free(struct pair *p)
{
	keys_client_close(&p->kc, done);
	close(p->mon);
	free(p);
}

/* The fake monitor takes one request. */
static struct keys_req take(struct pair *p)
{
	struct keys_req q;

	assert_int_equal(recv(p->mon, &q, sizeof(q), MSG_DONTWAIT),
			 sizeof(q));
	return q;
}

static void answer(struct pair *p, uint32_t id, int32_t r)
{
	struct keys_ans a = { .id = id, .r = r };

	assert_int_equal(send(p->mon, &a, sizeof(a), 0), sizeof(a));
}

static void test_answers_matched_by_id(void **state)
{
	struct pair *p = pair_new();
	int a, b;
	struct keys_req qa, qb;

	(void)state;
	assert_int_equal(keys_client_ask(&p->kc, KEYS_MATCH, "alice",
					 alice_key, &a, 1000), 0);
	assert_int_equal(keys_client_ask(&p->kc, KEYS_MATCH, "bob",
					 mallory_key, &b, 1000), 0);
	qa = take(p);
	qb = take(p);
	assert_string_equal(qa.user, "alice");
	assert_string_equal(qb.user, "bob");
	assert_int_not_equal(qa.id, 0);
	assert_int_not_equal(qa.id, qb.id);
	/* out of order: each still reaches its own login */
	answer(p, qb.id, 0);
	answer(p, qa.id, 1);
	assert_int_equal(keys_client_read(&p->kc, done), 0);
	assert_int_equal(nseen, 2);
	assert_ptr_equal(seen[0].owner, &b);
	assert_int_equal(seen[0].r, 0);
	assert_ptr_equal(seen[1].owner, &a);
	assert_int_equal(seen[1].r, 1);
	assert_int_equal(p->kc.npending, 0);
	pair_free(p);
}

/* The flaw this module fixes: alice's lookup stalls and her login is
 * refused; mallory then logs in as alice with his own key; the stalled
 * "yes" for alice's key arrives first. It must not let mallory in. */
static void test_late_answer_is_nobody_elses(void **state)
{
	struct pair *p = pair_new();
	int alice, mallory;
	struct keys_req q1, q2;

	(void)state;
	assert_int_equal(keys_client_ask(&p->kc, KEYS_MATCH, "alice",
					 alice_key, &alice, 1000), 0);
	q1 = take(p);
	assert_false(keys_client_expire(&p->kc, 1000 + KEYS_TIMEOUT_MS - 1,
					done));
	assert_int_equal(nseen, 0);
	assert_true(keys_client_expire(&p->kc, 1000 + KEYS_TIMEOUT_MS,
				       done));
	assert_int_equal(nseen, 1);
	assert_ptr_equal(seen[0].owner, &alice);
	assert_int_equal(seen[0].r, -ETIMEDOUT);

	assert_int_equal(keys_client_ask(&p->kc, KEYS_MATCH, "alice",
					 mallory_key, &mallory, 7000), 0);
	q2 = take(p);
	answer(p, q1.id, 1);	/* late: alice's key is alice's */
	answer(p, q2.id, 0);	/* mallory's is not */
	assert_int_equal(keys_client_read(&p->kc, done), 0);
	assert_int_equal(nseen, 2);
	assert_ptr_equal(seen[1].owner, &mallory);
	assert_int_equal(seen[1].r, 0);
	assert_int_equal(p->kc.dropped, 1);
	pair_free(p);
}

/* A login that goes away: its answer is nobody's. */
static void test_cancelled(void **state)
{
	struct pair *p = pair_new();
	int a, b;
	struct keys_req qa, qb;

	(void)state;
	assert_int_equal(keys_client_ask(&p->kc, KEYS_MATCH, "alice",
					 alice_key, &a, 1000), 0);
	qa = take(p);
	keys_client_cancel(&p->kc, &a);
	assert_int_equal(keys_client_ask(&p->kc, KEYS_MATCH, "alice",
					 mallory_key, &b, 1000), 0);
	qb = take(p);
	answer(p, qa.id, 1);
	answer(p, qb.id, 0);
	assert_int_equal(keys_client_read(&p->kc, done), 0);
	assert_int_equal(nseen, 1);
	assert_ptr_equal(seen[0].owner, &b);
	assert_int_equal(seen[0].r, 0);
	pair_free(p);
}

/* Short, long, id 0, unknown and repeated answers are all dropped. */
static void test_hostile_answers(void **state)
{
	struct pair *p = pair_new();
	struct keys_req q;
	uint8_t junk[100];
	int a;

	(void)state;
	memset(junk, 0x41, sizeof(junk));
	assert_int_equal(keys_client_ask(&p->kc, KEYS_MATCH, "alice",
					 alice_key, &a, 1000), 0);
	q = take(p);
	assert_int_equal(send(p->mon, junk, 3, 0), 3);
	assert_int_equal(send(p->mon, junk, sizeof(junk), 0), sizeof(junk));
	memcpy(junk, &q.id, sizeof(q.id));	/* right id, wrong size */
	assert_int_equal(send(p->mon, junk, sizeof(junk), 0), sizeof(junk));
	answer(p, 0, 1);
	answer(p, q.id + 1, 1);
	assert_int_equal(keys_client_read(&p->kc, done), 0);
	assert_int_equal(nseen, 0);
	assert_int_equal(p->kc.dropped, 5);
	answer(p, q.id, 0);
	answer(p, q.id, 1);	/* a second answer to the same request */
	assert_int_equal(keys_client_read(&p->kc, done), 0);
	assert_int_equal(nseen, 1);
	assert_int_equal(seen[0].r, 0);
	assert_int_equal(p->kc.dropped, 6);
	pair_free(p);
}

/* The monitor dies: its lookups wait for the next one and are asked
 * again there, under their own ids. */
static void test_monitor_replaced(void **state)
{
	struct pair *p = pair_new();
	struct keys_req q1, q2;
	int sv[2], a;

	(void)state;
	assert_int_equal(keys_client_ask(&p->kc, KEYS_MATCH, "alice",
					 alice_key, &a, 1000), 0);
	q1 = take(p);
	close(p->mon);
	assert_int_equal(keys_client_read(&p->kc, done), -EPIPE);
	assert_int_equal(p->kc.fd, -1);
	assert_int_equal(nseen, 0);
	assert_int_equal(p->kc.npending, 1);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
				    sv), 0);
	keys_client_attach(&p->kc, sv[0], 2000);
	p->mon = sv[1];
	q2 = take(p);
	assert_int_equal(q2.id, q1.id);
	assert_string_equal(q2.user, "alice");
	/* a new deadline from the new monitor's start */
	assert_false(keys_client_expire(&p->kc, 1000 + KEYS_TIMEOUT_MS,
					done));
	answer(p, q2.id, 1);
	assert_int_equal(keys_client_read(&p->kc, done), 0);
	assert_int_equal(nseen, 1);
	assert_int_equal(seen[0].r, 1);
	pair_free(p);
}

/* A monitor that reads nothing: asking never blocks; the requests that
 * did not fit wait, and all are refused at their deadline. */
static void test_monitor_not_reading(void **state)
{
	struct pair *p = pair_new();
	static int owners[KEYS_MAX_PENDING];
	struct timespec t0, t1;
	int n = 0;

	(void)state;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (; n < KEYS_MAX_PENDING; n++)
		assert_int_equal(keys_client_ask(&p->kc, KEYS_MATCH, "alice",
						 alice_key, &owners[n], 1000),
				 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(t1.tv_sec - t0.tv_sec < 2);
	assert_int_equal(keys_client_ask(&p->kc, KEYS_MATCH, "alice",
					 alice_key, &n, 1000), -EBUSY);
	assert_int_equal(keys_client_read(&p->kc, done), 0);
	assert_true(keys_client_expire(&p->kc, 1000 + KEYS_TIMEOUT_MS, done));
	assert_int_equal(nseen, KEYS_MAX_PENDING);
	for (int i = 0; i < 64; i++)
		assert_int_equal(seen[i].r, -ETIMEDOUT);
	assert_int_equal(p->kc.npending, 0);
	pair_free(p);
}

/* ---- the monitor's answers, on real files ---- */

static char dir[64], users[96];
static struct cfg cfg;

static void put_key(const char *path, ssh_key key, mode_t mode)
{
	char *b64 = NULL;
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(ssh_pki_export_pubkey_base64(key, &b64), SSH_OK);
	fprintf(f, "# a comment\n%s %s alice@laptop\n",
		ssh_key_type_to_char(ssh_key_type(key)), b64);
	ssh_string_free_char(b64);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static int ask(uint32_t op, const char *user, ssh_key key)
{
	struct keys_req q = { .id = 1, .op = op };
	char *b64 = NULL;

	snprintf(q.user, sizeof(q.user), "%s", user);
	snprintf(q.type, sizeof(q.type), "%s",
		 ssh_key_type_to_char(ssh_key_type(key)));
	assert_int_equal(ssh_pki_export_pubkey_base64(key, &b64), SSH_OK);
	snprintf(q.b64, sizeof(q.b64), "%s", b64);
	ssh_string_free_char(b64);
	return keys_monitor_answer(&cfg, &q);
}

static int setup_files(void **state)
{
	char pattern[128];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/clone-keys-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(users, sizeof(users), "%s/users", dir);
	assert_int_equal(mkdir(users, 0755), 0);
	assert_int_equal(cfg_defaults(&cfg), 0);
	snprintf(pattern, sizeof(pattern), "%s/%%u", users);
	free(cfg.server.authorized_keys);
	cfg.server.authorized_keys = strdup(pattern);
	return 0;
}

static int teardown_files(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	cfg_free(&cfg);
	return 0;
}

static void path(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", users, name);
}

static void test_match(void **state)
{
	char f[160];

	(void)state;
	path(f, sizeof(f), "alice");
	put_key(f, alice_key, 0644);
	assert_int_equal(ask(KEYS_MATCH, "alice", alice_key), 1);
	assert_int_equal(ask(KEYS_MATCH, "alice", mallory_key), 0);
	assert_int_equal(ask(KEYS_MATCH, "nobody", alice_key), -ENOENT);
	/* what the front-end sends is checked again */
	assert_int_equal(ask(KEYS_MATCH, "Bad.Name", alice_key), -EINVAL);
	assert_int_equal(ask(7, "alice", alice_key), -EINVAL);
}

static void test_strict_modes(void **state)
{
	char f[160];

	(void)state;
	path(f, sizeof(f), "alice");
	put_key(f, alice_key, 0640);
	assert_int_equal(ask(KEYS_MATCH, "alice", alice_key), 1);
	assert_int_equal(chmod(f, 0620), 0);
	assert_int_equal(ask(KEYS_MATCH, "alice", alice_key), -EPERM);
	assert_int_equal(chmod(f, 0646), 0);
	assert_int_equal(ask(KEYS_MATCH, "alice", alice_key), -EPERM);
	assert_int_equal(chmod(f, 0600), 0);
	/* a directory others may write in */
	assert_int_equal(chmod(users, 0775), 0);
	assert_int_equal(ask(KEYS_MATCH, "alice", alice_key), -EPERM);
	assert_int_equal(chmod(users, 0757), 0);
	assert_int_equal(ask(KEYS_MATCH, "alice", alice_key), -EPERM);
	/* ... unless sticky and root's, as /tmp is */
	assert_int_equal(chmod(users, 01777), 0);
	assert_int_equal(ask(KEYS_MATCH, "alice", alice_key),
			 geteuid() == 0 ? 1 : -EPERM);
	assert_int_equal(chmod(users, 0755), 0);
	if (geteuid() == 0) {
		/* owned by neither root nor a host account named alice */
		assert_int_equal(chown(f, 54321, 0), 0);
		assert_int_equal(ask(KEYS_MATCH, "alice", alice_key), -EPERM);
		assert_int_equal(chown(f, 0, 0), 0);
		assert_int_equal(chown(users, 54321, 0), 0);
		assert_int_equal(ask(KEYS_MATCH, "alice", alice_key), -EPERM);
		assert_int_equal(chown(users, 0, 0), 0);
	}
	assert_int_equal(ask(KEYS_MATCH, "alice", alice_key), 1);
}

static void test_links_and_fifos(void **state)
{
	char f[160], real[160], link[160], pattern[200];
	struct timespec t0, t1;

	(void)state;
	path(real, sizeof(real), "real");
	put_key(real, alice_key, 0644);
	path(f, sizeof(f), "bob");
	assert_int_equal(symlink(real, f), 0);
	assert_int_equal(ask(KEYS_MATCH, "bob", alice_key), -EPERM);
	/* a FIFO: refused at once, never waited on */
	path(f, sizeof(f), "carol");
	assert_int_equal(mkfifo(f, 0644), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(ask(KEYS_MATCH, "carol", alice_key), -EPERM);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(t1.tv_sec - t0.tv_sec < 1);
	/* a directory on the path that is a link */
	snprintf(link, sizeof(link), "%s/link", dir);
	assert_int_equal(symlink(users, link), 0);
	snprintf(pattern, sizeof(pattern), "%s/%%u", link);
	free(cfg.server.authorized_keys);
	cfg.server.authorized_keys = strdup(pattern);
	assert_int_equal(ask(KEYS_MATCH, "real", alice_key), -EPERM);
	/* and no sign-up is written through it */
	cfg.server.open_signup = true;
	assert_int_equal(ask(KEYS_SIGNUP, "dave", alice_key), -EPERM);
	path(f, sizeof(f), "dave");
	assert_int_equal(access(f, F_OK), -1);
	cfg.server.open_signup = false;
	snprintf(pattern, sizeof(pattern), "%s/%%u", users);
	free(cfg.server.authorized_keys);
	cfg.server.authorized_keys = strdup(pattern);
	assert_int_equal(ask(KEYS_MATCH, "real", alice_key), 1);
}

static void test_signup(void **state)
{
	char f[160], pattern[192];
	struct stat st;

	(void)state;
	assert_int_equal(ask(KEYS_SIGNUP, "erin", alice_key), -EPERM);
	cfg.server.open_signup = true;
	assert_int_equal(ask(KEYS_SIGNUP, "erin", alice_key), 0);
	path(f, sizeof(f), "erin");
	assert_int_equal(lstat(f, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(ask(KEYS_MATCH, "erin", alice_key), 1);
	/* the name is taken: another key cannot claim it */
	assert_int_equal(ask(KEYS_SIGNUP, "erin", mallory_key), -EPERM);
	assert_int_equal(ask(KEYS_MATCH, "erin", mallory_key), 0);
	/* missing directories are made, safe ones */
	snprintf(pattern, sizeof(pattern), "%s/new/deeper/%%u.keys", dir);
	free(cfg.server.authorized_keys);
	cfg.server.authorized_keys = strdup(pattern);
	assert_int_equal(ask(KEYS_SIGNUP, "frank", alice_key), 0);
	assert_int_equal(ask(KEYS_MATCH, "frank", alice_key), 1);
	cfg.server.open_signup = false;
	snprintf(pattern, sizeof(pattern), "%s/%%u", users);
	free(cfg.server.authorized_keys);
	cfg.server.authorized_keys = strdup(pattern);
}

static void test_passwd_uid(void **state)
{
	static const char text[] =
		"root:x:0:0:root:/root:/bin/bash\n"
		"alicex:x:1001:1001::/home/alicex:/bin/sh\n"
		"alice:x:1000:1000::/home/alice:/bin/sh\n"
		"bad:x:12a:0::/:/bin/sh\n"
		"huge:x:99999999999:0::/:/bin/sh\n"
		"short:x\n"
		"nouid:x::0::/:/bin/sh\n"
		"last:x:7";

	(void)state;
	assert_int_equal(sshd_passwd_uid(text, sizeof(text) - 1, "root"), 0);
	assert_int_equal(sshd_passwd_uid(text, sizeof(text) - 1, "alice"),
			 1000);
	assert_int_equal(sshd_passwd_uid(text, sizeof(text) - 1, "alic"), -1);
	assert_int_equal(sshd_passwd_uid(text, sizeof(text) - 1, "bad"), -1);
	assert_int_equal(sshd_passwd_uid(text, sizeof(text) - 1, "huge"), -1);
	assert_int_equal(sshd_passwd_uid(text, sizeof(text) - 1, "short"), -1);
	assert_int_equal(sshd_passwd_uid(text, sizeof(text) - 1, "nouid"), -1);
	assert_int_equal(sshd_passwd_uid(text, sizeof(text) - 1, "last"), -1);
	assert_int_equal(sshd_passwd_uid(text, 5, "root"), -1);
}

/* The real loop in a child, under its real filter: a request of the wrong
 * size is answered with id 0 (no login's), a good one with its id. */
static void test_monitor_loop(void **state)
{
	struct keys_req q = { .id = 77, .op = KEYS_MATCH };
	struct keys_ans a;
	char f[160], *b64 = NULL;
	int sv[2], st;
	pid_t pid;

	(void)state;
#ifdef __SANITIZE_ADDRESS__
	print_message("SKIP test_monitor_loop: under ASan, whose runtime "
		      "makes system calls the filter does not allow\n");
	skip();
#endif
	path(f, sizeof(f), "alice");
	put_key(f, alice_key, 0644);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		keys_monitor_main(sv[1], &cfg);
	}
	close(sv[1]);
	assert_int_equal(send(sv[0], &q, 10, 0), 10);
	assert_int_equal(recv(sv[0], &a, sizeof(a), 0), sizeof(a));
	assert_int_equal(a.id, 0);
	assert_int_equal(a.r, -EPROTO);
	{
		/* too long: not cut down to a request that looks right */
		static char big[sizeof(q) + 100];

		memcpy(big, &q, sizeof(q));
		assert_int_equal(send(sv[0], big, sizeof(big), 0),
				 sizeof(big));
		assert_int_equal(recv(sv[0], &a, sizeof(a), 0), sizeof(a));
		assert_int_equal(a.id, 0);
	}
	snprintf(q.user, sizeof(q.user), "alice");
	snprintf(q.type, sizeof(q.type), "ssh-ed25519");
	assert_int_equal(ssh_pki_export_pubkey_base64(alice_key, &b64),
			 SSH_OK);
	snprintf(q.b64, sizeof(q.b64), "%s", b64);
	ssh_string_free_char(b64);
	assert_int_equal(send(sv[0], &q, sizeof(q), 0), sizeof(q));
	assert_int_equal(recv(sv[0], &a, sizeof(a), 0), sizeof(a));
	assert_int_equal(a.id, 77);
	assert_int_equal(a.r, 1);
	close(sv[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_answers_matched_by_id),
		cmocka_unit_test(test_late_answer_is_nobody_elses),
		cmocka_unit_test(test_cancelled),
		cmocka_unit_test(test_hostile_answers),
		cmocka_unit_test(test_monitor_replaced),
		cmocka_unit_test(test_monitor_not_reading),
		cmocka_unit_test_setup_teardown(test_match, setup_files,
						teardown_files),
		cmocka_unit_test_setup_teardown(test_strict_modes, setup_files,
						teardown_files),
		cmocka_unit_test_setup_teardown(test_links_and_fifos,
						setup_files, teardown_files),
		cmocka_unit_test_setup_teardown(test_signup, setup_files,
						teardown_files),
		cmocka_unit_test(test_passwd_uid),
		cmocka_unit_test_setup_teardown(test_monitor_loop, setup_files,
						teardown_files),
	};
	int r;

	if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &alice_key) != SSH_OK ||
	    ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &mallory_key) != SSH_OK)
		return 1;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	ssh_key_free(alice_key);
	ssh_key_free(mallory_key);
	return r;
}
