"""Real connections between guest namespaces, for the firewall tests:
an echo server (TCP or UDP), a one-shot probe, and a long-lived TCP
connection that must never stall. Each runs ``python -c`` inside the
namespace; every wait is bounded.
"""
from __future__ import annotations

import subprocess
import sys
import time

_SERVER = r"""
import socket, sys, threading
proto, port = sys.argv[1], int(sys.argv[2])
if proto == "tcp":
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(64)
    def echo(c):
        with c:
            while True:
                data = c.recv(4096)
                if not data:
                    return
                c.sendall(data)
    print("ready", flush=True)
    while True:
        c, _ = s.accept()
        threading.Thread(target=echo, args=(c,), daemon=True).start()
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    print("ready", flush=True)
    while True:
        data, peer = s.recvfrom(4096)
        s.sendto(data, peer)
"""

_PROBE = r"""
import socket, sys
proto, addr, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
try:
    if proto == "tcp":
        c = socket.create_connection((addr, port), timeout=timeout)
        c.sendall(b"x")
        ok = c.recv(1) == b"x"
    else:
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.settimeout(timeout)
        c.sendto(b"x", (addr, port))
        ok = c.recvfrom(16)[0] == b"x"
except OSError:
    ok = False
sys.exit(0 if ok else 1)
"""

_HOLD = r"""
import socket, sys, time
addr, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
c = socket.create_connection((addr, port), timeout=2)
end, n = time.monotonic() + seconds, 0
while time.monotonic() < end:
    c.sendall(b"p")
    try:
        if c.recv(1) != b"p":
            raise OSError("bad echo")
    except OSError as exc:
        print(f"stalled after {n} round trips: {exc}", flush=True)
        sys.exit(1)
    n += 1
    time.sleep(0.02)
print(f"ok {n} round trips", flush=True)
"""


def _cmd(netns: str, script: str, *args) -> list[str]:
    return ["ip", "netns", "exec", netns, sys.executable, "-c", script,
            *map(str, args)]


def serve(netns: str, proto: str, port: int) -> subprocess.Popen:
    """An echo server; returns once it listens. Stop it with terminate."""
    proc = subprocess.Popen(_cmd(netns, _SERVER, proto, port),
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"echo server {proto}/{port} in {netns} failed")
    return proc


def probe(netns: str, proto: str, addr: str, port: int,
          timeout: float = 1.0) -> bool:
    """One new connection (TCP) or datagram (UDP) with its echo back."""
    return subprocess.run(_cmd(netns, _PROBE, proto, addr, port, timeout),
                          timeout=timeout + 10).returncode == 0


def hold(netns: str, addr: str, port: int, seconds: float
         ) -> subprocess.Popen:
    """One TCP connection kept busy for ``seconds``: exit 0 if every round
    trip came back within 2 s, 1 (with the count) at the first stall."""
    return subprocess.Popen(_cmd(netns, _HOLD, addr, port, seconds),
                            stdout=subprocess.PIPE, text=True)


def eventually(condition, timeout: float = 10.0) -> float | None:
    """Seconds until ``condition()`` held, or None after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(0.05)
    return None
