"""Issue 5, faults: a VM worker killed, a guest kernel panic, the server
killed. What one user's VM suffers ends that user's sessions with a line
saying so and nobody else's; what was suspended to disk survives the
server."""
import os
import re
import signal
import subprocess
import time

from harness import Output
from sshharness import Server, Shell, children, worker_of

LOST = "clone: your VM stopped unexpectedly"
PANIC = ("clone: your VM ended (guest reset without a shutdown: kernel "
         "panic or forced reboot)")


def login(s, user, cmd, other_than=0):
    """s.ssh() that must succeed, and the pid of user's VM worker."""
    st, out, err = s.ssh(user, cmd)
    assert st == 0, (st, out, err, s.log.text()[-1500:])
    return out, worker_of(s, user, other_than)


def start_time(pid):
    """pid's start time (clock ticks after boot), or None once it is gone
    or a zombie: with the pid this names one process, even if the pid is
    reused later."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[19])


def uid_of(pid):
    """pid's real uid."""
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^Uid:\s+(\d+)", f.read(), re.M)[1])


def wait_gone(procs, timeout):
    """Wait until every (pid, start time) in procs has exited."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p, t in procs if t is not None and
                 start_time(p) == t]
        if not alive:
            return
        assert time.monotonic() < deadline, f"still running: {alive}"
        time.sleep(0.1)


def sessions_of(s, user):
    """Two open sessions of user, on two connections: an interactive
    `ssh -tt` shell and a running `ssh USER 'sleep 100'`."""
    sh = Shell(s, user)
    assert sh.run("echo $USER") == f"{user}\n", sh.out.text()
    p = subprocess.Popen(s.ssh_args(user) + ["echo started; sleep 100"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    out = Output(p.stdout.fileno())
    err = Output(p.stderr.fileno())
    out.expect(r"started\n", 60)
    return sh, (p, err)


def assert_sessions_end(sh, sleeper, msg, t0, timeout=15):
    """Both sessions end within timeout of t0 with msg, one line, on the
    client's terminal (the shell) or stderr (the command); ssh exits 255.
    Returns how long that took."""
    p, err = sleeper
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"ssh still running after {timeout}s; "
                             f"stderr {err.text()!r}")
    assert sh.wait(max(1, timeout - (time.monotonic() - t0))) == 255
    took = time.monotonic() - t0
    err.wait_closed(5)
    assert (p.returncode, err.text()) == (255, msg + "\r\n"), \
        (p.returncode, err.text())
    # On the terminal: once, as the last thing shown (after the prompt).
    assert sh.out.wait_closed(5)
    text = sh.out.text()
    assert text.count(msg) == 1 and text.rstrip("\r\n").endswith(msg), \
        repr(text[-300:])
    return took


def test_worker_killed(tmp):
    """kill -9 of one user's VM worker: both of that user's open sessions
    end promptly with one line saying so; another user's open session
    carries on in the same VM; the user's next login gets a fresh clone."""
    s = Server(tmp)
    shells = []
    try:
        out, wa = login(s, "alice", "echo mark > /tmp/mark; "
                        "cat /etc/machine-id; "
                        "{ echo c > /proc/sysrq-trigger; } 2>/dev/null || "
                        "echo refused")
        mid_a, refused = out.split()
        # The guest kernel has SysRq (for test_guest_kernel_panic), but
        # its trigger is root's alone: as uid 1000 a user cannot crash it.
        assert refused == "refused"
        out, wb = login(s, "bob", "cat /etc/machine-id")
        mid_b = out.strip()
        assert wb != wa
        bob = Shell(s, "bob")
        shells.append(bob)
        assert bob.run("echo $USER") == "bob\n"
        sh, sleeper = sessions_of(s, "alice")
        shells.append(sh)

        t0 = time.monotonic()
        os.kill(wa, signal.SIGKILL)
        took = assert_sessions_end(sh, sleeper, LOST, t0)
        print(f"  alice's sessions ended {took:.2f} s after the kill")
        assert "vm alice: stopped unexpectedly" in s.log.text()

        assert bob.run("echo alive-$((6*7))") == "alive-42\n"
        st, out, _ = s.ssh("bob", "cat /etc/machine-id")
        assert (st, out.strip()) == (0, mid_b)
        assert s.worker_pid("bob") == wb

        out, wa2 = login(s, "alice", "cat /tmp/mark 2>&1; "
                         "cat /etc/machine-id; hostname", other_than=wa)
        lines = out.splitlines()
        assert "No such file" in lines[0], out
        assert re.fullmatch(r"[0-9a-f]{32}", lines[1]) and \
            lines[1] != mid_a, (lines, mid_a)
        assert lines[2] == "alice"
        assert s.log.text().count("vm alice: cloned") == 2
        assert s.status().get("alice") == "running"
    finally:
        for x in shells:
            x.close()
        s.close()


