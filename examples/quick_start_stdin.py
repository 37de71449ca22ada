#!/usr/bin/env python3
"""examples/quick_start_stdin.py: quick_start's server mode echoes what is typed on its stdin.

Runs `quick_start --port 0` (the kernel picks a loopback port) with a pipe for stdin, writes a
line, expects "you typed: <line>" on stdout, then closes stdin (the server must keep running)
and ends it with SIGTERM. Bounded: every wait has a deadline.
"""
import os
import select
import signal
import subprocess
import sys
import time


def read_line_until(stream, deadline):
    buf = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(stream.fileno(), 4096)
        if not chunk:
            break
        buf += chunk
        if b"\n" in buf:
            return buf
    return buf


def main():
    exe = sys.argv[1]
    proc = subprocess.Popen([exe, "--port", "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        proc.stdin.write(b"hello from the test\n")
        proc.stdin.flush()
        got = read_line_until(proc.stdout, time.monotonic() + 10)
        if got != b"you typed: hello from the test\n":
            print(f"quick_start_stdin: expected the typed line back, got {got!r}")
            return 1
        proc.stdin.close()  # EOF on stdin: the stdin task ends, the server keeps serving
        time.sleep(0.2)
        if proc.poll() is not None:
            print(f"quick_start_stdin: the server exited ({proc.returncode}) at stdin's EOF")
            return 1
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        return 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
