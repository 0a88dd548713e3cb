"""Issue 5: a hostile guest or client harms nobody else. The SSH front-end
runs as the unprivileged [vm] user, each VM worker as a uid of its own
([vm] worker_uids) chrooted into a directory of its own, all under seccomp
filters with no_new_privs and no core dumps; a system call outside a
worker's filter kills that worker alone (issue 9 item 3: uids and
directories)."""
import ctypes
import os
import pwd
import stat
import subprocess
import time

from harness import CLONE, Output, Skip
from sshharness import Server, worker_of


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


def fd_targets(pid):
    d = f"/proc/{pid}/fd"
    return {int(fd): os.readlink(os.path.join(d, fd)) for fd in os.listdir(d)}


def assert_confined(pid, uid, what):
    st = proc_status(pid)
    assert st["Seccomp"] == ["2"], (what, st["Seccomp"])
    assert st["NoNewPrivs"] == ["1"], what
    assert st["Uid"] == [str(uid)] * 4, (what, st["Uid"])
    assert st["Groups"] == [], (what, st["Groups"])
    assert st["CapEff"] == ["0000000000000000"], what
    assert st["CapPrm"] == ["0000000000000000"], what
    # Not dumpable: the kernel then gives /proc/PID/* to root, whatever the
    # process's uid; and no core file could be written anyway.
    assert os.stat(f"/proc/{pid}/status").st_uid == 0, what
    with open(f"/proc/{pid}/limits") as f:
        core = [line.split()[4:6] for line in f
                if line.startswith("Max core file size")][0]
    assert core == ["0", "0"], (what, core)


class Regs(ctypes.Structure):
    _fields_ = [(n, ctypes.c_ulonglong) for n in (
        "r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi "
        "orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs").split()]


def inject_syscall(pid, nr):
    """Make pid's main thread, blocked in a system call (the worker's
    control loop polls), execute system call nr instead: what code run by
    an attacker in the worker would do. ptrace, as root."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p,
                            ctypes.c_void_p]
    attach, detach, getregs, setregs, peek = 16, 17, 12, 13, 1
    assert libc.ptrace(attach, pid, None, None) == 0, ctypes.get_errno()
    os.waitpid(pid, 0x40000000)     # __WALL: stopped
    r = Regs()
    assert libc.ptrace(getregs, pid, None, ctypes.byref(r)) == 0
    word = libc.ptrace(peek, pid, ctypes.c_void_p(r.rip - 2), None)
    assert word & 0xffff == 0x050f, hex(word)   # the syscall instruction
    r.rip -= 2                      # run it again...
    r.rax = nr                      # ...as system call nr
    r.orig_rax = 2 ** 64 - 1        # and no restart of the old one
    assert libc.ptrace(setregs, pid, None, ctypes.byref(r)) == 0
    assert libc.ptrace(detach, pid, None, None) == 0


def worker_uid(pid):
    """pid's uid, checked to be its real, effective, saved and fs uid, and
    its gids the same number."""
    st = proc_status(pid)
    uid = int(st["Uid"][0])
    assert st["Uid"] == [str(uid)] * 4 and st["Gid"] == [str(uid)] * 4, st
    return uid


def test_worker_and_front_end_are_confined(tmp):
    """Seccomp: 2 in both; the clone user for the front-end, a uid of its
    own for the worker; no capabilities, no groups, no dumps; the worker is
    chrooted into its own vm/<uid> and holds only what it needs; the
    front-end holds no /dev/kvm, no host key, no template, and nothing of
    suspended/ or vm/."""
    uid = pwd.getpwnam("clone").pw_uid
    s = Server(tmp)
    try:
        st, out, _ = s.ssh("alice", "echo hi")
        assert (st, out) == (0, "hi\n"), s.log.text()[-1500:]
        w = s.worker_pid("alice")
        assert w > 0
        wuid = worker_uid(w)
        assert 200000 <= wuid <= 265535, wuid     # the default range
        assert_confined(w, wuid, "worker")
        assert os.readlink(f"/proc/{w}/root") == \
            os.path.join(s.state, "vm", str(wuid))
        allowed = ("/dev/null", "/dev/kvm", f"/proc/{w}/pagemap",
                   f"/proc/{w}/smaps_rollup", "pipe:", "socket:",
                   "anon_inode:")
        for fd, t in fd_targets(w).items():
            assert t.startswith(allowed), f"worker fd {fd} -> {t}"
        fe = s.proc.pid
        assert_confined(fe, uid, "front-end")
        for fd, t in fd_targets(fe).items():
            assert "kvm" not in t and "ssh_host" not in t and \
                "templates" not in t and "/suspended" not in t and \
                not t.startswith(os.path.join(s.state, "vm")), \
                f"front-end fd {fd} -> {t}"
        # The status table still shows the worker's private memory: the
        # worker reports it (nobody else may read a non-dumpable process).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(os.path.join(s.state, "run", "status")) as f:
                row = [ln.split() for ln in f if ln.startswith("alice ")]
            if row and row[0][4] != "-":
                break
            time.sleep(0.5)
        assert row and float(row[0][4]) > 0 and int(row[0][5]) == w, row
        log = s.log.text()
        assert "front-end confined: uid %d, seccomp filter on" % uid in log
    finally:
        s.close()


def can_list(uid, path):
    """Whether uid (and the same gid, no groups) may list the directory
    path, reached through an fd root opened for it: so that only path's own
    mode and owner decide, not the directories above it (state_dir is
    root's 0700, which would stop anyone anyway)."""
    fd = os.open(path, os.O_PATH | os.O_DIRECTORY)
    try:
        p = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}",
                            "--clear-groups", "--", "ls", "-a",
                            f"/proc/self/fd/{fd}"], pass_fds=[fd],
                           capture_output=True, text=True, timeout=30)
    finally:
        os.close(fd)
    assert p.returncode == 0 or "Permission denied" in p.stderr, p
    return p.returncode == 0