def test_guest_kernel_panic(tmp):
    """A real guest kernel panic (root in the VM writes c to
    /proc/sysrq-trigger): the same as a killed worker. That user's sessions,
    the crashing one too, end with a line saying so; the worker exits;
    another user's session carries on; the next login is a fresh clone."""
    s = Server(tmp, root=True)
    shells = []
    try:
        out, wa = login(s, "alice", "id -u; echo $USER $HOME; pwd; "
                        "cat /proc/sys/kernel/sysrq; "
                        "echo mark > /tmp/mark; cat /etc/machine-id")
        lines = out.splitlines()
        # root = yes: uid 0 under her own name and home; SysRq keys
        # (console sequences) disabled, the trigger file root's.
        assert lines[:4] == ["0", "alice /home/alice", "/home/alice", "0"], \
            lines
        mid_a = lines[4]
        out, wb = login(s, "bob", "cat /etc/machine-id")
        mid_b = out.strip()
        bob = Shell(s, "bob")
        shells.append(bob)
        assert bob.run("id -u") == "0\n"
        sh, sleeper = sessions_of(s, "alice")
        shells.append(sh)
        wa_start = start_time(wa)

        t0 = time.monotonic()
        st, out, err = s.ssh("alice", "echo c > /proc/sysrq-trigger; "
                             "echo survived", timeout=60)
        assert (st, out, err) == (255, "", PANIC + "\r\n"), \
            (st, out, err, s.log.text()[-3000:])
        took = assert_sessions_end(sh, sleeper, PANIC, t0)
        print(f"  alice's sessions ended {took:.2f} s after the trigger")
        wait_gone([(wa, wa_start)], 10)
        assert "vm alice: ended (guest reset without a shutdown: " \
            "kernel panic" in s.log.text()

        assert bob.run("echo alive-$((6*7))") == "alive-42\n"
        st, out, _ = s.ssh("bob", "cat /etc/machine-id")
        assert (st, out.strip()) == (0, mid_b)
        assert s.worker_pid("bob") == wb

        out, _ = login(s, "alice", "cat /tmp/mark 2>&1; cat /etc/machine-id",
                       other_than=wa)
        lines = out.splitlines()
        assert "No such file" in lines[0], out
        assert lines[1] != mid_a
        assert s.log.text().count("vm alice: cloned") == 2
    finally:
        for x in shells:
            x.close()
        s.close()


