#include "config/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#define NAME "t.ini"

static const char full[] =
	"; a comment\n"
	"# another comment\n"
	"\n"
	"[server]\n"
	"listen = [::1]:2022\n"
	"state_dir = var/clone   ; relative, kept as written\n"
	"host_key = /etc/clone/key\n"
	"authorized_keys = /home/%u/.ssh/authorized_keys\n"
	"open_signup = yes\n"
	"max_auth_tries = 3\n"
	"login_grace_time = 3600\n"
	"[template]\n"
	"kernel = /boot/vmlinux-guest\n"
	"initrd = initrd.cpio\n"
	"cmdline = quiet loglevel=3\n"
	"memory_mb = 3072\n"
	"vcpus = 1\n"
	"serial = on\n"
	"[vm]\n"
	"max_vms = 100000\n"
	"detach_timeout = 0\n"
	"reap_timeout = 31536000\n"
	"user = clone-vm\n"
	"root = yes\n"
	"worker_uids = 100000-199999\n";

static void check_full(const struct cfg *cfg)
{
	assert_string_equal(cfg->server.listen_host, "::1");
	assert_int_equal(cfg->server.listen_port, 2022);
	assert_string_equal(cfg->server.state_dir, "var/clone");
	assert_string_equal(cfg->server.host_key, "/etc/clone/key");
	assert_string_equal(cfg->server.authorized_keys,
			    "/home/%u/.ssh/authorized_keys");
	assert_true(cfg->server.open_signup);
	assert_int_equal(cfg->server.max_auth_tries, 3);
	assert_int_equal(cfg->server.login_grace_time, 3600);
	assert_string_equal(cfg->template.kernel, "/boot/vmlinux-guest");
	assert_string_equal(cfg->template.initrd, "initrd.cpio");
	assert_string_equal(cfg->template.cmdline, "quiet loglevel=3");
	assert_int_equal(cfg->template.memory_mb, 3072);
	assert_int_equal(cfg->template.vcpus, 1);
	assert_true(cfg->template.serial);
	assert_int_equal(cfg->vm.max_vms, 100000);
	assert_int_equal(cfg->vm.detach_timeout, 0);
	assert_int_equal(cfg->vm.reap_timeout, 31536000);
	assert_string_equal(cfg->vm.user, "clone-vm");
	assert_true(cfg->vm.root);
	assert_int_equal(cfg->vm.worker_uid_first, 100000);
	assert_int_equal(cfg->vm.worker_uid_count, 100000);
}

static void check_zeroed(const struct cfg *cfg)
{
	static const struct cfg zero;

	assert_memory_equal(cfg, &zero, sizeof(zero));
}

/* text must fail with want, a message starting with prefix and containing
 * keyword, and leave the cfg empty. */
static void expect_error(const char *text, int want, const char *prefix,
			 const char *keyword)
{
	char err[CFG_ERRLEN] = "";
	struct cfg cfg;
	int r;

	memset(&cfg, 0xa5, sizeof(cfg));
	r = cfg_load_string(&cfg, NAME, text, err, sizeof(err));
	if (r != want || strncmp(err, prefix, strlen(prefix)) ||
	    !strstr(err, keyword))
		print_error("input:\n%s\n-> %d \"%s\"\nwanted %d \"%s...%s\"\n",
			    text, r, err, want, prefix, keyword);
	assert_int_equal(r, want);
	assert_memory_equal(err, prefix, strlen(prefix));
	assert_non_null(strstr(err, keyword));
	assert_null(strchr(err, '\n'));
	check_zeroed(&cfg);
	cfg_free(&cfg);
}

static void load_ok(struct cfg *cfg, const char *text)
{
	char err[CFG_ERRLEN] = "";
	int r;

	r = cfg_load_string(cfg, NAME, text, err, sizeof(err));
	if (r)
		print_error("input:\n%s\n-> %d \"%s\"\n", text, r, err);
	assert_int_equal(r, 0);
	assert_string_equal(err, "");
}

