"""Issue 5, pre-auth safety: a client that breaks the protocol before it has
authenticated is disconnected and no VM is cloned for it; failed logins
leave nothing behind in the server. The hostile clients are scripted with
paramiko's low-level Transport (rawssh.py)."""
import concurrent.futures
import os
import random
import re
import socket
import time

from rawssh import (MSG_DISCONNECT, MSG_SERVICE_REQUEST, MSG_USERAUTH_SUCCESS,
                    RawClient, channel_open, channel_request, load_key, msg,
                    need_paramiko, paramiko)
from sshharness import Server, keygen

# Long enough that no disconnect below is the login grace timer's doing;
# every wait for a disconnect is shorter than this.
GRACE = 60
DROP_TIMEOUT = 15

# What a server may send a client that has not authenticated: anything
# else (USERAUTH_SUCCESS, PK_OK, any channel message) is progress.
PREAUTH_REPLIES = {
    1,      # DISCONNECT
    2,      # IGNORE
    3,      # UNIMPLEMENTED
    4,      # DEBUG
    6,      # SERVICE_ACCEPT
    7,      # EXT_INFO
    51,     # USERAUTH_FAILURE
    53,     # USERAUTH_BANNER
}


def expect_dropped(c, what):
    """The server closes c's connection within DROP_TIMEOUT, having sent
    nothing an unauthenticated client may not see."""
    closed, why = c.wait_closed(DROP_TIMEOUT)
    got = c.types()
    c.close()
    assert closed, f"{what}: still connected after {DROP_TIMEOUT}s " \
        f"(got message types {got})"
    assert set(got) <= PREAUTH_REPLIES, f"{what}: server sent {got}"
    assert MSG_DISCONNECT in got or isinstance(why, (EOFError, OSError)), \
        f"{what}: the client gave up ({why!r}), not the server"


def settle_fds(s, want=None, timeout=DROP_TIMEOUT):
    """The serve process's fd count once it stops changing (connections
    are freed on its one-second tick), or once it is back to want."""
    deadline = time.monotonic() + timeout
    last = s.fds()
    while time.monotonic() < deadline:
        time.sleep(1.2)
        n = s.fds()
        if (want is None and n == last) or n == want:
            return n
        last = n
    return s.fds()


def assert_nothing_started(s, fds0):
    """No one authenticated, no VM, no worker process, no session; every
    connection's fd is gone."""
    log = s.log.text()
    assert not re.search(r"auth: \S+ accepted|signup:|vm \S+:|session \d+",
                         log), log
    assert s.status() == {}, s.status()
    assert s.workers() == [], s.workers()
    fds = settle_fds(s, fds0)
    assert fds == fds0, f"serve holds {fds} fds, {fds0} before"


def client(s, service_first):
    """A scripted client past the key exchange, having asked for the
    ssh-userauth service first or not."""
    c = RawClient(s.port)
    if service_first:
        c.send(msg(MSG_SERVICE_REQUEST, "ssh-userauth"))
        time.sleep(0.3)
    return c


def test_client_claims_auth_success(tmp):
    """A client that sends USERAUTH_SUCCESS itself (right after the key
    exchange, or after asking for the ssh-userauth service), then opens a
    session channel and asks for exec, is dropped; nothing runs."""
    need_paramiko()
    s = Server(tmp, grace=GRACE)
    try:
        fds0 = settle_fds(s)
        for service_first in (False, True):
            what = "USERAUTH_SUCCESS" + (" after the service request"
                                         if service_first else "")
            c = client(s, service_first)
            assert c.send(msg(MSG_USERAUTH_SUCCESS)), what
            time.sleep(0.3)
            c.send(channel_open(0))
            c.send(channel_request(0, "exec"))
            expect_dropped(c, what)
        assert_nothing_started(s, fds0)
    finally:
        s.close()


def test_channels_before_auth(tmp):
    """A session channel opened before authenticating, and exec, shell and
    pty-req requests for a channel never opened: each client is dropped;
    nothing runs."""
    need_paramiko()
    s = Server(tmp, grace=GRACE)
    try:
        fds0 = settle_fds(s)
        for service_first in (False, True):
            what = "CHANNEL_OPEN" + (" after the service request"
                                     if service_first else "")
            c = client(s, service_first)
            assert c.send(channel_open(0)), what
            c.send(channel_request(0, "exec"))
            expect_dropped(c, what)
        for kind in ("exec", "shell", "pty-req"):
            what = f"CHANNEL_REQUEST {kind} for an unopened channel"
            c = client(s, service_first=True)
            assert c.send(channel_request(0, kind)), what
            expect_dropped(c, what)
        assert_nothing_started(s, fds0)
    finally:
        s.close()


