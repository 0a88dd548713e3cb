#include "config/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/text.h"

#define DEF_LISTEN_HOST "127.0.0.1"
#define DEF_LISTEN_PORT 2222
#define DEF_STATE_DIR "/var/lib/clone"
#define HOST_KEY_NAME "ssh_host_ed25519_key"
#define DEF_AUTHORIZED_KEYS "/etc/clone/users/%u"
#define DEF_KERNEL "build/guest/vmlinux"
#define DEF_INITRD "build/guest/initramfs.cpio"
#define DEF_USER "clone"
/* Firecracker's jailer and systemd's DynamicUser pick uids far above
 * useradd's (which stop at 60000): 65536 of them from 200000. */
#define DEF_WORKER_UID_FIRST 200000u
#define DEF_WORKER_UID_COUNT 65536u
/* (uid_t)-1 means "no change" to setresuid(): never a worker's. */
#define WORKER_UID_MAX 4294967294ul
/* No 8192-bit DH for a client to pin the event loop with. */
#define DEF_KEX "curve25519-sha256,curve25519-sha256@libssh.org"

/* A config file is a screenful; anything this big is the wrong file. */
#define MAX_FILE_SIZE (1024 * 1024)

enum key_type {
	KEY_PATH, /* string, must not be empty */
	KEY_STRING, /* string, may be empty */
	KEY_UINT, /* unsigned in [min, max] */
	KEY_BOOL,
	KEY_LISTEN,
	KEY_VCPUS,
	KEY_STARTUPS, /* N or start:rate:full */
	KEY_ALGOS, /* a comma-separated list of algorithm names */
	KEY_UIDS, /* FIRST-LAST, a range of uids */
};

enum key_id {
	K_LISTEN,
	K_STATE_DIR,
	K_HOST_KEY,
	K_AUTHORIZED_KEYS,
	K_OPEN_SIGNUP,
	K_MAX_AUTH_TRIES,
	K_LOGIN_GRACE_TIME,
	K_MAX_STARTUPS,
	K_PER_SOURCE_MAX_STARTUPS,
	K_UNUSED_CONNECTION_TIMEOUT,
	K_CLIENT_ALIVE_INTERVAL,
	K_CLIENT_ALIVE_COUNT_MAX,
	K_KEX_ALGORITHMS,
	K_SIGNUP_PER_KEY,
	K_SIGNUP_PER_SOURCE,
	K_KERNEL,
	K_INITRD,
	K_CMDLINE,
	K_MEMORY_MB,
	K_VCPUS,
	K_SERIAL,
	K_MAX_VMS,
	K_DETACH_TIMEOUT,
	K_REAP_TIMEOUT,
	K_USER,
	K_ROOT,
	K_WORKER_UIDS,
	K_SUSPEND_MAX_USER,
	K_SUSPEND_MAX_TOTAL,
	K_COUNT
};

struct key {
	const char *section;
	const char *name;
	enum key_type type;
	size_t off; /* of the field in struct cfg */
	unsigned long min, max;
};

#define F(field) offsetof(struct cfg, field)