static void test_defaults(void **state)
{
	struct cfg cfg;

	(void)state;
	assert_int_equal(cfg_defaults(&cfg), 0);
	assert_null(cfg.path);
	assert_string_equal(cfg.server.listen_host, "127.0.0.1");
	assert_int_equal(cfg.server.listen_port, 2222);
	assert_string_equal(cfg.server.state_dir, "/var/lib/clone");
	assert_string_equal(cfg.server.host_key,
			    "/var/lib/clone/ssh_host_ed25519_key");
	assert_string_equal(cfg.server.authorized_keys, "/etc/clone/users/%u");
	assert_false(cfg.server.open_signup);
	assert_int_equal(cfg.server.max_auth_tries, 6);
	assert_int_equal(cfg.server.login_grace_time, 30);
	assert_int_equal(cfg.server.max_startups_begin, 10);
	assert_int_equal(cfg.server.max_startups_rate, 30);
	assert_int_equal(cfg.server.max_startups_full, 100);
	assert_int_equal(cfg.server.per_source_max_startups, 10);
	assert_int_equal(cfg.server.unused_connection_timeout, 600);
	assert_int_equal(cfg.server.client_alive_interval, 30);
	assert_int_equal(cfg.server.client_alive_count_max, 3);
	assert_string_equal(cfg.server.kex_algorithms,
			    "curve25519-sha256,curve25519-sha256@libssh.org");
	assert_int_equal(cfg.server.signup_per_key_per_hour, 3);
	assert_int_equal(cfg.server.signup_per_source_per_hour, 10);
	assert_string_equal(cfg.template.kernel, "build/guest/vmlinux");
	assert_string_equal(cfg.template.initrd, "build/guest/initramfs.cpio");
	assert_string_equal(cfg.template.cmdline, "");
	assert_int_equal(cfg.template.memory_mb, 256);
	assert_int_equal(cfg.template.vcpus, 1);
	assert_false(cfg.template.serial);
	assert_int_equal(cfg.vm.max_vms, 100);
	assert_int_equal(cfg.vm.detach_timeout, 300);
	assert_int_equal(cfg.vm.reap_timeout, 86400);
	assert_false(cfg.vm.root);
	assert_int_equal(cfg.vm.worker_uid_first, 200000);
	assert_int_equal(cfg.vm.worker_uid_count, 65536);
	assert_int_equal(cfg.vm.suspend_max_mib_per_user, 0);
	assert_int_equal(cfg.vm.suspend_max_mib_total, 0);
	cfg_free(&cfg);
	check_zeroed(&cfg);
}

/* An empty file and a comments-only file are the defaults. */
static void test_empty_file(void **state)
{
	struct cfg cfg;

	(void)state;
	load_ok(&cfg, "");
	assert_string_equal(cfg.path, NAME);
	assert_string_equal(cfg.server.host_key,
			    "/var/lib/clone/ssh_host_ed25519_key");
	assert_int_equal(cfg.vm.reap_timeout, 86400);
	cfg_free(&cfg);
	load_ok(&cfg, "; nothing\n[server]\n[template]\n[vm]\n");
	assert_int_equal(cfg.server.listen_port, 2222);
	cfg_free(&cfg);
}

static void test_full_string(void **state)
{
	struct cfg cfg;

	(void)state;
	load_ok(&cfg, full);
	assert_string_equal(cfg.path, NAME);
	check_full(&cfg);
	cfg_free(&cfg);
}

static void test_full_file(void **state)
{
	char path[] = "/tmp/test_config.XXXXXX", err[CFG_ERRLEN] = "";
	struct cfg cfg;
	int fd, r;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, full, strlen(full)), (ssize_t)strlen(full));
	close(fd);
	r = cfg_load(&cfg, path, err, sizeof(err));
	unlink(path);
	assert_string_equal(err, "");
	assert_int_equal(r, 0);
	assert_string_equal(cfg.path, path);
	check_full(&cfg);
	cfg_free(&cfg);
}

