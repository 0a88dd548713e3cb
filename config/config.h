/* Configuration: data only. Parse an ini file, fill defaults, validate.
 * Knows nothing of SSH or KVM; the modules that do read the fields. */
#ifndef CONFIG_CONFIG_H
#define CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Large enough for any message cfg_load() writes, path aside. */
#define CFG_ERRLEN 512

struct cfg {
	char *path; /* the file loaded, or NULL for defaults */
	struct {
		char *listen_host; /* "127.0.0.1", "::1" (brackets stripped) */
		uint16_t listen_port;
		char *state_dir;
		char *host_key; /* default <state_dir>/ssh_host_ed25519_key */
		char *authorized_keys; /* may contain %u; not expanded here */
		bool open_signup;
		unsigned max_auth_tries;
		unsigned login_grace_time; /* seconds */
		/* unauthenticated connections: random early drop from begin
		 * (rate%) to full (all), as OpenSSH's MaxStartups */
		unsigned max_startups_begin, max_startups_rate;
		unsigned max_startups_full;
		unsigned per_source_max_startups; /* 0: no cap */
		unsigned unused_connection_timeout; /* s, 0: none */
		unsigned client_alive_interval; /* s, 0: no keepalives */
		unsigned client_alive_count_max;
		char *kex_algorithms; /* comma-separated, libssh's names */
		/* open_signup: names claimed in the last hour */
		unsigned signup_per_key_per_hour;
		unsigned signup_per_source_per_hour;
	} server;
	struct {
		char *kernel, *initrd;
		char *cmdline; /* extra guest args, may be "" */
		/* the line cmdline was set on, 0 if not set: the VMM checks
		 * cmdline (vmm/x86/cmdline.h) and names this line */
		unsigned cmdline_line;
		unsigned memory_mb;
		unsigned vcpus;
		bool serial; /* 8250 UART with boot messages */
	} template;
	struct {
		unsigned max_vms;
		unsigned detach_timeout; /* seconds */
		unsigned reap_timeout; /* seconds */
		char *user; /* the front-end runs as this user */
		bool root; /* the user is uid 0 in their own VM */
		/* each VM worker runs as a uid (and gid) of its own from
		 * [worker_uid_first, worker_uid_first + worker_uid_count);
		 * at least max_vms of them. Whether any account uses one is
		 * checked at start, not here (vmm/jail_uids.h). */
		uint32_t worker_uid_first, worker_uid_count;
		/* disk for suspended VMs, MiB; 0: no cap */
		unsigned suspend_max_mib_per_user;
		unsigned suspend_max_mib_total;
	} vm;
};

/* Fill every field of cfg with its default; whatever cfg held is overwritten,
 * not freed. Strings are allocated: release with cfg_free(). Returns 0, or
 * -ENOMEM with cfg left zeroed. */
int cfg_defaults(struct cfg *cfg);

/* Defaults, then the file at path, then validation. cfg is overwritten, not
 * freed. On success returns 0 and cfg owns its strings (cfg->path is a copy
 * of path). On error cfg is left zeroed, the result is -errno (-EINVAL for
 * bad content, -ENOENT etc. when the file cannot be read, -ENOMEM) and one
 * line "PATH:LINE: reason", or "PATH: reason" when no line applies, is
 * written to err (truncated to errlen; err may be NULL). Only the first
 * error is reported. */
int cfg_load(struct cfg *cfg, const char *path, char *err, size_t errlen);

/* Same as cfg_load() but parses text, a NUL-terminated string; name stands
 * for PATH in messages and is copied to cfg->path. For tests and fuzzing. */
int cfg_load_string(struct cfg *cfg, const char *name, const char *text,
		    char *err, size_t errlen);

/* Free every string and zero cfg. Accepts NULL, a zeroed cfg, or one already
 * freed. */
void cfg_free(struct cfg *cfg);

#endif