static const struct key keys[K_COUNT] = {
	[K_LISTEN] = { "server", "listen", KEY_LISTEN, 0, 0, 0 },
	[K_STATE_DIR] = { "server", "state_dir", KEY_PATH,
			  F(server.state_dir), 0, 0 },
	[K_HOST_KEY] = { "server", "host_key", KEY_PATH, F(server.host_key),
			 0, 0 },
	[K_AUTHORIZED_KEYS] = { "server", "authorized_keys", KEY_PATH,
				F(server.authorized_keys), 0, 0 },
	[K_OPEN_SIGNUP] = { "server", "open_signup", KEY_BOOL,
			    F(server.open_signup), 0, 0 },
	[K_MAX_AUTH_TRIES] = { "server", "max_auth_tries", KEY_UINT,
			       F(server.max_auth_tries), 1, 100 },
	[K_LOGIN_GRACE_TIME] = { "server", "login_grace_time", KEY_UINT,
				 F(server.login_grace_time), 1, 3600 },
	[K_MAX_STARTUPS] = { "server", "max_startups", KEY_STARTUPS, 0, 0,
			     0 },
	[K_PER_SOURCE_MAX_STARTUPS] = { "server", "per_source_max_startups",
					KEY_UINT,
					F(server.per_source_max_startups), 0,
					100000 },
	[K_UNUSED_CONNECTION_TIMEOUT] = { "server",
					  "unused_connection_timeout",
					  KEY_UINT,
					  F(server.unused_connection_timeout),
					  0, 31536000 },
	[K_CLIENT_ALIVE_INTERVAL] = { "server", "client_alive_interval",
				      KEY_UINT,
				      F(server.client_alive_interval), 0,
				      3600 },
	[K_CLIENT_ALIVE_COUNT_MAX] = { "server", "client_alive_count_max",
				       KEY_UINT,
				       F(server.client_alive_count_max), 1,
				       100 },
	[K_KEX_ALGORITHMS] = { "server", "kex_algorithms", KEY_ALGOS,
			       F(server.kex_algorithms), 0, 0 },
	[K_SIGNUP_PER_KEY] = { "server", "signup_per_key_per_hour", KEY_UINT,
			       F(server.signup_per_key_per_hour), 1, 100000 },
	[K_SIGNUP_PER_SOURCE] = { "server", "signup_per_source_per_hour",
				  KEY_UINT,
				  F(server.signup_per_source_per_hour), 1,
				  100000 },
	[K_KERNEL] = { "template", "kernel", KEY_PATH, F(template.kernel), 0,
		       0 },
	[K_INITRD] = { "template", "initrd", KEY_PATH, F(template.initrd), 0,
		       0 },
	[K_CMDLINE] = { "template", "cmdline", KEY_STRING, F(template.cmdline),
			0, 0 },
	[K_MEMORY_MB] = { "template", "memory_mb", KEY_UINT,
			  F(template.memory_mb), 64, 3072 },
	[K_VCPUS] = { "template", "vcpus", KEY_VCPUS, F(template.vcpus), 1,
		      1 },
	[K_SERIAL] = { "template", "serial", KEY_BOOL, F(template.serial), 0,
		       0 },
	[K_MAX_VMS] = { "vm", "max_vms", KEY_UINT, F(vm.max_vms), 1, 100000 },
	[K_DETACH_TIMEOUT] = { "vm", "detach_timeout", KEY_UINT,
			       F(vm.detach_timeout), 0, 31536000 },
	[K_REAP_TIMEOUT] = { "vm", "reap_timeout", KEY_UINT,
			     F(vm.reap_timeout), 1, 31536000 },
	[K_USER] = { "vm", "user", KEY_PATH, F(vm.user), 0, 0 },
	[K_ROOT] = { "vm", "root", KEY_BOOL, F(vm.root), 0, 0 },
	[K_WORKER_UIDS] = { "vm", "worker_uids", KEY_UIDS, 0, 1,
			    WORKER_UID_MAX },
	[K_SUSPEND_MAX_USER] = { "vm", "suspend_max_mib_per_user", KEY_UINT,
				 F(vm.suspend_max_mib_per_user), 0, 1 << 30 },
	[K_SUSPEND_MAX_TOTAL] = { "vm", "suspend_max_mib_total", KEY_UINT,
				  F(vm.suspend_max_mib_total), 0, 1 << 30 },
};

struct parser {
	struct cfg *cfg;
	const char *text;
	size_t len, pos;
	unsigned line; /* last line handed to inih */
	unsigned seen[K_COUNT]; /* line each key was set on, 0 if not */
	int err; /* -errno of the first error, 0 if none */
	unsigned err_line; /* 0 when no line applies */
	char msg[CFG_ERRLEN];
};

static void fail(struct parser *p, unsigned line, int err, const char *fmt,
		 ...) __attribute__((format(printf, 4, 5)));

/* Later errors are usually fallout from the first; keep only that one. */
static void fail(struct parser *p, unsigned line, int err, const char *fmt,
		 ...)
{
	va_list ap;

	if (p->err)
		return;
	p->err = err;
	p->err_line = line;
	va_start(ap, fmt);
	vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
	va_end(ap);
}