/* A NUL byte can only come from a file; it must not end the parse early. */
static void test_file_nul(void **state)
{
	static const char text[] = "[server]\nmax_auth_tries = 3\0junk\n";
	char path[] = "/tmp/test_config.XXXXXX", err[CFG_ERRLEN] = "", *want;
	struct cfg cfg;
	int fd, r;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof(text) - 1),
			 (ssize_t)sizeof(text) - 1);
	close(fd);
	r = cfg_load(&cfg, path, err, sizeof(err));
	unlink(path);
	assert_int_equal(r, -EINVAL);
	assert_true(asprintf(&want, "%s:2: NUL byte in line", path) > 0);
	assert_string_equal(err, want);
	free(want);
	check_zeroed(&cfg);
}

static void test_missing_file(void **state)
{
	const char *path = "/nonexistent/clone-test.ini";
	char err[CFG_ERRLEN] = "";
	struct cfg cfg;

	(void)state;
	assert_int_equal(cfg_load(&cfg, path, err, sizeof(err)), -ENOENT);
	assert_memory_equal(err, "/nonexistent/clone-test.ini: ",
			    strlen(path) + 2);
	assert_non_null(strstr(err, "No such file"));
	check_zeroed(&cfg);
	cfg_free(&cfg);
}

static void test_directory(void **state)
{
	char err[CFG_ERRLEN] = "";
	struct cfg cfg;

	(void)state;
	assert_int_equal(cfg_load(&cfg, "/", err, sizeof(err)), -EISDIR);
	assert_memory_equal(err, "/: ", 3);
	check_zeroed(&cfg);
}

static void test_free_twice(void **state)
{
	struct cfg cfg;

	(void)state;
	load_ok(&cfg, full);
	cfg_free(&cfg);
	cfg_free(&cfg);
	check_zeroed(&cfg);
	cfg_free(NULL);
}

static void test_host_key_follows_state_dir(void **state)
{
	struct cfg cfg;

	(void)state;
	load_ok(&cfg, "[server]\nstate_dir = /srv/clone\n");
	assert_string_equal(cfg.server.host_key,
			    "/srv/clone/ssh_host_ed25519_key");
	cfg_free(&cfg);

	load_ok(&cfg, "[server]\nstate_dir = /srv/clone/\n");
	assert_string_equal(cfg.server.host_key,
			    "/srv/clone/ssh_host_ed25519_key");
	cfg_free(&cfg);

	load_ok(&cfg, "[server]\nstate_dir = /\n");
	assert_string_equal(cfg.server.host_key, "/ssh_host_ed25519_key");
	cfg_free(&cfg);

	load_ok(&cfg, "[server]\nstate_dir = state\n");
	assert_string_equal(cfg.server.host_key, "state/ssh_host_ed25519_key");
	cfg_free(&cfg);

	/* An explicit host_key wins, whatever the order. */
	load_ok(&cfg, "[server]\nhost_key = k\nstate_dir = /srv/clone\n");
	assert_string_equal(cfg.server.host_key, "k");
	cfg_free(&cfg);
}

static void test_listen_forms(void **state)
{
	struct cfg cfg;

	(void)state;
	load_ok(&cfg, "[server]\nlisten = 0.0.0.0:1\n");
	assert_string_equal(cfg.server.listen_host, "0.0.0.0");
	assert_int_equal(cfg.server.listen_port, 1);
	cfg_free(&cfg);

	load_ok(&cfg, "[server]\nlisten = [::]:65535\n");
	assert_string_equal(cfg.server.listen_host, "::");
	assert_int_equal(cfg.server.listen_port, 65535);
	cfg_free(&cfg);

	load_ok(&cfg, "[server]\nlisten = [2001:db8::1]:22\n");
	assert_string_equal(cfg.server.listen_host, "2001:db8::1");
	assert_int_equal(cfg.server.listen_port, 22);
	cfg_free(&cfg);
}

