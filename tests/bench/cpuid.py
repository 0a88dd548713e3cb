#!/usr/bin/env python3
"""What hiding ERMS/FSRM from the guest buys on PVM (issue 17).

Boots the guest with `clone boot` once per binary given (--clone, default
build/clone), types tests/bench/copy_probe.c (built here, static, no libc)
into its shell through the console, and runs it --runs times: the cost of
an anonymous page fault (the kernel clears the page: rep stosb with ERMS,
rep stosq without) and of a 64 KiB pread() from the page cache into a
faulted-in buffer (rep movsb with ERMS, rep movsq without). Prints, per
binary, whether the guest's /proc/cpuinfo has erms and fsrm, and the
median of each figure over the runs. Compare a build that clears them with
one that does not (e.g. a build of the tree before issue 17):

  python3 tests/bench/cpuid.py --clone build/clone --clone /tmp/old/build/clone

Standard library only; needs /dev/kvm, gcc, and `make all guest`.
"""
import argparse
import base64
import gzip
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness  # noqa: E402

PROBE = os.path.join(HERE, "copy_probe.c")


def build_probe(tmp):
    out = os.path.join(tmp, "copy_probe")
    subprocess.run(["gcc", "-Os", "-static", "-nostdlib",
                    "-fno-stack-protector", "-fno-builtin",
                    "-fno-asynchronous-unwind-tables",
                    "-Wl,--build-id=none", "-s", "-o", out, PROBE],
                   check=True)
    with open(out, "rb") as f:
        return base64.b64encode(gzip.compress(f.read(), 9)).decode()


def measure(clone, b64, runs, tmp):
    harness.CLONE = clone
    # A window wider than any line typed: ash's line editor asks the
    # terminal where its cursor is on a wrap, and would eat our input as
    # the answer.
    s = harness.BootSession(harness.write_config(tmp), cols=2000)
    try:
        s.err.expect(r"guest agent ready", harness.BOOT_TIMEOUT)
        s.run("mkdir -p /tmp; rm -f /tmp/p.b64")
        # busybox's line editor takes lines of 1024 bytes at most.
        for i in range(0, len(b64), 512):
            s.run(f"printf '%s' '{b64[i:i + 512]}' >> /tmp/p.b64")
        s.run("base64 -d /tmp/p.b64 | gunzip > /tmp/probe; "
              "chmod +x /tmp/probe; dd if=/dev/urandom "
              "of=/tmp/copy_probe.dat bs=65536 count=1 2>/dev/null")
        flags = s.run("grep -m1 '^flags' /proc/cpuinfo").split()
        got = {"anon_fault_us": [], "read64k_us": []}
        for _ in range(runs):
            out = s.run("/tmp/probe; echo rc=$?", timeout=120)
            assert "rc=0" in out, out
            for line in out.splitlines():
                k, _, v = line.partition(" ")
                if k in got:
                    got[k].append(int(v))
        s.send("poweroff\n")
        s.wait(60)
        return ({f: f in flags for f in ("erms", "fsrm")},
                {k: statistics.median(v) for k, v in got.items()}, got)
    finally:
        s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clone", action="append",
                    help="a clone binary to boot the guest with (repeat)")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    harness.need_kvm()
    clones = a.clone or [harness.CLONE]
    with tempfile.TemporaryDirectory(prefix="clone-cpuid-") as tmp:
        b64 = build_probe(tmp)
        for clone in clones:
            flags, med, raw = measure(os.path.abspath(clone), b64, a.runs,
                                      tmp)
            have = ",".join(f for f, v in flags.items() if v) or "none"
            print(f"clone={clone} guest_has={have} "
                  f"anon_fault_ms={med['anon_fault_us'] / 1000:.2f} "
                  f"read64k_ms={med['read64k_us'] / 1000:.2f} "
                  f"runs={a.runs} raw={raw}", flush=True)


if __name__ == "__main__":
    main()
