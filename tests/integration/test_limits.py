"""Limits before and after login, with real clients: MaxStartups and a
per-source cap on unauthenticated connections, max_auth_tries per request,
connections with no channel closed, silent clients found by keepalives, and
no key exchange but the configured modern ones."""
import os
import signal
import socket
import subprocess
import time

from rawssh import RawClient, load_key, msg, need_paramiko, paramiko
from sshharness import Server

MSG_SERVICE_REQUEST = 5
MSG_USERAUTH_REQUEST = 50
MSG_USERAUTH_FAILURE = 51


def raw_tcp(port, source="127.0.0.1"):
    """A TCP connection that says nothing: unauthenticated for as long as
    it stays."""
    c = socket.socket()
    c.bind((source, 0))
    c.settimeout(5)
    c.connect(("127.0.0.1", port))
    return c


def banner(c):
    """The server's version line, or b"" if it closed at once."""
    try:
        return c.recv(256)
    except (ConnectionResetError, socket.timeout):
        return b""


def test_startups_capped(tmp):
    """max_startups = 4 and per_source_max_startups = 2: a third silent
    connection from 127.0.0.1 is closed before any banner, two from
    127.0.0.2 are served, a fifth from 127.0.0.3 is closed (the total
    cap); once they go, a real login works."""
    s = Server(tmp, server={"max_startups": 4,
                            "per_source_max_startups": 2})
    conns = []
    try:
        for src in ("127.0.0.1", "127.0.0.1"):
            conns.append(raw_tcp(s.port, src))
            assert banner(conns[-1]).startswith(b"SSH-2.0-")
        extra = raw_tcp(s.port, "127.0.0.1")
        assert banner(extra) == b"", "third from one source let in"
        extra.close()
        for src in ("127.0.0.2", "127.0.0.2"):
            conns.append(raw_tcp(s.port, src))
            assert banner(conns[-1]).startswith(b"SSH-2.0-")
        extra = raw_tcp(s.port, "127.0.0.3")
        assert banner(extra) == b"", "fifth unauthenticated let in"
        extra.close()
        s.log.expect(r"dropped before key exchange: 1 past max_startups"
                     r"|past max_startups", 5)
        assert "past per_source_max_startups" in s.log.text()
        for c in conns:
            c.close()
        conns = []
        time.sleep(1.5)
        rc, out, err = s.ssh("alice", "echo ok")
        assert (rc, out) == (0, "ok\n"), (rc, out, err)
    finally:
        for c in conns:
            c.close()
        s.close()


def test_auth_tries_per_request(tmp):
    """A client that sends 40 public-key probes at once without waiting
    gets max_auth_tries (3) failures and is disconnected: the rest are
    never looked at (they were, until the once-a-second check came)."""
    need_paramiko()
    s = Server(tmp, open_signup=False, max_auth_tries=3)
    try:
        key = load_key(s.key)
        c = RawClient(s.port)
        c.send(msg(MSG_SERVICE_REQUEST, "ssh-userauth"))
        blob = key.asbytes()
        probe = msg(MSG_USERAUTH_REQUEST, "nobody", "ssh-connection",
                    "publickey", False, "ssh-ed25519", blob)
        for _ in range(40):
            if not c.send(probe):
                break
        closed, _ = c.wait_closed(10)
        assert closed, "still connected"
        # At most 3: the server closes with our later probes unread, so
        # its kernel may reset the connection and drop the last answer.
        fails = c.types().count(MSG_USERAUTH_FAILURE)
        assert 1 <= fails <= 3, f"{fails} failures answered"
        s.log.expect(r"too many failures for nobody", 5)
        c.close()
    finally:
        s.close()