static void test_booleans(void **state)
{
	static const char *const yes[] = { "yes", "true", "on", "1", "YES" };
	static const char *const no[] = { "no", "false", "off", "0", "Off" };
	char text[128];
	struct cfg cfg;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		snprintf(text, sizeof(text), "[template]\nserial = %s\n",
			 yes[i]);
		load_ok(&cfg, text);
		assert_true(cfg.template.serial);
		cfg_free(&cfg);
		snprintf(text, sizeof(text),
			 "[template]\nserial = yes\n[server]\nopen_signup = %s\n",
			 no[i]);
		load_ok(&cfg, text);
		assert_false(cfg.server.open_signup);
		cfg_free(&cfg);
		snprintf(text, sizeof(text), "[vm]\nroot = %s\n", yes[i]);
		load_ok(&cfg, text);
		assert_true(cfg.vm.root);
		cfg_free(&cfg);
		snprintf(text, sizeof(text), "[vm]\nroot = %s\n", no[i]);
		load_ok(&cfg, text);
		assert_false(cfg.vm.root);
		cfg_free(&cfg);
	}
}

/* Layout that must not change the meaning: CRLF, a BOM, indentation (which
 * inih would otherwise take as a continuation of the previous value), and a
 * comment longer than inih's line buffer. */
static void test_layout(void **state)
{
	char text[1024];
	struct cfg cfg;

	(void)state;
	load_ok(&cfg, "\xef\xbb\xbf[template]\r\nkernel = k\r\n"
		      "\tinitrd = i\r\n    memory_mb = 64\r\n");
	assert_string_equal(cfg.template.kernel, "k");
	assert_string_equal(cfg.template.initrd, "i");
	assert_int_equal(cfg.template.memory_mb, 64);
	cfg_free(&cfg);

	memset(text, 0, sizeof(text));
	strcpy(text, "[vm]\n; ");
	memset(text + strlen(text), 'x', 600);
	strcat(text, "\nmax_vms = 1");
	load_ok(&cfg, text);
	assert_int_equal(cfg.vm.max_vms, 1);
	cfg_free(&cfg);
}

static void test_unknown_section(void **state)
{
	(void)state;
	expect_error("[server]\n\n[serverx]\nlisten = 1.2.3.4:5\n", -EINVAL,
		     NAME ":3: ", "unknown section [serverx]");
	/* Even with no keys under it. */
	expect_error("[vm]\n[nope]\n", -EINVAL, NAME ":2: ",
		     "unknown section [nope]");
	expect_error("[vm]\n[ vm ]\n", -EINVAL, NAME ":2: ", "unknown section");
	expect_error("[vm\nmax_vms = 1\n", -EINVAL, NAME ":1: ", "']'");
	expect_error("[vm] max_vms = 1\n", -EINVAL, NAME ":1: ",
		     "after section header");
}

static void test_unknown_key(void **state)
{
	(void)state;
	expect_error("[server]\nlisten = 1.2.3.4:5\nport = 22\n", -EINVAL,
		     NAME ":3: ", "unknown key 'port' in section [server]");
	/* A key in the wrong section is unknown there. */
	expect_error("[vm]\nkernel = k\n", -EINVAL, NAME ":2: ",
		     "unknown key 'kernel' in section [vm]");
	expect_error("[vm]\n= 3\n", -EINVAL, NAME ":2: ", "missing key name");
}

static void test_outside_section(void **state)
{
	(void)state;
	expect_error("; top\nmax_vms = 3\n[vm]\n", -EINVAL, NAME ":2: ",
		     "'max_vms' is outside any section");
}

