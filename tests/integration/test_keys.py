"""The keys monitor under attack, with real logins (paramiko): a keys file
that would stall a lookup must stall nobody else, and no answer may ever
reach a login other than the one that asked."""
import os
import signal
import socket
import threading
import time

from rawssh import load_key, need_paramiko, paramiko
from sshharness import Server, keygen


def auth(port, user, key, timeout=30):
    """One signed public-key login; True if the server accepted it."""
    t = paramiko.Transport(socket.create_connection(("127.0.0.1", port),
                                                    timeout=timeout))
    try:
        t.start_client(timeout=timeout)
        try:
            t.auth_publickey(user, key)
            return True
        except paramiko.AuthenticationException:
            return False
    finally:
        t.close()


def timed_auth(port, user, key):
    t0 = time.monotonic()
    ok = auth(port, user, key)
    return ok, time.monotonic() - t0


def test_fifo_keys_file_stalls_nobody(tmp):
    """bob's keys file is a FIFO. While his login is under way alice logs
    in at normal speed; afterwards, logins with mallory's key as alice (and
    alice's as mallory) all fail, and alice's own still works."""
    need_paramiko()
    s = Server(tmp, open_signup=False)
    try:
        os.makedirs(s.users)
        mallory = keygen(os.path.join(tmp, "mallory"))
        for user, key in (("alice", s.key), ("mallory", mallory)):
            with open(key + ".pub") as f, \
                    open(os.path.join(s.users, user), "w") as g:
                g.write(f.read())
        fifo = os.path.join(s.users, "bob")
        os.mkfifo(fifo)
        akey, mkey = load_key(s.key), load_key(mallory)

        ok, base = timed_auth(s.port, "alice", akey)
        assert ok
        bob = []
        t = threading.Thread(
            target=lambda: bob.append(timed_auth(s.port, "bob", akey)))
        t.start()
        time.sleep(0.5)
        ok, during = timed_auth(s.port, "alice", akey)
        t.join(60)
        print(f"  alice's login: {base:.2f} s alone, {during:.2f} s while "
              f"bob's keys file is a FIFO; bob refused in "
              f"{bob[0][1]:.2f} s")
        assert ok
        assert bob and bob[0][0] is False
        # A lookup stalled on the FIFO made every login wait 5 s.
        assert during < base + 2, (base, during)
        assert "bob: refused: not a regular file" in s.log.text()

        # A monitor that had blocked in open() would now go on and answer
        # late, into the next question.
        try:
            w = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            with open(s.key + ".pub", "rb") as f:
                os.write(w, f.read())
            os.close(w)
        except OSError:
            pass        # nobody has it open: no lookup is stuck on it
        for i in range(6):
            assert auth(s.port, "alice", akey), f"alice refused ({i})"
            assert not auth(s.port, "alice", mkey), \
                f"mallory's key opened alice's account ({i})"
            assert not auth(s.port, "mallory", akey), \
                f"alice's key opened mallory's account ({i})"
        assert auth(s.port, "mallory", mkey)
    finally:
        s.close()


def test_stuck_monitor_replaced(tmp):
    """The keys monitor stops answering (SIGSTOP): the login waiting on it
    is refused within KEYS_TIMEOUT_MS (5 s), a login that came meanwhile
    is asked again of a new monitor and let in, the stuck one is killed
    and reaped, and logins go on at normal speed."""
    need_paramiko()
    s = Server(tmp, open_signup=False)
    try:
        os.makedirs(s.users)
        for user in ("alice", "bob"):
            with open(s.key + ".pub") as f, \
                    open(os.path.join(s.users, user), "w") as g:
                g.write(f.read())
        key = load_key(s.key)
        assert auth(s.port, "alice", key)
        old = s.keys_monitors()
        assert len(old) == 1, old
        os.kill(old[0], signal.SIGSTOP)
        alice = []
        t = threading.Thread(
            target=lambda: alice.append(timed_auth(s.port, "alice", key)))
        t.start()
        time.sleep(2)
        bob_ok, bob_took = timed_auth(s.port, "bob", key)
        t.join(60)
        ok, took = alice[0]
        print(f"  alice refused after {took:.1f} s; bob, who came 2 s "
              f"later, {'in' if bob_ok else 'refused'} after "
              f"{bob_took:.1f} s")
        assert ok is False
        assert 4.5 < took < 9, took
        assert bob_ok is True, "the other login was refused too"
        s.log.expect(r"keys monitor: no answer for alice", 5)
        s.log.expect(r"keys monitor \d+ killed", 5)
        new = s.keys_monitors()
        assert len(new) == 2 and new[1] != old[0], new
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{old[0]}") and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{old[0]}"), "not reaped"
        ok, took = timed_auth(s.port, "alice", key)
        assert ok and took < 2, took
    finally:
        s.close()
