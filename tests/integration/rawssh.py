"""A scripted SSH client for tests that must break the protocol or its
timing: paramiko's low-level Transport does the key exchange (and, if
asked, a public-key login), then the test sends raw messages
(Transport._send_message, the one call paramiko itself sends everything
through) and every message the server sends back is recorded, type and
payload, and kept from paramiko's own handlers.

paramiko is Debian's python3-paramiko (`make deps`); `make check` runs the
tests with /usr/bin/python3, which sees it."""
import socket
import sys
import threading
import time

from harness import Skip

try:
    import paramiko
    from paramiko.message import Message
except ImportError:
    paramiko = None

MSG_DISCONNECT, MSG_IGNORE = 1, 2
MSG_SERVICE_REQUEST = 5
MSG_USERAUTH_SUCCESS = 52
MSG_CHANNEL_OPEN, MSG_CHANNEL_OPEN_CONFIRMATION = 90, 91
MSG_CHANNEL_DATA, MSG_CHANNEL_CLOSE, MSG_CHANNEL_REQUEST = 94, 97, 98


def need_paramiko():
    if paramiko is None:
        raise Skip(f"{sys.executable} has no paramiko: install "
                   "python3-paramiko (make deps) and run the tests with "
                   "/usr/bin/python3, as make check does")


def msg(ptype, *fields):
    """An SSH message: str and bytes fields as strings, bool as boolean,
    int as uint32."""
    m = Message()
    m.add_byte(bytes([ptype]))
    for f in fields:
        if isinstance(f, bool):
            m.add_boolean(f)
        elif isinstance(f, int):
            m.add_int(f)
        else:
            m.add_string(f)
    return m


def channel_open(chan):
    return msg(MSG_CHANNEL_OPEN, "session", chan, 2 ** 21, 32768)


def channel_request(chan, kind, command="echo pwned"):
    extra = {"exec": [command], "shell": [],
             "pty-req": ["xterm", 80, 24, 0, 0, b"\x00"]}[kind]
    return msg(MSG_CHANNEL_REQUEST, chan, kind, True, *extra)


def load_key(path):
    need_paramiko()
    return paramiko.Ed25519Key.from_private_key_file(path)


class RawClient:
    """A connection that has done the key exchange, and the login if user
    and key are given, and from then on sends only what the test gives
    it."""

    def __init__(self, port, user=None, key=None):
        need_paramiko()
        self.got = []           # (type, payload after the type byte)
        self.cond = threading.Condition()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.t = paramiko.Transport(self.sock)
        # In place before the transport's thread starts: it is always
        # blocked in read_message, so a later swap would miss a message.
        self.raw = False
        read = self.t.packetizer.read_message

        def record():
            ptype, m = read()
            if not self.raw:
                return ptype, m
            with self.cond:
                self.got.append((ptype, m.asbytes()))
                self.cond.notify_all()
            if ptype == MSG_DISCONNECT:
                return ptype, Message(m.asbytes())  # paramiko closes
            return MSG_IGNORE, Message(b"")

        self.t.packetizer.read_message = record
        self.t.start_client(timeout=60)
        if user:
            self.t.auth_publickey(user, key)
        self.raw = True

    def types(self):
        with self.cond:
            return [abs(t) for t, _ in self.got]

    def send(self, m):
        """Send m; False if the server has dropped us already."""
        if not self.t.is_active():
            return False
        try:
            self.t._send_message(m)
        except (EOFError, OSError, paramiko.SSHException):
            return False
        return True

    def expect(self, ptype, timeout):
        """The payload (a Message after the type byte) of the first message
        of that type not yet taken; AssertionError after timeout s."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i, (t, payload) in enumerate(self.got):
                    if t == ptype:
                        self.got[i] = (-t, payload)     # taken
                        return Message(payload)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no message {ptype} after {timeout}s; got "
                        f"{[t for t, _ in self.got]}")
                self.cond.wait(min(left, 0.2))

    def wait_closed(self, timeout):
        """Wait until the transport has ended; whether it had, and why
        (paramiko's saved exception)."""
        deadline = time.monotonic() + timeout
        while self.t.is_active() and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self.t.is_active(), self.t.saved_exception

    def close(self):
        self.t.close()
