#include "vmm/template.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

#define READY_TIMEOUT_S 900	/* a cold boot on PVM takes tens of seconds */
#define IDLE_WINDOW_MS 100
#define IDLE_CPU_MS 3		/* vCPU time per window that counts as idle */
#define IDLE_WINDOWS 5
#define IDLE_MAX_S 60

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int hash_file(crypto_generichash_state *h, const char *path)
{
	uint8_t buf[1 << 16];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		crypto_generichash_update(h, buf, (size_t)n);
	close(fd);
	return n < 0 ? -EIO : 0;
}

static int template_key(const struct vm_config *cfg, char key[33])
{
	crypto_generichash_state h;
	uint8_t out[16];
	char buf[256];
	int r;

	crypto_generichash_init(&h, NULL, 0, sizeof(out));
	/* The VMM's own clearcpuid= list is part of what the template
	 * booted with: a change to it must not reuse a template cached
	 * before, which the guest kernel set itself up for. */
	snprintf(buf, sizeof(buf), "%s snapshot %u mem %u vcpus %u pvm %s|",
		 CLONE_VMM_VERSION, SNAPSHOT_VERSION, cfg->memory_mb,
		 cfg->vcpus, pvm_detect() ? PVM_CLEARCPUID : "no");
	crypto_generichash_update(&h, (const uint8_t *)buf, strlen(buf));
	if (cfg->cmdline)
		crypto_generichash_update(&h, (const uint8_t *)cfg->cmdline,
					  strlen(cfg->cmdline));
	crypto_generichash_update(&h, (const uint8_t *)"|", 1);
	r = hash_file(&h, cfg->kernel);
	if (r == 0 && cfg->initrd)
		r = hash_file(&h, cfg->initrd);
	if (r < 0)
		return r;
	crypto_generichash_final(&h, out, sizeof(out));
	sodium_bin2hex(key, 33, out, sizeof(out));
	return 0;
}

/* CPU time the calling process's vCPU thread has used, in ns. */
static uint64_t thread_cpu_ns(pid_t tid)
{
	char path[64];
	unsigned long long ns = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat", tid);
	f = fopen(path, "re");
	if (f) {
		if (fscanf(f, "%llu", &ns) != 1)
			ns = 0;
		fclose(f);
	}
	return ns;
}

/* Boot cfg's image, wait for the agent and then for an idle vCPU, and
 * snapshot it into dir. */
static int build(const struct vm_config *cfg, const char *dir, char *err,
		 size_t errlen)
{
	struct vm *vm = NULL;
	double t0 = now_s(), deadline;
	int r, quiet = 0;
	uint64_t last;

	r = vm_create(cfg, &vm, err, errlen);
	if (r < 0)
		return r;
	/* Port 0 must exist in the template as in its clones; nobody
	 * listens to a template's terminal. */
	r = vm_add_terminal(vm, 0);
	if (r < 0) {
		snprintf(err, errlen, "template terminal: %s", strerror(-r));
		goto out;
	}
	close(r);
	r = vm_start(vm);
	if (r < 0) {
		snprintf(err, errlen, "starting the template VM: %s",
			 strerror(-r));
		goto out;
	}
	deadline = t0 + READY_TIMEOUT_S;
	while (!vm_agent_ready(vm)) {
		struct pollfd p = { .fd = vm_event_fd(vm), .events = POLLIN };
		uint64_t v;

		if (vm_state(vm) != VM_RUNNING) {
			snprintf(err, errlen, "template VM ended before its "
				 "agent was ready: %s", vm_exit_detail(vm));
			r = -EIO;
			goto out;
		}
		if (now_s() > deadline) {
			snprintf(err, errlen, "template agent not ready after "
				 "%d s", READY_TIMEOUT_S);
			r = -ETIMEDOUT;
			goto out;
		}
		poll(&p, 1, 1000);
		if (read(vm_event_fd(vm), &v, sizeof(v)) < 0 && errno != EAGAIN)
			log_warn("template: event");
	}
	log_info("template: agent ready after %.1f s, waiting for an idle "
		 "vCPU", now_s() - t0);
	/* Idle means the guest finished what it started at boot: a clone
	 * then has nothing left to do but the user's work. */
	last = thread_cpu_ns(vm_vcpu_tid(vm));
	deadline = now_s() + IDLE_MAX_S;
	while (quiet < IDLE_WINDOWS && now_s() < deadline) {
		uint64_t cur;

		usleep(IDLE_WINDOW_MS * 1000);
		cur = thread_cpu_ns(vm_vcpu_tid(vm));
		quiet = cur - last < IDLE_CPU_MS * 1000000ULL ? quiet + 1 : 0;
		last = cur;
	}
	if (quiet < IDLE_WINDOWS)
		log_warnx("template: vCPU still busy after %d s; snapshotting "
			  "anyway", IDLE_MAX_S);
	r = vm_save(vm, dir, err, errlen);
out:
	vm_free(vm);
	return r;
}

int template_open(const struct vm_config *cfg, const char *state_dir,
		  struct template **out, char *err, size_t errlen)
{
	struct template *t;
	char path[4096], why[512], tmp[4200];
	int r, lock = -1;
	double t0;

	*out = NULL;
	t = calloc(1, sizeof(*t));
	if (!t || !(t->snap = calloc(1, sizeof(*t->snap)))) {
		free(t);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	t->mem_fd = -1;
	r = template_key(cfg, t->key);
	if (r < 0) {
		snprintf(err, errlen, "template inputs (%s, %s): %s",
			 cfg->kernel, cfg->initrd ? cfg->initrd : "-",
			 strerror(-r));
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/templates", state_dir);
	if ((mkdir(state_dir, 0700) < 0 && errno != EEXIST) ||
	    (mkdir(path, 0700) < 0 && errno != EEXIST)) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	snprintf(t->dir, sizeof(t->dir), "%s/templates/%s", state_dir, t->key);
	/* One builder at a time; the others wait and then reuse its work.
	 * Made by root in `clone serve`: never through a link, never a FIFO
	 * or device that would hang or act on open. */
	snprintf(tmp, sizeof(tmp), "%s.lock", t->dir);
	lock = open(tmp, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK |
		    O_NOCTTY | O_CLOEXEC, 0600);
	if (lock < 0 || flock(lock, LOCK_EX) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto fail;
	}
	r = snapshot_read(t->dir, t->snap, &t->mem_fd, why, sizeof(why));
	if (r == 0)
		goto done;
	if (r == -ENOENT)
		log_info("template %s: none yet; building it (one cold boot)",
			 t->key);
	else
		log_warnx("template %s: %s; rebuilding it", t->key, why);
	if (mkdir(t->dir, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", t->dir, strerror(errno));
		goto fail;
	}
	t0 = now_s();
	r = build(cfg, t->dir, err, errlen);
	if (r < 0)
		goto fail;
	t->build_s = now_s() - t0;
	r = snapshot_read(t->dir, t->snap, &t->mem_fd, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "template just written is unreadable: %s",
			 why);
		goto fail;
	}
	log_info("template %s: built in %.1f s", t->key, t->build_s);
done:
	close(lock);
	*out = t;
	return 0;
fail:
	if (lock >= 0)
		close(lock);
	template_close(t);
	return r;
}

void template_close(struct template *t)
{
	if (!t)
		return;
	if (t->mem_fd >= 0)
		close(t->mem_fd);
	free(t->snap);
	free(t);
}
