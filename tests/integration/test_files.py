"""Issue 9 item 10, files: the host key and state_dir as `clone serve`
(root) finds them on disk. A key others could read stops the start; what
the clone user planted in suspended/ is not followed."""
import os
import subprocess

from harness import CLONE
from sshharness import Server, keygen


def test_unprotected_host_key_refused(tmp):
    """A 0644 host key: clone serve exits non-zero at start with a message
    naming the file (as OpenSSH's UNPROTECTED PRIVATE KEY FILE), before it
    listens, and leaves the key as it was (refused, not quietly fixed: it
    may have leaked already)."""
    s = Server(tmp, start=False)
    key = keygen(os.path.join(s.state, "ssh_host_ed25519_key"))
    os.chmod(key, 0o644)
    try:
        s.proc = subprocess.Popen([CLONE, "serve", "-c", s.config],
                                  stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
        try:
            _, err = s.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError("clone serve started with a 0644 host key")
        assert s.proc.returncode != 0, err
        assert f"{key}: UNPROTECTED PRIVATE KEY FILE: mode 0644" in err, err
        assert "listening on" not in err, err
        assert os.stat(key).st_mode & 0o7777 == 0o644
    finally:
        s.close()


def test_planted_links_not_followed(tmp):
    """state_dir left 0777, and what a clone-user process could have left
    in suspended/: bob -> a directory of root's, carol/state -> a file of
    root's. The server starts, makes state_dir 0700 with a log line, logs
    and ignores both VMs, and chowns nothing outside suspended/."""
    s = Server(tmp, start=False)
    etc = os.path.join(tmp, "etc")
    os.mkdir(etc, 0o755)
    for name in ("state", "pages", "shadow"):
        with open(os.path.join(etc, name), "w") as f:
            f.write("root's\n")
        os.chmod(os.path.join(etc, name), 0o600)
    susp = os.path.join(s.state, "suspended")
    os.makedirs(os.path.join(susp, "carol"))
    os.symlink(etc, os.path.join(susp, "bob"))
    os.symlink(os.path.join(etc, "shadow"),
               os.path.join(susp, "carol", "state"))
    os.chmod(s.state, 0o777)
    try:
        s.start()
        log = s.log.text()
        assert f"{s.state}: mode 0777" in log, log
        assert os.stat(s.state).st_mode & 0o7777 == 0o700
        assert "suspended/bob: a symbolic link" in log, log
        assert "suspended/carol/state: a symbolic link" in log, log
        assert "from an earlier run" not in log, log
        for p in (etc, *(os.path.join(etc, n)
                         for n in ("state", "pages", "shadow"))):
            st = os.stat(p)
            assert (st.st_uid, st.st_gid) == (0, 0), (p, st)
        st = s.status()
        assert "bob" not in st and "carol" not in st, st
    finally:
        s.close()