def stat_of(path):
    st = os.lstat(path)
    return stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, \
        st.st_gid


def test_workers_have_uids_and_directories_of_their_own(tmp):
    """Issue 9 item 3. alice's and bob's workers run as two different uids
    of [vm] worker_uids, each chrooted into its own vm/<uid> (0700, its
    uid's), which the other cannot list, and neither can signal the other
    or the front-end; vm/ and suspended/ are root's.
    When alice's VM is suspended, her files are kept in suspended/alice,
    root's, and her worker's directory goes; her resume gets them back in
    a new worker's own directory, and her VM is as she left it."""
    s = Server(tmp, max_vms=4, detach=3, start=False)
    with open(s.config, "a") as f:
        f.write("worker_uids = 310000-310003\n")   # [vm] is the last
    s.start()
    alice = bob = None
    try:
        # both logged in (a VM detaches detach_timeout after its last
        # session ends)
        alice = subprocess.Popen(s.ssh_args("alice") +
                                 ["echo kept > /tmp/a; echo a; sleep 60"],
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        bob = subprocess.Popen(s.ssh_args("bob") + ["echo b; sleep 60"],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
        assert alice.stdout.readline() == b"a\n", s.log.text()[-1500:]
        assert bob.stdout.readline() == b"b\n", s.log.text()[-1500:]
        wa, wb = worker_of(s, "alice"), worker_of(s, "bob")
        ua, ub = worker_uid(wa), worker_uid(wb)
        assert ua != ub and {ua, ub} <= set(range(310000, 310004)), (ua, ub)
        for w, u in ((wa, ua), (wb, ub)):
            assert_confined(w, u, f"worker {w}")
            d = os.path.join(s.state, "vm", str(u))
            assert os.readlink(f"/proc/{w}/root") == d
            assert stat_of(d) == (stat.S_IFDIR, 0o700, u, u), stat_of(d)
        assert stat_of(os.path.join(s.state, "vm"))[1:] == (0o700, 0, 0)
        assert stat_of(os.path.join(s.state, "suspended"))[1:] == \
            (0o700, 0, 0)
        da = os.path.join(s.state, "vm", str(ua))
        db = os.path.join(s.state, "vm", str(ub))
        assert can_list(ua, da) and can_list(ub, db)
        assert not can_list(ua, db) and not can_list(ub, da)
        assert not can_list(pwd.getpwnam("clone").pw_uid, da)
        # Nor may one signal the other or the front-end (the issue's
        # measured attack: once all were the clone user, they could).
        for u, pid in ((ua, wb), (ub, wa), (ua, s.proc.pid)):
            p = subprocess.run(["setpriv", f"--reuid={u}", f"--regid={u}",
                                "--clear-groups", "--", "kill", "-0",
                                str(pid)], capture_output=True, text=True,
                               timeout=30)
            assert p.returncode != 0 and "not permitted" in p.stderr, p

        # alice's session ends: after detach_timeout her VM is suspended
        alice.kill()
        alice.wait()
        s.wait_state("alice", "suspended", 60)
        ka = os.path.join(s.state, "suspended", "alice")
        assert stat_of(ka) == (stat.S_IFDIR, 0o700, 0, 0), stat_of(ka)
        assert sorted(os.listdir(ka)) == ["pages", "state"]
        for f in ("state", "pages"):
            assert stat_of(os.path.join(ka, f))[0::2] == \
                (stat.S_IFREG, 0), stat_of(os.path.join(ka, f))
        deadline = time.monotonic() + 10
        while os.path.exists(da) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not os.path.exists(da), os.listdir(da)
        assert not can_list(ub, ka)

        alice = subprocess.Popen(s.ssh_args("alice") +
                                 ["cat /tmp/a; sleep 60"],
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        assert alice.stdout.readline() == b"kept\n", s.log.text()[-1500:]
        assert "vm alice: resumed" in s.log.text()
        wa2 = worker_of(s, "alice", other_than=wa)
        ua2 = worker_uid(wa2)
        assert wa2 != wa and ua2 not in (ua, ub), (wa, wa2, ua, ua2)
        assert os.readlink(f"/proc/{wa2}/root") == \
            os.path.join(s.state, "vm", str(ua2))
        assert not os.path.exists(ka)   # moved into her worker's
        assert worker_uid(wb) == ub and s.status().get("bob") == "running"
    finally:
        for p in (alice, bob):
            if p and p.poll() is None:
                p.kill()
                p.wait()
        s.close()


def test_worker_uids_must_be_nobodys(tmp):
    """[vm] worker_uids overlapping an account in /etc/passwd (here the
    clone user itself): serve refuses to start, naming the account."""
    uid = pwd.getpwnam("clone").pw_uid
    s = Server(tmp, max_vms=1, start=False)
    with open(s.config, "a") as f:
        f.write(f"worker_uids = {uid}-{uid}\n")
    p = subprocess.run([CLONE, "serve", "-c", s.config], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode != 0
    assert f"/etc/passwd: user clone has uid {uid}" in p.stderr, p.stderr
    assert "inside [vm] worker_uids" in p.stderr, p.stderr


def test_forbidden_syscall_kills_only_that_worker(tmp):
    """Code in alice's worker making a system call its filter does not
    list (getppid, injected with ptrace) kills that worker: alice's session
    ends with one line, bob's carries on, the server lives, and alice's
    next login gets a fresh clone."""
    s = Server(tmp)
    try:
        st, _, _ = s.ssh("alice", "echo mark > /tmp/mark")
        assert st == 0
        st, out, _ = s.ssh("bob", "echo up")
        assert out == "up\n"
        w = s.worker_pid("alice")
        alice = subprocess.Popen(s.ssh_args("alice") + ["sleep 120"],
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        bob = subprocess.Popen(s.ssh_args("bob") +
                               ["sleep 8; echo bob-still-here"],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
        time.sleep(2)
        inject_syscall(w, 110)      # getppid: not in the worker's list
        s.log.expect(r"worker %d killed by SIGSYS" % w, 30)
        out, err = alice.communicate(timeout=30)
        assert not os.path.exists(f"/proc/{w}")
        msg = (out + err).decode()
        assert "clone: your VM stopped unexpectedly" in msg, msg
        assert len([ln for ln in msg.splitlines() if ln.strip()]) == 1, msg
        out, _ = bob.communicate(timeout=60)
        assert out == b"bob-still-here\n", out
        assert s.proc.poll() is None
        st, out, _ = s.ssh("alice", "cat /tmp/mark 2>/dev/null || echo fresh")
        assert (st, out) == (0, "fresh\n"), (st, out)
        assert s.log.text().count("vm alice: cloned") == 2
    finally:
        s.close()


def test_vm_user_must_exist(tmp):
    """[vm] user naming no account: serve refuses to start, saying how to
    make it."""
    s = Server(tmp, start=False)
    with open(s.config, "a") as f:
        f.write("user = nosuchclone\n")
    p = subprocess.run([CLONE, "serve", "-c", s.config], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode != 0
    assert "[vm] user nosuchclone does not exist" in p.stderr, p.stderr
    assert "useradd" in p.stderr