def our_processes(s):
    """Live processes of this test's server: the server, its manager and
    workers all carry its command line (they are forks of it)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if s.config.encode() in f.read().split(b"\0"):
                        out.append(int(d))
            except OSError:
                pass
    return out


def test_server_killed_keeps_suspended_vms(tmp):
    """kill -9 of clone serve while alice's VM is suspended to disk and
    bob's runs: the manager and every worker die with it (none is left
    behind); after a restart alice's VM comes back as she left it, and bob,
    whose running VM died with the server, gets a fresh clone, not the
    older state his VM had been suspended in before."""
    s = Server(tmp, detach=0)
    shells = []
    try:
        # bob: suspended once (at detach_timeout 0, when his session
        # ends), then resumed and running in an open session.
        out, _ = login(s, "bob", "echo old > /tmp/b; cat /etc/machine-id")
        mid_b = out.strip()
        s.wait_state("bob", "suspended", 60)
        bob = Shell(s, "bob")
        shells.append(bob)
        assert bob.run("cat /tmp/b; echo new > /tmp/b") == "old\n"
        assert "vm bob: resumed" in s.log.text()
        # alice: a file and a background process, then suspended to disk.
        out, wa = login(s, "alice", "echo kept > /tmp/a; sleep 100000 "
                        ">/dev/null 2>&1 </dev/null & echo $!; "
                        "cat /etc/machine-id")
        wa_start = start_time(wa)
        pid_a, mid_a = out.split()
        s.wait_state("alice", "suspended", 60)
        wait_gone([(wa, wa_start)], 10)    # her worker exits once written
        st = s.status()
        assert (st.get("alice"), st.get("bob")) == ("suspended", "running")

        # The server, its helpers (the VM manager, and the keys monitor,
        # the manager's child) and bob's worker, the only one running.
        want = {s.proc.pid, worker_of(s, "bob")} | \
            set(children(s.proc.pid)) | \
            {k for k in s.keys_monitors() if start_time(k) is not None}
        procs = [(p, start_time(p)) for p in our_processes(s)]
        assert {p for p, _ in procs} == want, (procs, want)
        s.proc.kill()
        s.proc.wait(10)
        wait_gone(procs, 10)
        assert our_processes(s) == []
        assert bob.wait(30) == 255      # his connection died with it

        s.start()
        s.wait_state("bob", "none", 10)
        assert s.status().get("alice") == "suspended"
        assert "vm alice: suspended (from an earlier run)" in s.log.text()
        st, out, _ = s.ssh("alice", f"cat /tmp/a; kill -0 {pid_a} && "
                           "echo alive; cat /etc/machine-id")
        assert (st, out.split()) == (0, ["kept", "alive", mid_a]), \
            (st, out, s.log.text()[-1500:])
        assert "vm alice: resumed" in s.log.text()
        st, out, _ = s.ssh("bob", "cat /tmp/b 2>&1; cat /etc/machine-id")
        lines = out.splitlines()
        assert st == 0 and "No such file" in lines[0], out
        assert lines[1] != mid_b
        assert "vm bob: cloned" in s.log.text()
    finally:
        for x in shells:
            x.close()
        s.close()


def test_connection_outlives_its_vm(tmp):
    """A connection that stays up while its VM is lost (an OpenSSH
    ControlMaster, as a phone app keeps one) gets a fresh clone for its
    next session, as a new login would, instead of waiting forever."""
    s = Server(tmp)
    sock = os.path.join(tmp, "mux")
    master = subprocess.Popen(
        s.ssh_args("alice", extra=["-M", "-S", sock, "-N"]),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(sock):
            assert time.monotonic() < deadline, "no master connection"
            time.sleep(0.1)

        def mux(cmd):
            return subprocess.run(["ssh", "-S", sock, "-o",
                                   "LogLevel=ERROR", "alice@127.0.0.1",
                                   cmd], capture_output=True, text=True,
                                  timeout=60)
        p = mux("echo mark > /tmp/mark; cat /etc/machine-id")
        assert p.returncode == 0, (p, s.log.text()[-1500:])
        w = worker_of(s, "alice")
        os.kill(w, signal.SIGKILL)
        s.log.expect(r"vm alice: stopped unexpectedly", 15)
        p2 = mux("cat /tmp/mark 2>/dev/null || echo fresh; "
                 "cat /etc/machine-id")
        assert p2.returncode == 0, (p2, s.log.text()[-1500:])
        fresh, mid = p2.stdout.split()
        assert fresh == "fresh" and mid != p.stdout.strip(), p2.stdout
        assert s.log.text().count("vm alice: cloned") == 2
    finally:
        master.kill()
        master.wait()
        s.close()


def test_stopped_worker_counts_until_reaped(tmp):
    """Issue 9 items 3 and 4. A worker that stops reading its control
    socket (SIGSTOP: what a worker stuck or taken over looks like from
    outside) while its user keeps the front-end sending (window changes):
    the front-end's sends never block; at its queue's bound it drops that
    VM, and the manager, which alone may, kills and reaps the worker. Until
    it is reaped the worker still counts against max_vms (bob is refused
    while it exists); then it is really gone, no zombie, and bob gets in.
    With one worker uid for one VM, bob's worker gets the uid alice's had
    only once hers is reaped, in a directory made afresh."""
    from rawssh import need_paramiko, paramiko
    need_paramiko()
    s = Server(tmp, max_vms=1, start=False)
    with open(s.config, "a") as f:
        f.write("worker_uids = 320000-320000\n")  # [vm] is the last
    s.start()
    client = None
    try:
        out, w = login(s, "alice", "echo up")
        assert out == "up\n"
        t = start_time(w)
        assert uid_of(w) == 320000
        with open(os.path.join(s.state, "vm", "320000", "planted"),
                  "w") as f:
            f.write("alice's")
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect("127.0.0.1", port=s.port, username="alice",
                       key_filename=s.key, allow_agent=False,
                       look_for_keys=False, timeout=30)
        ch = client.get_transport().open_session()
        ch.get_pty(width=80, height=24)
        ch.exec_command("echo started; sleep 600")
        assert ch.recv(64).startswith(b"started"), "no session"
        os.kill(w, signal.SIGSTOP)
        t0 = time.monotonic()
        for i in range(3000):
            if s.log.wait_for(r"vm alice: dropped", time.monotonic()):
                break
            ch.resize_pty(width=80 + i % 100, height=24)
        s.log.expect(r"vm alice: dropped: its worker does not read its "
                     r"control socket", 30)
        print(f"dropped after {i} window changes, "
              f"{time.monotonic() - t0:.2f}s")
        assert s.proc.poll() is None
        # The VM is gone for the front-end; its worker is not yet.
        st, _, err = s.ssh("bob", "echo hi")
        assert start_time(w) == t, "the worker went before bob was refused"
        assert st != 0 and "host at capacity" in err, (st, err)
        s.log.expect(r"worker %d: still running \d+ ms after its control "
                     r"socket closed: killed" % w, 30)
        wait_gone([(w, t)], 10)
        # Dead (a zombie counts as gone above), and reaped by the manager
        # on its SIGCHLD a moment later: not left a zombie.
        deadline = time.monotonic() + 5
        while os.path.exists(f"/proc/{w}") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(f"/proc/{w}"), "a zombie is left"
        deadline = time.monotonic() + 10
        while True:
            st, out, err = s.ssh("bob", "echo hi")
            if st == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert (st, out) == (0, "hi\n"), (st, out, err,
                                          s.log.text()[-1500:])
        wb = worker_of(s, "bob")
        assert uid_of(wb) == 320000
        assert os.listdir(os.path.join(s.state, "vm", "320000")) == []
    finally:
        if client:
            client.close()
        s.close()
