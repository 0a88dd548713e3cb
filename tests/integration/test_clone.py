"""Issue 3: the warm template and copy-on-write clones of it."""
import hashlib
import os
import re
import shutil
import time

from harness import (STATE, clone_cmd, need_kvm, run_session, write_config)


def template_dir(cfg):
    status, out, err = clone_cmd(cfg, "template")
    assert status == 0, err
    return out.strip(), err


def file_hash(path):
    h = hashlib.blake2b()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def assert_clock(s):
    """The guest's wall clock within 1 s of the host's: its `date +%s`
    (whole seconds) against the host's clock before and after asking."""
    t0 = time.time()
    guest = int(s.run("date +%s"))
    t1 = time.time()
    assert int(t0) - 1 <= guest <= t1 + 1, (t0, guest, t1)


def test_template_built_once_then_reused(tmp):
    """The first use builds the template (one cold boot); after that it is
    reused from disk without booting."""
    need_kvm()
    cfg = write_config(tmp)
    d, _ = template_dir(cfg)
    assert os.path.exists(os.path.join(d, "memory"))
    t0 = time.monotonic()
    d2, err = template_dir(cfg)
    assert d2 == d
    assert "building" not in err and "rebuilding" not in err, err
    assert time.monotonic() - t0 < 10


def test_two_clones_are_distinct_and_private(tmp):
    """Two clones: different random bytes and machine ids, their own
    hostnames and users, the host's date; a write in one is invisible to
    the other and to the template."""
    need_kvm()
    cfg = write_config(tmp)
    d, _ = template_dir(cfg)
    mem_before = file_hash(os.path.join(d, "memory"))
    a = run_session(cfg, "alice")
    b = run_session(cfg, "bob")
    try:
        ra = a.run("head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'")
        rb = b.run("head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'")
        assert len(ra.strip()) == 64 and ra != rb
        ma, mb = a.run("cat /etc/machine-id"), b.run("cat /etc/machine-id")
        assert re.fullmatch(r"[0-9a-f]{32}\n", ma) and ma != mb
        assert a.run("hostname") == "alice\n"
        assert b.run("hostname") == "bob\n"
        assert a.run("id -un") == "alice\n" and b.run("id -un") == "bob\n"
        assert a.run("pwd") == "/home/alice\n"
        for s in (a, b):
            assert_clock(s)
        a.run("echo secret-of-alice > /tmp/mine")
        assert a.run("cat /tmp/mine") == "secret-of-alice\n"
        assert "No such file" in b.run("cat /tmp/mine 2>&1")
        log = a.run("dmesg | grep -iE 'soft lockup|hung task|"
                    "clocksource.*unstable|BUG' || true")
        assert log == "", log
    finally:
        a.close()
        b.close()
    c = run_session(cfg, "carol")
    try:
        assert "No such file" in c.run("cat /tmp/mine 2>&1")
    finally:
        c.close()
    assert file_hash(os.path.join(d, "memory")) == mem_before


def test_suspend_resume_keeps_process_file_and_clock(tmp):
    """Pause and resume from RAM, then suspend to disk (the worker exits)
    and resume in a new worker: a background process and a file in tmpfs
    are still there, and the wall clock is right."""
    need_kvm()
    cfg = write_config(tmp)
    s = run_session(cfg, "dave")
    try:
        pid = s.run("sleep 100000 & echo $!").strip()
        assert pid.isdigit()
        s.run("echo kept > /tmp/file")
        start = len(s.err.text())
        s.send(b"\x1dz")
        s.err.expect(r"VM resumed from RAM in ([0-9.]+) ms", 30, start)
        assert s.run(f"kill -0 {pid} && echo alive") == "alive\n"
        time.sleep(3)   # the guest clock must not lose this
        start = len(s.err.text())
        s.send(b"\x1ds")
        m = s.err.expect(r"VM resumed from disk in ([0-9.]+) ms", 60, start)
        assert "private pages" in s.err.text()[start:]
        assert s.run(f"kill -0 {pid} && echo alive") == "alive\n"
        assert s.run("cat /tmp/file") == "kept\n"
        assert_clock(s)
        assert float(m.group(1)) < 1000
    finally:
        s.close()


def test_corrupt_template_is_rebuilt(tmp):
    """A template whose memory file was damaged is detected by its hash
    and rebuilt, with a log line saying why."""
    need_kvm()
    cfg = write_config(tmp)
    d, _ = template_dir(cfg)
    state = os.path.join(tmp, "state")
    key = os.path.basename(d)
    shutil.copytree(os.path.dirname(d), os.path.join(state, "templates"))
    mem = os.path.join(state, "templates", key, "memory")
    with open(mem, "r+b") as f:
        f.seek(0x1000000)       # inside the kernel image: never a hole
        byte = f.read(1)
        f.seek(0x1000000)
        f.write(bytes([byte[0] ^ 0xff]))
    cfg2 = write_config(tmp, state_dir=state)
    status, out, err = clone_cmd(cfg2, "template")
    assert status == 0, err
    assert f"template {key}: " in err and "checksum mismatch; rebuilding" \
        in err, err
    assert "built in" in err
    status, out, err = clone_cmd(cfg2, "template")
    assert status == 0 and "rebuilding" not in err, err


def test_thousand_clone_destroy_cycles_leak_nothing(tmp):
    """1,000 clone/destroy cycles through worker processes: the parent's fd
    count and RSS end where they began."""
    need_kvm()
    cfg = write_config(tmp)
    template_dir(cfg)
    status, out, err = clone_cmd(cfg, "bench-clones", "-n", "0", "--idle",
                                 "0", "--cycles", "1000", timeout=900)
    assert status == 0, err[-2000:]
    v = dict(l.split("=", 1) for l in out.split() if "=" in l)
    assert v["cycles"] == "1000"
    assert v["parent_fds_after"] == v["parent_fds_before"], v
    assert int(v["parent_rss_kib_after"]) - \
        int(v["parent_rss_kib_before"]) <= 256, v