static void report(char *err, size_t errlen, const char *name, unsigned line,
		   const char *msg)
{
	if (!err || !errlen)
		return;
	if (line)
		snprintf(err, errlen, "%s:%u: %s", name, line, msg);
	else
		snprintf(err, errlen, "%s: %s", name, msg);
}

#define SHOW(buf, s) text_show(buf, sizeof(buf), s, strlen(s))

static bool section_known(const char *name, size_t n)
{
	size_t i;

	for (i = 0; i < K_COUNT; i++)
		if (strlen(keys[i].section) == n &&
		    !memcmp(keys[i].section, name, n))
			return true;
	return false;
}

/* inih ignores whatever follows ']' and says nothing about sections without
 * keys, so section lines are checked here, where the line number is known.
 * line is "[...]\n". */
static int check_section(struct parser *p, const char *line)
{
	const char *end = strchr(line + 1, ']'), *rest;
	char q[64];

	if (!end) {
		fail(p, p->line, -EINVAL, "section header without closing ']'");
		return -EINVAL;
	}
	if (!section_known(line + 1, (size_t)(end - line - 1))) {
		fail(p, p->line, -EINVAL,
		     "unknown section [%s] (expected [server], [template] or [vm])",
		     text_show(q, sizeof(q), line + 1, (size_t)(end - line - 1)));
		return -EINVAL;
	}
	for (rest = end + 1; *rest == ' ' || *rest == '\t' || *rest == '\r' ||
			     *rest == '\n';
	     rest++)
		;
	if (*rest && *rest != ';') {
		fail(p, p->line, -EINVAL,
		     "unexpected text after section header [%.*s]",
		     (int)(end - line - 1), line + 1);
		return -EINVAL;
	}
	return 0;
}

/* The fgets-style reader inih pulls lines through. Handing inih exactly one
 * whole line per call keeps p->line equal to inih's own count, so the
 * handler knows the line it is called for (this libinih is built without
 * INI_HANDLER_LINENO). Returning NULL ends the parse at our first error. */
