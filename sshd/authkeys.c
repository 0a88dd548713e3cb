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

int sshd_authkeys_file_match(const char *path, const ssh_key key)
{
	char *buf;
	struct stat st;
	ssize_t n;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > (1 << 20)) {
		close(fd);
		log_warnx("%s: not a regular file of at most 1 MiB", path);
		return 0;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	n = read(fd, buf, (size_t)st.st_size);
	close(fd);
	r = n >= 0 && sshd_authkeys_match(buf, (size_t)n, path, key);
	free(buf);
	return r;
}

static int mkdirs(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			*p = '/';
			return -errno;
		}
		*p = '/';
	}
	return 0;
}

int sshd_authkeys_write(const char *path, const ssh_key key)
{
	char tmp[4200], dir[4096], line[8192];
	char *b64 = NULL;
	const char *type = ssh_key_type_to_char(ssh_key_type(key));
	int fd, r = 0, n;

	if (!type || ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK)
		return -EINVAL;
	n = snprintf(line, sizeof(line), "%s %s\n", type, b64);
	ssh_string_free_char(b64);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -E2BIG;
	snprintf(dir, sizeof(dir), "%s", path);
	r = mkdirs(dir);
	if (r < 0)
		return r;
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, line, (size_t)n) != n || fsync(fd) < 0)
		r = -EIO;
	close(fd);
	/* link() fails if someone else claimed the name meanwhile. */
	if (r == 0 && link(tmp, path) < 0)
		r = -errno;
	unlink(tmp);
	return r;
}
