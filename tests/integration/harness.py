"""Helpers for Clone's end-to-end tests: real binaries, real KVM, real PTYs."""
import fcntl
import os
import re
import struct
import subprocess
import termios
import threading
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLONE = os.path.join(TOP, "build", "clone")
GUEST = os.path.join(TOP, "build", "guest")
KERNEL = os.path.join(GUEST, "vmlinux")
INITRD = os.path.join(GUEST, "initramfs.cpio")

# Where the tests keep their template: outside the checkout, so that a
# second run on the same machine reuses it (a cold boot is paid once).
STATE = os.environ.get("CLONE_TEST_STATE") or os.path.join(
    os.environ.get("CLONE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
        "clone"), "test-state")

# Cold boots on PVM take tens of seconds (shared/notes/pvm.md).
BOOT_TIMEOUT = float(os.environ.get("CLONE_BOOT_TIMEOUT", "180"))


class Skip(Exception):
    """A test that cannot run here; the runner prints SKIP and the reason."""


def need_kvm():
    if not os.path.exists("/dev/kvm"):
        raise Skip("no /dev/kvm on this host")
    for f in (CLONE, KERNEL, INITRD):
        if not os.path.exists(f):
            raise AssertionError(f"{f} missing: run 'make' and 'make guest'")


def write_config(tmpdir, state_dir=None, **template):
    """A clone.ini for the test's VM; keyword arguments override [template].
    The state directory (templates, suspended VMs) is the shared one unless
    given."""
    t = {"kernel": KERNEL, "initrd": INITRD, "memory_mb": "256"}
    t.update({k: str(v) for k, v in template.items()})
    path = os.path.join(tmpdir, "clone.ini")
    with open(path, "w") as f:
        f.write(f"[server]\nstate_dir = {state_dir or STATE}\n")
        f.write("[template]\n")
        for k, v in t.items():
            f.write(f"{k} = {v}\n")
    return path


class Output:
    """Collects what a file descriptor produces, on a thread."""

    def __init__(self, fd):
        self.fd = fd
        self.buf = b""
        self.lock = threading.Lock()
        self.closed = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                data = b""
            if not data:
                self.closed = True
                return
            with self.lock:
                self.buf += data

    def text(self):
        with self.lock:
            return self.buf.decode("utf-8", "replace")

    def wait_for(self, pattern, deadline):
        """The first match of pattern, or None at the deadline (a
        time.monotonic() value) or once the fd is closed."""
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.text())
            if m or self.closed or time.monotonic() > deadline:
                return m or rx.search(self.text())
            time.sleep(0.02)

    def wait_closed(self, timeout):
        """Wait until the fd reaches EOF; whether it did."""
        self.thread.join(timeout)
        return self.closed

    def expect(self, pattern, timeout, start=0):
        """Wait until pattern (a regex) appears after offset start; return
        the match. Raises AssertionError with the output on timeout."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern, re.S)
        while True:
            m = rx.search(self.text(), start)
            if m:
                return m
            if time.monotonic() > deadline or (self.closed and not m):
                if self.closed:
                    time.sleep(0.2)
                    m = rx.search(self.text(), start)
                    if m:
                        return m
                raise AssertionError(
                    f"timed out after {timeout:.0f}s waiting for {pattern!r}; "
                    f"output so far:\n{self.text()[-3000:]}")
            time.sleep(0.05)


class BootSession:
    """`clone boot` (or another console subcommand) on a real
    pseudo-terminal, as a person would run it."""

    def __init__(self, config, args=(), rows=24, cols=80, command="boot"):
        self.master, slave = os.openpty()
        set_winsize(self.master, rows, cols)

        def ctty():
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(
            [CLONE, command, "-c", config, *args], stdin=slave, stdout=slave,
            stderr=subprocess.PIPE, start_new_session=True, preexec_fn=ctty)
        os.close(slave)
        self.out = Output(self.master)
        self.err = Output(self.proc.stderr.fileno())

    def send(self, data):
        os.write(self.master, data.encode() if isinstance(data, str) else data)

    def run(self, command, timeout=60):
        """Type a command into the guest shell; return its output, framed by
        markers so that the echo of the typed line does not count."""
        tag = f"{time.monotonic_ns() % 1000000:06d}"
        start = len(self.out.text())
        self.send(f"echo B-{tag}-; {command}; echo E-{tag}-\n")
        m = self.out.expect(rf"B-{tag}-\r*\n(.*?)E-{tag}-", timeout, start)
        return m.group(1).replace("\r", "")

    def resize(self, rows, cols):
        set_winsize(self.master, rows, cols)

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"clone boot still running after {timeout}s; stderr:\n"
                f"{self.err.text()[-2000:]}")

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        try:
            os.close(self.master)
        except OSError:
            pass


def set_winsize(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def run_boot(config, *args, timeout=60, env=None):
    """`clone boot` with no terminal; returns (status, stderr)."""
    p = subprocess.run([CLONE, "boot", "-c", config, *args],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout, env=env)
    return p.returncode, p.stderr.decode("utf-8", "replace")


def run_session(config, user, rows=24, cols=80):
    """`clone run -u USER` on a pty, waited on until the user's shell is
    starting (the agent acknowledged the identity)."""
    os.makedirs(STATE, exist_ok=True)
    s = BootSession(config, ["-u", user], rows, cols, command="run")
    try:
        s.err.expect(r"guest identity applied", BOOT_TIMEOUT)
    except BaseException:
        s.close()
        raise
    return s


def clone_cmd(config, *args, timeout=BOOT_TIMEOUT):
    """Run a clone subcommand without a terminal; (status, stdout, stderr)."""
    p = subprocess.run([CLONE, *args, "-c", config], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode()
