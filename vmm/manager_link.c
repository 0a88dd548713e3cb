/* The front-end's side of the manager's socket (manager.h): requests that
 * never block, answers checked against what was asked, and the workers
 * asked to end that still count until the manager says they are gone. */
#include "vmm/manager.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "console/agent_proto.h"

int manager_start(const struct cfg *cfg, const struct manager_hooks *hooks,
		  struct manager *mg)
{
	int sv[2];

	memset(mg, 0, sizeof(*mg));
	mg->pid = -1;
	mg->sock = -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	mg->pid = fork();
	if (mg->pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -errno;
	}
	if (mg->pid == 0) {
		close(sv[0]);
		manager_main(sv[1], cfg, hooks);
	}
	close(sv[1]);
	mg->sock = sv[0];
	return 0;
}

static int ask_user(struct manager *mg, uint32_t type, uint64_t a,
		    const char *user)
{
	struct worker_msg m = { .type = type, .a = a };
	int r;

	if (mg->sock < 0)
		return -EPIPE;
	if (user) {
		if (!agent_valid_user(user))
			return -EINVAL;
		snprintf(m.text, sizeof(m.text), "%s", user);
	}
	r = ctl_send_msg(mg->sock, &mg->out, &ctl_to_manager, &m, NULL, 0);
	if (r == 0)
		ctl_asked_sent(&mg->asked, type);
	return r;
}

static int ask(struct manager *mg, uint32_t type, uint64_t a)
{
	return ask_user(mg, type, a, NULL);
}

int manager_spawn(struct manager *mg)
{
	return ask(mg, MGR_SPAWN, 0);
}

int manager_keys(struct manager *mg)
{
	return ask(mg, MGR_KEYS, 0);
}

int manager_end(struct manager *mg, pid_t pid)
{
	int r;

	if (pid <= 0)
		return -EINVAL;
	for (unsigned i = 0; i < mg->nending; i++)
		if (mg->ending[i] == pid)
			return -EALREADY;
	if (mg->nending == mg->cap) {
		unsigned cap = mg->cap ? mg->cap * 2 : 16;
		pid_t *p = realloc(mg->ending, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		mg->ending = p;
		mg->cap = cap;
	}
	r = ask(mg, MGR_END, (uint64_t)pid);
	if (r == 0)
		mg->ending[mg->nending++] = pid;
	return r;
}

int manager_stash(struct manager *mg, pid_t pid, const char *user)
{
	return pid > 0 ? ask_user(mg, MGR_STASH, (uint64_t)pid, user) :
			 -EINVAL;
}

int manager_unstash(struct manager *mg, pid_t pid, const char *user)
{
	return pid > 0 ? ask_user(mg, MGR_UNSTASH, (uint64_t)pid, user) :
			 -EINVAL;
}

int manager_drop(struct manager *mg, const char *user)
{
	return ask_user(mg, MGR_DROP, 0, user);
}

static int gone(struct manager *mg, uint64_t pid)
{
	for (unsigned i = 0; i < mg->nending; i++)
		if ((uint64_t)mg->ending[i] == pid) {
			mg->ending[i] = mg->ending[--mg->nending];
			return 0;
		}
	return -1;
}

int manager_recv(struct manager *mg, struct worker_msg *m, int *fd)
{
	uint8_t buf[CTL_MSG_MAX];
	const struct ctl_rule *rule = NULL;
	int fds[CTL_FDS_MAX], nfds = 0;
	enum ctl_err e = CTL_OK;
	ssize_t n;

	*fd = -1;
	memset(m, 0, sizeof(*m));
	n = ctl_recv(mg->sock, buf, fds, &nfds, &e);
	if (n == -EAGAIN)
		return -EAGAIN;
	if (n == 0 || (n < 0 && n != -EPROTO))
		return -EPIPE;
	if (n > 0 && ctl_decode(&ctl_from_manager, 0, buf, (size_t)n, nfds, m,
				&rule, &e) == 0 &&
	    ctl_asked_answer(&mg->asked, rule, m, &e) == 0) {
		if (m->type == MGR_GONE && gone(mg, m->a) < 0)
			e = CTL_E_UNASKED;
		/* a refused end (b: the pid) still ends our wait for it */
		if (m->type == MGR_FAILED && m->a == MGR_END && gone(mg, m->b))
			e = CTL_E_UNASKED;
	}
	if (e != CTL_OK) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		log_warnx("manager: message refused: %s", ctl_strerror(e));
		return -EPROTO;
	}
	if (nfds)
		*fd = fds[0];
	return 0;
}

unsigned manager_ending(const struct manager *mg)
{
	return mg->nending;
}

bool manager_pending(const struct manager *mg)
{
	return ctl_pending(&mg->out);
}

int manager_flush(struct manager *mg)
{
	return mg->sock < 0 ? -EPIPE : ctl_flush(mg->sock, &mg->out);
}

void manager_close(struct manager *mg)
{
	if (mg->sock >= 0)
		close(mg->sock);
	mg->sock = -1;
	ctl_queue_clear(&mg->out);
	free(mg->ending);
	mg->ending = NULL;
	mg->nending = mg->cap = 0;
}
