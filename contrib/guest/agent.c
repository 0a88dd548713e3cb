/* clone-agent: PID 1 of the Clone guest.
 *
 * Mounts the basic file systems, starts a login shell on the terminal port
 * (hvc0, virtio-console port 0), tells the VMM it is ready over the agent
 * port (the virtio-console port named "clone.agent"), reaps orphans, and
 * turns busybox's poweroff/reboot requests (signals to PID 1) into a clean
 * end of the VM. Static, no NSS, no heap to speak of. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* The agent port's device node: the vport whose sysfs name is ours. The
 * port appears when the driver has processed the VMM's control messages,
 * which may be a moment after we start. */
static int open_agent_port(void)
{
	for (int tries = 0; tries < 1000; tries++) {
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
			if (strcmp(name, PORT_NAME) != 0)
				continue;
			snprintf(path, sizeof(path), "/dev/%s", e->d_name);
			fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
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

static int wait_for(const char *path)
{
	for (int tries = 0; tries < 1000; tries++) {
		if (access(path, F_OK) == 0)
			return 0;
		usleep(10000);
	}
	return -1;
}

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
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2)
		close(fd);
	if (chdir("/root") < 0)
		_exit(127);
	char *const envp[] = { "HOME=/root", "TERM=linux", "USER=root",
			       "LOGNAME=root", "SHELL=/bin/sh",
			       "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
			       NULL };
	execle("/bin/sh", "-sh", (char *)NULL, envp);
	_exit(127);
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

int main(void)
{
	sigset_t sigs;
	int sfd, port;
	pid_t shell = -1;
	time_t last_start = 0;
	bool port_open;

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
	if (wait_for(TERMINAL) == 0) {
		shell = start_shell();
		last_start = time(NULL);
	} else {
		say("%s not found", TERMINAL);
	}
	send_msg(port, AGENT_MSG_READY, AGENT_VERSION, strlen(AGENT_VERSION));
	say("ready");
	port_open = port >= 0;

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = sfd, .events = POLLIN },
			{ .fd = port_open ? port : -1, .events = POLLIN },
		};

		if (poll(p, 2, -1) < 0)
			continue;
		if (p[1].revents & (POLLIN | POLLHUP)) {
			uint8_t buf[512];

			/* Nothing to act on from the host yet; drain it. At
			 * EOF the host end is closed: stop listening. */
			if (read(port, buf, sizeof(buf)) == 0)
				port_open = false;
		}
		if (!(p[0].revents & POLLIN))
			continue;
		struct signalfd_siginfo si;
		if (read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		switch (si.ssi_signo) {
		case SIGCHLD:
			for (;;) {
				pid_t pid = waitpid(-1, NULL, WNOHANG);

				if (pid <= 0)
					break;
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
