#!/usr/bin/env python3
"""`make bench`: a cold boot of the Clone guest, under our VMM and under QEMU.

Prints one name=value line per figure, then the same as a markdown table;
--write-docs also rewrites docs/benchmarks.md. Standard library only.

Figures:
  ours      `clone boot` to "guest agent ready" (median of 3), the KVM exits
            and completed emulations of that boot (CLONE_STATS=1), and VMM
            overhead: RssAnon + RssFile of the idle booted VMM (its guest RAM
            is a memfd, counted in RssShmem and reported apart).
  qemu-kvm  QEMU microvm with -enable-kvm -cpu host, same kernel, initrd and
            command line; on PVM it is expected to stop on an emulation
            failure, and what it did is recorded.
  qemu-tcg  the same with -accel tcg: time to the agent's READY frame, and
            RSS measured the same way (guest RAM on a memfd backend, so it
            lands in RssShmem as ours does).

Both peers are timed from process start to READY, on the wall clock.

The guest kernel is a plain ELF vmlinux. QEMU loads an ELF kernel only through
its PVH note, which our kernel config does not build (CONFIG_PVH); unless the
vmlinux has that note, this script gives QEMU a copy of it with a tiny PVH
entry shim added (see pvh_wrap): the kernel bytes are unchanged.
"""
import argparse
import datetime
import os
import platform
import re
import select
import shlex
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import docsection  # noqa: E402
from harness import Output  # noqa: E402

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLONE = os.path.join(TOP, "build", "clone")
KERNEL = os.path.join(TOP, "build", "guest", "vmlinux")
INITRD = os.path.join(TOP, "build", "guest", "initramfs.cpio")
DOCS = os.path.join(TOP, "docs", "benchmarks.md")
QEMU = "qemu-system-x86_64"

MEMORY_MB = 256
RUNS = 3
CLONE_TIMEOUT = 300.0      # one cold boot of ours
QEMU_KVM_TIMEOUT = 120.0
QEMU_TCG_TIMEOUT = 300.0   # one TCG boot
QEMU_TCG_BUDGET = 600.0    # all TCG boots together: fewer runs if slow
IDLE_SETTLE = 5.0          # seconds idle after READY before reading RSS

READY_FRAME = b"\x01\x01" + struct.pack("<H", 13) + b"clone-agent 1"


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def Reader(f):
    """What a child writes to f, collected on a thread (harness.Output)."""
    return Output(f.fileno())


def proc_status(pid):
    """The kB figures of /proc/PID/status that matter here."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                out[k] = int(v.split()[0])
    return out


def stop(proc, timeout=10):
    """End a process this script started, by its pid."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def write_ini(tmp):
    path = os.path.join(tmp, "clone.ini")
    with open(path, "w") as f:
        f.write(f"[template]\nkernel = {KERNEL}\ninitrd = {INITRD}\n"
                f"memory_mb = {MEMORY_MB}\n")
    return path


# --- ours --------------------------------------------------------------

def clone_cmd(ini):
    return [CLONE, "boot", "-c", ini, "-v"]


def clone_boot(ini):
    """One cold boot of ours: wall time to ready, the VMM's stats line, and
    the idle VMM's memory. Ends the VM with Ctrl-]."""
    env = dict(os.environ, CLONE_STATS="1")
    t0 = time.monotonic()
    p = subprocess.Popen(clone_cmd(ini), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env)
    out, err = Reader(p.stdout), Reader(p.stderr)
    r = {"ok": False}
    try:
        m = err.wait_for(r"guest agent ready", t0 + CLONE_TIMEOUT)
        if not m:
            r["error"] = ("no agent ready in %.0f s; status %s; stderr: %s"
                          % (time.monotonic() - t0, p.poll(),
                             err.text()[-600:]))
            return r
        r["wall_s"] = time.monotonic() - t0
        time.sleep(IDLE_SETTLE)
        r["mem"] = proc_status(p.pid)
        p.stdin.write(b"\x1d")
        p.stdin.flush()
        r["status"] = p.wait(30)
        err.wait_closed(5)
        m = re.search(r"clone: stats: (.*)", err.text())
        if m:
            r["stats"] = {k: float(v) for k, v in
                          re.findall(r"(\w+)=([0-9.]+)", m.group(1))}
        else:
            r["error"] = "no stats line: %s" % err.text()[-600:]
            return r
        r["ok"] = True
        return r
    except subprocess.TimeoutExpired:
        r["error"] = "did not exit after Ctrl-]"
        return r
    finally:
        stop(p)
        del out


