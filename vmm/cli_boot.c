/* `clone boot`: boot the template image with its terminal on ours. */
#include "vmm/cli.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "common/log.h"
#include "config/config.h"
#include "console/term.h"
#include "vmm/vm.h"

static int write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: clone boot [-c clone.ini] [--serial] [-v]\n"
			"Boots the template image with its console on this "
			"terminal; Ctrl-] ends it.\n");
}

static void print_stats(struct vm *vm)
{
	struct vm_stats st;

	vm_get_stats(vm, &st);
	log_info("stats: ready_ms=%.0f exits=%llu io=%llu mmio=%llu "
		 "intr=%llu int3=%llu fwait=%llu mxcsr=%llu clac_stac=%llu",
		 (double)st.ready_ns / 1e6, (unsigned long long)st.exits,
		 (unsigned long long)st.exits_io,
		 (unsigned long long)st.exits_mmio,
		 (unsigned long long)st.exits_intr,
		 (unsigned long long)st.emul.int3,
		 (unsigned long long)st.emul.fwait,
		 (unsigned long long)st.emul.mxcsr,
		 (unsigned long long)st.emul.clac_stac);
}

int vmm_cmd_boot(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "serial", no_argument, NULL, 's' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cfg_path = NULL;
	bool serial = false, in_open = true, escaped = false;
	struct console_term term = { .fd = -1 };
	struct cfg cfg = { 0 };
	struct vm *vm = NULL;
	struct vm_config vc;
	char err[CFG_ERRLEN];
	sigset_t sigs;
	int c, r, tfd = -1, sfd = -1, status = 1;
	uint16_t rows, cols;

	while ((c = getopt_long(argc, argv, "c:svh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': cfg_path = optarg; break;
		case 's': serial = true; break;
		case 'v': log_init("clone", LOG_DEBUG); break;
		case 'h': usage(); return 0;
		default: usage(); return 2;
		}
	}
	if (optind != argc) {
		usage();
		return 2;
	}
	r = cfg_path ? cfg_load(&cfg, cfg_path, err, sizeof(err))
		     : cfg_defaults(&cfg);
	if (r < 0) {
		if (!cfg_path)
			snprintf(err, sizeof(err), "out of memory");
		log_warnx("%s", err);
		return 1;
	}
	vc = (struct vm_config){
		.kernel = cfg.template.kernel,
		.initrd = cfg.template.initrd,
		.cmdline = cfg.template.cmdline,
		.memory_mb = cfg.template.memory_mb,
		.vcpus = cfg.template.vcpus,
		.serial = serial || cfg.template.serial,
		.serial_fd = STDERR_FILENO,
	};
	r = vm_create(&vc, &vm, err, sizeof(err));
	if (r < 0) {
		log_warnx("%s", err);
		goto out;
	}
	tfd = vm_add_terminal(vm, 0);
	if (tfd < 0) {
		log_warnx("terminal port: %s", strerror(-tfd));
		goto out;
	}
	if (console_size(STDIN_FILENO, &rows, &cols) == 0)
		vm_resize(vm, 0, rows, cols);

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGWINCH);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		log_warn("signalfd");
		goto out;
	}
	{
		struct agent_identity id;

		/* A booted image is the operator's: root on the console. */
		if (vm_identity_make(&id, "root", 0, "/root", "clone") == 0)
			vm_set_identity(vm, &id);
		sodium_memzero(&id, sizeof(id));
	}
	r = vm_start(vm);
	if (r < 0) {
		log_warnx("starting the VM: %s", strerror(-r));
		goto out;
	}
	log_info("booting %s (%u MiB); Ctrl-] ends the session",
		 cfg.template.kernel, cfg.template.memory_mb);
	console_raw(&term, STDIN_FILENO);

	while (vm_state(vm) == VM_RUNNING) {
		struct pollfd pfd[4] = {
			{ .fd = in_open ? STDIN_FILENO : -1, .events = POLLIN },
			{ .fd = tfd, .events = POLLIN },
			{ .fd = vm_event_fd(vm), .events = POLLIN },
			{ .fd = sfd, .events = POLLIN },
		};
		uint8_t buf[4096];
		ssize_t n;

		if (poll(pfd, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_warn("poll");
			break;
		}
		if (pfd[0].revents) {
			n = read(STDIN_FILENO, buf, sizeof(buf));
			if (n <= 0) {
				in_open = false;	/* keep the VM running */
			} else {
				long e = console_escape_at(buf, (size_t)n);

				if (e >= 0)
					n = e;
				if (n && write_all(tfd, buf, (size_t)n) < 0)
					break;
				if (e >= 0) {
					escaped = true;
					break;
				}
			}
		}
		if (pfd[1].revents) {
			n = read(tfd, buf, sizeof(buf));
			if (n <= 0)
				break;
			if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
				break;
		}
		if (pfd[2].revents) {
			uint64_t v;

			if (read(vm_event_fd(vm), &v, sizeof(v)) < 0 &&
			    errno != EAGAIN)
				log_warn("vm event");
		}
		if (pfd[3].revents) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) != sizeof(si))
				continue;
			if (si.ssi_signo == SIGWINCH) {
				if (console_size(STDIN_FILENO, &rows,
						 &cols) == 0)
					vm_resize(vm, 0, rows, cols);
				continue;
			}
			log_info("signal %u: stopping the VM", si.ssi_signo);
			escaped = true;
			break;
		}
	}
	vm_stop(vm);
	console_restore(&term);
	/* What the guest wrote last may still be in the socket. */
	for (;;) {
		uint8_t buf[4096];
		ssize_t n = recv(tfd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n <= 0 || write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
			break;
	}
	if (escaped) {
		log_info("session ended; VM stopped");
		status = 0;
	} else {
		log_info("VM ended: %s", vm_exit_detail(vm));
		status = vm_exit_reason(vm) == VM_EXIT_POWEROFF ||
				 vm_exit_reason(vm) == VM_EXIT_REBOOT ? 0 : 1;
	}
	if (log_level() >= LOG_DEBUG || getenv("CLONE_STATS"))
		print_stats(vm);
out:
	console_restore(&term);
	if (sfd >= 0)
		close(sfd);
	if (tfd >= 0)
		close(tfd);
	vm_free(vm);
	cfg_free(&cfg);
	return status;
}
