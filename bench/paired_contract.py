#!/usr/bin/env python3
"""bench/pipe_chain_paired runs both loops on a small chain and prints its one result line.

Usage: paired_contract.py PROGRAM BACKEND
"""
import re
import subprocess
import sys


def main() -> int:
    prog, backend = sys.argv[1], sys.argv[2]
    proc = subprocess.run([prog, "-n", "50", "-a", "5", "-w", "200", "-r", "5",
                           "--backend", backend],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=100)
    if proc.returncode != 0:
        print(f"FAIL: exit {proc.returncode}\n{proc.stderr}")
        return 1
    last = proc.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"pipe_pair n=50 a=5 w=200 backend=(\w+) coev_us=([\d.]+) "
                     r"libevent_us=([\d.]+) ratio=([\d.]+)", last)
    if not m or m.group(1) != backend:
        print(f"FAIL: last line {last!r}")
        return 1
    if min(float(m.group(i)) for i in (2, 3, 4)) <= 0:
        print(f"FAIL: a figure is not positive: {last!r}")
        return 1
    # Too many fds for select: refused with a message, not an abort.
    if backend == "select":
        big = subprocess.run([prog, "-n", "500", "-a", "5", "-w", "10", "-r", "1",
                              "--backend", "select"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, timeout=100)
        if big.returncode != 2 or "select needs" not in big.stderr:
            print(f"FAIL: -n 500 on select: exit {big.returncode}, {big.stderr!r}")
            return 1
    print(f"ok: {last}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