static char *reader(char *buf, int num, void *arg)
{
	struct parser *p = arg;
	const char *s, *nl;
	size_t n;

	if (p->err || p->pos >= p->len)
		return NULL;
	s = p->text + p->pos;
	n = p->len - p->pos;
	nl = memchr(s, '\n', n);
	if (nl)
		n = (size_t)(nl - s);
	p->pos += n + (nl != NULL);
	p->line++;

	if (p->line == 1 && n >= 3 && !memcmp(s, "\xef\xbb\xbf", 3)) {
		s += 3;
		n -= 3;
	}
	/* inih takes an indented line as the continuation of the previous
	 * value, which would quietly fold "  initrd = x" into the kernel
	 * path. Indentation means nothing here, so drop it. */
	while (n && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	if (memchr(s, '\0', n)) {
		fail(p, p->line, -EINVAL, "NUL byte in line");
		return NULL;
	}
	/* A comment may be longer than inih's line buffer: skip it here. */
	if (n && (*s == ';' || *s == '#'))
		n = 0;
	if (num < 2 || n > (size_t)num - 2) {
		fail(p, p->line, -EINVAL, "line too long (limit %d characters)",
		     num < 2 ? 0 : num - 2);
		return NULL;
	}
	memcpy(buf, s, n);
	buf[n] = '\n';
	buf[n + 1] = '\0';
	if (*buf == '[' && check_section(p, buf) < 0)
		return NULL;
	return buf;
}

enum num_status { NUM_OK, NUM_EMPTY, NUM_NEGATIVE, NUM_NAN, NUM_TRAILING,
		  NUM_RANGE };

/* Decimal digits only: no sign, no spaces, no 0x, no octal. */
static enum num_status parse_num(const char *s, unsigned long min,
				 unsigned long max, unsigned long *out)
{
	unsigned long v = 0;
	bool overflow = false;
	const char *c;

	if (!*s)
		return NUM_EMPTY;
	if (*s == '-')
		return NUM_NEGATIVE;
	if (*s < '0' || *s > '9')
		return NUM_NAN;
	for (c = s; *c >= '0' && *c <= '9'; c++) {
		unsigned d = (unsigned)(*c - '0');

		if (v > (ULONG_MAX - d) / 10)
			overflow = true;
		else
			v = v * 10 + d;
	}
	if (*c)
		return NUM_TRAILING;
	if (overflow || v < min || v > max)
		return NUM_RANGE;
	*out = v;
	return NUM_OK;
}

static void num_reason(char *buf, size_t size, enum num_status st,
		       const char *value, unsigned long min, unsigned long max)
{
	char q[64];

	SHOW(q, value);
	switch (st) {
	case NUM_OK:
		buf[0] = '\0';
		return;
	case NUM_EMPTY:
		snprintf(buf, size, "missing value (a number, %lu..%lu)", min,
			 max);
		return;
	case NUM_NEGATIVE:
		snprintf(buf, size, "'%s' is negative (range %lu..%lu)", q, min,
			 max);
		return;
	case NUM_NAN:
		snprintf(buf, size, "'%s' is not a number (range %lu..%lu)", q,
			 min, max);
		return;
	case NUM_TRAILING:
		snprintf(buf, size,
			 "trailing characters in number '%s' (range %lu..%lu)",
			 q, min, max);
		return;
	case NUM_RANGE:
		snprintf(buf, size, "'%s' is out of range (%lu..%lu)", q, min,
			 max);
		return;
	}
}

static int set_listen(struct parser *p, const char *value)
{
	const char *host, *port, *end;
	char addr[INET6_ADDRSTRLEN], reason[160], q[80], *dup;
	unsigned char bin[sizeof(struct in6_addr)];
	unsigned long v = 0;
	enum num_status st;
	size_t n;
	bool v6 = value[0] == '[';

	SHOW(q, value);
	if (v6) {
		host = value + 1;
		end = strchr(host, ']');
		if (!end) {
			snprintf(reason, sizeof(reason), "no closing ']'");
			goto bad;
		}
		if (end[1] != ':') {
			snprintf(reason, sizeof(reason),
				 "no ':PORT' after ']'");
			goto bad;
		}
		port = end + 2;
	} else {
		host = value;
		end = strrchr(value, ':');
		if (!end) {
			snprintf(reason, sizeof(reason), "no ':PORT'");
			goto bad;
		}
		if (memchr(host, ':', (size_t)(end - host))) {
			snprintf(reason, sizeof(reason),
				 "an IPv6 address needs brackets, as in [::1]:2222");
			goto bad;
		}
		port = end + 1;
	}
	n = (size_t)(end - host);
	if (!n) {
		snprintf(reason, sizeof(reason), "no host");
		goto bad;
	}
	if (n >= sizeof(addr))
		goto bad_host;
	memcpy(addr, host, n);
	addr[n] = '\0';
	if (inet_pton(v6 ? AF_INET6 : AF_INET, addr, bin) != 1)
		goto bad_host;
	st = parse_num(port, 1, 65535, &v);
	if (st != NUM_OK) {
		char why[120];

		num_reason(why, sizeof(why), st, port, 1, 65535);
		snprintf(reason, sizeof(reason), "port: %s", why);
		goto bad;
	}
	dup = strdup(addr);
	if (!dup) {
		fail(p, p->line, -ENOMEM, "out of memory");
		return -ENOMEM;
	}
	free(p->cfg->server.listen_host);
	p->cfg->server.listen_host = dup;
	p->cfg->server.listen_port = (uint16_t)v;
	return 0;

bad_host:
	snprintf(reason, sizeof(reason), "host is not a numeric %s address",
		 v6 ? "IPv6" : "IPv4");
bad:
	fail(p, p->line, -EINVAL,
	     "listen: bad address '%s': %s (expected IPV4:PORT or [IPV6]:PORT)",
	     q, reason);
	return -EINVAL;
}

/* OpenSSH's MaxStartups: "start:rate:full" (random early drop from start
 * unauthenticated connections, with probability rate% rising to 100% at
 * full) or "N" (refuse past N). */
static int set_startups(struct parser *p, const char *value)
{
	unsigned long v[3];
	const char *s = value;
	char q[80];
	int n = 0;

	for (;;) {
		char num[16];
		const char *colon = strchr(s, ':');
		size_t l = colon ? (size_t)(colon - s) : strlen(s);

		if (n == 3 || l == 0 || l >= sizeof(num))
			goto bad;
		memcpy(num, s, l);
		num[l] = 0;
		if (parse_num(num, 1, n == 1 ? 100 : 100000,
			      &v[n]) != NUM_OK)
			goto bad;
		n++;
		if (!colon)
			break;
		s = colon + 1;
	}
	if (n == 2)
		goto bad;
	if (n == 1) {
		v[1] = 100;
		v[2] = v[0];
	}
	if (v[0] > v[2])
		goto bad;
	p->cfg->server.max_startups_begin = (unsigned)v[0];
	p->cfg->server.max_startups_rate = (unsigned)v[1];
	p->cfg->server.max_startups_full = (unsigned)v[2];
	return 0;
bad:
	fail(p, p->line, -EINVAL,
	     "max_startups: bad value '%s' (expected N, or start:rate:full "
	     "with rate 1-100 and start <= full)", SHOW(q, value));
	return -EINVAL;
}

/* Names as libssh takes them; whether libssh knows them is checked when
 * the server starts. */
static bool algos_ok(const char *s)
{
	bool name = false;

	for (; *s; s++) {
		if (*s == ',') {
			if (!name)
				return false;
			name = false;
		} else if (islower((unsigned char)*s) ||
			   isdigit((unsigned char)*s) || strchr("@.-_", *s)) {
			name = true;
		} else {
			return false;
		}
	}
	return name;
}

/* "FIRST-LAST": uids FIRST to LAST, both included; never 0 (root) nor
 * (uid_t)-1. */
static int set_uids(struct parser *p, const struct key *k, const char *value)
{
	const char *dash = strchr(value, '-');
	unsigned long v[2];
	char num[2][16], q[80];

	if (!dash || dash == value || (size_t)(dash - value) >= sizeof(num[0]) ||
	    strlen(dash + 1) >= sizeof(num[1]))
		goto bad;
	memcpy(num[0], value, (size_t)(dash - value));
	num[0][dash - value] = 0;
	strcpy(num[1], dash + 1);
	if (parse_num(num[0], k->min, k->max, &v[0]) != NUM_OK ||
	    parse_num(num[1], k->min, k->max, &v[1]) != NUM_OK ||
	    v[0] > v[1])
		goto bad;
	p->cfg->vm.worker_uid_first = (uint32_t)v[0];
	p->cfg->vm.worker_uid_count = (uint32_t)(v[1] - v[0] + 1);
	return 0;
bad:
	fail(p, p->line, -EINVAL,
	     "%s: bad range '%s' (expected FIRST-LAST, uids %lu..%lu with "
	     "FIRST <= LAST, e.g. 200000-265535)", k->name, SHOW(q, value),
	     k->min, k->max);
	return -EINVAL;
}

static int set_value(struct parser *p, const struct key *k, const char *value)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	void *field = (char *)p->cfg + k->off;
	char reason[160], q[80];
	unsigned long v = 0;
	enum num_status st;
	char **str = field, *dup;
	unsigned *u = field;
	bool *b = field;
	size_t i;

	switch (k->type) {
	case KEY_ALGOS:
		if (!algos_ok(value)) {
			fail(p, p->line, -EINVAL,
			     "%s: '%s' is not a comma-separated list of "
			     "algorithm names", k->name, SHOW(q, value));
			return -EINVAL;
		}
		__attribute__((fallthrough));	/* never empty: a string */
	case KEY_PATH:
		if (!*value) {
			fail(p, p->line, -EINVAL,
			     "%s: empty value (a path is required)", k->name);
			return -EINVAL;
		}
		__attribute__((fallthrough));
	case KEY_STRING:
		dup = strdup(value);
		if (!dup) {
			fail(p, p->line, -ENOMEM, "out of memory");
			return -ENOMEM;
		}
		free(*str);
		*str = dup;
		return 0;
	case KEY_UINT:
		st = parse_num(value, k->min, k->max, &v);
		if (st != NUM_OK) {
			num_reason(reason, sizeof(reason), st, value, k->min,
				   k->max);
			fail(p, p->line, -EINVAL, "%s: %s", k->name, reason);
			return -EINVAL;
		}
		*u = (unsigned)v;
		return 0;
	case KEY_BOOL:
		for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
			if (!strcasecmp(value, yes[i])) {
				*b = true;
				return 0;
			}
			if (!strcasecmp(value, no[i])) {
				*b = false;
				return 0;
			}
		}
		fail(p, p->line, -EINVAL,
		     "%s: '%s' is not a boolean (use yes/no, true/false, on/off or 1/0)",
		     k->name, SHOW(q, value));
		return -EINVAL;
	case KEY_LISTEN:
		return set_listen(p, value);
	case KEY_STARTUPS:
		return set_startups(p, value);
	case KEY_UIDS:
		return set_uids(p, k, value);
	case KEY_VCPUS:
		/* XXX: the VMM runs a single vCPU; lift this with SMP. */
		if (parse_num(value, k->min, k->max, &v) != NUM_OK) {
			fail(p, p->line, -EINVAL,
			     "%s: only 1 vCPU is supported for now (got '%s')",
			     k->name, SHOW(q, value));
			return -EINVAL;
		}
		*u = (unsigned)v;
		return 0;
	}
	return -EINVAL;
}

