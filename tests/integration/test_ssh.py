"""Issue 4: `ssh alice@host` lands in alice's own VM. Real clients: OpenSSH
ssh, PuTTY plink, dropbear dbclient."""
import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import termios
import time

from harness import Output, Skip
from sshharness import Server, keygen


def test_exec_output_status_stdin(tmp):
    """exec: stdout and stderr apart, the exit status and a signal death
    returned, stdin and its EOF passed; the user is who they said."""
    s = Server(tmp)
    try:
        st, out, err = s.ssh("alice", "echo out-$(id -un)-$(hostname); "
                             "echo err >&2; exit 3")
        assert (st, out, err) == (3, "out-alice-alice\n", "err\n"), \
            (st, out, err, s.log.text()[-1500:])
        st, out, _ = s.ssh("alice", "tr a-z A-Z; echo done",
                           stdin=b"hello\nworld\n")
        assert (st, out) == (0, "HELLO\nWORLD\ndone\n")
        st, out, _ = s.ssh("alice", "wc -c", stdin=b"x" * 100000)
        assert out.strip() == "100000"
        # Output to a client that stops reading (its pipe is full): the
        # window closes, nothing is lost, the rest follows.
        p = subprocess.run(
            ["sh", "-c", " ".join(f"'{a}'" for a in s.ssh_args("alice")) +
             " 'head -c 300000 /dev/zero' | (sleep 3; wc -c)"],
            capture_output=True, text=True, timeout=120)
        assert p.stdout.strip() == "300000", p
        st, _, _ = s.ssh("alice", "kill -9 $$")
        assert st == 255        # ssh's status for a remote signal death
        st, out, _ = s.ssh("alice", "pwd; echo $HOME $USER $SHELL")
        assert out == "/home/alice\n/home/alice alice /bin/sh\n"
        p = subprocess.run(s.ssh_args("alice", extra=[
            "-o", "SetEnv=LANG=C.UTF-8 LC_TIME=C FOO=bar"]) +
            ["echo $LANG/$LC_TIME/${FOO:-unset}"], capture_output=True,
            text=True, timeout=60)
        assert p.stdout == "C.UTF-8/C/unset\n", p
        log = s.log.text()
        assert re.search(r"auth: alice accepted with ssh-ed25519 SHA256:",
                         log)
        assert "vm alice: cloned" in log
    finally:
        s.close()


