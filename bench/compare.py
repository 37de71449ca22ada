#!/usr/bin/env python3
"""Compare coev benchmark programs with their libevent twins.

Usage: python3 bench/compare.py BUILD_DIR [--short] [--reps N] [--backend NAME]

Each coev program is run beside its libevent twin alternately
(coev, twin, coev, twin, ...) REPS times (default 5).  The last line of each
program's stdout is a "tag key=value ..." line; the chosen fields are parsed
and a Markdown table is printed with, per field, the coev and libevent
medians (min-max) and the median of the per-repetition ratios coev/libevent.
All figures are times, so lower is better and a ratio below 1.0 means coev
was faster.

If `taskset` exists and there are at least 2 CPUs, every program runs under
`taskset -c 1`.  A pair whose libevent twin is not built is skipped with a
note; any failure (missing coev binary, non-zero exit, timeout, unparsable
output) is reported, the remaining rows still run, and the script exits 1.

To add a benchmark, append a Bench(...) to BENCHES below.  Standard library
only.
"""

import argparse
import datetime
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable, List, Sequence

TIMEOUT_S = 120


@dataclass
class Bench:
    name: str                     # row label
    coev: str                     # coev binary, relative to BUILD_DIR
    twin: str                     # twin binary (libevent, or coev on another backend)
    args: Callable[[bool], List[str]]  # short_mode -> argv shared by both programs
    params: Callable[[bool], str]  # short_mode -> parameters shown in the table
    fields: Sequence[str]         # key=value fields to compare (one row each)
    decimals: int = 2             # decimals shown for this bench's figures
    coev_extra: Sequence[str] = ()  # extra argv only for the coev program
    twin_extra: Sequence[str] = ()  # extra argv only for the twin
    coev_backend: str = ""        # --backend for the coev program ("" = --backend option)
    twin_backend: str = ""        # --backend for the twin ("" = --backend option)
    twin_label: str = "libevent"  # who the twin is, for the table


def pipe_args(n, a, w):
    return (lambda short: ["-n", str(n), "-a", str(a), "-w", str(w),
                           "-r", "10" if short else "25"],
            lambda short: f"n={n} a={a} w={w} r=" + ("10" if short else "25"))


def pipe_chain(backend, n, a, w, twin_backend=None, twin="libevent"):
    args, params = pipe_args(n, a, w)
    coev_twin = twin != "libevent"
    return Bench(name="pipe_chain", coev="bench/pipe_chain",
                 twin="bench/pipe_chain" if coev_twin else "bench/pipe_chain_libevent",
                 args=args, params=params, fields=["us_per_round"],
                 coev_backend=backend, twin_backend=twin_backend or backend,
                 twin_label=twin)


def timers(cancel):
    return Bench(name=f"timers (cancel: {cancel})", coev="bench/timers",
                 twin="bench/timers_libevent",
                 args=lambda short: ["-n", "200000" if short else "1000000"],
                 params=lambda short: "n=" + ("200000" if short else "1000000"),
                 fields=["add_ns", "cancel_ns", "fire_ns"], decimals=1,
                 coev_extra=["--cancel", cancel], coev_backend="epoll", twin_backend="epoll")


# Each coev backend beside libevent on the same mechanism (select where libevent's select
# still works: fds below 1024), then io_uring beside libevent's best and beside coev on epoll
# at the largest chain this machine's fd limit allows.
BENCHES = [
    pipe_chain("epoll", 1000, 10, 1000),
    pipe_chain("poll", 1000, 10, 1000),
    pipe_chain("select", 500, 5, 1000),
    pipe_chain("io_uring", 1000, 10, 1000, twin_backend="epoll"),
    pipe_chain("io_uring", 9000, 100, 1000, twin_backend="epoll", twin="coev"),
    timers("timer"),
    timers("stop"),
]