/* inih's callback: nonzero to go on. */
static int handler(void *arg, const char *section, const char *name,
		   const char *value)
{
	struct parser *p = arg;
	char qn[64], qs[64];
	size_t i;

	if (!*name) {
		fail(p, p->line, -EINVAL, "missing key name before '='");
		return 0;
	}
	if (!*section) {
		fail(p, p->line, -EINVAL,
		     "key '%s' is outside any section (put it under [server], [template] or [vm])",
		     SHOW(qn, name));
		return 0;
	}
	for (i = 0; i < K_COUNT; i++)
		if (!strcmp(keys[i].section, section) &&
		    !strcmp(keys[i].name, name))
			break;
	if (i == K_COUNT) {
		fail(p, p->line, -EINVAL, "unknown key '%s' in section [%s]",
		     SHOW(qn, name), SHOW(qs, section));
		return 0;
	}
	if (p->seen[i]) {
		fail(p, p->line, -EINVAL, "%s given twice (first on line %u)",
		     keys[i].name, p->seen[i]);
		return 0;
	}
	p->seen[i] = p->line;
	return set_value(p, &keys[i], value) == 0;
}

static char *path_join(const char *dir, const char *file)
{
	size_t n = strlen(dir);
	char *out;

	/* "/var/lib/clone/" and "/" must not give a "//". */
	while (n > 0 && dir[n - 1] == '/')
		n--;
	if (n > (size_t)INT_MAX)
		return NULL;
	if (asprintf(&out, "%.*s/%s", (int)n, dir, file) < 0)
		return NULL;
	return out;
}

