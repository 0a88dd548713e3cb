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

/* The same for a file. -ENOENT if it does not exist, 1 match, 0 none. */
int sshd_authkeys_file_match(const char *path, const ssh_key key);

/* Write path atomically (temporary file, fsync, rename; 0600) holding key
 * as one line, creating its directory. 0 or -errno. */
int sshd_authkeys_write(const char *path, const ssh_key key);

/* ^[a-z_][a-z0-9_-]{0,31}$ */
bool sshd_valid_user(const char *name);

/* The path of user's keys file: pattern with %u replaced. 0 or -ENAMETOOLONG. */
int sshd_keys_path(const char *pattern, const char *user, char *out,
		   size_t outlen);

#endif
