/* clone-agent: PID 1 of the Clone guest.
 *
 * Mounts the basic file systems, starts a login shell on the terminal port
 * (hvc0, virtio-console port 0), tells the VMM it is ready over the agent
 * port (the virtio-console port named "clone.agent"), reaps orphans, and
 * turns busybox's poweroff/reboot requests (signals to PID 1) into a clean
 * end of the VM. Static, no NSS, no heap to speak of. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <termios.h>
#include <string.h>
#include <grp.h>
#include <linux/random.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "console/agent_proto.h"

#define AGENT_VERSION "clone-agent 1"
#define PORT_NAME "clone.agent"
#define TERMINAL "/dev/hvc0"

static int kmsg = -1;
static int log_port = -1;	/* the agent port, once open: say() to the VMM too */
static int send_msg(int fd, uint8_t type, const void *payload, size_t len);

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char buf[256];
	int n;
	va_list ap;

	va_start(ap, fmt);
	n = snprintf(buf, sizeof(buf), "<6>clone-agent: ");
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	if (log_port >= 0)
		send_msg(log_port, AGENT_MSG_LOG, buf + 16, (size_t)n - 17);
	if (kmsg >= 0 && write(kmsg, buf, (size_t)n) < 0)
		return;
}

static void mount_fs(const char *src, const char *dst, const char *type,
		     unsigned long flags, const char *data)
{
	mkdir(dst, 0755);
	if (mount(src, dst, type, flags, data) < 0 && errno != EBUSY)
		say("mount %s: %s", dst, strerror(errno));
}

