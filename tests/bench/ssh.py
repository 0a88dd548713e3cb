#!/usr/bin/env python3
"""SSH benchmarks (issue 4): `ssh true` into a fresh clone and into a
running VM, and exec throughput, against OpenSSH sshd started here on
another loopback port running the same command in a host shell, same
client, same run. Prints name=value lines; --write-docs updates the ssh
section of docs/benchmarks.md."""
import argparse
import datetime
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import docsection  # noqa: E402
from sshharness import Server, free_port  # noqa: E402

SSH_OPTS = ["-o", "StrictHostKeyChecking=no", "-o",
            "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o",
            "BatchMode=yes", "-o", "IdentitiesOnly=yes"]


def timed(args, stdout=subprocess.DEVNULL):
    t0 = time.monotonic()
    p = subprocess.run(args, stdout=stdout, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=900)
    if p.returncode != 0:
        raise RuntimeError(f"{args}: {p.returncode} {p.stderr[-500:]}")
    return time.monotonic() - t0


def start_sshd(tmp, key):
    port = free_port()
    hk = os.path.join(tmp, "sshd_host_key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hk],
                   check=True)
    ak = os.path.join(tmp, "authorized_keys")
    with open(key + ".pub") as f, open(ak, "w") as g:
        g.write(f.read())
    cfg = os.path.join(tmp, "sshd_config")
    with open(cfg, "w") as f:
        f.write(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {hk}
AuthorizedKeysFile {ak}
PidFile none
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
""")
    os.makedirs("/run/sshd", exist_ok=True)
    p = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", cfg],
                         stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return p, port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    # 100 MiB as the issue asks takes about 17 minutes through PVM here;
    # the default keeps make bench short. --mib 100 runs the full size.
    ap.add_argument("--mib", type=int, default=4)
    ap.add_argument("--write-docs", action="store_true")
    a = ap.parse_args()
    t_start = time.monotonic()
    res = {}
    with tempfile.TemporaryDirectory(prefix="clone-bench-ssh-") as tmp:
        s = Server(tmp, detach=3600)
        sshd, sport = start_sshd(tmp, s.key)
        try:
            ours = lambda user, cmd: ["ssh", "-i", s.key, "-p", str(s.port),
                                      *SSH_OPTS, f"{user}@127.0.0.1", cmd]
            peer = lambda cmd: ["ssh", "-i", s.key, "-p", str(sport),
                                *SSH_OPTS, "root@127.0.0.1", cmd]
            timed(peer("true"))
            fresh = [timed(ours(f"bench{i}x{int(time.time())}", "true"))
                     for i in range(a.runs)]
            timed(ours("benchwarm", "true"))
            mark = len(s.log.text())
            warm = [timed(ours("benchwarm", "true")) for _ in range(a.runs)]
            over = [float(x) for x in re.findall(
                r"front-end overhead ([0-9.]+) ms", s.log.text()[mark:])]
            base = [timed(peer("true")) for _ in range(a.runs)]
            cmd = f"head -c {a.mib * 1048576} /dev/zero"
            t_ours = timed(ours("benchwarm", cmd))
            t_peer = timed(peer(cmd))
        finally:
            sshd.terminate()
            sshd.wait()
            s.close()
    m = statistics.median
    res["ssh_true_sshd_s"] = f"{m(base):.3f}"
    res["ssh_true_fresh_s"] = f"{m(fresh):.3f}"
    res["ssh_true_warm_s"] = f"{m(warm):.3f}"
    res["ssh_fresh_ratio"] = f"{m(fresh) / m(base):.2f}"
    res["ssh_warm_ratio"] = f"{m(warm) / m(base):.2f}"
    res["front_overhead_ms"] = f"{m(over):.3f}" if over else "nan"
    res["exec_mib"] = str(a.mib)
    res["exec_ours_mib_s"] = f"{a.mib / t_ours:.1f}"
    res["exec_sshd_mib_s"] = f"{a.mib / t_peer:.1f}"
    res["exec_throughput_ratio"] = f"{t_peer / t_ours:.3f}"
    targets = {"ssh_warm_ratio": 0.5, "ssh_fresh_ratio": 1.0}
    rows = []
    for k, v in res.items():
        t = ""
        if k in targets:
            t = f"<= {targets[k]}: " + ("met" if float(v) <= targets[k]
                                        else "NOT met")
        if k == "exec_throughput_ratio":
            t = ">= 0.8: " + ("met" if float(v) >= 0.8 else "NOT met")
        rows.append(f"| `{k}` | {v} | {t} |")
        print(f"{k}={v}")
    if a.write_docs:
        when = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
        docsection.update_section("ssh", f"""## SSH (tests/bench/ssh.py)

Written by `python3 tests/bench/ssh.py --write-docs` on {when}, one run of
{time.monotonic() - t_start:.0f} s, machine as in the boot section (PVM).
Peer: OpenSSH `sshd` (Debian's openssh-server) started by the benchmark on
another loopback port, running the same command in a host shell as root;
same OpenSSH client for both, medians of {a.runs}. `fresh`: a user never
seen before (authentication, a clone from the template, the identity, the
command); `warm`: a user whose VM is running. Throughput: `{cmd}`
through exec, to /dev/null. `front_overhead_ms`: what the front-end itself
adds to a warm `ssh true`, from its own clock (the exec request to the
session request sent to the VM worker, plus each piece of guest output from
read to handed to libssh), median of the warm runs.

| figure | value | target |
|---|---|---|
""" + "\n".join(rows) + """

Where the time goes on this machine: the front-end and the clone are
quick (a clone's first vCPU entry is well under a millisecond, see the
clone section), but every guest system call, fork and exec runs in PVM's
instruction emulator (shared/notes/pvm.md): the agent starting the
session's `sh -c` and the command itself are guest kernel work, and so is
every `write` of the throughput test. On hardware KVM those steps cost
microseconds; here they are the whole of the gap.
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
