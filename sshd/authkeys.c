#include "sshd/authkeys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "console/agent_proto.h"

static const char *const key_types[] = {
	"ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
	"ecdsa-sha2-nistp521", "ssh-rsa",
};

bool sshd_key_type_ok(const char *name)
{
	for (size_t i = 0; i < sizeof(key_types) / sizeof(key_types[0]); i++)
		if (strcmp(name, key_types[i]) == 0)
			return true;
	return false;
}

bool sshd_valid_user(const char *name)
{
	return agent_valid_user(name);
}

int sshd_keys_path(const char *pattern, const char *user, char *out,
		   size_t outlen)
{
	size_t o = 0;

	for (const char *p = pattern; *p; p++) {
		const char *add = NULL;
		char one[2] = { *p, 0 };

		if (p[0] == '%' && p[1] == 'u') {
			add = user;
			p++;
		} else if (p[0] == '%' && p[1] == '%') {
			add = "%";
			p++;
		} else {
			add = one;
		}
		if (o + strlen(add) >= outlen)
			return -ENAMETOOLONG;
		memcpy(out + o, add, strlen(add));
		o += strlen(add);
	}
	out[o] = 0;
	return 0;
}

/* One line: "type base64 [comment]". Returns 1 match, 0 not, -1 bad. */
static int line_match(char *line, const char *name, unsigned lineno,
		      const ssh_key key)
{
	char *type, *b64, *save = NULL;
	ssh_key k = NULL;
	int r;

	type = strtok_r(line, " \t", &save);
	if (!type || type[0] == '#')
		return 0;
	if (!sshd_key_type_ok(type)) {
		/* Either an unknown key type or options before the type. */
		log_warnx("%s:%u: entry refused: %s", name, lineno,
			  strchr(type, '=') || strchr(line, '"') ||
			  ssh_key_type_from_name(type) == SSH_KEYTYPE_UNKNOWN
			  ? "options or an unknown key type (no options are "
			    "supported)" : "key type not accepted");
		return -1;
	}
	b64 = strtok_r(NULL, " \t", &save);
	if (!b64 || ssh_pki_import_pubkey_base64(b64, ssh_key_type_from_name(type),
						 &k) != SSH_OK) {
		log_warnx("%s:%u: entry refused: bad key", name, lineno);
		return -1;
	}
	r = ssh_key_cmp(k, key, SSH_KEY_CMP_PUBLIC) == 0;
	ssh_key_free(k);
	return r;
}

bool sshd_authkeys_match(const char *text, size_t len, const char *name,
			 const ssh_key key)
{
	unsigned lineno = 0;
	size_t off = 0;

	while (off < len) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t l = nl ? (size_t)(nl - (text + off)) : len - off;
		char line[16384];

		lineno++;
		if (l < sizeof(line)) {
			memcpy(line, text + off, l);
			line[l] = 0;
			if (l && line[l - 1] == '\r')
				line[l - 1] = 0;
			if (line_match(line, name, lineno, key) == 1)
				return true;
		} else {
			log_warnx("%s:%u: entry refused: line too long", name,
				  lineno);
		}
		off += l + 1;
	}
	return false;
}

/* The uid of the host account named user in /etc/passwd's text, or -1.
 * Read by hand: NSS modules may open sockets, which the monitor's filter
 * does not allow. */
long sshd_passwd_uid(const char *text, size_t len, const char *user)
{
	size_t ul = strlen(user), off = 0;

	while (off < len) {
		const char *line = text + off;
		const char *nl = memchr(line, '\n', len - off);
		size_t l = nl ? (size_t)(nl - line) : len - off;

		off += l + 1;
		/* name:password:uid:... */
		if (l > ul + 1 && memcmp(line, user, ul) == 0 &&
		    line[ul] == ':') {
			const char *p = memchr(line + ul + 1, ':', l - ul - 1);
			long uid = 0;
			size_t digits = 0;

			if (!p)
				return -1;
			for (p++; p < line + l && *p >= '0' && *p <= '9'; p++) {
				if (++digits > 9)
					return -1;
				uid = uid * 10 + (*p - '0');
			}
			return digits && p < line + l && *p == ':' ? uid : -1;
		}
	}
	return -1;
}