def clone_cmdline(ini):
    """The kernel command line our VMM builds (logged with -v), read from a
    VMM that is stopped as soon as it has said it."""
    p = subprocess.Popen(clone_cmd(ini), stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = Reader(p.stderr)
    try:
        m = err.wait_for(r"guest command line: (.*)\n",
                         time.monotonic() + 30)
    finally:
        stop(p)
    if not m:
        raise SystemExit("bench: clone boot -v did not log the guest command "
                         "line:\n" + err.text()[-1000:])
    return m.group(1).strip()


# --- QEMU --------------------------------------------------------------

def elf_has_pvh_note(data):
    """Whether an ELF64 kernel has XEN_ELFNOTE_PHYS32_ENTRY (type 18)."""
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        ptype, _, off, _, _, filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize)
        if ptype != 4:     # PT_NOTE
            continue
        pos, end = off, off + filesz
        while pos + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
            name = data[pos + 12:pos + 12 + namesz]
            if ntype == 18 and name.rstrip(b"\0") == b"Xen":
                return True
            pos += 12 + (namesz + 3 & ~3) + (descsz + 3 & ~3)
    return False


# The shim lives at SHIM (8 MiB: free RAM below the kernel's 16 MiB, above
# what QEMU's firmware and the PVH option ROM use). Layout:
#   +0x0000 boot_params (the zero page), filled in by the code below
#   +0x1000 PML4, +0x2000 PDPT, +0x3000 PD: identity map of 1 GiB, 2 MiB pages
#   +0x4000 GDT (0x10: 64-bit code, 0x18: data), +0x4020 its pointer,
#   +0x4030 the kernel's 64-bit entry (vmlinux e_entry, physical)
#   +0x5000 code
# The code, entered in 32-bit protected mode with EBX = hvm_start_info, does
# what the kernel's own PVH entry would: copies the command line address,
# the initrd (first module) and the memory map into boot_params, enters long
# mode and jumps to startup_64 with RSI = boot_params (Documentation/x86/
# boot.rst, 64-bit boot protocol). Assembled with GNU as from:
#   cli; cld; mov %ebx,%esi; lgdt SHIM+0x4020
#   mov $0x18,%ax; mov %ax,%ds; mov %ax,%es; mov %ax,%ss
#   mov $SHIM,%edi
#   mov 24(%esi),%eax; mov %eax,0x228(%edi)         # cmd_line_ptr
#   mov 12(%esi),%ecx; test %ecx,%ecx; jz 1f        # nr_modules
#   mov 16(%esi),%edx; mov (%edx),%eax; mov %eax,0x218(%edi)   # ramdisk
#   mov 8(%edx),%eax; mov %eax,0x21c(%edi)
# 1: mov 48(%esi),%ecx; cmp $127,%ecx; jbe 2f; mov $127,%ecx  # memmap
# 2: mov %cl,0x1e8(%edi); mov 40(%esi),%edx; lea 0x2d0(%edi),%ebx
# 3: test %ecx,%ecx; jz 4f; copy 20 of each 24-byte entry into e820_table
#   add $24,%edx; add $20,%ebx; dec %ecx; jmp 3b
# 4: cr4 |= PAE; cr3 = SHIM+0x1000; EFER |= LME; cr0 |= PG|PE
#   ljmp $0x10,$start64
# start64 (.code64): mov $0x18,%ax; mov %ax,%ds/%es/%ss
#   mov $SHIM,%esi; mov SHIM+0x4030,%eax; jmp *%rax
SHIM = 0x800000
SHIM_CODE = bytes.fromhex(
    "fafc89de0f011520408000" "66b818008ed88ec08ed0" "bf00008000"
    "8b4618898728020000" "8b4e0c85c97414"
    "8b56108b02898718020000" "8b420889871c020000"
    "8b4e3083f97f7605b97f000000"
    "888fe80100008b56288d9fd0020000"
    "85c97425" "8b028903" "8b42048943048b42088943088b420c89430c"
    "8b4210894310" "83c21883c31449ebd7"
    "0f20e083c8200f22e0" "b8001080000f22d8"
    "b9800000c00f320d000100000f30" "0f20c00d010000800f22c0"
    "eab45080001000"
    "66b818008ed88ec08ed0" "be00008000" "8b042530408000" "ffe0")
