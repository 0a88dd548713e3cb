#!/usr/bin/env python3
"""Write the seed corpora in tests/fuzz/corpus/<harness>/: small, meaningful
inputs that start each fuzzer where the code is (a driver bringing a port
up, a valid frame, a valid config, a valid authorized_keys line), and a few
hostile ones. The byte scripts follow the op tables at the top of each
harness. Inputs that once crashed or hung a harness are kept there as
libFuzzer wrote them (crash-*, timeout-*), not written here. Run from the top directory:

    python3 tests/fuzz/seeds.py
"""
import os
import struct

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(harness, name, data):
    d = os.path.join(TOP, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def u8(v): return struct.pack("<B", v & 0xff)
def u16(v): return struct.pack("<H", v & 0xffff)
def u32(v): return struct.pack("<I", v & 0xffffffff)
def u64(v): return struct.pack("<Q", v & 0xffffffffffffffff)


# ---- virtio_console: ops of tests/fuzz/fuzz_virtio_console.c -------------
(DESC, DESC_RAW, PUBLISH, AVAIL_IDX, AVAIL_FLAGS, POST_OUT, POST_IN, CTRL,
 NOTIFY, PROCESS, MMIO_WRITE, MMIO_READ, HOST_WRITE, HOST_DRAIN, HOST_EOF,
 DETACH, ATTACH, ADD_PORT, RESIZE, SNAPSHOT, POLLFDS, MEM, RESET) = range(23)
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4
BAD_ID = 0xffffffff
DEVICE_READY, DEVICE_ADD, PORT_READY, PORT_OPEN = 0, 1, 3, 6
NQ = 34
QSIZE_BYTE = 4          # queue size 1 << 4


def rxq(port): return 0 if port == 0 else 2 + 2 * port
def txq(port): return 1 if port == 0 else 3 + 2 * port


def mem_size(qsize):
    """Guest memory size the harness lays out for this queue size."""
    a = 4096
    for _ in range(NQ):
        avail = a + 16 * qsize
        used = (avail + 6 + 2 * qsize + 3) & ~3
        a = (used + 6 + 8 * qsize + 15) & ~15
    return a + 16384


def ctrl(port, event, value):
    return u8(CTRL) + u32(port) + u16(event) + u16(value)


def post_in(q, n): return u8(POST_IN) + u8(q) + u16(n)
def post_out(q, data): return u8(POST_OUT) + u8(q) + u8(len(data)) + data
def notify(q): return u8(NOTIFY) + u8(q)
def host_write(port, data): return u8(HOST_WRITE) + u8(port) + u16(len(data)) + data
def host_drain(port): return u8(HOST_DRAIN) + u8(port)


def desc(q, i, off, ln, flags, nxt):
    return u8(DESC) + u8(q) + u16(i) + u16(off) + u16(ln) + u8(flags) + u16(nxt)


def desc_raw(q, i, addr, ln, flags, nxt):
    return u8(DESC_RAW) + u8(q) + u16(i) + u64(addr) + u32(ln) + u16(flags) + u16(nxt)


def publish(q, head): return u8(PUBLISH) + u8(q) + u16(head)


def mmio_write(off, v): return u8(MMIO_WRITE) + u16(off) + u32(v)


def driver_up():
    """What the Linux driver does first: control receive buffers, then
    DEVICE_READY; then PORT_READY for the ports it was told of."""
    s = b"".join(post_in(2, 64) for _ in range(8))
    s += ctrl(BAD_ID, DEVICE_READY, 1)
    s += b"".join(ctrl(p, PORT_READY, 1) for p in range(3))
    s += b"".join(post_in(2, 64) for _ in range(8)) + notify(2)
    return s


def console_seeds():
    up = driver_up()
    frame = bytes([1, 1, 13, 0]) + b"clone-agent 1"
    write("virtio_console", "bring-up", u8(QSIZE_BYTE) + up)
    write("virtio_console", "session", u8(QSIZE_BYTE) + up +
          ctrl(1, PORT_OPEN, 1) + post_in(rxq(1), 256) + post_in(rxq(0), 256) +
          host_write(1, b"\x01\x04\x00\x00") + host_write(0, b"ls\n") +
          u8(PROCESS) + post_out(txq(1), frame) + notify(txq(1)) +
          host_drain(1) + u8(RESIZE) + u8(2) + u16(24) + u16(80) +
          u8(ADD_PORT) + u8(3) + u8(0) + ctrl(3, PORT_READY, 1) +
          ctrl(3, PORT_OPEN, 1) + post_in(rxq(3), 128) +
          host_write(3, b"stdin") + u8(PROCESS) + u8(HOST_EOF) + u8(3) +
          u8(PROCESS) + ctrl(3, PORT_OPEN, 0) + u8(SNAPSHOT) +
          u8(ATTACH) + u8(3) + u8(DETACH) + u8(2) + u8(POLLFDS) + u8(32))
    # One chain of three descriptors, readable then writable, and a receive
    # chain of two writable ones.
    write("virtio_console", "chain", u8(QSIZE_BYTE) + up +
          ctrl(1, PORT_OPEN, 1) +
          desc(txq(1), 0, 0, 8, F_NEXT, 1) + desc(txq(1), 1, 100, 16, F_NEXT, 2) +
          desc(txq(1), 2, 200, 32, F_WRITE, 0) + publish(txq(1), 0) +
          notify(txq(1)) +
          desc(rxq(1), 0, 300, 4, F_WRITE | F_NEXT, 1) +
          desc(rxq(1), 1, 400, 64, F_WRITE, 0) + publish(rxq(1), 0) +
          host_write(1, b"0123456789") + u8(PROCESS) + host_drain(1))
    # Hostile rings, one way of being wrong each.
    end = mem_size(1 << QSIZE_BYTE)
    hostile = {
        "loop": desc(txq(1), 0, 0, 8, F_NEXT, 1) + desc(txq(1), 1, 8, 8, F_NEXT, 0) +
                publish(txq(1), 0),
        "outside": desc_raw(txq(1), 0, 0xfffffffffffff000, 0x2000, 0, 0) +
                   publish(txq(1), 0),
        "across-end": desc_raw(rxq(0), 0, end - 4, 8, F_WRITE, 0) +
                      publish(rxq(0), 0) + host_write(0, b"12345678"),
        "avail-ahead": u8(AVAIL_IDX) + u8(txq(1)) + u16(1000),
        "head-range": publish(txq(1), 0xffff),
        "next-range": desc(txq(1), 0, 0, 8, F_NEXT, 0xfff0) + publish(txq(1), 0),
        "indirect": desc(txq(1), 0, 0, 16, F_INDIRECT, 0) + publish(txq(1), 0),
        "order": desc(txq(1), 0, 0, 8, F_WRITE | F_NEXT, 1) +
                 desc(txq(1), 1, 8, 8, 0, 0) + publish(txq(1), 0),
        "order-zero-len": desc(txq(1), 0, 0, 0, F_WRITE | F_NEXT, 1) +
                          desc(txq(1), 1, 8, 8, 0, 0) + publish(txq(1), 0),
        "rx-readonly": ctrl(1, PORT_OPEN, 1) + post_out(rxq(1), b"x") +
                       host_write(1, b"data"),
        "ctrl-unknown-port": ctrl(99, PORT_OPEN, 1) + ctrl(BAD_ID, PORT_READY, 1),
        "ctrl-short": post_out(3, b"\x01\x00\x00"),
        "reset-requeue": mmio_write(0x070, 0) + mmio_write(0x030, 5) +
                         mmio_write(0x038, 16) + mmio_write(0x080, end - 16) +
                         mmio_write(0x044, 1) + mmio_write(0x070, 15) +
                         notify(5),
    }
    # Guest output faster than the host reads: three 256 KiB chains use up
    # the port's budget, fill the socket, the port waits for POLLOUT; the
    # host drains, then detaches with a chain half sent.
    flood = b"".join(desc(txq(1), i, 0, 16384,
                          F_NEXT if i % 16 < 15 else 0, i + 1) for i in range(48))
    write("virtio_console", "tx-flood", u8(6) + up + ctrl(1, PORT_OPEN, 1) +
          flood + publish(txq(1), 0) + publish(txq(1), 16) +
          publish(txq(1), 32) + notify(txq(1)) + u8(POLLFDS) + u8(32) +
          u8(PROCESS) + u8(POLLFDS) + u8(32) + host_drain(1) + u8(PROCESS) +
          u8(DETACH) + u8(1) + u8(PROCESS))
    # The driver resets the device mid-transfer and starts again.
    write("virtio_console", "reset-busy", u8(6) + up + ctrl(1, PORT_OPEN, 1) +
          post_in(rxq(1), 64) + flood + publish(txq(1), 0) +
          publish(txq(1), 16) + notify(txq(1)) + u8(RESET) + up +
          ctrl(1, PORT_OPEN, 1) + post_in(rxq(1), 64) +
          host_write(1, b"again") + u8(PROCESS) + host_drain(1))
    # 65 descriptors chained on a queue of 128.
    write("virtio_console", "hostile-too-long", u8(7) + up +
          b"".join(desc(txq(1), i, 16 * i, 16, F_NEXT, i + 1) for i in range(65)) +
          publish(txq(1), 0) + notify(txq(1)))
    # Before the driver is up: a control receive buffer too small.
    write("virtio_console", "hostile-ctrl-rx-small", u8(QSIZE_BYTE) +
          post_in(2, 4) + ctrl(BAD_ID, DEVICE_READY, 1) + notify(2))
    for name, body in hostile.items():
        write("virtio_console", "hostile-" + name,
              u8(QSIZE_BYTE) + up + body + notify(txq(1)) + u8(PROCESS))


# ---- virtio_mmio: ops of tests/fuzz/fuzz_virtio_mmio.c ---------------------
W, ACCESS, R, PROC, M = range(5)


def mw(off, v): return u8(W) + u16(off) + u32(v)
def mr(off): return u8(R) + u16(off)
def acc(off, ln, v, write_): return u8(ACCESS) + u16(off) + u8(ln) + u64(v) + u8(write_)


def mmio_queue(q, size, desc_, avail, used, ready=1):
    return (mw(0x030, q) + mr(0x034) + mw(0x038, size) +
            mw(0x080, desc_ & 0xffffffff) + mw(0x084, desc_ >> 32) +
            mw(0x090, avail & 0xffffffff) + mw(0x094, avail >> 32) +
            mw(0x0a0, used & 0xffffffff) + mw(0x0a4, used >> 32) +
            mw(0x044, ready) + mr(0x044))


def mmio_seeds():
    init = (mr(0x000) + mr(0x004) + mr(0x008) + mr(0x00c) +
            mw(0x070, 1) + mw(0x070, 3) +
            mw(0x014, 0) + mr(0x010) + mw(0x014, 1) + mr(0x010) +
            mw(0x024, 0) + mw(0x020, 3) + mw(0x024, 1) + mw(0x020, 1) +
            mw(0x070, 11) + mr(0x070))
    queues = b"".join(mmio_queue(q, 16, 0x1000 + 0x400 * q,
                                 0x1100 + 0x400 * q, 0x1200 + 0x400 * q)
                      for q in range(4))
    live = init + queues + mw(0x070, 15) + mr(0x070)
    write("virtio_mmio", "driver-init", live + acc(0x100, 2, 0, 0) +
          acc(0x102, 2, 0, 0) + acc(0x104, 4, 0, 0) + acc(0x108, 4, 0, 0) +
          mr(0x0fc) + mw(0x050, 3) + u8(PROC) + mr(0x060) + mw(0x064, 1))
    # A control message on queue 3: descriptor 0 -> 8 bytes at 0x8000.
    msg = struct.pack("<IHH", 0xffffffff, 0, 1)
    d = struct.pack("<QIHH", 0x8000, 8, 0, 0)
    write("virtio_mmio", "ctrl-message", live +
          u8(M) + u16(0x8000) + u8(8) + msg +
          u8(M) + u16(0x1000 + 0x400 * 3) + u8(16) + d +
          u8(M) + u16(0x1100 + 0x400 * 3) + u8(6) + struct.pack("<HHH", 0, 1, 0) +
          mw(0x050, 3) + u8(PROC))
    write("virtio_mmio", "hostile-rings", init +
          mmio_queue(0, 16, 0x10000 - 16, 0x100, 0x200) +
          mmio_queue(1, 256, 0xfff0, 0xfffe, 0xfffc) +
          mmio_queue(2, 16, 0x1_0000_1000, 0x100, 0x200) +
          mmio_queue(3, 17, 0x1000, 0x1100, 0x1200) +
          mmio_queue(4, 16, 0x1008, 0x1101, 0x1202) +
          mmio_queue(70, 16, 0x1000, 0x1100, 0x1200) +
          mw(0x070, 15) + mw(0x050, 0) + mw(0x050, 99) + u8(PROC))
    write("virtio_mmio", "hostile-status",
          mw(0x070, 4) + mw(0x024, 0) + mw(0x020, 0xffffffff) +
          mw(0x070, 11) + mr(0x070) + mw(0x070, 1) + mw(0x024, 5) +
          mw(0x020, 1) + mw(0x014, 7) + mr(0x010) + init + mw(0x070, 0) +
          acc(0x070, 1, 0, 1) + acc(0x071, 4, 0, 0) + acc(0x1fe, 8, 0, 0) +
          acc(0xffc, 8, 0, 0) + acc(0x100, 8, 0, 1))


# ---- agent_proto: chunk byte, then a stream of frames -----------------------
READY, POWER, LOG, IDENTITY, ACK, TIME, SPAWN, EXITED, RESIZE_, SIGNAL = range(1, 11)


def frame(t, payload, version=1):
    return bytes([version, t]) + u16(len(payload)) + payload


def tlv(tag, value):
    return u8(tag) + u16(len(value)) + value


def identity():
    return (tlv(1, bytes(range(32))) + tlv(2, u64(1700000000) + u32(5)) +
            tlv(3, b"alice-vm") + tlv(4, b"alice") + tlv(5, u32(1000)) +
            tlv(6, b"/home/alice") + tlv(7, b"0123456789abcdef0123456789abcdef"))


def spawn_pty():
    return (tlv(1, u32(7)) + tlv(2, u8(3)) + tlv(4, u16(24) + u16(80)) +
            tlv(5, b"xterm-256color") + tlv(8, b"LANG=C.UTF-8\0LC_ALL=C\0"))


def spawn_cmd():
    return (tlv(1, u32(8)) + tlv(2, u8(4)) + tlv(3, u8(5)) + tlv(7, u8(6)) +
            tlv(6, b"echo hello; exit 3"))


def agent_seeds():
    host = (frame(IDENTITY, identity()) + frame(TIME, u64(1700000100) + u32(0)) +
            frame(SPAWN, spawn_pty()) + frame(SPAWN, spawn_cmd()) +
            frame(RESIZE_, u32(7) + u16(50) + u16(132)) + frame(SIGNAL, u32(7) + u8(2)))
    guest = (frame(READY, b"clone-agent 1") + frame(ACK, b"\0applied in 812 us") +
             frame(LOG, b"mount /tmp: done") + frame(EXITED, u32(8) + u8(0) + u8(3)) +
             frame(POWER, u8(0)))
    write("agent_proto", "host-to-guest", u8(255) + host)
    write("agent_proto", "guest-to-host", u8(255) + guest)
    write("agent_proto", "host-to-guest-bytewise", u8(0) + host)
    write("agent_proto", "guest-to-host-split", u8(6) + guest)
    write("agent_proto", "identity", u8(255) + frame(IDENTITY, identity()))
    write("agent_proto", "spawn-pty", u8(255) + frame(SPAWN, spawn_pty()))
    write("agent_proto", "spawn-cmd", u8(255) + frame(SPAWN, spawn_cmd()))
    write("agent_proto", "bad-version", u8(3) + frame(READY, b"x") + frame(LOG, b"y", 2))
    write("agent_proto", "bad-type", u8(3) + frame(READY, b"x") + bytes([1, 0, 0, 0]))
    write("agent_proto", "too-long", u8(255) + bytes([1, 3]) + u16(4097))
    write("agent_proto", "max-payload", u8(200) + frame(LOG, b"a" * 4096))


# ---- config: the example file and a few edits --------------------------------
def config_seeds():
    with open(os.path.join(os.path.dirname(TOP), "..", "..",
                           "clone.ini.example")) as f:
        write("config", "clone.ini.example", f.read())
    write("config", "full", """[server]
listen = [::1]:2222
state_dir = /var/lib/clone/
host_key = /etc/clone/host_key
authorized_keys = /etc/clone/users/%u
open_signup = yes
max_auth_tries = 3
login_grace_time = 20 ; seconds
[template]
kernel = build/guest/vmlinux
initrd = build/guest/initramfs.cpio
cmdline = quiet loglevel=3
memory_mb = 512
vcpus = 1
serial = off
[vm]
max_vms = 1000
detach_timeout = 0
reap_timeout = 60
""")
    write("config", "crlf-bom", "\ufeff[vm]\r\n  max_vms = 5\r\n# done\r\n")
    write("config", "bad-line", "[server]\nlisten = 127.0.0.1:99999\n")
    write("config", "bad-section", "[server] extra\nopen_signup = maybe\n")


# ---- authkeys: a file holding the harness's key --------------------------------
KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIDC1W2PDcuBzynL7yPZtzkhjDWbcuudcnu+GXv6+3VGW"
ECDSA = ("AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEDc9S4x/JjnT6oER/"
         "idKHgFKvDNViVYuMJa3dl1+paVdWLede/XatdkypmCM8M2W2PZjuCCb7a8nUOyvIGi1fk=")
RSA = ("AAAAB3NzaC1yc2EAAAADAQABAAAAgQC/4E7jaAZgTjtWN8w6jcQkC5W7ahHZZOuKuIMkg7v1"
       "Xq9BJQor8PJ3OfvsWcja4bqWAsGl/QJkNd2xJO/6rEwPWt7zp6Sl1fN2X5wS0T5HhRrQ6f1b"
       "xlNJ8cJj6ICBGJty3+bq9NMlB6DF/ugsfiBUdXaqcYbiUUVIckvBOZSEAQ==")


def authkeys_seeds():
    write("authkeys", "long-line", "ssh-ed25519 %s\nssh-ed25519 %s\n" %
          ("A" * 16400, KEY))
    write("authkeys", "match", "ssh-ed25519 %s alice@example\n" % KEY)
    write("authkeys", "file", "# keys of alice\n\nssh-rsa %s carol\r\n"
          "ecdsa-sha2-nistp256 %s bob@example\n"
          "ssh-ed25519\t%s\n" % (RSA, ECDSA, KEY))
    write("authkeys", "options", 'from="10.0.0.1",command="ls" ssh-ed25519 %s\n'
          "ssh-dss AAAAB3NzaC1kc3M= old\nssh-ed25519 AAAA!!!! broken\n" % KEY)


# ---- snapshot: flags byte, u32 state length, state, pages -------------------
# tests/fuzz/fuzz_snapshot.c. "real-small" is a real suspended VM (made by
# CLONE_KEEP_SNAPSHOT=DIR tests/integration/run.py test_snapshot, then
# `seeds.py --snapshot-from DIR`): its state whole, its pages file cut to
# the first two pages and its hashes redone. The hostile seeds are edits of
# it, with the hashes redone as a compromised worker would.
import hashlib  # noqa: E402
import sys  # noqa: E402

PAGES_HDR = struct.Struct("<8sIIQQ32s")
STATE_HDR = struct.Struct("<8sIIQ32s32s")
PAGE = 4096
FIX_BODY, FIX_PAGES = 1, 2


def b2(data):
    return hashlib.blake2b(data, digest_size=32).digest()


def snapshot_files(state, idx, data, count=None, mem=None):
    """The state (hashes redone) and a pages file of idx and data."""
    magic, ver, pad, _, mem0, _ = PAGES_HDR.unpack_from(REAL_PAGES_HDR)
    body = b"".join(u64(i) for i in idx) + data
    h = b2(body)
    pages = PAGES_HDR.pack(magic, ver, pad, len(idx) if count is None else
                           count, mem0 if mem is None else mem, h) + body
    st = bytearray(state)
    m, v, blen, ms, _, _ = STATE_HDR.unpack_from(st)
    STATE_HDR.pack_into(st, 0, m, v, blen, ms, h,
                        b2(bytes(st[STATE_HDR.size:])))
    return bytes(st), pages


def snapshot_input(state, pages, flags=FIX_BODY | FIX_PAGES):
    return u8(flags) + u32(len(state)) + state + pages


REAL_PAGES_HDR = b""


def snapshot_from(d):
    global REAL_PAGES_HDR
    with open(os.path.join(d, "state"), "rb") as f:
        state = f.read()
    with open(os.path.join(d, "pages"), "rb") as f:
        pages = f.read()
    REAL_PAGES_HDR = pages[:PAGES_HDR.size]
    count = PAGES_HDR.unpack_from(pages)[3]
    idx = [struct.unpack_from("<Q", pages, PAGES_HDR.size + 8 * i)[0]
           for i in range(2)]
    at = PAGES_HDR.size + 8 * count
    st, pg = snapshot_files(state, idx, pages[at:at + 2 * PAGE])
    write("snapshot", "real-small", snapshot_input(st, pg))


def snapshot_seeds():
    global REAL_PAGES_HDR
    path = os.path.join(TOP, "snapshot", "real-small")
    if not os.path.exists(path):
        return
    with open(path, "rb") as f:
        seed = f.read()
    n = struct.unpack_from("<I", seed, 1)[0]
    state, pages = seed[5:5 + n], seed[5 + n:]
    REAL_PAGES_HDR = pages[:PAGES_HDR.size]
    idx = [struct.unpack_from("<Q", pages, PAGES_HDR.size + 8 * i)[0]
           for i in range(2)]
    data = pages[PAGES_HDR.size + 16:]
    mem = PAGES_HDR.unpack_from(pages)[4]
    write("snapshot", "real-small-hashes-as-is", snapshot_input(state, pages, 0))
    write("snapshot", "no-pages", snapshot_input(*snapshot_files(state, [], b"")))
    write("snapshot", "hostile-duplicate-page",
          snapshot_input(*snapshot_files(state, [idx[0], idx[0]], data)))
    write("snapshot", "hostile-unordered",
          snapshot_input(*snapshot_files(state, idx[::-1], data)))
    write("snapshot", "hostile-beyond-ram",
          snapshot_input(*snapshot_files(state, [idx[0], mem // PAGE], data)))
    write("snapshot", "hostile-huge-count",
          snapshot_input(*snapshot_files(state, idx, data, count=1 << 60)))
    write("snapshot", "hostile-count-all-ram",
          snapshot_input(*snapshot_files(state, idx, data,
                                         count=mem // PAGE)))
    write("snapshot", "hostile-other-mem-size",
          snapshot_input(*snapshot_files(state, idx, data, mem=mem * 2)))
    st, pg = snapshot_files(state, idx, data)
    write("snapshot", "hostile-truncated-pages",
          snapshot_input(st, pg[:-100], FIX_BODY))
    write("snapshot", "hostile-truncated-state",
          snapshot_input(st[:STATE_HDR.size + 10], pg))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--snapshot-from"]:
        snapshot_from(sys.argv[2])
    console_seeds()
    mmio_seeds()
    agent_seeds()
    config_seeds()
    authkeys_seeds()
    snapshot_seeds()
