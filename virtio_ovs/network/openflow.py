"""OpenFlow on a bridge, through ovs-ofctl with OpenFlow 1.4 bundles.

Every change to a bridge is one bundle: the switch applies all of it or
none of it. The bridge is reached on its management socket
(``$OVS_RUNDIR/<bridge>.mgmt``), as ovs-ofctl itself does.
"""
from __future__ import annotations

import os
import subprocess
from typing import Iterable

from virtio_ovs import paths
from virtio_ovs.core.errors import EnvironmentFailure
from virtio_ovs.network.flows import T_CANARY, Flow
from virtio_ovs.process import terminate

OFCTL = ("ovs-ofctl", "-O", "OpenFlow14")
PROTOCOLS = ["OpenFlow10", "OpenFlow13", "OpenFlow14"]


class OpenFlowBridge:
    def __init__(self, bridge: str, timeout: float = 10.0):
        self.bridge = bridge
        self.target = paths.vswitchd_mgmt_socket(bridge)
        self.timeout = timeout

    def _ofctl(self, *args: str, stdin: str | None = None) -> str:
        # A busy ovs-vswitchd (thousands of polled ports) takes its time
        # over a large bundle: allow a second per 2000 flow mods on top.
        timeout = max(1, int(self.timeout + (stdin or "").count("\n") / 2000))
        cmd = [*OFCTL, f"--timeout={timeout}", *args]
        try:
            proc = subprocess.run(cmd, input=stdin, capture_output=True,
                                  text=True, timeout=timeout + 5)
        except subprocess.TimeoutExpired:
            raise EnvironmentFailure(f"ovs-ofctl {args[0]} {self.bridge} "
                                     "timed out") from None
        if proc.returncode != 0:
            raise EnvironmentFailure(f"ovs-ofctl {args[0]} {self.bridge}: "
                                     f"{proc.stderr.strip()}")
        return proc.stdout

    def apply(self, add: Iterable[Flow], delete: Iterable[Flow],
              cookie: int) -> None:
        """One atomic bundle: strict deletes, then adds (which replace any
        flow with the same match and priority, whatever its cookie)."""
        lines = [f"delete_strict {f.match_text()}" for f in delete]
        lines += [f"add {f.text(cookie)}" for f in add]
        if lines:
            self._ofctl("--bundle", "add-flows", self.target, "-",
                        stdin="\n".join(lines) + "\n")

    def replace_all(self, flows: Iterable[Flow], cookie: int) -> None:
        """Make the table exactly ``flows`` in one bundle: flows of other
        cookies (an earlier run's leftovers) go."""
        text = "".join(f"{f.text(cookie)}\n" for f in flows)
        self._ofctl("--bundle", "replace-flows", self.target, "-", stdin=text)

    def has_canary(self, cookie: int) -> bool:
        out = self._ofctl("dump-flows", self.target,
                          f"table={T_CANARY},cookie={cookie:#x}/-1")
        return "actions=drop" in out

class SwitchWatch:
    """A long-lived ``ovs-ofctl monitor`` connection to a bridge: its end
    (EOF on the pipe) tells that ovs-vswitchd went away, with no polling."""

    def __init__(self, bridge: str):
        self.bridge = bridge
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.stop()
        self.proc = subprocess.Popen(
            [*OFCTL, "monitor", paths.vswitchd_mgmt_socket(self.bridge)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        os.set_blocking(self.proc.stdout.fileno(), False)

    def fileno(self) -> int | None:
        return self.proc.stdout.fileno() if self.proc else None

    def lost(self) -> bool:
        """Drain the pipe; True when the connection ended."""
        if self.proc is None:
            return True
        try:
            while True:
                data = os.read(self.proc.stdout.fileno(), 65536)
                if not data:
                    self.stop()
                    return True
        except BlockingIOError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, timeout=2)
            self.proc.stdout.close()
            self.proc = None