class RunError(Exception):
    pass


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def pin_prefix() -> List[str]:
    """['taskset', '-c', '1'] when pinning is possible, else []."""
    if shutil.which("taskset") is None or nproc() < 2:
        return []
    try:
        if 1 not in os.sched_getaffinity(0):
            return []
    except (AttributeError, OSError):
        pass
    return ["taskset", "-c", "1"]


def parse_last_line(stdout: str) -> dict:
    lines = [l for l in stdout.splitlines() if l.strip()]
    if not lines:
        raise RunError("no output on stdout")
    result = {}
    for token in lines[-1].split():
        key, sep, value = token.partition("=")
        if sep:
            result[key] = value
    return result


def run_one(argv: List[str], fields: Sequence[str]) -> dict:
    """Run argv, return {field: float} parsed from the last stdout line."""
    cmd = " ".join(shlex.quote(a) for a in argv)
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RunError(f"timed out after {TIMEOUT_S} s: {cmd}")
    except OSError as e:
        raise RunError(f"could not run {cmd}: {e}")
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise RunError(f"exit status {proc.returncode}: {cmd}\n{tail}")
    kv = parse_last_line(proc.stdout)
    out = {}
    for f in fields:
        if f not in kv:
            raise RunError(f"field '{f}' missing from last line "
                           f"{proc.stdout.strip().splitlines()[-1]!r}: {cmd}")
        try:
            out[f] = float(kv[f])
        except ValueError:
            raise RunError(f"field '{f}' is not a number ({kv[f]!r}): {cmd}")
    return out


def fmt(values: List[float], d: int) -> str:
    return f"{statistics.median(values):.{d}f} ({min(values):.{d}f}–{max(values):.{d}f})"


# pipe_chain with both loops in one process, rounds taking turns (bench/pipe_chain_paired):
# each run prints the median of its per-round coev/libevent ratios.
PAIRED = [("epoll", 1000, 10, 1000), ("poll", 1000, 10, 1000)]