def test_unused_connection_closed(tmp):
    """unused_connection_timeout = 2: a logged-in connection that opens no
    channel is closed after about 2 s; one with a session open is kept."""
    need_paramiko()
    s = Server(tmp, server={"unused_connection_timeout": 2,
                            "client_alive_interval": 0})
    try:
        key = load_key(s.key)
        idle = paramiko.Transport(socket.create_connection(
            ("127.0.0.1", s.port), timeout=30))
        idle.start_client(timeout=30)
        idle.auth_publickey("alice", key)
        busy = paramiko.Transport(socket.create_connection(
            ("127.0.0.1", s.port), timeout=30))
        busy.start_client(timeout=30)
        busy.auth_publickey("alice", key)
        ch = busy.open_session(timeout=60)
        ch.exec_command("sleep 30")
        t0 = time.monotonic()
        while idle.is_active() and time.monotonic() - t0 < 15:
            time.sleep(0.1)
        took = time.monotonic() - t0
        print(f"  channel-less connection closed after {took:.1f} s")
        assert not idle.is_active(), "channel-less connection kept"
        assert 1 <= took < 6, took
        time.sleep(3)
        assert busy.is_active(), "connection with a session closed"
        s.log.expect(r"no channel for 2 s; closing", 5)
        busy.close()
        idle.close()
    finally:
        s.close()


