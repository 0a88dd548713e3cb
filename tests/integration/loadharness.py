"""Many concurrent real `ssh` logins against one `clone serve`: the load
test (test_load.py) and the load benchmark (tests/bench/load.py) share it.
"""
import resource
import subprocess
import threading
import time

CAPACITY = "clone: host at capacity, try again later\r\n"


def raise_nofile():
    """Soft RLIMIT_NOFILE up to the hard limit: this process holds two
    pipes per client. The serve process started afterwards inherits it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and \
            (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Sampler:
    """The serve process's RSS (KiB) and fd count, every 0.25 s, on a
    thread; peak values kept."""

    def __init__(self, server):
        self.server = server
        self.peak_rss = server.rss_kib()
        self.peak_fds = server.fds()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done.wait(0.25):
            try:
                self.peak_rss = max(self.peak_rss, self.server.rss_kib())
                self.peak_fds = max(self.peak_fds, self.server.fds())
            except OSError:
                return

    def stop(self):
        self.done.set()
        self.thread.join()


class Login:
    def __init__(self, i, user):
        self.i, self.user = i, user
        self.status = None
        self.out = self.err = ""
        self.t0 = self.t1 = None

    @property
    def latency(self):
        return self.t1 - self.t0

    def verdict(self):
        """'ok' (the command's output), 'capacity' (the capacity message
        and status 1), or 'failed'."""
        if (self.status, self.out, self.err) == (0, f"ok-{self.i}\n", ""):
            return "ok"
        if (self.status, self.out, self.err) == (1, "", CAPACITY):
            return "capacity"
        return "failed"


def run_logins(server, n, timeout, prefix="load"):
    """n logins at once, user PREFIXi running `echo ok-i`, each a real ssh
    process, all started before any is waited for; each is killed after
    timeout seconds. The Login list, in order."""
    logins = [Login(i, f"{prefix}{i}") for i in range(n)]
    procs = []

    def wait(login, p):
        try:
            out, err = p.communicate(timeout=max(1, login.t0 + timeout -
                                                 time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            err += b"\n(killed after the timeout)"
        login.t1 = time.monotonic()
        login.status = p.returncode
        login.out = out.decode("utf-8", "replace")
        login.err = err.decode("utf-8", "replace")

    threads = []
    try:
        for login in logins:
            login.t0 = time.monotonic()
            p = subprocess.Popen(
                server.ssh_args(login.user) + [f"echo ok-{login.i}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
            procs.append(p)
            t = threading.Thread(target=wait, args=(login, p), daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return logins


def idle(server, fds0, timeout):
    """Wait until the server is back at rest: no VM in `clone status` (the
    load's VMs suspended and reaped), no worker process, and its fd count
    back at fds0. Whether it got there within timeout seconds."""
    return wait_until(lambda: not server.status() and not server.workers()
                      and server.fds() == fds0, timeout)


class Round:
    """One round of run_logins, with the serve process's RSS (KiB) and fd
    count sampled throughout."""

    def __init__(self, server, n, prefix, timeout):
        sampler = Sampler(server)
        t0 = time.monotonic()
        self.logins = run_logins(server, n, timeout, prefix)
        self.wall = time.monotonic() - t0
        sampler.stop()
        self.peak_rss, self.peak_fds = sampler.peak_rss, sampler.peak_fds
        self.by = {"ok": [], "capacity": [], "failed": []}
        for login in self.logins:
            self.by[login.verdict()].append(login)

    def latency(self, p, verdict=None):
        xs = [x.latency for x in self.logins
              if verdict is None or x.verdict() == verdict]
        return percentile(xs, p) if xs else float("nan")

    def failures(self, most=3):
        """A few failed logins, for an assertion message."""
        return "\n".join(f"{x.user}: status {x.status}, out {x.out!r}, "
                         f"err {x.err[-300:]!r}"
                         for x in self.by["failed"][:most])


def wait_until(cond, timeout, step=0.5):
    """Poll cond() until true or timeout seconds have passed; its value."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]
