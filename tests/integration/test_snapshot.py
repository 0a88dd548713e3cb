"""Issue 9 item 3: a suspended VM on disk is hostile input. Its files lie in
a directory the clone user owns and were written by a worker a guest may
have taken over; the hashes are unkeyed, so such a worker can make any
image look whole. The next worker must refuse an impossible one, say why
in the log, and the user must get a fresh clone.

CLONE_KEEP_SNAPSHOT=DIR copies the real suspended image there before it is
corrupted (that is how tests/fuzz/corpus/snapshot/real-small was made)."""
import hashlib
import os
import shutil
import struct

from sshharness import Server

# struct snapshot_pages_header: magic, version, pad, count, mem_size, hash
PAGES_HDR = struct.Struct("<8sIIQQ32s")
# struct snapshot_header: magic, version, body_len, mem_size, mem_hash...
STATE_MEM_HASH = 24


def blake2b(data):
    return hashlib.blake2b(data, digest_size=32).digest()


def duplicate_a_page(d):
    """What a compromised worker could write: the pages file with its
    second entry naming the first entry's page again (other bytes), every
    hash made to match."""
    with open(os.path.join(d, "pages"), "rb") as f:
        p = bytearray(f.read())
    magic, ver, pad, count, mem, _ = PAGES_HDR.unpack_from(p)
    assert count >= 2, count
    idx = PAGES_HDR.size
    first = struct.unpack_from("<Q", p, idx)[0]
    struct.pack_into("<Q", p, idx + 8, first)
    h = blake2b(bytes(p[PAGES_HDR.size:]))
    PAGES_HDR.pack_into(p, 0, magic, ver, pad, count, mem, h)
    with open(os.path.join(d, "pages"), "wb") as f:
        f.write(p)
    with open(os.path.join(d, "state"), "r+b") as f:
        f.seek(STATE_MEM_HASH)
        f.write(h)


def test_impossible_suspended_vm_refused_then_fresh_clone(tmp):
    s = Server(tmp)
    try:
        s.ssh("alice", "echo survived > ~/f")
        assert s.stop() == 0
        assert "vm alice: suspended to disk" in s.log.text()
        d = os.path.join(s.state, "suspended", "alice")
        keep = os.environ.get("CLONE_KEEP_SNAPSHOT")
        if keep:
            os.makedirs(keep, exist_ok=True)
            for name in ("state", "pages"):
                shutil.copy(os.path.join(d, name), keep)
        duplicate_a_page(d)
        s.start()
        assert s.status().get("alice") == "suspended"
        # The refused resume ends that login's session with the usual
        # line (the front-end, sshd/vms_worker.c, does not retry it as a
        # clone); the log names the fault; the next login is a fresh clone.
        st, out, err = s.ssh("alice", "cat ~/f")
        assert "clone: your VM could not be started" in err, \
            (st, out, err, s.log.text()[-2000:])
        st, out, err = s.ssh("alice", "cat ~/f 2>/dev/null || echo fresh")
        assert st == 0 and out == "fresh\n", (out, err,
                                              s.log.text()[-2000:])
        log = s.log.text()
        assert "page listed twice or out of order" in log, log[-2000:]
        assert "vm alice: resumed" not in log
        assert "vm alice: cloned" in log
        assert s.proc.poll() is None
    finally:
        s.close()
