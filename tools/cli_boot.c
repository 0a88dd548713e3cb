/* `clone boot`: boot the template image with its terminal on ours. */
#include "tools/cli.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/clock.h"
#include "common/log.h"
#include "config/config.h"
#include "console/term.h"
#include "vmm/template.h"
#include "vmm/worker.h"
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
	fprintf(stderr,
		"usage: clone boot [-c clone.ini] [--serial] [-v]\n"
		"       clone template [-c clone.ini] [-v]\n"
		"       clone run [-c clone.ini] [-u USER] [--uid N] [-v]\n"
		"boot: cold-boot the guest image with its console here.\n"
		"template: build (or check) the warm template snapshot.\n"
		"run: a copy-on-write clone of the template for USER, in its "
		"own worker process.\n"
		"Ctrl-] ends a console session; in run, Ctrl-] z pauses the "
		"VM for a second\nand Ctrl-] s suspends it to disk and "
		"resumes it in a new worker.\n");
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

/* The VM's terminal port 0 on our stdin/stdout until the VM ends, the
 * escape key, or a signal. Returns the exit status. */
static int console_session(struct vm *vm, int tfd)
{
	bool in_open = true, escaped = false;
	struct console_term term = { .fd = -1 };
	sigset_t sigs;
	int sfd, status;
	uint16_t rows, cols;

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGWINCH);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGINT);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		log_warn("signalfd");
		return 1;
	}
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
	close(sfd);
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
	return status;
}

struct cli_opts {
	const char *cfg_path;
	const char *user;
	unsigned uid;
	bool serial;
};

const struct option cli_boot_opts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "serial", no_argument, NULL, 's' },
	{ "user", required_argument, NULL, 'u' },
	{ "uid", required_argument, NULL, 'U' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};
const char cli_boot_shortopts[] = "c:su:vh";

/* Options shared by the subcommands; -1 on a usage error. */
static int parse_opts(int argc, char **argv, struct cli_opts *o)
{
	int c;

	while ((c = getopt_long(argc, argv, cli_boot_shortopts, cli_boot_opts,
				NULL)) != -1) {
		switch (c) {
		case 'c': o->cfg_path = optarg; break;
		case 's': o->serial = true; break;
		case 'u': o->user = optarg; break;
		case 'U': o->uid = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'v': log_init("clone", LOG_DEBUG); break;
		case 'h': usage(); return 1;
		default: usage(); return -1;
		}
	}
	if (optind != argc) {
		usage();
		return -1;
	}
	return 0;
}

static int load_cfg(const struct cli_opts *o, struct cfg *cfg)
{
	char err[CFG_ERRLEN];
	int r = o->cfg_path ? cfg_load(cfg, o->cfg_path, err, sizeof(err))
			    : cfg_defaults(cfg);

	if (r < 0) {
		if (!o->cfg_path)
			snprintf(err, sizeof(err), "out of memory");
		log_warnx("%s", err);
	}
	return r;
}

static struct vm_config vm_config_of(const struct cfg *cfg, bool serial)
{
	return (struct vm_config){
		.kernel = cfg->template.kernel,
		.initrd = cfg->template.initrd,
		.cmdline = cfg->template.cmdline,
		.memory_mb = cfg->template.memory_mb,
		.vcpus = cfg->template.vcpus,
		.serial = serial || cfg->template.serial,
		.serial_fd = STDERR_FILENO,
	};
}

int vmm_cmd_boot(int argc, char **argv)
{
	struct cli_opts o = { 0 };
	struct cfg cfg = { 0 };
	struct vm *vm = NULL;
	struct vm_config vc;
	struct agent_identity id;
	char err[CFG_ERRLEN];
	int r, tfd = -1, status = 1;
	uint16_t rows, cols;

	r = parse_opts(argc, argv, &o);
	if (r)
		return r < 0 ? 2 : 0;
	if (load_cfg(&o, &cfg) < 0)
		return 1;
	vc = vm_config_of(&cfg, o.serial);
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
	/* A booted image is the operator's: root on the console. */
	if (vm_identity_make(&id, "root", 0, "/root", "clone") == 0)
		vm_set_identity(vm, &id);
	sodium_memzero(&id, sizeof(id));
	r = vm_start(vm);
	if (r < 0) {
		log_warnx("starting the VM: %s", strerror(-r));
		goto out;
	}
	log_info("booting %s (%u MiB); Ctrl-] ends the session",
		 cfg.template.kernel, cfg.template.memory_mb);
	status = console_session(vm, tfd);
out:
	if (tfd >= 0)
		close(tfd);
	vm_free(vm);
	cfg_free(&cfg);
	return status;
}

