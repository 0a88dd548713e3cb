/* authorized_keys files (OpenSSH format) for public-key authentication.
 * Entries with options (from=, command=, ...) are refused with a log line:
 * the server implements none, and silently ignoring one would grant more
 * than its author meant. */
#ifndef SSHD_AUTHKEYS_H
#define SSHD_AUTHKEYS_H

#include <libssh/libssh.h>
#include <stdbool.h>
#include <stddef.h>

/* Key types accepted (ssh-rsa keys sign with rsa-sha2-256/512). */
bool sshd_key_type_ok(const char *name);

/* Whether the text of an authorized_keys file (name for log lines) holds
 * key. Comments and blank lines are fine; bad lines are logged, skipped. */
bool sshd_authkeys_match(const char *text, size_t len, const char *name,
			 const ssh_key key);

/* The same for user's keys file at path (absolute), checked on the way as
 * OpenSSH's StrictModes does: no symbolic link anywhere on the path, every
 * directory and the file owned by root or by the host account named user
 * (if there is one) and writable by nobody else (a root-owned sticky
 * directory such as /tmp excepted), the file a regular one of at most
 * 1 MiB, opened without blocking. 1 match, 0 none, -ENOENT no such file,
 * -EPERM refused (logged), other -errno. */
int sshd_authkeys_file_match(const char *path, const char *user,
			     const ssh_key key);

/* Write path (absolute) holding key as one line, 0600, atomically: it
 * appears whole or not at all, and never replaces an existing file.
 * Missing directories are made (0755); an existing one that is a symbolic
 * link, or writable by others, is refused. 0 or -errno. */
int sshd_authkeys_write(const char *path, const ssh_key key);

/* The uid of the account named user in the text of /etc/passwd, or -1. */
long sshd_passwd_uid(const char *text, size_t len, const char *user);

/* ^[a-z_][a-z0-9_-]{0,31}$ */
bool sshd_valid_user(const char *name);

/* The path of user's keys file: pattern with %u replaced. 0 or -ENAMETOOLONG. */
int sshd_keys_path(const char *pattern, const char *user, char *out,
		   size_t outlen);

#endif