static void test_bad_number(void **state)
{
	(void)state;
	expect_error("[server]\nmax_auth_tries = many\n", -EINVAL,
		     NAME ":2: ", "max_auth_tries: 'many' is not a number");
	expect_error("[server]\nmax_auth_tries = 0x10\n", -EINVAL, NAME ":2: ",
		     "trailing characters");
	expect_error("[server]\nmax_auth_tries = +5\n", -EINVAL, NAME ":2: ",
		     "not a number");
	expect_error("[server]\nmax_auth_tries = 5 tries\n", -EINVAL,
		     NAME ":2: ", "trailing characters in number '5 tries'");
	expect_error("[server]\nmax_auth_tries = -1\n", -EINVAL, NAME ":2: ",
		     "negative (range 1..100)");
	expect_error("[server]\nmax_auth_tries = 0\n", -EINVAL, NAME ":2: ",
		     "out of range (1..100)");
	expect_error("[server]\nmax_auth_tries = 101\n", -EINVAL, NAME ":2: ",
		     "out of range (1..100)");
	expect_error("[server]\nmax_auth_tries =\n", -EINVAL, NAME ":2: ",
		     "missing value");
	expect_error("[server]\nlogin_grace_time = 3601\n", -EINVAL,
		     NAME ":2: ", "login_grace_time: '3601' is out of range "
				  "(1..3600)");
	expect_error("[template]\nmemory_mb = 63\n", -EINVAL, NAME ":2: ",
		     "(64..3072)");
	expect_error("[template]\nmemory_mb = 3073\n", -EINVAL, NAME ":2: ",
		     "(64..3072)");
	expect_error("[vm]\nmax_vms = 0\n", -EINVAL, NAME ":2: ",
		     "(1..100000)");
	expect_error("[vm]\nmax_vms = 99999999999999999999999999\n", -EINVAL,
		     NAME ":2: ", "out of range (1..100000)");
	expect_error("[vm]\ndetach_timeout = 31536001\n", -EINVAL, NAME ":2: ",
		     "(0..31536000)");
	expect_error("[vm]\nreap_timeout = 0\n", -EINVAL, NAME ":2: ",
		     "(1..31536000)");
}

static void test_bad_bool(void **state)
{
	(void)state;
	expect_error("[server]\nopen_signup = maybe\n", -EINVAL, NAME ":2: ",
		     "open_signup: 'maybe' is not a boolean");
	expect_error("[template]\nserial =\n", -EINVAL, NAME ":2: ",
		     "not a boolean");
	expect_error("[template]\nserial = 2\n", -EINVAL, NAME ":2: ",
		     "not a boolean");
	expect_error("[vm]\nroot = sometimes\n", -EINVAL, NAME ":2: ",
		     "root: 'sometimes' is not a boolean");
	expect_error("[server]\nroot = yes\n", -EINVAL, NAME ":2: ",
		     "root");
}

static void test_bad_listen(void **state)
{
	static const struct {
		const char *value, *keyword;
	} bad[] = {
		{ "localhost:2222", "numeric IPv4" },
		{ "example.com:22", "numeric IPv4" },
		{ "1.2.3:22", "numeric IPv4" },
		{ "::1:2222", "brackets" },
		{ "127.0.0.1", "no ':PORT'" },
		{ ":2222", "no host" },
		{ "[::1]", "no ':PORT'" },
		{ "[::1]2222", "no ':PORT'" },
		{ "[::1:2222", "no closing ']'" },
		{ "[127.0.0.1]:22", "numeric IPv6" },
		{ "[fe80::1%eth0]:22", "numeric IPv6" },
		{ "127.0.0.1:0", "port: '0' is out of range (1..65535)" },
		{ "127.0.0.1:65536", "out of range (1..65535)" },
		{ "127.0.0.1:", "port: missing value" },
		{ "127.0.0.1:ssh", "not a number" },
		{ "127.0.0.1:22x", "trailing" },
		{ "", "bad address" },
	};
	char text[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[server]\n\nlisten = %s\n",
			 bad[i].value);
		expect_error(text, -EINVAL, NAME ":3: listen: bad address",
			     bad[i].keyword);
	}
}