def paired_table(build, pin, opts, notes) -> bool:
    prog = os.path.join(build, "bench/pipe_chain_paired")
    if not os.path.exists(prog):
        notes.append("pipe_chain_paired: skipped, not built (libevent not found)")
        return True
    rows = []
    ok = True
    for backend, n, a, w in PAIRED:
        if opts.backend and opts.backend != backend:
            continue
        rounds = "40" if opts.short else "150"
        argv = pin + [prog, "-n", str(n), "-a", str(a), "-w", str(w), "-r", rounds,
                      "--backend", backend]
        runs = []
        try:
            for rep in range(opts.reps):
                print(f"[pipe_chain_paired] rep {rep + 1}/{opts.reps}: {shlex.join(argv)}",
                      file=sys.stderr, flush=True)
                runs.append(run_one(argv, ["coev_us", "libevent_us", "ratio"]))
        except RunError as e:
            print(f"ERROR: pipe_chain_paired: {e}", file=sys.stderr)
            notes.append(f"pipe_chain_paired {backend}: FAILED, {str(e).splitlines()[0]}")
            ok = False
            continue
        ratios = [r["ratio"] for r in runs]
        rows.append([backend, f"n={n} a={a} w={w} r={rounds}",
                     fmt([r["coev_us"] for r in runs], 2),
                     fmt([r["libevent_us"] for r in runs], 2),
                     f"{statistics.median(ratios):.3f} ({min(ratios):.3f}–{max(ratios):.3f})"])
    if rows:
        print()
        print("Both in one process (bench/pipe_chain_paired): coev and libevent rounds take "
              "turns; a run's ratio is the median of its per-round ratios, and the table shows "
              "the median (min–max) over the runs.")
        print()
        head = ["backend", "parameters", "coev us_per_round", "libevent us_per_round",
                "ratio coev/libevent"]
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" for _ in head) + "|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description="Compare coev benchmarks with their libevent twins.")
    ap.add_argument("build_dir", metavar="BUILD_DIR")
    ap.add_argument("--short", action="store_true", help="fewer rounds / timers per run")
    ap.add_argument("--reps", type=int, default=5, help="alternating repetitions (min 5, default 5)")
    ap.add_argument("--backend", default=None,
                    help="only the rows of this coev backend")
    opts = ap.parse_args()
    if opts.reps < 5:
        ap.error("--reps must be at least 5")

    build = opts.build_dir
    pin = pin_prefix()
    cmdline = getattr(sys, "orig_argv", [sys.executable] + sys.argv)

    print("# coev beside libevent")
    print()
    print(f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"- nproc: {nproc()}")
    print(f"- kernel (uname -r): {platform.release()}")
    print(f"- CPU: {cpu_model()}")
    print(f"- pinning: {' '.join(pin) if pin else 'none'}")
    print(f"- repetitions: {opts.reps} (alternating coev, libevent){' [short]' if opts.short else ''}")
    print(f"- command: `{shlex.join(cmdline)}`")
    print()
    print("Figures are times (lower is better): median (min–max) over the repetitions. "
          "Ratio = median of per-repetition coev/twin; ratio < 1.0: coev faster.")
    print()

    header = ["bench", "parameters", "coev backend", "coev", "twin", "twin backend", "twin figure",
              "ratio coev/twin"]
    rows = []
    notes = []
    failed = False

    for b in BENCHES:
        if opts.backend and b.coev_backend and b.coev_backend != opts.backend:
            continue
        args = b.args(opts.short)
        params = b.params(opts.short)
        coev_bin = os.path.join(build, b.coev)
        twin_bin = os.path.join(build, b.twin)
        cb = b.coev_backend or opts.backend or ""
        tb = b.twin_backend or opts.backend or ""
        label = [b.name, params, cb or "default"]
        twin_cols = [b.twin_label, tb or "default"]
        if not os.path.exists(twin_bin):
            notes.append(f"{b.name}: skipped, twin {twin_bin} not built")
            rows.append(label + ["skipped"] + twin_cols + ["not built", "–"])
            continue
        if not os.path.exists(coev_bin):
            msg = f"{b.name}: coev program {coev_bin} not found"
            print(f"ERROR: {msg}", file=sys.stderr)
            notes.append(f"{b.name}: FAILED, {msg}")
            rows.append(label + ["FAILED"] + twin_cols + ["–", "–"])
            failed = True
            continue

        coev_argv = pin + [coev_bin] + args + list(b.coev_extra) + (["--backend", cb] if cb else [])
        twin_argv = pin + [twin_bin] + args + list(b.twin_extra) + (["--backend", tb] if tb else [])
        results = {"coev": [], "twin": []}
        error = None
        failed_side = None
        for rep in range(opts.reps):
            for side, argv in (("coev", coev_argv), ("twin", twin_argv)):
                print(f"[{b.name}] rep {rep + 1}/{opts.reps} {side}: "
                      f"{shlex.join(argv)}", file=sys.stderr, flush=True)
                try:
                    results[side].append(run_one(argv, b.fields))
                except RunError as e:
                    error = str(e)
                    failed_side = side
                    break
            if error:
                break
        if error:
            print(f"ERROR: {b.name}: {error}", file=sys.stderr)
            notes.append(f"{b.name}: FAILED, {error.splitlines()[0]}")
            rows.append(label + ["FAILED" if failed_side == "coev" else "–"] + twin_cols +
                        ["FAILED" if failed_side == "twin" else "–", "–"])
            failed = True
            continue

        for f in b.fields:
            cv = [r[f] for r in results["coev"]]
            tv = [r[f] for r in results["twin"]]
            ratios = [c / t for c, t in zip(cv, tv) if t > 0]
            ratio = f"{statistics.median(ratios):.3f}" if ratios else "n/a"
            rows.append([f"{b.name} {f}", params, cb or "default", fmt(cv, b.decimals)] +
                        twin_cols + [fmt(tv, b.decimals), ratio])

    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    if not paired_table(build, pin, opts, notes):
        failed = True
    if notes:
        print()
        for n in notes:
            print(f"- note: {n}")
    if failed:
        print("\nERROR: at least one benchmark failed (see messages above).", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
