"""Issue 2: the VMM boots the real guest image on the real KVM."""
import os
import subprocess
import time

from harness import (BootSession, Skip, need_kvm, run_boot, write_config,
                     KERNEL, INITRD)


def boot_ready(tmp, args=(), rows=24, cols=80):
    s = BootSession(write_config(tmp), args, rows, cols)
    try:
        s.err.expect(r"guest agent ready", 180)
    except BaseException:
        s.close()
        raise
    return s


def wait_size(s, want, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        got = s.run("stty size").strip()
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.5)


def test_shell_commands_resize_and_reboot(tmp):
    """A login shell on the console: commands and their output, the window
    size at start and after a resize, and `reboot` ending the VM."""
    need_kvm()
    s = boot_ready(tmp, rows=40, cols=100)
    try:
        assert s.run("echo MARK-$((6*7))") == "MARK-42\n"
        assert s.run("uname -sr").startswith("Linux 6.1.")
        assert s.run("id -u") == "0\n"
        assert s.run("cat /proc/1/comm") == "init\n"
        got = wait_size(s, "40 100")
        assert got == "40 100", f"stty size {got!r}; log:\n{s.err.text()}"
        s.resize(50, 132)
        got = wait_size(s, "50 132")
        assert got == "50 132", f"stty size {got!r}; log:\n{s.err.text()}"
        s.send("reboot\n")
        assert s.wait(60) == 0
        assert "VM ended: guest rebooted" in s.err.text()
    finally:
        s.close()


def test_poweroff_and_serial_boot_messages(tmp):
    """--serial shows the kernel's boot messages; `poweroff` ends the VM
    cleanly with that reason and exit status 0."""
    need_kvm()
    s = boot_ready(tmp, ["--serial"])
    try:
        assert "Linux version 6.1." in s.err.text()
        assert "Run /init as init process" in s.err.text()
        s.send("poweroff\n")
        assert s.wait(60) == 0
        assert "VM ended: guest powered off" in s.err.text()
    finally:
        s.close()


def test_escape_key_ends_session(tmp):
    """Ctrl-] ends `clone boot` and stops the VM; the terminal gets its
    settings back."""
    need_kvm()
    s = boot_ready(tmp)
    try:
        s.run("true")
        s.send(b"\x1d")
        assert s.wait(20) == 0
        assert "session ended" in s.err.text()
    finally:
        s.close()


def expect_error(tmp, status_err, *fragments):
    status, err = status_err
    lines = [l for l in err.splitlines() if "PVM" not in l]
    assert status == 1, f"status {status}, stderr:\n{err}"
    assert len(lines) == 1, f"want one line of error, got:\n{err}"
    for f in fragments:
        assert f in lines[0], f"{f!r} not in {lines[0]!r}"


def test_bad_kernel_and_initrd_are_named(tmp):
    """Missing or corrupt kernel or initrd, too little memory: one line
    naming the file or the cause, exit status 1. No guest boots."""
    if not os.path.exists("/dev/kvm"):
        raise Skip("no /dev/kvm on this host")
    missing = os.path.join(tmp, "nonexistent-vmlinux")
    expect_error(tmp, run_boot(write_config(tmp, kernel=missing)),
                 missing, "No such file")

    junk = os.path.join(tmp, "junk")
    with open(junk, "wb") as f:
        f.write(os.urandom(8192))
    expect_error(tmp, run_boot(write_config(tmp, kernel=junk)),
                 junk, "neither an ELF vmlinux nor a bzImage")

    trunc = os.path.join(tmp, "truncated-vmlinux")
    with open(KERNEL, "rb") as f, open(trunc, "wb") as g:
        g.write(f.read(1 << 20))
    expect_error(tmp, run_boot(write_config(tmp, kernel=trunc)),
                 trunc, "out of the file")

    empty = os.path.join(tmp, "empty")
    open(empty, "w").close()
    expect_error(tmp, run_boot(write_config(tmp, kernel=empty)),
                 empty, "empty")

    nord = os.path.join(tmp, "no-initrd")
    expect_error(tmp, run_boot(write_config(tmp, initrd=nord)),
                 nord, "No such file")

    big = os.path.join(tmp, "big-initrd")
    with open(big, "wb") as f:
        f.truncate(80 << 20)
    expect_error(tmp, run_boot(write_config(tmp, initrd=big, memory_mb=64)),
                 big, "does not fit")

    status, err = run_boot(write_config(tmp, memory_mb=16))
    assert status == 1 and "memory_mb" in err and "clone.ini:" in err, err


def test_no_kvm_is_a_clear_error(tmp):
    """Without /dev/kvm (hidden in a private mount namespace): one line."""
    if subprocess.run(["unshare", "--mount", "true"]).returncode != 0:
        raise Skip("cannot make a mount namespace here")
    cfg = write_config(tmp)
    p = subprocess.run(
        ["unshare", "--mount", "sh", "-c",
         'mount -t tmpfs none /dev && exec "$0" boot -c "$1"',
         os.path.join(os.path.dirname(KERNEL), "..", "clone"), cfg],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    err = p.stderr.decode()
    assert p.returncode == 1, err
    assert "/dev/kvm: No such file or directory" in err, err
