#!/usr/bin/env python3
"""bench/buffer_compare.py: coev::net::buffer beside libevent's evbuffer on the same data.

    python3 bench/buffer_compare.py BUILD_DIR [--reps N]

Runs bench/buffer and bench/buffer_libevent in turn (pinned to CPU 1 when taskset works),
N times each, and prints the median ns per operation of every phase and the ratio
coev/libevent (below 1.0: coev is faster).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys


def run(cmd):
    pin = ["taskset", "-c", "1"] if shutil.which("taskset") else []
    out = subprocess.run(pin + cmd, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        sys.exit(f"{cmd[0]} failed: {out.stderr}")
    return {line.split()[0]: float(line.split("=")[1]) for line in out.stdout.splitlines()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    coev = os.path.join(args.build, "bench", "buffer")
    twin = os.path.join(args.build, "bench", "buffer_libevent")
    if not os.path.exists(twin):
        sys.exit("buffer_compare.py: bench/buffer_libevent not built (libevent missing?)")
    a, b = {}, {}
    for _ in range(args.reps):
        for k, v in run([coev, "-r", "3"]).items():
            a.setdefault(k, []).append(v)
        for k, v in run([twin, "-r", "3"]).items():
            b.setdefault(k, []).append(v)
    print(f"\nbuffer vs evbuffer, ns per operation, median of {args.reps} alternating runs\n")
    print("| phase | coev | libevent | ratio |")
    print("|---|---|---|---|")
    for k in a:
        ma, mb = statistics.median(a[k]), statistics.median(b[k])
        print(f"| {k} | {ma:.2f} | {mb:.2f} | {ma / mb:.3f} |")


if __name__ == "__main__":
    main()
