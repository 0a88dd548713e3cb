#!/usr/bin/env python3
"""Write the seeds of the pvm harness (tests/fuzz/fuzz_pvm.c) into
tests/fuzz/corpus/pvm/: each instruction we complete on working page
tables, and the hostile cases of tests/unit/test_pvm.c. The layout follows
the comment at the top of the harness. Run from the top directory:

    python3 tests/fuzz/seeds_pvm.py
"""
import os
import struct

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "pvm")

CODE64, WP, AM, TS, MP, EM, NE = 1 << 2, 1 << 3, 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 8
OSFXSR, SMAP, SMEP, LA57, NXE, AC, TF = (1 << 9, 1 << 10, 1 << 11, 1 << 12,
                                        1 << 13, 1 << 14, 1 << 15)
HOST_SMAP, HOST_GB, MASK_FFFF, PKE = 1 << 16, 1 << 17, 1 << 18, 1 << 19
KERNEL = CODE64 | WP | NE | MP | OSFXSR | NXE | HOST_SMAP | HOST_GB

P, RW, US, PS = 1, 2, 4, 0x80
XD = 1 << 63
LA = 0x00007f0000400000          # one linear page: PML4 0xfe, PDPT 0, PD 2, PT 0
IDT = 0x00007f0000401000         # the next page


def tables(leaf=P | RW | US, data=0x8000):
    """CR3 0x1000 -> PDPT 0x2000 -> PD 0x3000 -> PT 0x4000 -> data."""
    w = [(0x1000 + 0xfe * 8, 0x2000 | P | RW | US),
         (0x2000 + 0 * 8, 0x3000 | P | RW | US),
         (0x3000 + 2 * 8, 0x4000 | P | RW | US),
         (0x4000 + 0 * 8, data | leaf),
         (0x4000 + 1 * 8, 0x9000 | P | RW),          # the IDT's page
         (0x9000 + 3 * 16, (0x8e00 | 3 << 13) << 32)]  # gate 3, DPL 3
    return w


def seed(name, insn, flags=KERNEL, regs=None, mem=(), mxcsr=0x1f80, fsw=0,
         cr3=0x1000, phys=46 - 32, rip=0xffffffff81000000):
    r = [0] * 16
    for k, v in (regs or {}).items():
        r[k] = v
    b = struct.pack("<IIBIH", flags, cr3, phys, mxcsr, fsw)
    b += b"".join(struct.pack("<Q", x & (2**64 - 1)) for x in r)
    b += struct.pack("<QQQQH", rip, 0, LA, IDT, 4095)
    b += struct.pack("<B", len(insn)) + insn
    for gpa, v in mem:
        b += struct.pack("<HQ", gpa, v & (2**64 - 1))
    os.makedirs(TOP, exist_ok=True)
    with open(os.path.join(TOP, name), "wb") as f:
        f.write(b)


RAX, RSP = 0, 4
LDMXCSR, STMXCSR = b"\x0f\xae\x10", b"\x0f\xae\x18"   # [rax]

if __name__ == "__main__":
    seed("int3", b"\xcc")
    seed("int3-user", b"\xcc", KERNEL | 3, mem=tables())
    seed("fwait", b"\x9b")
    seed("fwait-mf", b"\x9b", fsw=0x81)
    seed("clac", b"\x0f\x01\xca", KERNEL | AC)
    seed("stac-user", b"\x0f\x01\xcb", KERNEL | 3)
    seed("lock-clac", b"\xf0\x0f\x01\xca")
    seed("eretu", b"\xf3\x0f\x01\xca")
    seed("ldmxcsr", LDMXCSR, regs={RAX: LA + 0x10},
         mem=tables() + [(0x8010, 0x1f80)])
    seed("ldmxcsr-bit16", LDMXCSR, regs={RAX: LA},
         mem=tables() + [(0x8000, 0x11f80)])
    seed("stmxcsr-sib", b"\x65\x43\x0f\xae\x5c\x88\x01", regs={RSP: LA},
         mem=tables())
    seed("stmxcsr-readonly", STMXCSR, regs={RAX: LA}, mem=tables(P | US))
    seed("stmxcsr-not-present", STMXCSR, regs={RAX: LA}, mem=tables(RW))
    seed("ldmxcsr-supervisor-user", LDMXCSR, KERNEL | 3, regs={RAX: LA},
         mem=tables(P | RW))
    seed("ldmxcsr-smap", LDMXCSR, KERNEL | SMAP, regs={RAX: LA},
         mem=tables())
    seed("stmxcsr-split", STMXCSR, regs={RAX: LA + 4094}, mem=tables())
    seed("stmxcsr-beyond-ram", STMXCSR, regs={RAX: LA},
         mem=tables(data=0x10000))
    seed("stmxcsr-ac", STMXCSR, KERNEL | 3 | AM | AC, regs={RAX: LA + 2},
         mem=tables())
    seed("ldmxcsr-noncanonical", LDMXCSR, regs={RAX: 1 << 47})
    seed("ldmxcsr-rsvd-pte", LDMXCSR, regs={RAX: LA},
         mem=tables(P | RW | US | 1 << 50))
    seed("ldmxcsr-2m", LDMXCSR, regs={RAX: LA},
         mem=tables()[:2] + [(0x3000 + 2 * 8, 0 | P | RW | US | PS)])
    seed("ldmxcsr-la57", LDMXCSR, KERNEL | LA57, regs={RAX: LA}, mem=tables())
    seed("too-long", b"\x66" * 16)
    seed("truncated", b"\x0f\xae\x54")