int vmm_cmd_template(int argc, char **argv)
{
	struct cli_opts o = { 0 };
	struct cfg cfg = { 0 };
	struct template *t = NULL;
	struct vm_config vc;
	char err[CFG_ERRLEN];
	int r;

	r = parse_opts(argc, argv, &o);
	if (r)
		return r < 0 ? 2 : 0;
	if (load_cfg(&o, &cfg) < 0)
		return 1;
	vc = vm_config_of(&cfg, false);
	vc.serial = false;	/* the template's command line has no UART */
	r = template_open(&vc, cfg.server.state_dir, &t, err, sizeof(err));
	if (r < 0)
		log_warnx("%s", err);
	else
		printf("%s\n", t->dir);
	template_close(t);
	cfg_free(&cfg);
	return r < 0 ? 1 : 0;
}

/* Ctrl-] z: a pause of one second and a resume, from RAM. */
static int cmd_pause(struct worker *w)
{
	struct worker_msg m = { .type = WORKER_PAUSE };
	uint64_t t0;

	if (worker_send(w, &m) < 0 ||
	    worker_expect(w, WORKER_PAUSED, &m, 10000) < 0)
		return -1;
	log_info("VM paused");
	sleep(1);
	m = (struct worker_msg){ .type = WORKER_RESUME };
	t0 = clock_mono_ns();
	if (worker_send(w, &m) < 0 ||
	    worker_expect(w, WORKER_RESUMED, &m, 10000) < 0)
		return -1;
	log_info("VM resumed from RAM in %.3f ms", (double)(m.a - t0) / 1e6);
	return 0;
}

/* Ctrl-] s: suspend to disk (the worker exits), resume in a new one. */
static int cmd_suspend(const struct template *t, struct worker *w,
		       const char *dir)
{
	struct worker_msg m = { .type = WORKER_SUSPEND };
	struct worker nw;
	uint64_t t0;

	snprintf(m.text, sizeof(m.text), "%.159s", dir);
	if (worker_send(w, &m) < 0 ||
	    worker_expect(w, WORKER_SUSPENDED, &m, 60000) < 0) {
		log_warnx("suspend failed: %s", m.text);
		return -1;
	}
	log_info("VM suspended to %s (%llu private pages); worker gone", dir,
		 (unsigned long long)m.a);
	worker_destroy(w, 5000);
	if (worker_spawn_ready(t, NULL, &nw, NULL) < 0)
		return -1;
	m = (struct worker_msg){ .type = WORKER_GO_RESUME };
	snprintf(m.text, sizeof(m.text), "%.159s", dir);
	t0 = clock_mono_ns();
	if (worker_send(&nw, &m) < 0 ||
	    worker_expect(&nw, WORKER_STARTED, &m, 60000) < 0) {
		log_warnx("resume failed: %s", m.text);
		worker_destroy(&nw, 1000);
		return -1;
	}
	log_info("VM resumed from disk in %.3f ms", (double)(m.a - t0) / 1e6);
	*w = nw;
	return 0;
}