def test_keepalive_finds_silent_client(tmp):
    """client_alive_interval = 1, count 3: a live idle ssh session stays
    for 8 s; the same client stopped (SIGSTOP: its TCP stays up, it answers
    nothing) is disconnected within about 4 s, and its VM detaches."""
    s = Server(tmp, server={"client_alive_interval": 1,
                            "client_alive_count_max": 3})
    p = None
    try:
        p = subprocess.Popen(s.ssh_args("alice") + ["sleep 600"],
                             stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        s.log.expect(r"session \d+ for alice", 120)
        time.sleep(8)
        assert p.poll() is None, "a live client was dropped"
        assert "answered no keepalive" not in s.log.text()
        os.kill(p.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        s.log.expect(r"answered no keepalive in \d+ s; closing", 15)
        took = time.monotonic() - t0
        print(f"  stopped client dropped after {took:.1f} s")
        assert took < 8, took
        s.log.expect(r"vm alice: detached", 5)
    finally:
        if p and p.poll() is None:
            os.kill(p.pid, signal.SIGCONT)
            p.kill()
            p.wait()
        s.close()


def test_kex_modern_only(tmp):
    """The default kex_algorithms refuse a client that offers only finite
    field Diffie-Hellman (8192-bit group18 would pin the event loop); a
    configured list is what is offered."""
    s = Server(tmp)
    try:
        for kex in ("diffie-hellman-group18-sha512",
                    "diffie-hellman-group14-sha256"):
            p = subprocess.run(
                s.ssh_args("alice", extra=("-o", f"KexAlgorithms={kex}"))
                + ["echo ok"], capture_output=True, text=True, timeout=60)
            # the server ends the key exchange: no common method
            assert (p.returncode, p.stdout) == (255, ""), (kex, p)
        rc, out, err = s.ssh("alice", "echo ok")
        assert (rc, out) == (0, "ok\n"), (rc, out, err)
    finally:
        s.close()
    os.makedirs(os.path.join(tmp, "b"))
    s = Server(os.path.join(tmp, "b"),
               server={"kex_algorithms": "ecdh-sha2-nistp256"})
    try:
        p = subprocess.run(
            s.ssh_args("alice", extra=(
                "-o", "KexAlgorithms=curve25519-sha256")) + ["echo ok"],
            capture_output=True, text=True, timeout=60)
        assert p.returncode == 255, p
        p = subprocess.run(
            s.ssh_args("alice", extra=(
                "-o", "KexAlgorithms=ecdh-sha2-nistp256")) + ["echo ok"],
            capture_output=True, text=True, timeout=60)
        assert (p.returncode, p.stdout) == (0, "ok\n"), p
    finally:
        s.close()


def signup(s, user, key, source="127.0.0.1"):
    p = subprocess.run(s.ssh_args(user, key, extra=("-b", source))
                       + ["echo ok"], capture_output=True, text=True,
                       timeout=120)
    return p.returncode == 0 and p.stdout == "ok\n"


def test_signup_limits(tmp):
    """open_signup with 2 names a key and 3 an address an hour: a third
    name for one key is refused, a fourth from one address too (another
    address may); while the host is at capacity a new name is told so and
    not claimed. A refused name's keys file does not exist."""
    from sshharness import keygen
    s = Server(tmp, max_vms=3, detach=1,
               server={"signup_per_key_per_hour": 2,
                       "signup_per_source_per_hour": 3})
    try:
        k1, k2, k3 = (keygen(os.path.join(tmp, n)) for n in "abc")
        assert signup(s, "u1", k1)
        assert signup(s, "u2", k1)
        assert not signup(s, "u3", k1)
        assert "u3 from 127.0.0.1" in s.log.text()
        assert "refused: signup_per_key_per_hour" in s.log.text()
        assert signup(s, "u3", k2)
        assert not signup(s, "u4", k3)
        assert "refused: signup_per_source_per_hour" in s.log.text()
        assert not os.path.exists(os.path.join(s.users, "u4"))
        # at capacity: 3 VMs held by running sessions
        held = [subprocess.Popen(s.ssh_args(u, k) + ["sleep 120"],
                                 stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
                for u, k in (("u1", k1), ("u2", k1), ("u3", k2))]
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and any(
                    s.status().get(u) != "running" for u in
                    ("u1", "u2", "u3")):
                time.sleep(0.5)
            assert all(s.status().get(u) == "running"
                       for u in ("u1", "u2", "u3")), s.status()
            p = subprocess.run(s.ssh_args("u5", k3, extra=(
                "-b", "127.0.0.2")) + ["echo ok"], capture_output=True,
                text=True, timeout=60)
            assert "host at capacity" in p.stderr, p
            s.log.expect(r"signup: u5 from 127.0.0.2:\d+ not claimed: host "
                         r"at capacity", 10)
            assert not os.path.exists(os.path.join(s.users, "u5"))
        finally:
            for p in held:
                p.kill()
                p.wait()
        s.log.expect(r"vm u\d: detached", 30)
        time.sleep(2)
        assert signup(s, "u5", k3, source="127.0.0.2")
    finally:
        s.close()


def test_suspend_disk_caps(tmp):
    """suspend_max_mib_total = 14: alice's VM, holding an 8 MiB file, is
    suspended; bob's, as large, would pass the total and is ended instead,
    with a line saying why; his next login is a fresh clone. A per-user
    cap of 1 MiB ends even a fresh VM that is asked to suspend."""
    s = Server(tmp, detach=1, start=False)
    with open(s.config, "a") as f:
        f.write("suspend_max_mib_total = 14\n")
    s.start()
    try:
        fill = "head -c 8388608 /dev/zero > /tmp/fill; echo ok"
        for user in ("alice", "bob"):
            rc, out, err = s.ssh(user, fill, timeout=300)
            assert (rc, out) == (0, "ok\n"), (user, rc, out, err)
        s.wait_state("alice", "suspended", 120)
        s.log.expect(r"vm bob: not suspended: its [\d.]+ MiB beside the "
                     r"[\d.]+ MiB suspended would pass "
                     r"suspend_max_mib_total \(14\)", 120)
        s.log.expect(r"vm bob: ended: too large to suspend", 10)
        probe = "test -e /tmp/fill && echo kept || echo fresh"
        rc, out, err = s.ssh("bob", probe)
        assert (rc, out) == (0, "fresh\n"), (rc, out, err)
        rc, out, err = s.ssh("alice", probe)
        assert (rc, out) == (0, "kept\n"), (rc, out, err)   # resumed
    finally:
        s.close()
    os.makedirs(os.path.join(tmp, "b"))
    s = Server(os.path.join(tmp, "b"), detach=1, start=False)
    with open(s.config, "a") as f:
        f.write("suspend_max_mib_per_user = 1\n")
    s.start()
    try:
        rc, out, err = s.ssh("carol", "echo ok")
        assert (rc, out) == (0, "ok\n"), (rc, out, err)
        s.log.expect(r"vm carol: not suspended: its [\d.]+ MiB are more "
                     r"than suspend_max_mib_per_user \(1\)", 120)
        assert "vm carol: suspending" not in s.log.text()
    finally:
        s.close()
