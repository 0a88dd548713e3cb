"""Issue 9 item 2: the SSH window is enforced and client input memory is
bounded. A client that ignores the window is refused (its connection is
no longer read) or disconnected (once it has sent more than any window we
granted); the front-end's memory does not follow what it sends, and other
users are served meanwhile. A client that keeps to the window gets all
its input through a slow guest."""
import hashlib
import os
import subprocess
import threading
import time

from rawssh import load_key, need_paramiko, paramiko
from sshharness import Server

MIB = 1 << 20
FLOOD = 256 * MIB
# The bound on the front-end's RSS growth while one client sends
# FLOOD into a session that never reads its stdin.
RSS_GROWTH_KIB = 64 * 1024
# libssh 0.10's window, as sshd/chan_input.h models it: the window a
# session channel opens with. Seen by the client as its send window.
LIBSSH_INITIAL_WINDOW = 32000


def login(port, user, key):
    """A paramiko Transport logged in as user."""
    need_paramiko()
    t = paramiko.Transport(("127.0.0.1", port))
    t.start_client(timeout=60)
    t.auth_publickey(user, key)
    return t


class Flood:
    """Sends FLOOD bytes on chan from a thread, as fast as the connection
    takes them, with the window ignored: paramiko sends while its idea of
    the window (out_window_size) is above zero, and it is set far beyond
    anything the server granted."""

    def __init__(self, chan):
        self.chan = chan
        self.sent = 0
        self.error = None
        chan.out_window_size = 1 << 40
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        block = b"x" * MIB
        try:
            while self.sent < FLOOD:
                self.chan.out_window_size = 1 << 40
                n = self.chan.send(block)
                if n <= 0:
                    break
                self.sent += n
        except Exception as e:      # the server dropped us: expected
            self.error = e


def timed_echo(s, user):
    t0 = time.monotonic()
    st, out, err = s.ssh(user, "echo ok", timeout=120)
    assert (st, out) == (0, "ok\n"), (st, out, err, s.log.text()[-1500:])
    return time.monotonic() - t0


def watch(s, flood, rss0, seconds):
    """Until the flood's thread ends or seconds pass: the peak RSS growth
    (KiB), and the bytes sent at the end."""
    peak = 0
    deadline = time.monotonic() + seconds
    while flood.thread.is_alive() and time.monotonic() < deadline:
        peak = max(peak, s.rss_kib() - rss0)
        time.sleep(0.2)
    return max(peak, s.rss_kib() - rss0), flood.sent


def test_client_ignoring_window_is_refused(tmp):
    """One channel, `sleep 600`, flooded with 256 MiB by a client that
    ignores the window: once the guest's stdin and the window are full
    the connection is no longer read, so the client's sends block (its
    data refused) or it is disconnected; RSS grows by less than 64 MiB;
    another user's `ssh ... echo ok` meanwhile takes about its usual time.
    (Before the fix libssh buffered all of it: RSS grew by the flood.)"""
    s = Server(tmp)
    t = None
    try:
        timed_echo(s, "bob")    # bob's VM is up
        base = timed_echo(s, "bob")
        t = login(s.port, "mallory", load_key(s.key))
        chan = t.open_session()
        chan.exec_command("sleep 600")
        # The model in chan_input.h: libssh's window, as it opens.
        assert chan.out_window_size == LIBSSH_INITIAL_WINDOW, \
            chan.out_window_size
        time.sleep(3)           # mallory's VM is up, sleep runs
        rss0 = s.rss_kib()
        flood = Flood(chan)
        time.sleep(5)
        during = timed_echo(s, "bob")
        peak, sent = watch(s, flood, rss0, 30)
        refused = flood.thread.is_alive() or flood.error is not None
        print(f"  flood refused: sent {sent // 1024} KiB, RSS +{peak} KiB, "
              f"echo ok {during:.1f} s (before {base:.1f} s)")
        assert refused and sent < FLOOD, (sent, flood.error)
        assert peak < RSS_GROWTH_KIB, (peak, sent)
        # Usual time on a loaded machine: a generous factor, not a
        # tight bound (the machine is shared).
        assert during < 3 * base + 10, (during, base)
        assert s.proc.poll() is None, s.log.text()[-1500:]
    finally:
        if t:
            t.close()
        s.close()


