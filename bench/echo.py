#!/usr/bin/env python3
"""bench/echo.py: the echo benchmark of coev beside libevent, Asio and a hand-written epoll server.

    python3 bench/echo.py BUILD_DIR [--short] [--reps N] [--duration S] [--depth P]
                          [--only c=64,s=64] [--memory] [--idle N]

Every server runs pinned to CPU 1 and the load generator (bench/echo_load) to CPU 0; within a
repetition the servers take turns, each repetition starting with the next one (ABCD BCDA ...),
and the table shows medians over repetitions. Ratios are medians of the ratios within each
repetition, where a row's servers run back to back: coev/libevent messages per second (goal
>= 1.0), p99 beside libevent's, io_uring/epoll (goal > 1.0 at 64 and 1,000 connections) and
coev epoll beside the hand-written epoll server (goal within 15 %). --memory holds N idle
connections (default 10,000) on each server and reports resident bytes per connection.
"""
import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

ROWS = [(c, s) for c in (1, 64, 1000) for s in (64, 16384)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def taskset(cpu):
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") else []


def servers(build):
    b = os.path.join(build, "bench")
    table = [
        ("coev epoll", [os.path.join(b, "echo_server"), "--backend", "epoll"]),
        ("coev io_uring", [os.path.join(b, "echo_server"), "--backend", "io_uring"]),
        ("libevent", [os.path.join(b, "echo_server_libevent"), "--backend", "epoll"]),
        ("asio", [os.path.join(b, "echo_server_asio")]),
        ("epoll by hand", [os.path.join(b, "epoll_echo_server")]),
    ]
    found = []
    for name, cmd in table:
        if os.path.exists(cmd[0]):
            found.append((name, cmd))
        else:
            print(f"# {name}: {cmd[0]} not built, skipped", file=sys.stderr)
    return found


class Server:
    """A server process on a free port; stopped with SIGINT, which must end it with status 0."""

    def __init__(self, cmd, cpu=1):
        self.port = free_port()
        self.proc = subprocess.Popen(taskset(cpu) + cmd + ["--port", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited: {self.proc.stderr.read().decode()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{cmd[0]} never listened on {self.port}")

    def rss(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            status = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "did not exit on SIGINT"
        return None if status == 0 else f"exited with {status} on SIGINT"


def load(build, port, c, s, d, p):
    cmd = taskset(0) + [os.path.join(build, "bench", "echo_load"), "--port", str(port), "-c",
                        str(c), "-s", str(s), "-d", str(d), "-p", str(p)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=d + 120)
    if out.returncode != 0:
        raise RuntimeError(f"echo_load failed: {out.stderr.strip()}")
    last = out.stdout.strip().splitlines()[-1]
    fields = dict(kv.split("=") for kv in last.split()[1:])
    return float(fields["msgs_per_s"]), float(fields["p50_us"]), float(fields["p99_us"])


def fmt_rate(x):
    return f"{x / 1000:.1f}k"


def run_matrix(args, found):
    rows = ROWS
    if args.only:
        want = dict(kv.split("=") for kv in args.only.split(","))
        rows = [(c, s) for c, s in rows
                if str(c) == want.get("c", str(c)) and str(s) == want.get("s", str(s))]
    results = {}  # (row, server) -> list of (msgs, p50, p99)
    problems = []
    for rep in range(args.reps):
        # Each repetition starts with the next server, so no server always runs first.
        order = found[rep % len(found):] + found[:rep % len(found)]
        for c, s in rows:
            for name, cmd in order:
                srv = Server(cmd)
                try:
                    r = load(args.build, srv.port, c, s, args.duration, args.depth)
                finally:
                    bad = srv.stop()
                if bad:
                    problems.append(f"{name}: {bad}")
                results.setdefault(((c, s), name), []).append(r)
                print(f"# rep {rep + 1} c={c} s={s} {name}: {r[0]:.0f} msgs/s p50 {r[1]} "
                      f"p99 {r[2]} us", file=sys.stderr)
    names = [n for n, _ in found]
    med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3))
           for k, v in results.items()}
    print(f"\nEcho, depth {args.depth}, {args.duration:g} s per run, median of {args.reps} "
          f"alternating repetitions (msgs/s, p99 latency in us; ratios: median of the "
          f"per-repetition ratios)\n")
    print("| c | size | " + " | ".join(names) + " | coev/libevent | io_uring/epoll | "
          "epoll/by hand |")
    print("|---|---|" + "---|" * (len(names) + 3))
    for c, s in rows:
        cells = []
        for n in names:
            m = med.get(((c, s), n))
            cells.append(f"{fmt_rate(m[0])} ({m[2]:.0f})" if m else "-")

        def ratio(a, b):
            # Paired within each repetition (the servers ran back to back), then the median:
            # the machine's speed drifts between repetitions far more than within one.
            ra, rb = results.get(((c, s), a)), results.get(((c, s), b))
            pairs = [x[0] / y[0] for x, y in zip(ra or [], rb or []) if y[0]]
            return f"{statistics.median(pairs):.2f}" if pairs else "-"
        print(f"| {c} | {s} | " + " | ".join(cells) + f" | {ratio('coev epoll', 'libevent')}"
              f" | {ratio('coev io_uring', 'coev epoll')} | "
              f"{ratio('coev epoll', 'epoll by hand')} |")
    for p in problems:
        print(f"PROBLEM: {p}")
    return 1 if problems else 0


def run_memory(args, found):
    targets = []
    for name, cmd in found:
        targets.append((name, cmd))
        if name == "coev epoll":  # poll holds the same connections; select cannot (FD_SETSIZE)
            targets.append(("coev poll", [cmd[0], "--backend", "poll"]))
    print(f"\nResident memory per idle connection, {args.idle} connections "
          f"(coev select skipped: it cannot watch fds >= 1024)\n")
    print("| server | RSS before | RSS after | bytes per connection |")
    print("|---|---|---|---|")
    status = 0
    for name, cmd in targets:
        srv = Server(cmd)
        holder = None
        try:
            time.sleep(0.2)
            before = srv.rss()
            holder = subprocess.Popen(
                taskset(0) + [os.path.join(args.build, "bench", "echo_load"), "--port",
                              str(srv.port), "--hold", str(args.idle), "--hold-seconds", "60"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            line = holder.stdout.readline().strip()
            if line != f"held {args.idle}":
                raise RuntimeError(f"echo_load --hold: {line} {holder.stderr.read()}")
            time.sleep(0.5)
            after = srv.rss()
            print(f"| {name} | {before // 1024} KiB | {after // 1024} KiB | "
                  f"{(after - before) / args.idle:.0f} |")
        finally:
            if holder:
                holder.send_signal(signal.SIGTERM)
                holder.wait()
            bad = srv.stop()
            if bad:
                print(f"PROBLEM: {name}: {bad}")
                status = 1
    return status


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build")
    ap.add_argument("--short", action="store_true", help="1 repetition of 0.5 s per row")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=2.0)
    ap.add_argument("--depth", type=int, default=1)
    ap.add_argument("--only", help="e.g. c=64,s=64")
    ap.add_argument("--memory", action="store_true", help="also measure idle connections")
    ap.add_argument("--idle", type=int, default=10000)
    args = ap.parse_args()
    if args.short:
        args.reps, args.duration = 1, 0.5
    found = servers(args.build)
    if not found or not os.path.exists(os.path.join(args.build, "bench", "echo_load")):
        sys.exit("echo.py: nothing to run (build the benchmarks first)")
    print("command: python3 bench/echo.py " + " ".join(sys.argv[1:]))
    status = run_matrix(args, found)
    if args.memory:
        status |= run_memory(args, found)
    sys.exit(status)


if __name__ == "__main__":
    main()
