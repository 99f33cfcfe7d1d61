"""Idle TCP clients: ``python -m tests.lab.flood HOST PORT COUNT SECONDS``
opens COUNT connections at once (non-blocking), and again every 2 s, and
holds every one of them open without sending a byte for SECONDS; prints
how many of the first batch connected within a second. Run it inside the
test's namespace."""
from __future__ import annotations

import resource
import socket
import sys
import time


def batch(host: str, port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex((host, port))
        socks.append(sock)
    return socks


def connected(socks: list[socket.socket]) -> int:
    count = 0
    for sock in socks:
        try:
            sock.getpeername()
            count += 1
        except OSError:
            pass
    return count


def main(argv: list[str]) -> int:
    host, port, count, seconds = argv[0], int(argv[1]), int(argv[2]), \
        float(argv[3])
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    end = time.monotonic() + seconds
    held = batch(host, port, count)
    time.sleep(1.0)
    print(connected(held), flush=True)
    while time.monotonic() < end:
        time.sleep(min(2.0, max(0.0, end - time.monotonic())))
        if time.monotonic() < end:
            held += batch(host, port, count)
    for sock in held:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