assert len(SHIM_CODE) == 0xcc


def pvh_wrap(src, dst):
    """Write dst: the ELF vmlinux src plus a PT_LOAD holding the shim and a
    PT_NOTE naming its entry (XEN_ELFNOTE_PHYS32_ENTRY), so that QEMU can
    boot it. The original program headers stay; the new table is appended."""
    with open(src, "rb") as f:
        data = bytearray(f.read())
    assert data[:4] == b"\x7fELF" and data[4] == 2, "not an ELF64 vmlinux"
    entry, phoff = struct.unpack_from("<QQ", data, 0x18)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    assert phentsize == 56

    shim = bytearray(0x6000)
    bp = 0
    struct.pack_into("<H", shim, bp + 0x1fe, 0xaa55)       # boot_flag
    shim[bp + 0x202:bp + 0x206] = b"HdrS"                  # header
    struct.pack_into("<H", shim, bp + 0x206, 0x020c)       # version
    shim[bp + 0x210] = 0xff                                # type_of_loader
    shim[bp + 0x211] = 0x01                                # LOADED_HIGH
    struct.pack_into("<I", shim, bp + 0x230, 0x1000000)    # kernel_alignment
    struct.pack_into("<Q", shim, 0x1000, SHIM + 0x2000 | 3)
    struct.pack_into("<Q", shim, 0x2000, SHIM + 0x3000 | 3)
    for i in range(512):
        struct.pack_into("<Q", shim, 0x3000 + 8 * i, (i << 21) | 0x83)
    struct.pack_into("<4Q", shim, 0x4000, 0, 0,
                     0x00af9a000000ffff, 0x00cf92000000ffff)
    struct.pack_into("<HI", shim, 0x4020, 4 * 8 - 1, SHIM + 0x4000)
    struct.pack_into("<Q", shim, 0x4030, entry)
    shim[0x5000:0x5000 + len(SHIM_CODE)] = SHIM_CODE

    note = struct.pack("<III4sQ", 4, 8, 18, b"Xen\0", SHIM + 0x5000)

    def align(n):
        return (len(data) + n - 1) & ~(n - 1)

    data += bytes(align(4096) - len(data))
    shim_off = len(data)
    data += shim
    note_off = len(data)
    data += note
    data += bytes(align(8) - len(data))
    new_phoff = len(data)
    data += data[phoff:phoff + phnum * phentsize]
    data += struct.pack("<IIQQQQQQ", 1, 7, shim_off, SHIM, SHIM,
                        len(shim), len(shim), 4096)
    data += struct.pack("<IIQQQQQQ", 4, 4, note_off, 0, 0,
                        len(note), len(note), 4)
    struct.pack_into("<Q", data, 0x20, new_phoff)
    struct.pack_into("<H", data, 0x38, phnum + 2)
    with open(dst, "wb") as f:
        f.write(data)