static void test_empty_value(void **state)
{
	static const char *const required[] = {
		"[server]\nstate_dir =\n",	"[server]\nhost_key = \n",
		"[server]\nauthorized_keys=\n", "[template]\nkernel =\n",
		"[template]\ninitrd = ; none\n",
	};
	struct cfg cfg;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		expect_error(required[i], -EINVAL, NAME ":2: ",
			     ": empty value (a path is required)");
	/* cmdline is the one string that may be empty. */
	load_ok(&cfg, "[template]\ncmdline =\n");
	assert_string_equal(cfg.template.cmdline, "");
	cfg_free(&cfg);
}

/* A keys file shared by every user would let any key in it open any
 * user's VM: the pattern must name the user. */
static void test_keys_pattern(void **state)
{
	static const char *const bad[] = {
		"/etc/clone/authorized_keys", "/etc/clone/%%u", "users/%u",
		"/etc/clone/%d", "/etc/clone/%",
	};
	struct cfg cfg;
	char text[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text),
			 "[server]\n\nauthorized_keys = %s\n", bad[i]);
		expect_error(text, -EINVAL, NAME ":3: authorized_keys: ",
			     "must be an absolute path containing %u");
	}
	load_ok(&cfg, "[server]\nauthorized_keys = /k/%%/%u.keys\n");
	assert_string_equal(cfg.server.authorized_keys, "/k/%%/%u.keys");
	cfg_free(&cfg);
}

static void test_max_startups(void **state)
{
	static const char *const bad[] = {
		"0", "10:30", "10:0:100", "10:101:100", "20:30:10", "1:2:3:4",
		"a", "10::100", ":30:100", "10:30:", "-1", "99999999999",
	};
	struct cfg cfg;
	char text[128];

	(void)state;
	load_ok(&cfg, "[server]\nmax_startups = 5\n");
	assert_int_equal(cfg.server.max_startups_begin, 5);
	assert_int_equal(cfg.server.max_startups_rate, 100);
	assert_int_equal(cfg.server.max_startups_full, 5);
	cfg_free(&cfg);
	load_ok(&cfg, "[server]\nmax_startups = 3:50:9\n");
	assert_int_equal(cfg.server.max_startups_begin, 3);
	assert_int_equal(cfg.server.max_startups_rate, 50);
	assert_int_equal(cfg.server.max_startups_full, 9);
	cfg_free(&cfg);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[server]\nmax_startups = %s\n",
			 bad[i]);
		expect_error(text, -EINVAL, NAME ":2: max_startups: ",
			     "start:rate:full");
	}
}

static void test_kex_algorithms(void **state)
{
	static const char *const bad[] = {
		"", ",", "curve25519-sha256,", ",curve25519-sha256",
		"a,,b", "Curve25519", "curve25519 sha256", "x;y",
	};
	struct cfg cfg;
	char text[128];

	(void)state;
	load_ok(&cfg, "[server]\nkex_algorithms = ecdh-sha2-nistp256,"
		      "curve25519-sha256@libssh.org\n");
	assert_string_equal(cfg.server.kex_algorithms,
			    "ecdh-sha2-nistp256,curve25519-sha256@libssh.org");
	cfg_free(&cfg);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text),
			 "[server]\nkex_algorithms = %s\n", bad[i]);
		expect_error(text, -EINVAL, NAME ":2: kex_algorithms: ",
			     "algorithm names");
	}
}

