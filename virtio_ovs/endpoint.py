"""A small HTTP endpoint (the agent's /metrics and /healthz) that no
client can hurt the agent through: one thread and one selector for all
clients, at most ``max_clients`` sockets open (the others wait in the
kernel's backlog, holding none of the agent's file descriptors), and a
deadline per connection for the whole exchange, so an idle or slow
client is closed, never waited for.
"""
from __future__ import annotations

import logging
import selectors
import socket
import threading
import time
from typing import Callable

LOG = logging.getLogger(__name__)
Reply = tuple[int, bytes, str]  # status, body, content type
MAX_REQUEST = 8192  # bytes of request line and headers
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found",
           405: "Method Not Allowed", 503: "Service Unavailable"}


class _Client:
    def __init__(self, sock: socket.socket, deadline: float):
        self.sock = sock
        self.deadline = deadline
        self.inbox = b""
        self.outbox: bytes | None = None  # the reply, once asked


class Endpoint:
    """Serves ``route(path) -> (status, body, content type)`` for GET
    requests on ``host:port`` in its own thread, until ``close``."""

    def __init__(self, host: str, port: int, route: Callable[[str], Reply],
                 max_clients: int = 16, deadline: float = 5.0):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR,
                                     1)
            self.listener.bind((host.strip("[]"), port))
            self.listener.listen(max_clients)
        except OSError:
            self.listener.close()
            raise
        self.listener.setblocking(False)
        self.route = route
        self.max_clients = max_clients
        self.deadline = deadline
        self.clients: dict[int, _Client] = {}
        self.selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self.selector.register(self._wake_r, selectors.EVENT_READ)
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.listening = True
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="metrics",
                                       daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        return self.listener.getsockname()[:2]

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stopping = True
        self._wake_w.send(b"x")
        self.thread.join(timeout=5)
        for client in list(self.clients.values()):
            self._drop(client)
        for sock in (self.listener, self._wake_r, self._wake_w):
            sock.close()
        self.selector.close()

    # ---------------------------------------------------------- the loop
    def _run(self) -> None:
        while not self.stopping:
            timeout = min((c.deadline for c in self.clients.values()),
                          default=time.monotonic() + 60) - time.monotonic()
            for key, events in self.selector.select(max(0.0, timeout)):
                if key.fileobj is self.listener:
                    self._accept()
                elif key.fileobj is self._wake_r:
                    self._wake_r.recv(64)
                else:
                    self._serve(key.data, events)
            self._expire(time.monotonic())
            self._listen(len(self.clients) < self.max_clients)

    def _listen(self, wanted: bool) -> None:
        """Accept only while there is room: a flood waits in the backlog
        (and then is refused by the kernel), not in our descriptors."""
        if wanted != self.listening:
            if wanted:
                self.selector.register(self.listener, selectors.EVENT_READ)
            else:
                self.selector.unregister(self.listener)
            self.listening = wanted

    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # EMFILE: this process is at its limit
            LOG.warning("metrics endpoint: accept failed: %s", exc)
            return
        sock.setblocking(False)
        client = _Client(sock, time.monotonic() + self.deadline)
        self.clients[sock.fileno()] = client
        self.selector.register(sock, selectors.EVENT_READ, client)

    def _serve(self, client: _Client, events: int) -> None:
        try:
            if events & selectors.EVENT_READ and client.outbox is None:
                self._read(client)
            if client.outbox is not None:
                self._write(client)
        except OSError:  # reset by the peer
            self._drop(client)

    def _read(self, client: _Client) -> None:
        data = client.sock.recv(4096)
        if not data:
            self._drop(client)
            return
        client.inbox += data
        head, sep, _ = client.inbox.partition(b"\r\n\r\n")
        if not sep:
            head, sep, _ = client.inbox.partition(b"\n\n")
        if not sep and len(client.inbox) < MAX_REQUEST:
            return
        client.outbox = self._reply(head if sep else b"")
        self.selector.modify(client.sock, selectors.EVENT_WRITE, client)

    def _reply(self, head: bytes) -> bytes:
        words = head.split(b"\r\n", 1)[0].split(b"\n", 1)[0].split()
        if len(words) != 3 or not words[2].startswith(b"HTTP/"):
            status, body, kind = 400, b"bad request\n", "text/plain"
        elif words[0] != b"GET":
            status, body, kind = 405, b"GET only\n", "text/plain"
        else:
            path = words[1].decode("latin-1").split("?", 1)[0]
            try:
                status, body, kind = self.route(path)
            except Exception:  # noqa: BLE001 - a scrape never ends the agent
                LOG.exception("metrics endpoint: %s failed", path)
                status, body, kind = 503, b"error\n", "text/plain"
        return (f"HTTP/1.0 {status} {REASONS.get(status, 'Error')}\r\n"
                f"Content-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n").encode() + body

    def _write(self, client: _Client) -> None:
        assert client.outbox is not None
        try:
            sent = client.sock.send(client.outbox)
        except BlockingIOError:
            return
        client.outbox = client.outbox[sent:]
        if not client.outbox:
            _drain(client.sock)
            self._drop(client)

    def _expire(self, now: float) -> None:
        for client in [c for c in self.clients.values() if c.deadline <= now]:
            self._drop(client)

    def _drop(self, client: _Client) -> None:
        self.clients.pop(client.sock.fileno(), None)
        try:
            self.selector.unregister(client.sock)
        except (KeyError, ValueError):
            pass
        client.sock.close()


def _drain(sock: socket.socket) -> None:
    """Read what the client sent beyond its request: closing with unread
    data would reset the connection and could lose the reply."""
    try:
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass
    except OSError:  # nothing more (EAGAIN), or gone
        pass
