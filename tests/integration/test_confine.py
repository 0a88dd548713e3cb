"""Issue 5: a hostile guest or client harms nobody else. The VM workers and
the SSH front-end run as the unprivileged [vm] user under seccomp filters
with no_new_privs and no core dumps; a system call outside a worker's
filter kills that worker alone."""
import ctypes
import os
import pwd
import subprocess
import time

from harness import CLONE, Output, Skip
from sshharness import Server


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


def test_worker_and_front_end_are_confined(tmp):
    """Seccomp: 2 in both; the clone user, no capabilities, no dumps; the
    worker is chrooted into suspended/ and holds only what it needs; the
    front-end holds no /dev/kvm, no host key, no template."""
    uid = pwd.getpwnam("clone").pw_uid
    s = Server(tmp)
    try:
        st, out, _ = s.ssh("alice", "echo hi")
        assert (st, out) == (0, "hi\n"), s.log.text()[-1500:]
        w = s.worker_pid("alice")
        assert w > 0
        assert_confined(w, uid, "worker")
        assert os.readlink(f"/proc/{w}/root") == \
            os.path.join(s.state, "suspended")
        allowed = ("/dev/null", "/dev/kvm", f"/proc/{w}/pagemap",
                   f"/proc/{w}/smaps_rollup", "pipe:", "socket:",
                   "anon_inode:")
        for fd, t in fd_targets(w).items():
            assert t.startswith(allowed), f"worker fd {fd} -> {t}"
        fe = s.proc.pid
        assert_confined(fe, uid, "front-end")
        for fd, t in fd_targets(fe).items():
            assert "kvm" not in t and "ssh_host" not in t and \
                "templates" not in t, f"front-end fd {fd} -> {t}"
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