def qemu_cmd(kernel, cmdline, accel, sock, console_log):
    accel_args = (["-enable-kvm", "-cpu", "host"] if accel == "kvm"
                  else ["-accel", "tcg"])
    return [QEMU, "-M", "microvm,acpi=off,memory-backend=ram",
            *accel_args,
            "-object", f"memory-backend-memfd,id=ram,size={MEMORY_MB}M",
            "-m", f"{MEMORY_MB}M", "-smp", "1",
            "-nodefaults", "-no-user-config", "-nographic",
            "-kernel", kernel, "-initrd", INITRD, "-append", cmdline,
            "-chardev", f"file,id=con,path={console_log}",
            "-chardev", f"socket,id=agent,path={sock},server=on,wait=off",
            "-device", "virtio-serial-device",
            "-device", "virtconsole,chardev=con,nr=0",
            "-device", "virtserialport,chardev=agent,name=clone.agent"]


def qemu_boot(kernel, cmdline, accel, timeout, tmp, run):
    """One QEMU boot: seconds from start to the agent's READY frame, or what
    happened instead. Stops QEMU before returning."""
    sock = os.path.join(tmp, f"agent-{accel}-{run}.sock")
    console_log = os.path.join(tmp, f"console-{accel}-{run}.log")
    cmd = qemu_cmd(kernel, cmdline, accel, sock, console_log)
    r = {"ok": False, "cmd": cmd}
    t0 = time.monotonic()
    deadline = t0 + timeout
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = Reader(p.stdout)
    s = None
    got = b""
    try:
        while s is None:
            if p.poll() is not None or time.monotonic() > deadline:
                break
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(sock)
            except OSError:
                s.close()
                s = None
                time.sleep(0.01)
        while s is not None and READY_FRAME not in got:
            if p.poll() is not None or time.monotonic() > deadline:
                break
            if "KVM internal error" in out.text():
                time.sleep(0.5)   # let QEMU finish its register dump
                break
            rd, _, _ = select.select([s], [], [], 0.1)
            if rd:
                data = s.recv(4096)
                if not data:
                    break
                got += data
        r["elapsed_s"] = time.monotonic() - t0
        if READY_FRAME in got:
            r["ok"] = True
            r["ready_s"] = r["elapsed_s"]
            time.sleep(IDLE_SETTLE)
            r["mem"] = proc_status(p.pid)
        r["status"] = p.poll()
        r["timed_out"] = r["status"] is None and not r["ok"] and \
            time.monotonic() > deadline
    finally:
        if s is not None:
            s.close()
        st = stop(p)
        if r.get("status") is None:
            r["stopped_status"] = st
        out.wait_closed(5)
    r["output"] = out.text()
    try:
        with open(console_log, "rb") as f:
            r["console"] = f.read().decode("utf-8", "replace")
    except OSError:
        r["console"] = ""
    return r


def describe_kvm(r):
    """qemu_kvm_result and a few lines of QEMU's output, honestly."""
    text = r["output"]
    lines = [l for l in text.splitlines()
             if l.strip() and "terminating on signal" not in l]
    if r["ok"]:
        return f"ready after {r['ready_s']:.1f} s", lines[-5:]
    after = f"{r['elapsed_s']:.1f} s after start"
    kept = ("QEMU kept running with the VM paused (stopped by the bench)"
            if r["status"] is None else f"QEMU exit status {r['status']}")
    m = re.search(r"KVM internal error\. Suberror: (\d+)", text)
    if m:
        code = re.search(r"^Code=.*<([0-9a-f]{2})>((?: [0-9a-f]{2}){0,3})",
                         text, re.M)
        insn = ""
        if code:
            insn = code.group(1) + code.group(2)
            if code.group(1) == "cc":
                insn += " (int3)"
            insn = f" on {insn}"
        rip = re.search(r"RIP=([0-9a-f]+)", text)
        where = f" at RIP {rip.group(1)}" if rip else ""
        detail = [l for l in lines
                  if l.startswith(("KVM internal", "emulation failure",
                                   "RIP=", "Code="))
                  or (l.startswith("extra data") and
                      not l.endswith("0x0000000000000000"))]
        why = " (emulation failure)" if m.group(1) == "1" else ""
        return (f"failed: KVM internal error, suberror {m.group(1)}{why}"
                f"{insn}{where}, {after}; {kept}", detail)
    if r.get("timed_out"):
        return (f"failed: no READY in {QEMU_KVM_TIMEOUT:.0f} s; {kept}",
                lines[-8:])
    return f"failed: no READY, {after}; {kept}", lines[-8:]