/* What useradd accepts by default, less the odd cases. */
static bool valid_user_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 32 || !(islower((unsigned char)s[0]) || s[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!islower((unsigned char)s[i]) &&
		    !isdigit((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

/* Absolute, and naming the user: a "%u" not escaped as "%%". */
static bool keys_pattern_ok(const char *s)
{
	if (s[0] != '/')
		return false;
	for (; *s; s++)
		if (s[0] == '%') {
			if (s[1] == 'u')
				return true;
			if (s[1] == '%')
				s++;
		}
	return false;
}

/* Defaults that depend on other keys, then checks across keys. */
static void finish(struct parser *p)
{
	struct cfg *cfg = p->cfg;
	unsigned line;

	if (!p->seen[K_HOST_KEY]) {
		char *hk = path_join(cfg->server.state_dir, HOST_KEY_NAME);

		if (!hk) {
			fail(p, 0, -ENOMEM, "out of memory");
			return;
		}
		free(cfg->server.host_key);
		cfg->server.host_key = hk;
	}
	/* One file for every user would let any key in it open any user's
	 * VM; "%%u" is an escaped '%', not the user. */
	if (!keys_pattern_ok(cfg->server.authorized_keys))
		fail(p, p->seen[K_AUTHORIZED_KEYS], -EINVAL,
		     "authorized_keys: must be an absolute path containing "
		     "%%u (the user's name), e.g. /etc/clone/users/%%u");
	if (!valid_user_name(cfg->vm.user))
		fail(p, p->seen[K_USER], -EINVAL,
		     "user: not a user name (letters, digits, '_', '-'; "
		     "at most 32)");
	/* A worker's uid is free again only once it is reaped, and the
	 * manager keeps at most max_vms workers (ending ones included). */
	if (cfg->vm.worker_uid_count < cfg->vm.max_vms) {
		line = p->seen[K_WORKER_UIDS] ? p->seen[K_WORKER_UIDS] :
						p->seen[K_MAX_VMS];
		fail(p, line, -EINVAL,
		     "worker_uids: %u uids, fewer than max_vms (%u): every "
		     "VM worker needs one of its own",
		     (unsigned)cfg->vm.worker_uid_count, cfg->vm.max_vms);
	}
	cfg->template.cmdline_line = p->seen[K_CMDLINE];
	if (cfg->vm.reap_timeout < cfg->vm.detach_timeout) {
		line = p->seen[K_REAP_TIMEOUT] ? p->seen[K_REAP_TIMEOUT] :
						 p->seen[K_DETACH_TIMEOUT];
		fail(p, line, -EINVAL,
		     "reap_timeout (%u) must be >= detach_timeout (%u)",
		     cfg->vm.reap_timeout, cfg->vm.detach_timeout);
	}
}

int cfg_defaults(struct cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->server.listen_host = strdup(DEF_LISTEN_HOST);
	cfg->server.listen_port = DEF_LISTEN_PORT;
	cfg->server.state_dir = strdup(DEF_STATE_DIR);
	cfg->server.host_key = path_join(DEF_STATE_DIR, HOST_KEY_NAME);
	cfg->server.authorized_keys = strdup(DEF_AUTHORIZED_KEYS);
	cfg->server.open_signup = false;
	cfg->server.max_auth_tries = 6;
	cfg->server.login_grace_time = 30;
	cfg->server.max_startups_begin = 10;
	cfg->server.max_startups_rate = 30;
	cfg->server.max_startups_full = 100;
	cfg->server.per_source_max_startups = 10;
	cfg->server.unused_connection_timeout = 600;
	cfg->server.client_alive_interval = 30;
	cfg->server.client_alive_count_max = 3;
	cfg->server.kex_algorithms = strdup(DEF_KEX);
	cfg->server.signup_per_key_per_hour = 3;
	cfg->server.signup_per_source_per_hour = 10;
	cfg->template.kernel = strdup(DEF_KERNEL);
	cfg->template.initrd = strdup(DEF_INITRD);
	cfg->template.cmdline = strdup("");
	cfg->template.memory_mb = 256;
	cfg->template.vcpus = 1;
	cfg->template.serial = false;
	cfg->vm.max_vms = 100;
	cfg->vm.detach_timeout = 300;
	cfg->vm.reap_timeout = 86400;
	cfg->vm.user = strdup(DEF_USER);
	cfg->vm.root = false;
	cfg->vm.worker_uid_first = DEF_WORKER_UID_FIRST;
	cfg->vm.worker_uid_count = DEF_WORKER_UID_COUNT;
	if (!cfg->server.listen_host || !cfg->server.state_dir ||
	    !cfg->server.host_key || !cfg->server.authorized_keys ||
	    !cfg->server.kex_algorithms || !cfg->template.kernel || !cfg->template.initrd ||
	    !cfg->template.cmdline || !cfg->vm.user) {
		cfg_free(cfg);
		return -ENOMEM;
	}
	return 0;
}

/* Parse into a scratch cfg so that a failed load hands back nothing half
 * made. */
static int load(struct cfg *cfg, const char *name, const char *text,
		size_t len, char *err, size_t errlen)
{
	struct parser p = { 0 };
	struct cfg tmp;
	int r;

	memset(cfg, 0, sizeof(*cfg));
	r = cfg_defaults(&tmp);
	if (r < 0) {
		report(err, errlen, name, 0, "out of memory");
		return r;
	}
	tmp.path = strdup(name);
	if (!tmp.path) {
		cfg_free(&tmp);
		report(err, errlen, name, 0, "out of memory");
		return -ENOMEM;
	}
	p.cfg = &tmp;
	p.text = text;
	p.len = len;

	r = ini_parse_stream(reader, &p, handler, &p);
	if (r == -2) {
		fail(&p, 0, -ENOMEM, "out of memory");
	} else if (r > 0 && (!p.err || (unsigned)r < p.err_line)) {
		/* Our handler and reader saw nothing wrong up to line r, so
		 * inih rejected the line itself: no '=' or ':'. */
		p.err = 0;
		fail(&p, (unsigned)r, -EINVAL,
		     "syntax error: expected 'key = value', '[section]' or a comment");
	} else if (r < 0 && !p.err) {
		fail(&p, 0, -EIO, "ini parser failed (%d)", r);
	}
	if (!p.err)
		finish(&p);
	if (p.err) {
		report(err, errlen, name, p.err_line, p.msg);
		cfg_free(&tmp);
		return p.err;
	}
	*cfg = tmp;
	return 0;
}

static int read_file(const char *path, char **out, size_t *outlen)
{
	size_t len = 0, cap = 0;
	char *buf = NULL, *nbuf;
	ssize_t n;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		if (len == cap) {
			cap = cap ? cap * 2 : 4096;
			nbuf = realloc(buf, cap);
			if (!nbuf) {
				r = -ENOMEM;
				goto out;
			}
			buf = nbuf;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > MAX_FILE_SIZE) {
			r = -EFBIG;
			goto out;
		}
	}
	*out = buf;
	*outlen = len;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return r;
}

int cfg_load(struct cfg *cfg, const char *path, char *err, size_t errlen)
{
	char *text = NULL, eb[128];
	size_t len = 0;
	int r;

	memset(cfg, 0, sizeof(*cfg));
	if (!path) {
		report(err, errlen, "(null)", 0, "no configuration file given");
		return -EINVAL;
	}
	r = read_file(path, &text, &len);
	if (r == -EFBIG) {
		report(err, errlen, path, 0, "file too large (limit 1 MiB)");
		return r;
	}
	if (r < 0) {
		char msg[192];

		snprintf(msg, sizeof(msg), "cannot read: %s",
			 strerror_r(-r, eb, sizeof(eb)));
		report(err, errlen, path, 0, msg);
		return r;
	}
	r = load(cfg, path, text ? text : "", len, err, errlen);
	free(text);
	return r;
}

int cfg_load_string(struct cfg *cfg, const char *name, const char *text,
		    char *err, size_t errlen)
{
	if (!name)
		name = "(string)";
	if (!text) {
		memset(cfg, 0, sizeof(*cfg));
		report(err, errlen, name, 0, "no text given");
		return -EINVAL;
	}
	return load(cfg, name, text, strlen(text), err, errlen);
}

void cfg_free(struct cfg *cfg)
{
	if (!cfg)
		return;
	free(cfg->path);
	free(cfg->server.listen_host);
	free(cfg->server.state_dir);
	free(cfg->server.host_key);
	free(cfg->server.authorized_keys);
	free(cfg->server.kex_algorithms);
	free(cfg->template.kernel);
	free(cfg->template.initrd);
	free(cfg->template.cmdline);
	free(cfg->vm.user);
	memset(cfg, 0, sizeof(*cfg));
}
