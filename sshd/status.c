/* The status table: <state_dir>/run/status, one line per user's VM
 * (`clone status` reads it). */
#include "sshd/front.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

static const char *const state_name[] = {
	"none", "waiting", "starting", "running", "suspending", "suspended",
};

void status_write(void)
{
	time_t now = time(NULL);
	FILE *f;
	int fd;

	fd = openat(S.run_fd, "status.tmp",
		    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	fprintf(f, "%-16s %-10s %8s %8s %11s %8s\n", "USER", "STATE",
		"UPTIME", "SESSIONS", "PRIVATE_MIB", "PID");
	for (int i = 0; i < MAX_USERS; i++) {
		struct uvm *u = S.users[i];
		long priv;

		if (!u || u->state == U_FREE)
			continue;
		/* Workers are not dumpable: they tell us (WORKER_STATS). */
		priv = u->state == U_RUNNING ? u->priv_kib : -1;
		fprintf(f, "%-16s %-10s %7lds %8d ", u->user,
			state_name[u->state],
			u->state == U_SUSPENDED ? 0L : (long)(now - u->started),
			u->refs);
		if (priv >= 0)
			fprintf(f, "%11.1f", (double)priv / 1024);
		else
			fprintf(f, "%11s", "-");
		fprintf(f, " %8d\n", u->w.pid > 0 ? (int)u->w.pid : 0);
	}
	fclose(f);
	renameat(S.run_fd, "status.tmp", S.run_fd, "status");
}