# --- report ------------------------------------------------------------

def machine_facts():
    kvm = "none"
    if os.path.exists("/sys/module/kvm_pvm"):
        kvm = "PVM (kvm_pvm, software virtualisation)"
    elif os.path.exists("/sys/module/kvm_intel"):
        kvm = "hardware (kvm_intel)"
    elif os.path.exists("/sys/module/kvm_amd"):
        kvm = "hardware (kvm_amd)"
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
            cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    qv = subprocess.run([QEMU, "--version"], capture_output=True,
                        text=True).stdout.splitlines()
    mem_kb = 0
    with open("/proc/meminfo") as f:
        mem_kb = int(re.search(r"MemTotal:\s*(\d+)", f.read()).group(1))
    return {
        "date": datetime.datetime.now(datetime.timezone.utc)
        .strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "kvm": kvm,
        "cpu": cpu,
        "host_kernel": platform.release(),
        "host_mem": f"{mem_kb // 1024} MiB",
        "load": "%.2f %.2f %.2f" % os.getloadavg(),
        "qemu": qv[0] if qv else "?",
    }


def fmt(v):
    if isinstance(v, float):
        if abs(v) < 1:
            return f"{v:.3f}"
        return f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write-docs", action="store_true",
                    help="rewrite docs/benchmarks.md with the results")
    ap.add_argument("--runs", type=int, default=RUNS,
                    help="boots per peer (default %(default)s)")
    ap.add_argument("--only", action="append",
                    choices=("clone", "qemu-kvm", "qemu-tcg"),
                    help="run only this part (repeatable; for development)")
    args = ap.parse_args()
    parts = args.only or ["clone", "qemu-kvm", "qemu-tcg"]
    if args.write_docs and args.only:
        ap.error("--write-docs needs the full run")

    for f in (CLONE, KERNEL, INITRD):
        if not os.path.exists(f):
            raise SystemExit(f"bench: {f} missing: run 'make' and "
                             "'make guest'")
    if not os.path.exists("/dev/kvm"):
        raise SystemExit("bench: SKIP: no /dev/kvm on this host")
    if ("qemu-kvm" in parts or "qemu-tcg" in parts) and \
            not shutil.which(QEMU):
        raise SystemExit(f"bench: {QEMU} not installed")

    facts = machine_facts()
    t_start = time.monotonic()
    res = {}        # name -> value, in print order
    notes = {}      # name -> note for the table
    detail = {}     # extra text for the docs
    tmp = tempfile.mkdtemp(prefix="clone-bench-")
    try:
        detail["tmp"] = tmp
        ini = write_ini(tmp)
        cmdline = clone_cmdline(ini)
        qemu_cmdline = " ".join(w for w in cmdline.split()
                                if not w.startswith("virtio_mmio.device="))
        detail["cmdline"] = cmdline

        if "clone" in parts:
            runs = []
            for i in range(args.runs):
                log(f"ours: cold boot {i + 1}/{args.runs}")
                r = clone_boot(ini)
                if not r["ok"]:
                    raise SystemExit(f"bench: our boot failed: {r['error']}")
                log(f"ours: ready after {r['wall_s']:.1f} s")
                runs.append(r)
            runs.sort(key=lambda r: r["wall_s"])
            med = runs[len(runs) // 2]
            st, mem = med["stats"], med["mem"]
            over = mem["RssAnon"] + mem["RssFile"]
            res["clone_boot_ready_s"] = statistics.median(
                r["wall_s"] for r in runs)
            notes["clone_boot_ready_s"] = (
                f"median of {len(runs)}: "
                + ", ".join(f"{r['wall_s']:.1f}" for r in runs)
                + " s; process start to `guest agent ready`")
            res["clone_ready_ms_vmm"] = int(st["ready_ms"])
            notes["clone_ready_ms_vmm"] = "VMM's own ready_ms (median run)"
            emul = int(st.get("int3", 0) + st.get("fwait", 0)
                       + st.get("mxcsr", 0) + st.get("clac_stac", 0))
            res["clone_vm_exits"] = int(st["exits"])
            notes["clone_vm_exits"] = (
                "KVM exits seen by the VMM: io=%d mmio=%d intr=%d"
                % (st["io"], st["mmio"], st["intr"]))
            res["clone_emulations_completed"] = emul
            notes["clone_emulations_completed"] = (
                "after KVM emulation failures: int3=%d fwait=%d mxcsr=%d "
                "clac_stac=%d" % (st.get("int3", 0), st.get("fwait", 0),
                                  st.get("mxcsr", 0), st.get("clac_stac", 0)))
            res["vmm_overhead_kib"] = over
            notes["vmm_overhead_kib"] = (
                f"RssAnon {mem['RssAnon']} + RssFile {mem['RssFile']}, idle "
                f"{IDLE_SETTLE:.0f} s after ready (median run)")
            res["clone_guest_ram_touched_kib"] = mem["RssShmem"]
            notes["clone_guest_ram_touched_kib"] = \
                f"RssShmem (guest memfd) of {MEMORY_MB} MiB"
            res["clone_rss_kib"] = mem["VmRSS"]
            notes["clone_rss_kib"] = "VmRSS, all of it"

        kernel_q = KERNEL
        with open(KERNEL, "rb") as f:
            has_pvh = elf_has_pvh_note(f.read())
        if not has_pvh and ("qemu-kvm" in parts or "qemu-tcg" in parts):
            kernel_q = os.path.join(tmp, "vmlinux-pvh")
            pvh_wrap(KERNEL, kernel_q)
        detail["pvh"] = has_pvh

        if "qemu-kvm" in parts:
            log(f"QEMU -enable-kvm: one boot, up to {QEMU_KVM_TIMEOUT:.0f} s")
            r = qemu_boot(kernel_q, qemu_cmdline, "kvm", QEMU_KVM_TIMEOUT,
                          tmp, 0)
            result, lines = describe_kvm(r)
            log(f"QEMU -enable-kvm: {result}")
            res["qemu_kvm_result"] = result
            notes["qemu_kvm_result"] = (
                f"one boot, cap {QEMU_KVM_TIMEOUT:.0f} s; QEMU's report "
                "below")
            for l in lines:
                log(f"QEMU -enable-kvm said: {l}")
            if r["ok"]:
                res["qemu_kvm_ready_s"] = r["ready_s"]
            detail["kvm_lines"] = lines
            detail["kvm_cmd"] = r["cmd"]

        if "qemu-tcg" in parts:
            runs, fails, spent = [], [], 0.0
            for i in range(args.runs):
                if runs and spent + runs[-1]["ready_s"] > QEMU_TCG_BUDGET:
                    log("QEMU TCG: stopping early, time budget spent")
                    break
                log(f"QEMU -accel tcg: boot {i + 1}/{args.runs} "
                    f"(cap {QEMU_TCG_TIMEOUT:.0f} s)")
                r = qemu_boot(kernel_q, qemu_cmdline, "tcg",
                              QEMU_TCG_TIMEOUT, tmp, i)
                spent += r["elapsed_s"]
                detail["tcg_cmd"] = r["cmd"]
                if not r["ok"]:
                    log("QEMU TCG: no READY: " + r["output"][-400:])
                    fails.append(r)
                    break
                log(f"QEMU TCG: READY after {r['ready_s']:.1f} s")
                runs.append(r)
            if runs:
                runs.sort(key=lambda r: r["ready_s"])
                med = runs[len(runs) // 2]
                mem = med["mem"]
                res["qemu_tcg_ready_s"] = statistics.median(
                    r["ready_s"] for r in runs)
                notes["qemu_tcg_ready_s"] = (
                    f"median of {len(runs)}: "
                    + ", ".join(f"{r['ready_s']:.1f}" for r in runs)
                    + f" s (cap {QEMU_TCG_TIMEOUT:.0f} s each); process "
                    "start to the READY frame")
                res["qemu_tcg_overhead_kib"] = mem["RssAnon"] + mem["RssFile"]
                notes["qemu_tcg_overhead_kib"] = (
                    f"RssAnon {mem['RssAnon']} + RssFile {mem['RssFile']}, "
                    "guest RAM on a memfd backend (median run); includes "
                    "TCG's translation cache")
                res["qemu_tcg_guest_ram_touched_kib"] = mem["RssShmem"]
                notes["qemu_tcg_guest_ram_touched_kib"] = "RssShmem"
                res["qemu_tcg_rss_kib"] = mem["VmRSS"]
                notes["qemu_tcg_rss_kib"] = "VmRSS, all of it"
            else:
                r = fails[0]
                res["qemu_tcg_ready_s"] = "none"
                notes["qemu_tcg_ready_s"] = (
                    "no READY in %.0f s (status %s)"
                    % (r["elapsed_s"], r["status"]))
                detail["tcg_fail"] = r["output"][-1500:]

        if isinstance(res.get("clone_boot_ready_s"), float) and \
                isinstance(res.get("qemu_tcg_ready_s"), float):
            res["boot_ratio_vs_qemu_tcg"] = (res["clone_boot_ready_s"]
                                             / res["qemu_tcg_ready_s"])
            notes["boot_ratio_vs_qemu_tcg"] = \
                "ours / QEMU TCG; lower is better"
            res["vmm_overhead_ratio_vs_qemu_tcg"] = (
                res["vmm_overhead_kib"] / res["qemu_tcg_overhead_kib"])
            notes["vmm_overhead_ratio_vs_qemu_tcg"] = \
                "ours / QEMU TCG (RssAnon + RssFile); lower is better"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    total = time.monotonic() - t_start
    for k, v in res.items():
        print(f"{k}={fmt(v)}")
    table = ["| figure | value | how |", "|---|---|---|"]
    for k, v in res.items():
        table.append(f"| `{k}` | {fmt(v)} | {notes.get(k, '')} |")
    print()
    print("\n".join(table))
    log(f"done in {total:.0f} s")
    if args.write_docs:
        write_docs(facts, res, table, detail, total)
        log(f"wrote {os.path.relpath(DOCS, TOP)}")


def write_docs(facts, res, table, detail, total):
    def q(cmd):
        return " ".join(shlex.quote(w) for w in cmd).replace(
            detail["tmp"], "$TMP").replace(TOP + "/", "")

    def wrap(text):
        return textwrap.fill(text, 79, break_on_hyphens=False)

    kvm_lines = "\n".join(detail.get("kvm_lines", [])) or "(nothing)"
    pvh = ("the vmlinux has a PVH note; QEMU boots it as is"
           if detail.get("pvh") else
           "the vmlinux has no PVH note (CONFIG_PVH is off), so QEMU, which "
           "boots an ELF kernel only through that note, gets a copy with a "
           "PVH entry shim appended (`pvh_wrap` in the script: a PT_LOAD at "
           "8 MiB holding a zero page, an identity map and about 200 bytes of "
           "code that fills the zero page from `hvm_start_info`, enters long "
           "mode and jumps to the unchanged kernel's `startup_64`)")
    reading = ""
    ours, tcg = res.get("clone_boot_ready_s"), res.get("qemu_tcg_ready_s")
    if isinstance(ours, float) and isinstance(tcg, float):
        faster = ("faster" if ours < tcg else "slower")
        k = max(ours, tcg) / min(ours, tcg)
        reading = (
            f"Reading: here our VMM reaches READY {k:.1f}x {faster} than "
            "QEMU with "
            "TCG. On PVM almost all of our boot is guest kernel code in "
            "KVM's instruction emulator (the VMM saw only "
            f"{res['clone_vm_exits']} exits), while TCG translates guest "
            "code into host code once and reruns it; the boot-time lever "
            "for us is the snapshot, not the VMM. On hardware KVM the "
            "comparison would be a different one. The VMM itself costs "
            f"{res['vmm_overhead_kib']} KiB beside guest RAM, "
            f"{100 * res['vmm_overhead_ratio_vs_qemu_tcg']:.1f}% of what "
            "QEMU's process costs beside it. After "
            "READY our `clone boot` sends the agent its identity and the "
            "guest starts a shell; under QEMU nobody does, so that guest "
            "idles in the agent (a small difference in guest RAM touched).")
        reading = wrap(reading)
    kvm_res = res.get("qemu_kvm_result", "not run")
    int3 = ("; here it is `int3`, which the kernel first executes in its "
            "int3 self-test early in boot" if "(int3)" in kvm_res else "")
    kvm_text = wrap(
        "On PVM, KVM's instruction emulator cannot complete some "
        "instructions the guest kernel executes; KVM then reports an "
        f"emulation failure and QEMU stops the VM{int3}. Our VMM completes "
        "those instructions itself (`clone_emulations_completed` above), "
        "which is why it boots here. TCG needs no KVM at all and is the "
        "only QEMU configuration that boots this guest on this machine.")
    pvh = wrap("QEMU gets the same command line minus "
               "`virtio_mmio.device=...`, which microvm adds for its own "
               "devices; " + pvh + ". The guest console (hvc0) goes to a "
               "file, the agent port to a unix socket the bench reads.")
    doc = f"""# Benchmarks

Written by `python3 tests/bench/boot.py --write-docs` (what `make bench` runs,
plus `--write-docs`) on {facts['date']}, in one full run of {total:.0f} s.
Re-run it rather than trusting these numbers on another machine.

## Machine

| | |
|---|---|
| CPUs (`nproc`) | {facts['nproc']} ({facts['cpu']}) |
| KVM | {facts['kvm']} |
| host kernel | {facts['host_kernel']} |
| host memory | {facts['host_mem']} |
| load average at start | {facts['load']} |
| QEMU | {facts['qemu']} |

On PVM, guest kernel code runs in KVM's instruction emulator (about a million
instructions a second), so a cold boot takes tens of seconds; this is why a
booted template is snapshotted and cloned rather than booted per session.

## Cold boot to the guest agent's READY

Guest: `build/guest/vmlinux` (Linux 6.1, tinyconfig-based) and
`build/guest/initramfs.cpio`, {MEMORY_MB} MiB, 1 vCPU. Both peers are timed on
the wall clock from process start until the agent's READY frame
(`clone-agent 1` on the `clone.agent` virtio-console port) arrives. Memory is
read from `/proc/PID/status` {IDLE_SETTLE:.0f} s after READY, the guest idle;
both keep guest RAM in a memfd (QEMU through `memory-backend-memfd`), so it is
`RssShmem`, and the VMM's own cost is `RssAnon + RssFile`.

{chr(10).join(table)}

{reading}

## Commands

Ours (with `CLONE_STATS=1`; Ctrl-] ends it after the measurement):

    build/clone boot -c clone.ini -v

with `[template]` kernel, initrd and `memory_mb = {MEMORY_MB}`. The kernel
command line it builds (logged by `-v`):

    {detail['cmdline']}

{pvh}

QEMU with TCG (`$TMP` is the bench's temporary directory):

    {q(detail.get('tcg_cmd', ['(not run)']))}

## QEMU with `-enable-kvm -cpu host`

    {q(detail.get('kvm_cmd', ['(not run)']))}

Result: `{kvm_res}`.

What QEMU said last:

```
{kvm_lines}
```

{kvm_text}
"""
    # The boot section: from its first heading down, our own title dropped.
    doc = doc.split("\n", 1)[1] if doc.startswith("# ") else doc
    docsection.update_section("boot", "## Cold boot (tests/bench/boot.py)\n"
                              + doc.replace("\n## ", "\n### "))


if __name__ == "__main__":
    main()
