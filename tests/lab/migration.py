"""Live migration of a QEMU guest between two hypervisors of a lab, and
the pings of a peer across it: QMP ``migrate`` over a unix socket, the
destination QEMU started with ``-incoming``. Figures as the research
(shared/research/live_migration.md, A4) measured them."""
from __future__ import annotations

import dataclasses
import re
import signal
import subprocess
import time

from virtio_ovs.check.qmp import QmpClient


def migrate(source_qmp: str, uri: str, timeout: float = 60.0) -> dict:
    """Migrate with QEMU's own parameters and wait: its ``query-migrate``
    at the end (status, total-time and downtime in ms)."""
    with QmpClient(source_qmp, timeout=10) as qmp:
        qmp.execute("migrate", {"uri": uri})
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            info = qmp.execute("query-migrate")
            if info.get("status") in ("completed", "failed", "cancelled"):
                return info
            time.sleep(0.005)
    raise TimeoutError(f"migration to {uri} not done in {timeout} s")


@dataclasses.dataclass
class PingRun:
    sent: int
    replies: dict[int, float]  # icmp_seq -> time of its first reply
    duplicates: int

    @property
    def lost(self) -> list[int]:
        return [s for s in range(1, self.sent + 1) if s not in self.replies]

    def max_gap_ms(self) -> float:
        """The longest time between two consecutive replies."""
        times = [self.replies[s] for s in sorted(self.replies)]
        return max((b - a for a, b in zip(times, times[1:])),
                   default=0.0) * 1000


class Pinger:
    """``ping -D -O -i 0.01`` (100 pps) from a namespace, timestamped."""

    def __init__(self, netns: str, address: str):
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, "ping", "-D", "-O", "-i", "0.01",
             "-W", "2", address], stdout=subprocess.PIPE, text=True)

    def stop(self) -> PingRun:
        self.proc.send_signal(signal.SIGINT)
        out = self.proc.communicate(timeout=15)[0]
        replies: dict[int, float] = {}
        duplicates = 0
        for line in out.splitlines():
            m = re.match(r"\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+) ",
                         line)
            if m:
                seq = int(m.group(2))
                if seq in replies or "DUP!" in line:
                    duplicates += 1
                else:
                    replies[seq] = float(m.group(1))
        sent = re.search(r"(\d+) packets transmitted", out)
        return PingRun(int(sent.group(1)) if sent else max(replies, default=0),
                       replies, duplicates)
