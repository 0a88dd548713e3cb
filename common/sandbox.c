#include "common/sandbox.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/log.h"

int sandbox_install(const struct sandbox_rule *rules, size_t n)
{
	scmp_filter_ctx ctx;
	uint64_t self = (uint64_t)getpid();
	int r = 0;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (!ctx)
		return -ENOMEM;
	for (size_t i = 0; i < n && r == 0; i++) {
		struct scmp_arg_cmp arg[2];
		uint32_t act = rules[i].err ? SCMP_ACT_ERRNO(rules[i].err) :
					      SCMP_ACT_ALLOW;

		memcpy(arg, rules[i].arg, sizeof(arg));
		for (unsigned j = 0; j < rules[i].nargs; j++)
			if (arg[j].datum_a == SANDBOX_SELF_PID)
				arg[j].datum_a = self;
		r = seccomp_rule_add_array(ctx, act, rules[i].nr,
					   rules[i].nargs, arg);
		if (r < 0) {
			char *name = seccomp_syscall_resolve_num_arch(
				SCMP_ARCH_NATIVE, rules[i].nr);

			log_warnx("seccomp rule for %s: %s",
				  name ? name : "?", strerror(-r));
			free(name);
		}
	}
	if (r == 0)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	return r;
}

int sandbox_user(const char *name, uid_t *uid, gid_t *gid)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int r = getpwnam_r(name, &pw, buf, sizeof(buf), &res);

	if (r != 0)
		return -r;
	if (!res)
		return -ENOENT;
	*uid = pw.pw_uid;
	*gid = pw.pw_gid;
	return 0;
}

int sandbox_drop(uid_t uid, gid_t gid)
{
	if (getuid() == uid && geteuid() == uid && getgid() == gid)
		return 0;
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0)
		return -errno;
	/* Paranoia, as OpenSSH's permanently_set_uid(): root must be gone. */
	if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
		return -EPERM;
	return 0;
}

void sandbox_no_dumps(void)
{
	struct rlimit rl = { 0, 0 };

	setrlimit(RLIMIT_CORE, &rl);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}