int vmm_cmd_run(int argc, char **argv)
{
	struct cli_opts o = { .user = "root" };
	struct cfg cfg = { 0 };
	struct template *t = NULL;
	struct worker w = { .pid = -1, .ctl = -1, .term_fd = -1 };
	struct worker_msg m = { .type = WORKER_GO };
	struct console_term term = { .fd = -1 };
	struct vm_config vc;
	char err[CFG_ERRLEN], home[64], dir[300];
	bool escape = false, in_open = true;
	int r, status = 1;
	uint64_t t0;

	r = parse_opts(argc, argv, &o);
	if (r)
		return r < 0 ? 2 : 0;
	if (load_cfg(&o, &cfg) < 0)
		return 1;
	if (strcmp(o.user, "root") == 0)
		snprintf(home, sizeof(home), "/root");
	else
		snprintf(home, sizeof(home), "/home/%s", o.user);
	if (!o.uid && strcmp(o.user, "root") != 0)
		o.uid = 1000;
	if (vm_identity_make(&m.id, o.user, o.uid, home, o.user) < 0) {
		log_warnx("user '%s' (uid %u): not a valid identity", o.user,
			  o.uid);
		goto out;
	}
	snprintf(dir, sizeof(dir), "%s/suspended", cfg.server.state_dir);
	mkdir(dir, 0700);
	if (snprintf(dir, sizeof(dir), "%s/suspended/%s",
		     cfg.server.state_dir, o.user) >= 160) {
		log_warnx("%s: state_dir path too long", dir);
		goto out;
	}
	mkdir(dir, 0700);
	vc = vm_config_of(&cfg, false);
	vc.serial = false;
	r = template_open(&vc, cfg.server.state_dir, &t, err, sizeof(err));
	if (r < 0) {
		log_warnx("%s", err);
		goto out;
	}
	if (worker_spawn_ready(t, NULL, &w, NULL) < 0)
		goto out;
	t0 = clock_mono_ns();
	r = worker_send(&w, &m);
	if (r == 0)
		r = worker_expect(&w, WORKER_STARTED, &m, 60000);
	if (r < 0 || w.term_fd < 0) {
		log_warnx("clone failed: %s", r < 0 ? strerror(-r) : "no terminal");
		goto out;
	}
	log_info("clone of template %s running for %s (%.3f ms to first vCPU "
		 "entry); Ctrl-] ends it, Ctrl-] z pauses, Ctrl-] s suspends "
		 "to disk", t->key, o.user, (double)(m.a - t0) / 1e6);
	console_raw(&term, STDIN_FILENO);
	for (;;) {
		struct pollfd p[3] = {
			{ .fd = in_open ? STDIN_FILENO : -1, .events = POLLIN },
			{ .fd = w.term_fd, .events = POLLIN },
			{ .fd = w.ctl, .events = POLLIN },
		};
		uint8_t buf[4096];
		ssize_t n;

		if (poll(p, 3, -1) < 0 && errno != EINTR)
			break;
		if (p[0].revents) {
			uint8_t *b = buf;
			bool quit = false;

			n = read(STDIN_FILENO, buf, sizeof(buf));
			if (n <= 0)
				in_open = false;
			while (n > 0 && !quit) {
				long e;

				if (escape) {
					/* The byte after Ctrl-] is a command. */
					escape = false;
					if (!((*b == 'z' && cmd_pause(&w) == 0) ||
					      (*b == 's' &&
					       cmd_suspend(t, &w, dir) == 0)))
						quit = true;
					b++;
					n--;
					continue;
				}
				e = console_escape_at(b, (size_t)n);
				if (e < 0) {
					if (write_all(w.term_fd, b, (size_t)n) < 0)
						quit = true;
					break;
				}
				if (e && write_all(w.term_fd, b, (size_t)e) < 0)
					quit = true;
				escape = true;
				b += e + 1;
				n -= e + 1;
			}
			if (quit) {
				status = 0;
				break;
			}
		}
		if (p[1].revents) {
			n = read(w.term_fd, buf, sizeof(buf));
			if (n <= 0 || write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
				break;
		}
		if (p[2].revents) {
			r = worker_recv(&w, &m, 0);
			if (r < 0) {
				log_warnx("VM worker gone: %s", strerror(-r));
				break;
			}
			if (m.type == WORKER_ACKED)
				log_info("guest identity applied %.1f ms after "
					 "start", (double)m.a / 1e6);
			if (m.type == WORKER_EXITED) {
				log_info("VM ended: %s", m.text);
				status = m.a == VM_EXIT_POWEROFF ||
					 m.a == VM_EXIT_REBOOT ? 0 : 1;
				break;
			}
		}
	}
	console_restore(&term);
	if (status == 0 && escape == false)
		log_info("session ended; VM stopped");
out:
	sodium_memzero(&m, sizeof(m));
	worker_destroy(&w, 5000);
	template_close(t);
	cfg_free(&cfg);
	return status;
}
