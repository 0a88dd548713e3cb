"""A `clone serve` for a test, and the real SSH clients to talk to it."""
import os
import pty
import re
import signal
import socket
import subprocess
import time

from harness import CLONE, INITRD, KERNEL, STATE, Output, need_kvm


def children(pid):
    """The pids whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def keygen(path, kind="ed25519"):
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", path],
                   check=True)
    return path


def worker_of(s, user, other_than=0, timeout=10):
    """The pid of user's VM worker, once the status table (written once a
    second) shows one other than other_than."""
    deadline = time.monotonic() + timeout
    while True:
        pid = s.worker_pid(user)
        if pid > 0 and pid != other_than:
            return pid
        assert time.monotonic() < deadline, f"no worker for {user}"
        time.sleep(0.2)


class Server:
    """clone serve on a free loopback port, its own state directory (the
    template directory shared with the other tests, so nothing boots)."""

    def __init__(self, tmp, open_signup=True, detach=300, reap=86400,
                 max_vms=100, root=False, start=True, max_auth_tries=3,
                 grace=10, server=None):
        need_kvm()
        # Tests log in many users from one address and one key, many at
        # once: the admission limits are off unless a test sets them.
        limits = {"max_startups": 100000, "per_source_max_startups": 0,
                  "signup_per_key_per_hour": 100000,
                  "signup_per_source_per_hour": 100000}
        limits.update(server or {})
        self.tmp = tmp
        self.port = free_port()
        self.state = os.path.join(tmp, "state")
        self.users = os.path.join(tmp, "users")
        os.makedirs(self.state, exist_ok=True)
        os.makedirs(os.path.join(STATE, "templates"), exist_ok=True)
        if not os.path.exists(os.path.join(self.state, "templates")):
            os.symlink(os.path.join(STATE, "templates"),
                       os.path.join(self.state, "templates"))
        self.config = os.path.join(tmp, "serve.ini")
        with open(self.config, "w") as f:
            f.write(f"""[server]
listen = 127.0.0.1:{self.port}
state_dir = {self.state}
authorized_keys = {self.users}/%u
open_signup = {'yes' if open_signup else 'no'}
max_auth_tries = {max_auth_tries}
login_grace_time = {grace}
{"".join(f"{k} = {v}{chr(10)}" for k, v in limits.items())}[template]
kernel = {KERNEL}
initrd = {INITRD}
[vm]
max_vms = {max_vms}
detach_timeout = {detach}
reap_timeout = {reap}
root = {'yes' if root else 'no'}
""")
        self.key = keygen(os.path.join(tmp, "id"))
        self.proc = None
        if start:
            self.start()

    def start(self):
        self.proc = subprocess.Popen([CLONE, "serve", "-c", self.config],
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.log = Output(self.proc.stderr.fileno())
        self.log.expect(r"template \w+ ready", 300)
        self.log.expect(r"listening on", 10)

    def stop(self, sig=signal.SIGTERM, timeout=90):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("clone serve did not stop:\n"
                                     + self.log.text()[-2000:])
        return self.proc.returncode if self.proc else None

    def ssh_args(self, user, key=None, extra=()):
        return ["ssh", "-i", key or self.key, "-p", str(self.port),
                "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null",
                "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
                "-o", "IdentitiesOnly=yes", *extra, f"{user}@127.0.0.1"]

    def ssh(self, user, cmd, key=None, stdin=None, timeout=60):
        p = subprocess.run(self.ssh_args(user, key) + [cmd],
                           input=stdin, capture_output=True,
                           timeout=timeout)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def status(self):
        p = subprocess.run([CLONE, "status", "-c", self.config],
                           capture_output=True, text=True, timeout=10)
        rows = {}
        for line in p.stdout.splitlines()[1:]:
            f = line.split()
            rows[f[0]] = f[1]
        return rows

    def worker_pid(self, user):
        """The pid of user's VM worker, from `clone status` (0: none)."""
        p = subprocess.run([CLONE, "status", "-c", self.config],
                           capture_output=True, text=True, timeout=10)
        for line in p.stdout.splitlines()[1:]:
            f = line.split()
            if f[0] == user:
                return int(f[-1])
        return 0

    def wait_state(self, user, state, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status().get(user, "none") == state:
                return
            time.sleep(0.5)
        raise AssertionError(f"{user} not {state} after {timeout}s: "
                             f"{self.status()}\n{self.log.text()[-1500:]}")

    def host_fingerprint(self):
        key = os.path.join(self.state, "ssh_host_ed25519_key")
        pub = subprocess.run(["ssh-keygen", "-y", "-f", key],
                             capture_output=True, text=True, check=True)
        p = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", "-"],
                           input=pub.stdout, capture_output=True, text=True,
                           check=True)
        return re.search(r"SHA256:\S+", p.stdout).group(0)

    def rss_kib(self):
        """The serve process's resident memory (VmRSS), KiB."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            return int(re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M)[1])

    def fds(self):
        """How many file descriptors the serve process holds."""
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def keys_monitors(self):
        """The pids of every keys monitor the manager said it started."""
        return [int(p) for p in re.findall(
            r"clone\[manager\]: keys monitor (\d+) started",
            self.log.text())]

    def workers(self):
        """The VM worker processes: the manager's children but the keys
        monitor (the manager is serve's only child; it forks a worker only
        when a VM is asked for)."""
        keys = set(self.keys_monitors())
        return [w for m in children(self.proc.pid) for w in children(m)
                if w not in keys]

    def close(self):
        try:
            self.stop(signal.SIGKILL, 10)
        except AssertionError:
            pass


class Shell:
    """An interactive `ssh -tt` login shell on a real pseudo-terminal, as a
    person would keep one open."""

    def __init__(self, server, user):
        self.status = None
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.environ["TERM"] = "dumb"
            os.execvp("ssh", server.ssh_args(user, extra=["-tt"]))
        self.out = Output(self.fd)

    def run(self, command, timeout=60):
        """Type a command; its output, framed by markers so that the echo
        of the typed line does not count."""
        tag = f"{time.monotonic_ns() % 1000000:06d}"
        start = len(self.out.text())
        os.write(self.fd, f"echo B-{tag}-; {command}; echo E-{tag}-\n"
                 .encode())
        m = self.out.expect(rf"B-{tag}-\r*\n(.*?)E-{tag}-", timeout, start)
        return m.group(1).replace("\r", "")

    def wait(self, timeout):
        """The ssh client's exit status, once it exits within timeout."""
        deadline = time.monotonic() + timeout
        while self.status is None:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(st)
            elif time.monotonic() > deadline:
                raise AssertionError(f"ssh -tt still running after "
                                     f"{timeout}s:\n{self.out.text()[-1500:]}")
            else:
                time.sleep(0.05)
        return self.status

    def close(self):
        if self.status is None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.status = -signal.SIGKILL
        try:
            os.close(self.fd)
        except OSError:
            pass