def send_raw(port, data):
    """Connect, send data at once (not waiting for the server's version
    line), read until the server closes; seconds that took, or None if it
    had not closed within DROP_TIMEOUT."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.settimeout(DROP_TIMEOUT)
        try:
            sock.sendall(data)
        except OSError:
            pass        # closed on us mid-way: that is the point
        try:
            while sock.recv(65536):
                pass
        except socket.timeout:
            return None
        except OSError:
            pass        # reset
    return time.monotonic() - t0


def test_garbage_instead_of_version(tmp):
    """Garbage for a version line (random bytes, an SSH-1 version, an
    overlong line, an HTTP request) is disconnected in bounded time, no VM
    is cloned, and a normal login works afterwards."""
    s = Server(tmp, grace=GRACE)
    try:
        fds0 = settle_fds(s)
        cases = {
            "64 KiB of random bytes": random.Random(5).randbytes(65536),
            "SSH-1.0": b"SSH-1.0-x\r\n",
            "a 64 KiB version line": b"SSH-2.0-" + b"a" * 65536 + b"\r\n",
            "a 300-byte version line, unfinished": b"SSH-2.0-" + b"a" * 300,
            "an HTTP request": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        }
        for what, data in cases.items():
            took = send_raw(s.port, data)
            assert took is not None, \
                f"{what}: still connected after {DROP_TIMEOUT}s"
        assert_nothing_started(s, fds0)
        assert s.ssh("alice", "echo still-serving") == \
            (0, "still-serving\n", ""), s.log.text()[-1500:]
    finally:
        s.close()


def failing_connection(port, user, key, tries):
    """One connection that fails `tries` public-key logins (each a signed
    request) and is then dropped by the server."""
    t = paramiko.Transport(socket.create_connection(("127.0.0.1", port),
                                                    timeout=60))
    try:
        t.start_client(timeout=60)
        for i in range(tries):
            try:
                t.auth_publickey(user, key)
            except paramiko.AuthenticationException:
                continue
            except EOFError:
                # The server answers the last failure and disconnects at
                # once; once in some 3,000 connections (under make check's
                # load, not reproduced since) paramiko saw the end of the
                # connection instead of that answer. Only on the last
                # try; the server's own count below is still checked.
                if i == tries - 1:
                    break
                raise
            raise AssertionError(f"{user} accepted")
        deadline = time.monotonic() + DROP_TIMEOUT
        while t.is_active() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not t.is_active(), \
            f"{user}: still connected after {tries} failures"
    finally:
        t.close()


def test_failed_logins_keep_memory_flat(tmp):
    """1,000 failed logins (a wrong key for a known user, unknown users,
    invalid names; sign-up off), max_auth_tries of them per connection so
    that the server drops each connection: the server's RSS does not grow
    and its fds return to what they were."""
    need_paramiko()
    tries = 3
    s = Server(tmp, open_signup=False, grace=GRACE, max_auth_tries=tries)
    try:
        os.makedirs(s.users)
        with open(s.key + ".pub") as f, \
                open(os.path.join(s.users, "alice"), "w") as g:
            g.write(f.read())
        good = load_key(s.key)
        wrong = load_key(keygen(os.path.join(tmp, "wrong")))
        cases = [("alice", wrong), ("nobody{}", good), ("Bad.Name{}", good)]
        fds_start = settle_fds(s)
        pool = concurrent.futures.ThreadPoolExecutor(16)
        seq = iter(range(1 << 30))

        def fail(logins):
            futs = []
            for _ in range(-(-logins // tries)):
                i = next(seq)
                user, key = cases[i % len(cases)]
                futs.append(pool.submit(failing_connection, s.port,
                                        user.format(i), key, tries))
            for f in futs:
                f.result(timeout=120)
            return len(futs)

        try:
            # Warm-up: the heap grows to what 16 connections at once need,
            # and every refusal path has run once.
            conns = fail(100)
            fds0 = settle_fds(s, fds_start)
            rss0 = s.rss_kib()
            t0 = time.monotonic()
            conns += fail(1000)
            took = time.monotonic() - t0
            fds1 = settle_fds(s, fds0)
            rss1 = s.rss_kib()
        finally:
            pool.shutdown(cancel_futures=True)
        print(f"  1,000 failed logins in {took:.1f} s; serve RSS "
              f"{rss0} -> {rss1} KiB, fds {fds0} -> {fds1}")
        assert s.log.text().count("too many failures") == conns
        assert fds1 == fds0 == fds_start, (fds_start, fds0, fds1)
        # Freed memory stays in the heap, so only a leak makes RSS grow
        # after the warm-up. 256 KiB is 64 pages of allocator slack, and
        # less than a leak of 300 bytes per failed login (or 800 per
        # connection) would add.
        assert rss1 - rss0 <= 256, f"RSS grew {rss1 - rss0} KiB"
        assert_nothing_started(s, fds0)
    finally:
        s.close()