static void test_syntax_error(void **state)
{
	(void)state;
	expect_error("[server]\nlisten = 127.0.0.1:22\nopen_signup\n", -EINVAL,
		     NAME ":3: ", "syntax error");
	/* The first error in the file is the one reported, whoever found
	 * it. */
	expect_error("[vm]\njunk\nmax_vms = 0\n", -EINVAL, NAME ":2: ",
		     "syntax error");
	expect_error("[vm]\nmax_vms = 0\njunk\n", -EINVAL, NAME ":2: ",
		     "max_vms");
	expect_error("[vm]\njunk\n[bad]\n", -EINVAL, NAME ":2: ",
		     "syntax error");
}

static void test_long_line(void **state)
{
	char text[1024];

	(void)state;
	memset(text, 0, sizeof(text));
	strcpy(text, "[template]\nkernel = k\ncmdline = ");
	memset(text + strlen(text), 'x', 300);
	strcat(text, "\nvcpus = 1\n");
	expect_error(text, -EINVAL, NAME ":3: ", "line too long");
}

static void test_duplicate(void **state)
{
	(void)state;
	expect_error("[server]\nmax_auth_tries = 3\n[vm]\n[server]\n"
		     "max_auth_tries = 3\n",
		     -EINVAL, NAME ":5: ",
		     "max_auth_tries given twice (first on line 2)");
}

static void test_vcpus(void **state)
{
	(void)state;
	expect_error("[template]\nvcpus = 2\n", -EINVAL, NAME ":2: ",
		     "only 1 vCPU is supported for now (got '2')");
	expect_error("[template]\nvcpus = 0\n", -EINVAL, NAME ":2: ",
		     "only 1 vCPU");
	expect_error("[template]\nvcpus = two\n", -EINVAL, NAME ":2: ",
		     "only 1 vCPU");
}

static void test_reap_before_detach(void **state)
{
	struct cfg cfg;

	(void)state;
	expect_error("[vm]\nreap_timeout = 100\ndetach_timeout = 200\n",
		     -EINVAL, NAME ":2: ",
		     "reap_timeout (100) must be >= detach_timeout (200)");
	/* Without a reap_timeout line, point at what broke the default. */
	expect_error("[vm]\n\ndetach_timeout = 90000\n", -EINVAL, NAME ":3: ",
		     "reap_timeout (86400) must be >= detach_timeout");
	load_ok(&cfg, "[vm]\nreap_timeout = 200\ndetach_timeout = 200\n");
	cfg_free(&cfg);
}

/* [vm] user: "clone" by default; a name useradd would take, or an error
 * naming the line. */
static void test_vm_user(void **state)
{
	struct cfg cfg;

	(void)state;
	load_ok(&cfg, "");
	assert_string_equal(cfg.vm.user, "clone");
	cfg_free(&cfg);
	load_ok(&cfg, "[vm]\nuser = _clone-2\n");
	assert_string_equal(cfg.vm.user, "_clone-2");
	cfg_free(&cfg);
	expect_error("[vm]\n\nuser = Clone\n", -EINVAL, NAME ":3: ",
		     "not a user name");
	expect_error("[vm]\nuser = ../x\n", -EINVAL, NAME ":2: ",
		     "not a user name");
	expect_error("[vm]\nuser = a23456789012345678901234567890123\n",
		     -EINVAL, NAME ":2: ", "not a user name");
	expect_error("[vm]\nuser =\n", -EINVAL, NAME ":2: ", "user");
}

/* [vm] worker_uids: FIRST-LAST, never root, never (uid_t)-1, and enough
 * for max_vms workers, each with a uid of its own; an error names the
 * line. */
