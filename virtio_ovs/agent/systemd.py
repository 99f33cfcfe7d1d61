"""systemd's notification protocol (sd_notify(3)), without libsystemd:
one datagram of ``KEY=VALUE`` lines to ``$NOTIFY_SOCKET``. Outside
systemd (no NOTIFY_SOCKET) every call does nothing."""
from __future__ import annotations

import logging
import os
import socket
import time

LOG = logging.getLogger(__name__)


class Notifier:
    def __init__(self, environ: dict | None = None):
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET") or ""
        # An abstract socket is named with a leading '@'.
        self.address = "\0" + path[1:] if path.startswith("@") else path
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watched = usec.isdigit() and (not pid or pid == str(os.getpid()))
        # Pinged at half the period, as sd_watchdog_enabled(3) advises.
        self.watchdog_interval = int(usec) / 2e6 if watched else None
        self.next_ping = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, **fields: str) -> None:
        """``notify(READY="1", STATUS="...")``; failures are logged, never
        raised: the agent works without its supervisor's notice."""
        if not self.enabled:
            return
        text = "\n".join(f"{key}={value}" for key, value in fields.items())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(text.encode(), self.address)
        except OSError as exc:
            LOG.warning("cannot notify systemd (%s): %s", self.address, exc)

    def watchdog(self, now: float | None = None) -> None:
        """WATCHDOG=1 when due (call it from the event loop: a loop that
        is stuck sends none, and systemd restarts the agent)."""
        if self.watchdog_interval is None:
            return
        now = time.monotonic() if now is None else now
        if now >= self.next_ping:
            self.next_ping = now + self.watchdog_interval
            self.notify(WATCHDOG="1")
