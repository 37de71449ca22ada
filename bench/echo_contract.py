#!/usr/bin/env python3
"""bench/echo_contract.py SERVER [--backend NAME]: checks an echo server's command-line contract.

- everything a client sent before its FIN comes back, then the server closes;
- a client that does not read its echoes is not read either: the server's memory stays bounded
  while the client pushes 32 MiB, and every byte comes back once the client reads;
- SIGINT with connections open ends the server with status 0.
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import time


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("server")
    ap.add_argument("--backend")
    args = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [args.server, "--port", str(port)] + (["--backend", args.backend] if args.backend else [])
    srv = subprocess.Popen(cmd, stderr=subprocess.PIPE)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)

        # Everything before the FIN comes back, then the server closes.
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        sent = bytes(range(256)) * 4000
        c.sendall(sent)
        c.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            d = c.recv(65536)
            if not d:
                break
            got += d
        assert got == sent, f"echoed {len(got)} of {len(sent)} bytes"
        c.close()

        # A client that does not read: the server stops reading it and stays small.
        slow = socket.create_connection(("127.0.0.1", port), timeout=10)
        slow.setblocking(False)
        base = rss(srv.pid)
        total, chunk = 32 << 20, b"s" * 65536
        pushed = 0
        deadline = time.time() + 5
        while pushed < total and time.time() < deadline:
            try:
                pushed += slow.send(chunk)
            except BlockingIOError:
                time.sleep(0.01)
        grown = rss(srv.pid) - base
        assert pushed < total, "the server kept reading a client that never read"
        assert grown < 8 << 20, f"the server grew by {grown} bytes for one slow client"
        # Now read: every byte pushed comes back.
        slow.setblocking(True)
        slow.shutdown(socket.SHUT_WR)
        back = 0
        while True:
            d = slow.recv(1 << 20)
            if not d:
                break
            back += len(d)
        assert back == pushed, f"{back} of {pushed} bytes came back"

        # SIGINT with a connection open: exit 0.
        idle = socket.create_connection(("127.0.0.1", port), timeout=10)
        idle.sendall(b"x")
        assert idle.recv(1) == b"x"
        srv.send_signal(signal.SIGINT)
        status = srv.wait(timeout=10)
        assert status == 0, f"exit status {status} after SIGINT"
        print(f"ok: {os.path.basename(args.server)} {args.backend or ''}: echo, FIN, "
              f"backpressure ({pushed >> 10} KiB accepted of {total >> 10}, RSS +{grown >> 10} KiB),"
              " SIGINT")
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAIL: {e}")
        sys.exit(1)