static void test_worker_uids(void **state)
{
	struct cfg cfg;

	(void)state;
	load_ok(&cfg, "[vm]\nworker_uids = 300000-300099\n");
	assert_int_equal(cfg.vm.worker_uid_first, 300000);
	assert_int_equal(cfg.vm.worker_uid_count, 100);
	cfg_free(&cfg);
	load_ok(&cfg, "[vm]\nmax_vms = 1\nworker_uids = 7-7\n");
	assert_int_equal(cfg.vm.worker_uid_first, 7);
	assert_int_equal(cfg.vm.worker_uid_count, 1);
	cfg_free(&cfg);
	load_ok(&cfg, "[vm]\nmax_vms = 2\n"
		      "worker_uids = 4294967293-4294967294\n");
	assert_int_equal(cfg.vm.worker_uid_count, 2);
	cfg_free(&cfg);
	expect_error("[vm]\n\nworker_uids = 200000\n", -EINVAL, NAME ":3: ",
		     "worker_uids: bad range '200000'");
	expect_error("[vm]\nworker_uids = 200000-\n", -EINVAL, NAME ":2: ",
		     "bad range");
	expect_error("[vm]\nworker_uids = -200000\n", -EINVAL, NAME ":2: ",
		     "bad range");
	expect_error("[vm]\nworker_uids = 300000-200000\n", -EINVAL,
		     NAME ":2: ", "FIRST <= LAST");
	expect_error("[vm]\nworker_uids = 0-100\n", -EINVAL, NAME ":2: ",
		     "bad range");
	expect_error("[vm]\nworker_uids = 100-4294967295\n", -EINVAL,
		     NAME ":2: ", "bad range");
	expect_error("[vm]\nworker_uids = 1 - 2\n", -EINVAL, NAME ":2: ",
		     "bad range");
	expect_error("[vm]\nworker_uids = 0x10-0x20\n", -EINVAL, NAME ":2: ",
		     "bad range");
	expect_error("[vm]\nworker_uids = 1-99999999999999999999\n", -EINVAL,
		     NAME ":2: ", "bad range");
	/* too few for max_vms: the range's line, or max_vms's if the
	 * default range is the one too small */
	expect_error("[vm]\nmax_vms = 10\nworker_uids = 200000-200008\n",
		     -EINVAL, NAME ":3: ",
		     "worker_uids: 9 uids, fewer than max_vms (10)");
	expect_error("[vm]\n\nmax_vms = 70000\n", -EINVAL, NAME ":3: ",
		     "65536 uids, fewer than max_vms (70000)");
	load_ok(&cfg, "[vm]\nmax_vms = 10\nworker_uids = 200000-200009\n");
	cfg_free(&cfg);
}

/* Callers may pass no buffer, or a small one: no overflow, still a C
 * string. */
static void test_err_buffer(void **state)
{
	char err[8];
	struct cfg cfg;

	(void)state;
	assert_int_equal(cfg_load_string(&cfg, NAME, "[x]\n", NULL, 0),
			 -EINVAL);
	memset(err, 'z', sizeof(err));
	assert_int_equal(cfg_load_string(&cfg, NAME, "[x]\n", err,
					 sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "t.ini:1");
	check_zeroed(&cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_full_string),
		cmocka_unit_test(test_full_file),
		cmocka_unit_test(test_file_nul),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_directory),
		cmocka_unit_test(test_free_twice),
		cmocka_unit_test(test_host_key_follows_state_dir),
		cmocka_unit_test(test_listen_forms),
		cmocka_unit_test(test_booleans),
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_unknown_section),
		cmocka_unit_test(test_unknown_key),
		cmocka_unit_test(test_outside_section),
		cmocka_unit_test(test_bad_number),
		cmocka_unit_test(test_bad_bool),
		cmocka_unit_test(test_bad_listen),
		cmocka_unit_test(test_empty_value),
		cmocka_unit_test(test_keys_pattern),
		cmocka_unit_test(test_max_startups),
		cmocka_unit_test(test_kex_algorithms),
		cmocka_unit_test(test_syntax_error),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_duplicate),
		cmocka_unit_test(test_vcpus),
		cmocka_unit_test(test_reap_before_detach),
		cmocka_unit_test(test_vm_user),
		cmocka_unit_test(test_worker_uids),
		cmocka_unit_test(test_err_buffer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