static void setup_fs(void)
{
	int fd;

	mount_fs("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	kmsg = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		for (int i = 0; i < 3; i++)
			if (fcntl(i, F_GETFD) < 0)
				dup2(fd, i);
		if (fd > 2)
			close(fd);
	}
	mount_fs("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		 NULL);
	mount_fs("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		 NULL);
	mount_fs("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		 "gid=5,mode=620,ptmxmode=0666");
	mount_fs("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	mount_fs("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	mount_fs("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
}

/* The device node of the virtio-console port with this sysfs name. Ports
 * appear when the driver has processed the VMM's control messages, which
 * may be a moment after we ask: wait up to tries * 10 ms. */
static int open_port(const char *want, int flags, int tries)
{
	for (int t = 0; t < tries; t++) {
		DIR *d = opendir("/sys/class/virtio-ports");
		struct dirent *e;

		while (d && (e = readdir(d))) {
			char path[300], name[64];
			ssize_t n;
			int fd;

			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path),
				 "/sys/class/virtio-ports/%s/name", e->d_name);
			fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				continue;
			n = read(fd, name, sizeof(name) - 1);
			close(fd);
			if (n <= 0)
				continue;
			name[n] = 0;
			name[strcspn(name, "\n")] = 0;
			if (strcmp(name, want) != 0)
				continue;
			snprintf(path, sizeof(path), "/dev/%s", e->d_name);
			fd = open(path, flags | O_CLOEXEC);
			if (fd >= 0) {
				closedir(d);
				return fd;
			}
		}
		if (d)
			closedir(d);
		usleep(10000);
	}
	return -1;
}

static int open_agent_port(void)
{
	return open_port(PORT_NAME, O_RDWR | O_NONBLOCK, 1000);
}

static int wait_for(const char *path)
{
	for (int tries = 0; tries < 1000; tries++) {
		if (access(path, F_OK) == 0)
			return 0;
		usleep(10000);
	}
	return -1;
}

static struct agent_identity ident;	/* who we are, once told */

static pid_t start_shell(void)
{
	pid_t pid = fork();
	int fd;

	if (pid != 0)
		return pid;
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	setsid();
	fd = open(TERMINAL, O_RDWR);
	if (fd < 0)
		_exit(127);
	ioctl(fd, TIOCSCTTY, 1);
	fchown(fd, ident.uid, ident.uid);
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2)
		close(fd);
	if (setgroups(0, NULL) < 0 || setgid(ident.uid) < 0 ||
	    setuid(ident.uid) < 0)
		_exit(126);
	if (chdir(ident.home) < 0 && chdir("/") < 0)
		_exit(127);
	char home[160], user[48], logname[48];
	snprintf(home, sizeof(home), "HOME=%s", ident.home);
	snprintf(user, sizeof(user), "USER=%s", ident.user);
	snprintf(logname, sizeof(logname), "LOGNAME=%s", ident.user);
	char *const envp[] = { home, user, logname, "TERM=linux",
			       "SHELL=/bin/sh",
			       "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
			       NULL };
	execle("/bin/sh", "-sh", (char *)NULL, envp);
	_exit(127);
}

/* Sessions the VMM asked for (SPAWN): a process as the user, with its
 * stdio on virtio-console ports, or on a pseudo-terminal whose master we
 * relay to a port. */
#define MAX_SESSIONS 16

struct session {
	bool used;
	uint32_t id;
	pid_t pid;
	int port;		/* the io port's fd (relay end, for a pty) */
	int master;		/* pty master, or -1 */
};

static struct session sessions[MAX_SESSIONS];

static void become_user(void)
{
	if (setgroups(0, NULL) < 0 || setgid(ident.uid) < 0 ||
	    setuid(ident.uid) < 0)
		_exit(126);
	if (chdir(ident.home) < 0 && chdir("/") < 0)
		_exit(127);
}

static void exec_user(const struct agent_spawn *sp)
{
	char home[160], user[48], logname[48], term[80];
	char *envp[8 + AGENT_ENV_MAX / 2] = {
		home, user, logname, term, "SHELL=/bin/sh",
		"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
	};
	size_t n = 6;
	char env[AGENT_ENV_MAX];

	snprintf(home, sizeof(home), "HOME=%s", ident.home);
	snprintf(user, sizeof(user), "USER=%s", ident.user);
	snprintf(logname, sizeof(logname), "LOGNAME=%s", ident.user);
	snprintf(term, sizeof(term), "TERM=%s", sp->term[0] ? sp->term : "dumb");
	/* LANG and LC_* from the client, checked when decoded. */
	memcpy(env, sp->env, sp->env_len);
	for (size_t off = 0; off < sp->env_len && n + 1 < sizeof(envp) /
	     sizeof(envp[0]); off += strlen(env + off) + 1)
		envp[n++] = env + off;
	envp[n] = NULL;
	if (sp->cmd[0])
		execle("/bin/sh", "sh", "-c", sp->cmd, (char *)NULL, envp);
	else
		execle("/bin/sh", "-sh", (char *)NULL, envp);
	_exit(127);
}

static int spawn(const struct agent_spawn *sp)
{
	struct session *s = NULL;
	char name[32];
	int io, err = -1, in = -1, master = -1;
	pid_t pid;

	for (int i = 0; i < MAX_SESSIONS && !s; i++)
		if (!sessions[i].used)
			s = &sessions[i];
	if (!s)
		return -1;
	snprintf(name, sizeof(name), "clone.s%u", sp->io_port);
	io = open_port(name, sp->pty ? O_RDWR : O_WRONLY, 300);
	if (io < 0) {
		say("session %u: port %s not found", sp->session, name);
		return -1;
	}
	if (sp->in_port >= 0) {
		snprintf(name, sizeof(name), "clone.s%d", sp->in_port);
		in = open_port(name, O_RDONLY, 300);
		if (in < 0) {
			close(io);
			return -1;
		}
	}
	if (sp->err_port >= 0) {
		snprintf(name, sizeof(name), "clone.s%d", sp->err_port);
		err = open_port(name, O_WRONLY, 300);
		if (err < 0) {
			close(io);
			if (in >= 0)
				close(in);
			return -1;
		}
	}
	if (sp->pty) {
		struct winsize ws = { .ws_row = sp->rows, .ws_col = sp->cols };

		master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0) {
			close(io);
			return -1;
		}
		ioctl(master, TIOCSWINSZ, &ws);
	}
	pid = fork();
	if (pid == 0) {
		sigset_t all;

		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		setsid();
		if (master >= 0) {
			int slave = open(ptsname(master), O_RDWR);

			if (slave < 0)
				_exit(127);
			ioctl(slave, TIOCSCTTY, 1);
			fchown(slave, ident.uid, ident.uid);
			dup2(slave, 0);
			dup2(slave, 1);
			dup2(slave, 2);
		} else {
			dup2(in >= 0 ? in : io, 0);
			dup2(io, 1);
			dup2(err >= 0 ? err : io, 2);
		}
		become_user();
		exec_user(sp);
	}
	if (err >= 0)
		close(err);
	if (in >= 0)
		close(in);
	if (pid < 0) {
		close(io);
		if (master >= 0)
			close(master);
		return -1;
	}
	*s = (struct session){ .used = true, .id = sp->session, .pid = pid,
			       .port = master >= 0 ? io : -1, .master = master };
	if (master < 0)
		close(io);	/* the child holds the port; its exit closes it */
	return 0;
}

static struct session *session_by_id(uint32_t id)
{
	for (int i = 0; i < MAX_SESSIONS; i++)
		if (sessions[i].used && sessions[i].id == id)
			return &sessions[i];
	return NULL;
}

static int write_full(int fd, const uint8_t *b, size_t n)
{
	while (n) {
		ssize_t w = write(fd, b, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One pty session's bytes, one way. Returns false at EOF or error. */
static bool relay(int from, int to)
{
	uint8_t buf[4096];
	ssize_t n = read(from, buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return true;
	return n > 0 && write_full(to, buf, (size_t)n) == 0;
}

static int send_msg(int fd, uint8_t type, const void *payload, size_t len);

/* The process of session s ended with wait status st: pass the rest of
 * its terminal's output on, close its port (EOF for the host) and report. */
static void session_end(int port, struct session *s, int st)
{
	uint8_t m[6];

	if (s->master >= 0) {
		int fl = fcntl(s->master, F_GETFL);

		fcntl(s->master, F_SETFL, fl | O_NONBLOCK);
		while (relay(s->master, s->port))
			;
		close(s->master);
	}
	if (s->port >= 0)
		close(s->port);
	agent_le_put(m, s->id, 4);
	m[4] = WIFSIGNALED(st) ? 1 : 0;
	m[5] = (uint8_t)(WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	send_msg(port, AGENT_MSG_EXITED, m, sizeof(m));
	*s = (struct session){ .port = -1, .master = -1 };
}

static int append_line(const char *path, const char *line)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, line, strlen(line));
	close(fd);
	return n == (ssize_t)strlen(line) ? 0 : -1;
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* Whether /etc/passwd has an entry for name. */
static bool user_exists(const char *name)
{
	char buf[8192], key[40];
	int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	snprintf(key, sizeof(key), "%s:", name);
	for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, key, strlen(key)) == 0)
			return true;
	return false;
}

/* Make this clone unique and its user's: entropy first, so that nothing
 * after it draws on the template's random state. */
static int apply_identity(const struct agent_identity *id, const char **why)
{
	struct {
		int entropy_count;
		int buf_size;
		uint8_t buf[AGENT_ENTROPY_MAX];
	} pool;
	struct timespec ts = { .tv_sec = (time_t)id->sec,
			       .tv_nsec = (long)id->nsec };
	char line[256];
	int fd;

	fd = open("/dev/urandom", O_RDWR | O_CLOEXEC);
	pool.entropy_count = (int)id->entropy_len * 8;
	pool.buf_size = (int)id->entropy_len;
	memcpy(pool.buf, id->entropy, id->entropy_len);
	if (fd < 0 || ioctl(fd, RNDADDENTROPY, &pool) < 0 ||
	    ioctl(fd, RNDRESEEDCRNG) < 0) {
		*why = "reseeding the kernel RNG failed";
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	explicit_bzero(&pool, sizeof(pool));
	if (clock_settime(CLOCK_REALTIME, &ts) < 0) {
		*why = "setting the clock failed";
		return -1;
	}
	snprintf(line, sizeof(line), "%s\n", id->hostname);
	if (sethostname(id->hostname, strlen(id->hostname)) < 0 ||
	    write_file("/etc/hostname", line) < 0) {
		*why = "setting the hostname failed";
		return -1;
	}
	snprintf(line, sizeof(line), "%s\n", id->machine_id);
	if (write_file("/etc/machine-id", line) < 0) {
		*why = "writing /etc/machine-id failed";
		return -1;
	}
	/* uid 0 under the user's own name (the operator's `[vm] root =
	 * yes`) gets an alias line after root's: uid 0 still reads as root
	 * (`id`, `ls -l`) while the name, home and USER stay the user's,
	 * as with an ordinary uid. */
	if (!user_exists(id->user)) {
		snprintf(line, sizeof(line), "%s:x:%u:%u::%s:/bin/sh\n",
			 id->user, id->uid, id->uid, id->home);
		if (append_line("/etc/passwd", line) < 0) {
			*why = "adding the user failed";
			return -1;
		}
		if (id->uid != 0) {
			snprintf(line, sizeof(line), "%s:x:%u:\n", id->user,
				 id->uid);
			append_line("/etc/group", line);
		}
	}
	mkdir("/home", 0755);
	if ((mkdir(id->home, 0755) < 0 && errno != EEXIST) ||
	    chown(id->home, id->uid, id->uid) < 0) {
		*why = "creating the home directory failed";
		return -1;
	}
	return 0;
}

static int send_msg(int fd, uint8_t type, const void *payload, size_t len)
{
	uint8_t buf[AGENT_HDR_LEN + AGENT_MAX_PAYLOAD];
	int n = agent_encode(type, payload, len, buf, sizeof(buf));
	size_t off = 0;

	if (n < 0 || fd < 0)
		return -1;
	while (off < (size_t)n) {
		ssize_t w = write(fd, buf + off, (size_t)n - off);

		if (w < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };

			poll(&p, 1, 1000);
			continue;
		}
		if (w < 0 && errno != EINTR)
			return -1;
		if (w > 0)
			off += (size_t)w;
	}
	return 0;
}

static void power(int port, int how)
{
	uint8_t b = (uint8_t)how;

	say("%s", how == AGENT_POWER_OFF ? "powering off" : "rebooting");
	kill(-1, SIGTERM);
	sync();
	send_msg(port, AGENT_MSG_POWER, &b, 1);
	/* The VMM ends the VM on the message; if it did not, reset. */
	sleep(2);
	reboot(RB_AUTOBOOT);
	for (;;)
		pause();
}

static struct agent_msg msg;

/* Messages from the VMM. Returns false once the port is at EOF or the
 * stream is broken (we stop listening; the shell carries on). */
static bool host_input(int port, struct agent_dec *dec, pid_t *shell,
		       time_t *last_start)
{
	uint8_t buf[4096];
	ssize_t n = read(port, buf, sizeof(buf));
	size_t off = 0, used;

	if (n == 0)
		return false;
	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	while (off < (size_t)n) {
		int r = agent_decode(dec, buf + off, (size_t)n - off, &used,
				     &msg);
		const char *why = "";
		uint8_t ack[128];

		off += used;
		if (r < 0) {
			say("protocol error from the host: %s", strerror(-r));
			return false;
		}
		if (r == 0)
			break;
		if (msg.type == AGENT_MSG_TIME && msg.len == 12) {
			/* Resumed from disk: the clock stood still meanwhile. */
			struct timespec ts = { 0 };
			uint64_t sec = agent_le_get(msg.payload, 8);
			uint32_t nsec = (uint32_t)agent_le_get(msg.payload + 8,
							       4);
			ts.tv_sec = (time_t)sec;
			ts.tv_nsec = nsec < 1000000000U ? (long)nsec : 0;
			if (clock_settime(CLOCK_REALTIME, &ts) < 0)
				say("setting the clock: %s", strerror(errno));
			continue;
		}
		if (msg.type == AGENT_MSG_SPAWN) {
			struct agent_spawn sp;
			uint8_t m[6] = { 0 };


			if (ident.user[0] &&
			    agent_spawn_decode(msg.payload, msg.len, &sp) == 0 &&
			    spawn(&sp) == 0)
				continue;
			/* Could not start it: report it ended, status 127. */
			say("session could not start");
			memcpy(m, msg.payload + 3, msg.len >= 7 ? 4 : 0);
			m[5] = 127;
			send_msg(port, AGENT_MSG_EXITED, m, sizeof(m));
			continue;
		}
		if ((msg.type == AGENT_MSG_RESIZE && msg.len == 8) ||
		    (msg.type == AGENT_MSG_SIGNAL && msg.len == 5)) {
			uint32_t id = (uint32_t)agent_le_get(msg.payload, 4);
			struct session *ss = session_by_id(id);

			if (!ss)
				continue;
			if (msg.type == AGENT_MSG_SIGNAL) {
				int sig = msg.payload[4];

				if (sig > 0 && sig < 32)
					kill(-ss->pid, sig);
			} else if (ss->master >= 0) {
				struct winsize ws = {
					.ws_row = (unsigned short)
						agent_le_get(msg.payload + 4, 2),
					.ws_col = (unsigned short)
						agent_le_get(msg.payload + 6, 2),
				};
				ioctl(ss->master, TIOCSWINSZ, &ws);
			}
			continue;
		}
		if (msg.type != AGENT_MSG_IDENTITY || *shell > 0) {
			say("unexpected message %u", msg.type);
			continue;
		}
		struct timespec t0, t1;
		char took[48];

		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (agent_identity_decode(msg.payload, msg.len, &ident) < 0) {
			why = "malformed identity";
			r = -1;
		} else {
			r = apply_identity(&ident, &why);
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		/* The ACK says how long the guest took, for the benchmark's
		 * account of where a clone's first 100 ms go. */
		if (r == 0) {
			snprintf(took, sizeof(took), "applied in %ld us",
				 (long)((t1.tv_sec - t0.tv_sec) * 1000000 +
					(t1.tv_nsec - t0.tv_nsec) / 1000));
			why = took;
		}
		ack[0] = r < 0;
		memcpy(ack + 1, why, strlen(why));
		send_msg(port, AGENT_MSG_ACK, ack, 1 + strlen(why));
		if (r < 0) {
			say("identity refused: %s", why);
			continue;
		}
		*shell = start_shell();
		*last_start = time(NULL);
	}
	return true;
}

int main(void)
{
	sigset_t sigs;
	int sfd, port;
	pid_t shell = -1;
	time_t last_start = 0;
	bool port_open;
	struct agent_dec dec;

	if (getpid() != 1) {
		fprintf(stderr, "clone-agent: must run as PID 1\n");
		return 1;
	}
	setup_fs();
	sethostname("clone", 5);

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGCHLD);
	sigaddset(&sigs, SIGTERM);	/* busybox reboot */
	sigaddset(&sigs, SIGUSR1);	/* busybox halt */
	sigaddset(&sigs, SIGUSR2);	/* busybox poweroff */
	sigaddset(&sigs, SIGINT);	/* ctrl-alt-del */
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);

	port = open_agent_port();
	if (port < 0)
		say("agent port %s not found", PORT_NAME);
	if (wait_for(TERMINAL) < 0)
		say("%s not found", TERMINAL);
	/* Ready: a template is snapshotted here, waiting for its identity. */
	send_msg(port, AGENT_MSG_READY, AGENT_VERSION, strlen(AGENT_VERSION));
	port_open = port >= 0;
	log_port = port;
	agent_dec_init(&dec);

	for (;;) {
		struct pollfd p[2 + 2 * MAX_SESSIONS];
		int np = 2;

		p[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		p[1] = (struct pollfd){ .fd = port_open ? port : -1,
					.events = POLLIN };
		for (int i = 0; i < MAX_SESSIONS; i++) {
			struct session *ss = &sessions[i];

			if (!ss->used || ss->master < 0)
				continue;
			p[np++] = (struct pollfd){ .fd = ss->master,
						   .events = POLLIN };
			p[np++] = (struct pollfd){ .fd = ss->port,
						   .events = POLLIN };
		}
		if (poll(p, (nfds_t)np, -1) < 0)
			continue;
		if (p[1].revents & (POLLIN | POLLHUP))
			port_open = host_input(port, &dec, &shell, &last_start);
		for (int i = 0, k = 2; i < MAX_SESSIONS; i++) {
			struct session *ss = &sessions[i];

			if (!ss->used || ss->master < 0)
				continue;
			/* Terminal output to the host; the host's input to the
			 * terminal. A closed host side ends input only. */
			if (p[k].revents & POLLIN)
				relay(ss->master, ss->port);
			if (p[k + 1].revents & POLLIN &&
			    !relay(ss->port, ss->master)) {
				/* host closed its side: hang up the terminal */
				kill(-ss->pid, SIGHUP);
			}
			k += 2;
		}
		if (!(p[0].revents & POLLIN))
			continue;
		struct signalfd_siginfo si;
		if (read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		switch (si.ssi_signo) {
		case SIGCHLD:
			for (;;) {
				int st;
				pid_t pid = waitpid(-1, &st, WNOHANG);

				if (pid <= 0)
					break;
				for (int i = 0; i < MAX_SESSIONS; i++)
					if (sessions[i].used &&
					    sessions[i].pid == pid)
						session_end(port, &sessions[i],
							    st);
				if (pid != shell)
					continue;
				/* Like getty: a new shell when one exits,
				 * but not in a tight loop. */
				if (time(NULL) - last_start < 1)
					sleep(1);
				shell = start_shell();
				last_start = time(NULL);
			}
			break;
		case SIGUSR1:
		case SIGUSR2:
			power(port, AGENT_POWER_OFF);
			break;
		case SIGTERM:
		case SIGINT:
			power(port, AGENT_POWER_REBOOT);
			break;
		default:
			break;
		}
	}
}
