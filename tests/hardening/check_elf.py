#!/usr/bin/env python3
"""Fail unless every binary given carries the hardening the build promises.

Executables: PIE, full RELRO (GNU_RELRO + BIND_NOW), non-executable stack,
stack protector (__stack_chk_fail), _FORTIFY_SOURCE (__*_chk calls), and with
--cet the x86 IBT and SHSTK properties. Shared objects (the example apps):
full RELRO, non-executable stack, CET. Reads the files with readelf.
"""

import argparse
import re
import subprocess
import sys


def readelf(*args):
    return subprocess.run(["readelf", "-W", *args], capture_output=True, text=True, check=True).stdout


def problems(path, cet):
    out = []
    header = readelf("-h", path)
    dynamic = readelf("-d", path)
    segments = readelf("-l", path)
    is_exe = "INTERP" in segments
    if "Type:                              DYN" not in header:
        out.append("not position independent (ELF type is not DYN)")
    if is_exe and not re.search(r"FLAGS_1\).*\bPIE\b", dynamic):
        out.append("not PIE (no DF_1_PIE)")
    if "GNU_RELRO" not in segments:
        out.append("no RELRO segment")
    if not (re.search(r"\(BIND_NOW\)", dynamic) or re.search(r"FLAGS(_1)?\).*\bNOW\b", dynamic)):
        out.append("partial RELRO only (no BIND_NOW: link with -z now)")
    stack = [line for line in segments.splitlines() if "GNU_STACK" in line]
    if not stack or re.search(r"\bRWE\b", stack[0]):
        out.append("executable stack")
    if is_exe:
        syms = readelf("--dyn-syms", path)
        if "__stack_chk_fail" not in syms:
            out.append("no stack protector (__stack_chk_fail not referenced)")
        if not re.search(r"__\w+_chk\b", syms.replace("__stack_chk_fail", "")):
            out.append("no _FORTIFY_SOURCE (no __*_chk function referenced)")
    if cet:
        out += cet_problems(path)
    return out


def cet_problems(path):
    """The IBT and SHSTK properties, or, on a toolchain whose C runtime objects
    lack them (Debian 12's crt1.o/crti.o: the linker then drops the property
    from the output), the IBT landing pads our own code carries."""
    m = re.search(r"x86 feature: (.*)", readelf("-n", path))
    if m and "IBT" in m.group(1) and "SHSTK" in m.group(1):
        return []
    asm = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path], capture_output=True, text=True,
                         check=True).stdout
    pads = asm.count("endbr64") + asm.count("endbr32")
    funcs = sum(1 for line in readelf("-s", path).splitlines() if " FUNC " in line)
    if pads < 3 or pads * 10 < funcs:
        return [f"no CET: {pads} endbr landing pads for {funcs} functions (-fcf-protection missing)"]
    return []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cet", action="store_true")
    ap.add_argument("binaries", nargs="+")
    a = ap.parse_args()
    bad = 0
    for b in a.binaries:
        found = problems(b, a.cet)
        for p in found:
            print(f"{b}: {p}")
        if not found:
            print(f"{b}: ok")
        bad += len(found)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
