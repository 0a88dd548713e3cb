/* `clone bench-clones`: clone latency, memory and CPU of idle clones,
 * resume latency, and clone/destroy hygiene, measured on worker processes
 * exactly as the server uses them. Prints one name=value line per figure. */
#include "tools/cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/proc.h"
#include "config/config.h"
#include "vmm/worker.h"

#define TIMEOUT_MS 60000

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct_ms(uint64_t *v, unsigned n, double p)
{
	unsigned i;

	if (!n)
		return 0;
	qsort(v, n, sizeof(v[0]), cmp_u64);
	i = (unsigned)(p * (n - 1) + 0.5);
	return (double)v[i] / 1e6;
}

static uint64_t *restore_ns;
static unsigned nrestore, maxrestore;

/* A worker spawned and ready for go; its restore time recorded. */
static int ready_worker(const struct template *t, struct worker *w)
{
	uint64_t ns = 0;
	int r = worker_spawn_ready(t, NULL, w, &ns);

	if (r == 0 && nrestore < maxrestore)
		restore_ns[nrestore++] = ns;
	return r;
}

static int go(struct worker *w, unsigned i, uint64_t *t0)
{
	struct worker_msg m = { .type = WORKER_GO };
	char name[32];

	snprintf(name, sizeof(name), "user%u", i);
	if (vm_identity_make(&m.id, name, 1000 + i % 50000, "/home/user",
			     name) < 0)
		return -EINVAL;
	*t0 = clock_mono_ns();
	return worker_send(w, &m);
}

static long count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	long n = 0;

	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n - 3;	/* ., .. and the DIR's own fd */
}

static long self_rss_kib(void)
{
	FILE *f = fopen("/proc/self/statm", "re");
	long pages = 0, rss = 0;

	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static uint64_t proc_cpu_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	p = strrchr(buf, ')');
	/* fields after ")": state(3) ... utime(14) stime(15) */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
			 "%llu %llu", &ut, &st) != 2)
		return 0;
	return ut + st;
}

const struct option cli_bench_opts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "clones", required_argument, NULL, 'n' },
	{ "idle", required_argument, NULL, 'i' },
	{ "idle-secs", required_argument, NULL, 's' },
	{ "cpu-secs", required_argument, NULL, 'p' },
	{ "cycles", required_argument, NULL, 'y' },
	{ NULL, 0, NULL, 0 },
};
const char cli_bench_shortopts[] = "c:n:";

