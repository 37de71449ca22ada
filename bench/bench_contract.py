#!/usr/bin/env python3
"""bench/bench_contract.py --backend NAME PROGRAM...: checks the runtime benchmarks' contract.

Each PROGRAM is bench/pipe_chain, bench/timers or one of their libevent twins; the kind is
told by the name. Every one must take `--backend NAME` and print, as its last line,
`pipe_bench n=N a=A w=W us_per_round=X` or `timer_churn n=N add_ns=X cancel_ns=Y fire_ns=Z`
for the parameters given. The coev programs must also put the flag above COEV_BACKEND.
"""
import argparse
import os
import re
import subprocess
import sys

NUM = r"[0-9]+(\.[0-9]+)?"


def run(argv, env=None):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    lines = p.stdout.strip().splitlines()
    return p.returncode, (lines[-1] if lines else ""), p.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", required=True)
    ap.add_argument("programs", nargs="+")
    args = ap.parse_args()
    problems = []
    for prog in args.programs:
        name = os.path.basename(prog)
        if name.startswith("pipe_chain"):
            argv = [prog, "-n", "20", "-a", "2", "-w", "20", "-r", "3"]
            want = re.compile(rf"^pipe_bench n=20 a=2 w=20 us_per_round={NUM}$")
        elif name.startswith("timers"):
            argv = [prog, "-n", "2000"]
            want = re.compile(rf"^timer_churn n=2000 add_ns={NUM} cancel_ns={NUM} fire_ns={NUM}$")
        else:
            problems.append(f"{name}: not a runtime benchmark")
            continue
        argv += ["--backend", args.backend]
        # The flag must win over the environment (a different backend asked for there).
        env = dict(os.environ)
        if "libevent" not in name:
            env["COEV_BACKEND"] = "select" if args.backend != "select" else "poll"
        code, last, err = run(argv, env)
        if code != 0:
            problems.append(f"{name}: exit {code}: {err.strip()}")
        elif not want.match(last):
            problems.append(f"{name}: last line {last!r}")
        elif "libevent" not in name and f"backend {args.backend}" not in err:
            problems.append(f"{name}: ran on another backend: {err.strip()}")
        else:
            print(f"ok {name} --backend {args.backend}: {last}")
    # An unknown backend is an error, not a silent fallback.
    for prog in args.programs:
        if "libevent" in os.path.basename(prog):
            continue
        code, _, _ = run([prog, "-n", "20", "--backend", "no-such-backend"])
        if code == 0:
            problems.append(f"{os.path.basename(prog)}: accepted --backend no-such-backend")
    for p in problems:
        print("PROBLEM:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
