"""Issue 5, load: many logins at once, and a client as slow as a loaded
one."""
import time

from loadharness import Round, idle, raise_nofile
from rawssh import (MSG_CHANNEL_CLOSE, MSG_CHANNEL_DATA,
                    MSG_CHANNEL_OPEN_CONFIRMATION, MSG_CHANNEL_REQUEST,
                    RawClient, channel_open, channel_request, load_key, msg)
from sshharness import Server


def open_exec(c, chan, command):
    """Open session channel chan, exec command; the server's number for
    the channel."""
    c.send(channel_open(chan))
    m = c.expect(MSG_CHANNEL_OPEN_CONFIRMATION, 60)
    assert m.get_int() == chan
    theirs = m.get_int()
    c.send(channel_request(theirs, "exec", command))
    return theirs


def test_late_channel_close(tmp):
    """A client that answers the server's CHANNEL_CLOSE only after the
    server's one-second tick has freed the channel (as a loaded client
    does), while its next session runs: that session is not disturbed
    and the server carries on. (Before the fix libssh called back into
    the freed channel; 200 concurrent logins crashed the server with
    it. A release build may survive that silently; ASan reports it.)"""
    s = Server(tmp)
    try:
        c = RawClient(s.port, "alice", load_key(s.key))
        first = open_exec(c, 0, "true")
        c.expect(MSG_CHANNEL_CLOSE, 60)
        time.sleep(2.5)         # two ticks: the server has freed it
        open_exec(c, 1, "sleep 4; echo alive")
        time.sleep(1)
        c.send(msg(MSG_CHANNEL_CLOSE, first))
        m = c.expect(MSG_CHANNEL_DATA, 60)
        m.get_int()
        assert m.get_binary() == b"alive\n"
        m = c.expect(MSG_CHANNEL_REQUEST, 30)
        m.get_int()
        assert m.get_text() == "exit-status"
        m.get_boolean()
        assert m.get_int() == 0
        assert s.proc.poll() is None, s.log.text()[-1500:]
        c.close()
        assert s.ssh("alice", "echo fine") == (0, "fine\n", "")
    finally:
        s.close()


CLIENTS = 200
# 200 logins for 10 VMs: the clone path and the capacity path at once, in
# under a minute a round here (2 cores, PVM, shared: 20 VMs took 50 s a
# round quiet and 110 s busy). tests/bench/load.py runs the same with 100
# VMs, 4 to 6 minutes a round.
MAX_VMS = 10
LOGIN_TIMEOUT = 240
# The heap's high-water mark differs by a few hundred KiB between rounds
# (up to 356 KiB seen); a leaked libssh session per login (tens of KiB)
# would be megabytes. 1 MiB is 5 KiB a login.
RSS_SLACK_KIB = 1024


def test_200_concurrent_logins(tmp):
    """200 real ssh logins at once, 200 users, max_vms 10: each runs its
    command or gets the capacity message; none fails or hangs. Two rounds;
    after each, once the VMs are suspended and reaped and the connections
    closed, the server holds exactly the fds it had before any load. Its
    RSS after the first round stays at the heap's high-water mark (glibc
    keeps what was freed); the second round must leave it within
    RSS_SLACK_KIB of that."""
    raise_nofile()
    s = Server(tmp, max_vms=MAX_VMS, detach=1, reap=2)
    try:
        fds0, rss0 = s.fds(), s.rss_kib()
        assert s.ssh("warm", "true")[0] == 0    # every code path once
        assert idle(s, fds0, 60), (s.status(), s.fds(), fds0)
        after = []
        for r in range(2):
            rd = Round(s, CLIENTS, f"r{r}u", LOGIN_TIMEOUT)
            ok, cap = len(rd.by["ok"]), len(rd.by["capacity"])
            assert not rd.by["failed"], \
                f"{len(rd.by['failed'])} failed:\n{rd.failures()}\n" + \
                s.log.text()[-2000:]
            assert ok >= MAX_VMS and cap >= 1, (ok, cap)
            assert idle(s, fds0, 120), (s.status(), s.fds(), fds0)
            after.append(s.rss_kib())
            print(f"  round {r}: {ok} ok, {cap} at capacity in "
                  f"{rd.wall:.1f} s (p50 {rd.latency(50):.1f} s, p99 "
                  f"{rd.latency(99):.1f} s); RSS {rss0} -> peak "
                  f"{rd.peak_rss} -> {after[-1]} KiB, fds {fds0} -> peak "
                  f"{rd.peak_fds} -> {s.fds()}")
        assert after[1] - after[0] <= RSS_SLACK_KIB, after
        assert s.proc.poll() is None
    finally:
        s.close()