int vmm_cmd_bench_clones(int argc, char **argv)
{
	unsigned n = 200, idle = 100, idle_s = 10, cpu_s = 30, cycles = 0;
	const char *cfg_path = NULL;
	struct cfg cfg = { 0 };
	struct template *t = NULL;
	struct worker next, *ws = NULL;
	struct vm_config vc;
	uint64_t *lat = NULL, *ready = NULL, *res = NULL;
	char err[CFG_ERRLEN];
	int c, r, status = 1;

	while ((c = getopt_long(argc, argv, cli_bench_shortopts,
				cli_bench_opts, NULL)) != -1) {
		switch (c) {
		case 'c': cfg_path = optarg; break;
		case 'n': n = (unsigned)atoi(optarg); break;
		case 'i': idle = (unsigned)atoi(optarg); break;
		case 's': idle_s = (unsigned)atoi(optarg); break;
		case 'p': cpu_s = (unsigned)atoi(optarg); break;
		case 'y': cycles = (unsigned)atoi(optarg); break;
		default:
			fprintf(stderr, "usage: clone bench-clones [-c FILE] "
				"[-n CLONES] [--idle N] [--idle-secs S] "
				"[--cpu-secs S] [--cycles N]\n");
			return 2;
		}
	}
	r = cfg_path ? cfg_load(&cfg, cfg_path, err, sizeof(err))
		     : cfg_defaults(&cfg);
	if (r < 0) {
		log_warnx("%s", cfg_path ? err : "out of memory");
		return 1;
	}
	vc = (struct vm_config){ .kernel = cfg.template.kernel,
				 .initrd = cfg.template.initrd,
				 .cmdline = cfg.template.cmdline,
				 .memory_mb = cfg.template.memory_mb,
				 .vcpus = cfg.template.vcpus };
	r = template_open(&vc, cfg.server.state_dir, &t, err, sizeof(err));
	if (r < 0) {
		log_warnx("%s", err);
		goto out;
	}
	printf("template_build_s=%.1f\n", t->build_s);
	fflush(stdout);

	/* Hygiene first, on a clean parent: clone and destroy, many times. */
	if (cycles) {
		long fd0 = count_fds(), rss0 = self_rss_kib();

		for (unsigned i = 0; i < cycles; i++) {
			struct worker_msg m;
			uint64_t t0;

			if (ready_worker(t, &next) < 0 || go(&next, i, &t0) < 0 ||
			    worker_expect(&next, WORKER_STARTED, &m,
					  TIMEOUT_MS) < 0) {
				log_warnx("cycle %u failed", i);
				goto out;
			}
			worker_destroy(&next, 5000);
		}
		printf("cycles=%u\nparent_fds_before=%ld\nparent_fds_after=%ld\n"
		       "parent_rss_kib_before=%ld\nparent_rss_kib_after=%ld\n",
		       cycles, fd0, count_fds(), rss0, self_rss_kib());
		fflush(stdout);
	}

	/* Latency: request (go) to the clone's first vCPU entry, with the
	 * next worker made ready ahead, as the server's pool does. */
	maxrestore = cycles + n + 2 * idle + 1;
	restore_ns = calloc(maxrestore, sizeof(*restore_ns));
	lat = calloc(n + 1, sizeof(*lat));
	ready = calloc(n + 1, sizeof(*ready));
	res = calloc(idle + 1, sizeof(*res));
	ws = calloc(idle + 1, sizeof(*ws));
	if (!lat || !ready || !res || !ws || !restore_ns)
		goto out;
	for (unsigned i = 0; i < n; i++) {
		struct worker w;
		struct worker_msg m;
		uint64_t t0;

		if (ready_worker(t, &w) < 0 || go(&w, i, &t0) < 0 ||
		    worker_expect(&w, WORKER_STARTED, &m, TIMEOUT_MS) < 0) {
			log_warnx("clone %u failed", i);
			worker_destroy(&w, 1000);
			goto out;
		}
		lat[i] = m.a - t0;
		if (worker_expect(&w, WORKER_ACKED, &m, TIMEOUT_MS) < 0) {
			log_warnx("clone %u: no identity ack", i);
			worker_destroy(&w, 1000);
			goto out;
		}
		ready[i] = clock_mono_ns() - t0;
		worker_destroy(&w, 5000);
	}
	printf("clones=%u\nclone_p50_ms=%.3f\nclone_p99_ms=%.3f\n"
	       "clone_ready_p50_ms=%.1f\nrestore_ahead_p50_ms=%.3f\n", n,
	       pct_ms(lat, n, 0.5), pct_ms(lat, n, 0.99),
	       pct_ms(ready, n, 0.5), pct_ms(restore_ns, nrestore, 0.5));
	fflush(stdout);

	/* Idle clones: memory and CPU. */
	if (idle) {
		long priv = 0, anon = 0;
		uint64_t ticks0 = 0, ticks1 = 0;
		long hz = sysconf(_SC_CLK_TCK);
		unsigned nres = 0;

		for (unsigned i = 0; i < idle; i++) {
			struct worker_msg m;
			uint64_t t0;

			if (ready_worker(t, &ws[i]) < 0 ||
			    go(&ws[i], i, &t0) < 0 ||
			    worker_expect(&ws[i], WORKER_STARTED, &m,
					  TIMEOUT_MS) < 0 ||
			    worker_expect(&ws[i], WORKER_ACKED, &m,
					  TIMEOUT_MS) < 0) {
				log_warnx("idle clone %u failed", i);
				goto out;
			}
		}
		sleep(idle_s);
		for (unsigned i = 0; i < idle; i++) {
			priv += proc_smaps_kib(ws[i].pid, "Private_Dirty");
			anon += proc_smaps_kib(ws[i].pid, "Anonymous");
			ticks0 += proc_cpu_ticks(ws[i].pid);
		}
		sleep(cpu_s);
		for (unsigned i = 0; i < idle; i++)
			ticks1 += proc_cpu_ticks(ws[i].pid);
		printf("idle_clones=%u\nprivate_kib_per_idle_clone=%ld\n"
		       "anonymous_kib_per_idle_clone=%ld\n"
		       "idle_cpu_pct_per_clone=%.4f\n", idle, priv / idle,
		       anon / idle,
		       100.0 * (double)(ticks1 - ticks0) / (double)hz /
			       cpu_s / idle);
		fflush(stdout);

		/* Resume from RAM: the vCPU stopped, then run again. */
		for (unsigned i = 0; i < idle && i < 50; i++) {
			struct worker_msg m = { .type = WORKER_PAUSE };
			uint64_t t0;

			if (worker_send(&ws[i], &m) < 0 ||
			    worker_expect(&ws[i], WORKER_PAUSED, &m,
					  TIMEOUT_MS) < 0)
				continue;
			m = (struct worker_msg){ .type = WORKER_RESUME };
			t0 = clock_mono_ns();
			if (worker_send(&ws[i], &m) < 0 ||
			    worker_expect(&ws[i], WORKER_RESUMED, &m,
					  TIMEOUT_MS) < 0)
				continue;
			res[nres++] = m.a - t0;
		}
		printf("resume_ram_p50_ms=%.3f\n", pct_ms(res, nres, 0.5));
		fflush(stdout);

		/* Suspend to disk (that worker exits) and resume in a fresh
		 * pool worker: request to the first vCPU entry. */
		nres = 0;
		for (unsigned i = 0; i < idle && i < 20; i++) {
			struct worker_msg m = { .type = WORKER_SUSPEND };
			struct worker nw;
			char dir[160];
			uint64_t t0;

			snprintf(dir, sizeof(dir), "%s/suspended",
				 cfg.server.state_dir);
			mkdir(dir, 0700);
			snprintf(dir, sizeof(dir), "%s/suspended/bench%u",
				 cfg.server.state_dir, i);
			mkdir(dir, 0700);
			snprintf(m.text, sizeof(m.text), "%s", dir);
			if (worker_send(&ws[i], &m) < 0 ||
			    worker_expect(&ws[i], WORKER_SUSPENDED, &m,
					  TIMEOUT_MS) < 0)
				continue;
			worker_destroy(&ws[i], 5000);
			if (ready_worker(t, &nw) < 0)
				continue;
			m = (struct worker_msg){ .type = WORKER_GO_RESUME };
			snprintf(m.text, sizeof(m.text), "%s", dir);
			t0 = clock_mono_ns();
			if (worker_send(&nw, &m) == 0 &&
			    worker_expect(&nw, WORKER_STARTED, &m,
					  TIMEOUT_MS) == 0)
				res[nres++] = m.a - t0;
			ws[i] = nw;
		}
		printf("resume_disk_p50_ms=%.3f\n", pct_ms(res, nres, 0.5));
	}
	status = 0;
out:
	if (ws)
		for (unsigned i = 0; i < idle; i++)
			if (ws[i].pid > 0)
				worker_destroy(&ws[i], 5000);
	free(ws);
	free(restore_ns);
	free(lat);
	free(ready);
	free(res);
	template_close(t);
	cfg_free(&cfg);
	return status;
}
