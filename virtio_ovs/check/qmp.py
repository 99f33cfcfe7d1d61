"""A small synchronous QMP client (QEMU Machine Protocol) over a unix
socket, with a timeout on every exchange."""
from __future__ import annotations

import json
import socket
from typing import Any

from virtio_ovs.core.errors import EnvironmentFailure


class QmpError(EnvironmentFailure):
    def __init__(self, command: str, error: dict):
        super().__init__(f"QMP {command}: {error.get('desc', error)}")


class QmpClient:
    def __init__(self, path: str, timeout: float = 5.0):
        self.path = path
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = b""

    def __enter__(self) -> "QmpClient":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            raise EnvironmentFailure(f"QMP {self.path}: {exc.strerror or exc}"
                                     ) from None
        self._sock = sock
        self._recv()  # the greeting
        self.execute("qmp_capabilities")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _recv(self) -> dict:
        assert self._sock is not None
        while b"\n" not in self._buf:
            try:
                chunk = self._sock.recv(65536)
            except socket.timeout:
                raise EnvironmentFailure(f"QMP {self.path}: no answer within "
                                         f"{self.timeout:g} s") from None
            if not chunk:
                raise EnvironmentFailure(f"QMP {self.path}: connection closed")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, command: str, arguments: dict | None = None) -> Any:
        assert self._sock is not None
        request: dict[str, Any] = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self._sock.sendall(json.dumps(request).encode() + b"\n")
        while True:
            reply = self._recv()
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise QmpError(command, reply["error"])
            # anything else is an asynchronous event: skip it

    def commands(self) -> set[str]:
        return {c["name"] for c in self.execute("query-commands")}


def virtio_net_status(client: QmpClient, mac: str) -> dict | None:
    """``x-query-virtio-status`` of the virtio-net device with ``mac``, or
    None when this QEMU lacks the x- commands (older than 7.2) or has no
    such NIC."""
    if "x-query-virtio-status" not in client.commands():
        return None
    for dev in client.execute("x-query-virtio"):
        if dev.get("name") != "virtio-net":
            continue
        backend = dev["path"]
        device = backend.rsplit("/", 1)[0]
        try:
            dev_mac = client.execute("qom-get", {"path": device,
                                                 "property": "mac"})
        except QmpError:
            continue
        if str(dev_mac).lower() == mac.lower():
            return client.execute("x-query-virtio-status", {"path": backend})
    return None