def test_client_beyond_window_is_disconnected(tmp):
    """The same flood on one channel while a second channel of the same
    connection is idle (so the connection is still read, for it): once
    libssh holds more input than any window it granted, the server
    disconnects the client, with a log line; RSS grows by less than
    64 MiB."""
    s = Server(tmp)
    t = None
    try:
        t = login(s.port, "mallory", load_key(s.key))
        idle = t.open_session()
        idle.exec_command("sleep 600")
        chan = t.open_session()
        chan.exec_command("sleep 600")
        time.sleep(5)
        rss0 = s.rss_kib()
        flood = Flood(chan)
        peak, sent = watch(s, flood, rss0, 60)
        print(f"  flood disconnected: sent {sent // 1024} KiB, "
              f"RSS +{peak} KiB")
        assert not t.is_active() or flood.error is not None, \
            (sent, s.log.text()[-1500:])
        assert sent < FLOOD, sent
        assert peak < RSS_GROWTH_KIB, (peak, sent)
        assert "input beyond the SSH window; disconnecting" in \
            s.log.text(), s.log.text()[-1500:]
        assert timed_echo(s, "bob") < 120
    finally:
        if t:
            t.close()
        s.close()


def test_stdin_through_slow_guest_arrives_whole(tmp):
    """Real ssh, 8 MiB on stdin into a guest that first sleeps (the
    window and our buffers fill, the connection stops being read) and
    then writes it to a file: all of it arrives, in order (its sha256
    in the guest is the one sent), and the EOF after it."""
    s = Server(tmp)
    try:
        data = os.urandom(8 * MIB)
        assert s.ssh("alice", "true")[0] == 0     # the VM is up
        t0 = time.monotonic()
        st, out, err = s.ssh("alice", "sleep 5; cat > ~/in; sha256sum ~/in",
                             stdin=data, timeout=300)
        print(f"  8 MiB stdin to a file: {time.monotonic() - t0:.1f} s")
        assert st == 0, (st, out, err, s.log.text()[-1500:])
        assert out.split()[0] == hashlib.sha256(data).hexdigest(), \
            (out, err)
    finally:
        s.close()


def test_echo_through_slow_guest(tmp):
    """Real ssh, 8 MiB through `cat` and back: input and output both
    stall on windows (theirs and ours) and neither waits on the other for
    ever; what comes back is what went in."""
    s = Server(tmp)
    try:
        data = os.urandom(8 * MIB)
        assert s.ssh("alice", "true")[0] == 0     # the VM is up
        t0 = time.monotonic()
        p = subprocess.run(s.ssh_args("alice") + ["cat"], input=data,
                           capture_output=True, timeout=300)
        print(f"  8 MiB through cat: {time.monotonic() - t0:.1f} s")
        assert p.returncode == 0, (p.returncode, p.stderr,
                                   s.log.text()[-1500:])
        assert len(p.stdout) == len(data) and p.stdout == data
    finally:
        s.close()


def test_window_adjust_read_while_input_waits(tmp):
    """A client that keeps to the window, runs `cat`, sends 8 MiB and
    reads nothing back for a while: cat's output fills the client's
    window, cat stops reading, its input fills ours. Then the client
    reads: its window adjusts must still be read (the connection is not
    left unread while a channel waits for them), and all 8 MiB come back
    in order, then the exit status."""
    s = Server(tmp)
    t = None
    try:
        data = os.urandom(8 * MIB)
        t = login(s.port, "alice", load_key(s.key))
        chan = t.open_session()
        chan.exec_command("cat")
        sender = threading.Thread(target=chan.sendall, args=(data,),
                                  daemon=True)
        sender.start()
        time.sleep(15)          # nothing read: both ways fill up
        chan.settimeout(120)
        got = bytearray()
        while len(got) < len(data):
            b = chan.recv(1 << 16)
            assert b, (len(got), s.log.text()[-1500:])
            got += b
        sender.join(60)
        assert not sender.is_alive()
        chan.shutdown_write()
        assert chan.recv_exit_status() == 0
        assert bytes(got) == data
    finally:
        if t:
            t.close()
        s.close()