static long host_uid(const char *user)
{
	char buf[1 << 16];
	ssize_t n;
	int fd = open("/etc/passwd", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	return n > 0 ? sshd_passwd_uid(buf, (size_t)n, user) : -1;
}

/* OpenSSH's StrictModes, for what a keys file's path crosses: owned by
 * root or by the user, writable by nobody else. A world-writable
 * directory is fine only with the sticky bit and owned by root (/tmp):
 * then nobody else can rename or remove what lies in it. */
static const char *bad_owner_or_mode(const struct stat *st, long uid,
				     bool dir)
{
	if (st->st_uid != 0 && (uid < 0 || st->st_uid != (uid_t)uid))
		return "owned by neither root nor the user";
	if ((st->st_mode & 022) &&
	    !(dir && (st->st_mode & S_ISVTX) && st->st_uid == 0))
		return "writable by group or others";
	return NULL;
}

/* Open the directory that holds path's last component, checking every
 * directory from / down: no symbolic links, no "." or "..", each one safe
 * by bad_owner_or_mode(). With create, missing ones are made (root, 0755).
 * The directory's fd (O_RDONLY), *base pointing into path; or -errno
 * (logged, but for -ENOENT). */
static int open_parent(const char *path, long uid, bool create,
		       const char **base)
{
	char comp[256];
	const char *p = path;
	int fd, r;

	if (path[0] != '/')
		return -EINVAL;
	fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		const char *slash, *why;
		struct stat st;
		size_t l;
		int nfd;

		if (fstat(fd, &st) < 0) {
			r = -errno;
			goto err;
		}
		if ((why = bad_owner_or_mode(&st, uid, true))) {
			log_warnx("%s: a directory on its path is %s", path,
				  why);
			r = -EPERM;
			goto err;
		}
		while (*p == '/')
			p++;
		slash = strchr(p, '/');
		if (!slash)
			break;
		l = (size_t)(slash - p);
		if (l >= sizeof(comp) || (l == 1 && p[0] == '.') ||
		    (l == 2 && p[0] == '.' && p[1] == '.')) {
			r = -EINVAL;
			goto err;
		}
		memcpy(comp, p, l);
		comp[l] = 0;
		nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			     O_CLOEXEC);
		if (nfd < 0 && errno == ENOENT && create &&
		    mkdirat(fd, comp, 0755) == 0)
			nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY |
				     O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0) {
			r = -errno;
			if (r == -ELOOP || r == -ENOTDIR) {
				log_warnx("%s: %s is a symbolic link or not a "
					  "directory", path, comp);
				r = -EPERM;
			}
			goto err;
		}
		close(fd);
		fd = nfd;
		p = slash + 1;
	}
	if (!*p || strcmp(p, ".") == 0 || strcmp(p, "..") == 0) {
		r = -EINVAL;
		goto err;
	}
	*base = p;
	return fd;
err:
	close(fd);
	return r;
}

int sshd_authkeys_file_match(const char *path, const char *user,
			     const ssh_key key)
{
	const char *base, *why = NULL;
	long uid = host_uid(user);
	char *buf = NULL;
	struct stat st;
	ssize_t n;
	int dfd, fd, r;

	dfd = open_parent(path, uid, false, &base);
	if (dfd < 0)
		return dfd;
	/* Non-blocking: a FIFO planted here must not stall the monitor
	 * (it is refused below, as anything but a regular file is). */
	fd = openat(dfd, base, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY |
		    O_CLOEXEC);
	r = fd < 0 ? -errno : 0;
	close(dfd);
	if (r == -ELOOP)
		why = "a symbolic link";
	else if (r < 0)
		return r;
	else if (fstat(fd, &st) < 0)
		why = "not readable";
	else if (!S_ISREG(st.st_mode))
		why = "not a regular file";
	else if (st.st_size > (1 << 20))
		why = "larger than 1 MiB";
	else
		why = bad_owner_or_mode(&st, uid, false);
	if (why) {
		log_warnx("%s: refused: %s", path, why);
		r = -EPERM;
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	n = read(fd, buf, (size_t)st.st_size);
	r = n >= 0 && sshd_authkeys_match(buf, (size_t)n, path, key);
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return r;
}

int sshd_authkeys_write(const char *path, const ssh_key key)
{
	char tmp[64], line[8192];
	char *b64 = NULL;
	const char *type = ssh_key_type_to_char(ssh_key_type(key));
	const char *base;
	int dfd, fd, r = 0, n;

	if (!type || ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK)
		return -EINVAL;
	n = snprintf(line, sizeof(line), "%s %s\n", type, b64);
	ssh_string_free_char(b64);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -E2BIG;
	/* Written as root: every directory on the way is checked, and made
	 * by us if missing; none may be a link someone else put there. */
	dfd = open_parent(path, -1, true, &base);
	if (dfd < 0)
		return dfd;
	snprintf(tmp, sizeof(tmp), ".clone-signup.%d", (int)getpid());
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	if (write(fd, line, (size_t)n) != n || fsync(fd) < 0)
		r = -EIO;
	close(fd);
	/* linkat() fails if someone else claimed the name meanwhile. */
	if (r == 0 && linkat(dfd, tmp, dfd, base, 0) < 0)
		r = -errno;
	unlinkat(dfd, tmp, 0);
	if (r == 0)
		fsync(dfd);
out:
	close(dfd);
	return r;
}