def set_winsize(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def test_pty_shell_term_and_resize(tmp):
    """A login shell on a pty driven through a real terminal: TERM and the
    window size arrive, and a resize reaches `stty size`."""
    s = Server(tmp)
    try:
        s.ssh("alice", "true")      # the VM is up
        pid, fd = pty.fork()
        if pid == 0:
            os.environ["TERM"] = "xterm-256color"
            os.execvp("ssh", s.ssh_args("alice", extra=["-tt"]))
        set_winsize(fd, 33, 101)
        out = Output(fd)
        os.write(fd, b"echo T=$TERM; stty size\n")
        out.expect(r"T=xterm-256color", 30)
        out.expect(r"33 101", 30)
        set_winsize(fd, 40, 120)
        os.kill(pid, signal.SIGWINCH)
        deadline = time.monotonic() + 30
        while True:
            start = len(out.text())
            os.write(fd, b"stty size\n")
            try:
                out.expect(r"40 120", 3, start)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
        os.write(fd, b"exit 7\n")
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 7
    finally:
        s.close()


def test_plink_and_dbclient(tmp):
    """PuTTY's plink -batch and dropbear's dbclient run commands too."""
    s = Server(tmp)
    try:
        ppk = os.path.join(tmp, "id.ppk")
        subprocess.run(["puttygen", s.key, "-O", "private", "-o", ppk],
                       check=True, capture_output=True)
        p = subprocess.run(["plink", "-batch", "-ssh", "-P", str(s.port),
                            "-i", ppk, "-hostkey", s.host_fingerprint(),
                            "alice@127.0.0.1", "echo via-plink; exit 4"],
                           capture_output=True, text=True, timeout=60)
        assert p.stdout == "via-plink\n" and p.returncode == 4, p
        db = os.path.join(tmp, "id.db")
        subprocess.run(["dropbearconvert", "openssh", "dropbear", s.key, db],
                       check=True, capture_output=True)
        p = subprocess.run(["dbclient", "-y", "-i", db, "-p", str(s.port),
                            "alice@127.0.0.1", "echo via-dbclient; exit 5"],
                           capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        assert p.stdout == "via-dbclient\n" and p.returncode == 5, p
    finally:
        s.close()


def test_refusals_clone_nothing(tmp):
    """A wrong key, an unknown user (no signup), a bad user name and an
    entry with options are refused; no VM is cloned for any of them."""
    s = Server(tmp, open_signup=False)
    try:
        os.makedirs(s.users)
        pub = open(s.key + ".pub").read()
        with open(os.path.join(s.users, "alice"), "w") as f:
            f.write("# alice's keys\n\n" + pub)
        with open(os.path.join(s.users, "carol"), "w") as f:
            f.write('command="/bin/true" ' + pub)
        other = keygen(os.path.join(tmp, "other"))
        st, _, err = s.ssh("alice", "true", key=other)
        assert st == 255 and "Permission denied" in err
        st, _, err = s.ssh("nobody", "true")
        assert st == 255 and "Permission denied" in err
        st, _, err = s.ssh("Bad.Name", "true")
        assert st == 255 and "Permission denied" in err
        st, _, err = s.ssh("carol", "true")
        assert st == 255 and "Permission denied" in err
        # the keys monitor's line reaches the log beside its answer: wait
        s.log.expect(r"entry refused: options", 10)
        log = s.log.text()
        assert "cloned" not in log, log
        st, out, _ = s.ssh("alice", "echo in")
        assert (st, out) == (0, "in\n")
    finally:
        s.close()


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_idle_vm_after_sessions_costs_no_cpu(tmp):
    """After its sessions end, a user's VM (its worker process) is idle:
    under 2% of a core over 5 s."""
    s = Server(tmp)
    try:
        for _ in range(2):
            assert s.ssh("alice", "echo hi", stdin=b"x")[1] == "hi\n"
        workers = s.workers()
        assert workers, "no VM worker found"
        time.sleep(2)
        before = sum(cpu_ticks(w) for w in workers)
        time.sleep(5)
        used = sum(cpu_ticks(w) for w in workers) - before
        hz = os.sysconf("SC_CLK_TCK")
        assert used / hz / 5 < 0.02, f"{used} ticks in 5 s"
    finally:
        s.close()


def test_two_users_get_their_own_vms(tmp):
    """Two users: two VMs, each its own machine id and hostname."""
    s = Server(tmp)
    try:
        _, a, _ = s.ssh("alice", "hostname; cat /etc/machine-id")
        _, b, _ = s.ssh("bob", "hostname; cat /etc/machine-id")
        a, b = a.split(), b.split()
        assert a[0] == "alice" and b[0] == "bob" and a[1] != b[1]
        st = s.status()
        assert st["alice"] == "running" and st["bob"] == "running"
    finally:
        s.close()


def test_reconnect_suspend_resume_reap(tmp):
    """A file and a background process survive a disconnect; after
    detach_timeout the VM is suspended and a reconnect resumes it; after
    reap_timeout it is destroyed and the next login starts clean."""
    s = Server(tmp, detach=6, reap=20)
    try:
        st, out, _ = s.ssh("alice", "echo kept > ~/f; sleep 100000 "
                           ">/dev/null 2>&1 </dev/null & echo $!")
        pid = out.strip()
        assert st == 0 and pid.isdigit()
        _, out, _ = s.ssh("alice", f"cat ~/f; kill -0 {pid} && echo alive")
        assert out == "kept\nalive\n", (out, s.log.text()[-1500:])
        s.wait_state("alice", "suspended", 30)
        _, out, _ = s.ssh("alice", f"cat ~/f; kill -0 {pid} && echo alive; "
                          "date +%s")
        lines = out.split()
        assert lines[:2] == ["kept", "alive"], out
        assert abs(int(lines[2]) - time.time()) <= 2
        assert "vm alice: resumed" in s.log.text()
        s.wait_state("alice", "suspended", 30)
        s.wait_state("alice", "none", 40)
        assert "vm alice: reaped" in s.log.text()
        _, out, _ = s.ssh("alice", "cat ~/f 2>&1 || echo fresh")
        assert "fresh" in out
    finally:
        s.close()


def test_capacity_message(tmp):
    """max_vms reached: the client sees the capacity line on stderr and
    exit status 1."""
    s = Server(tmp, max_vms=1)
    try:
        assert s.ssh("alice", "true")[0] == 0
        st, out, err = s.ssh("bob", "echo never")
        assert st == 1 and out == "" and \
            err == "clone: host at capacity, try again later\r\n", \
            (st, out, err)
    finally:
        s.close()


def test_restart_keeps_suspended_vm(tmp):
    """SIGTERM suspends running VMs to disk and exits 0; the next start
    brings them back."""
    s = Server(tmp)
    try:
        s.ssh("alice", "echo survived > ~/f")
        assert s.stop() == 0
        assert "vm alice: suspended to disk" in s.log.text()
        s.start()
        assert s.status().get("alice") == "suspended"
        _, out, _ = s.ssh("alice", "cat ~/f")
        assert out == "survived\n"
    finally:
        s.close()
