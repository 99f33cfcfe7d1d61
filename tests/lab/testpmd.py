"""DPDK testpmd's virtio-user as a vhost-user guest (QEMU 7.2 under TCG
crashes with vhost-user on this machine): it serves the socket OVS-DPDK
connects to, and sends packets on every queue (txonly)."""
from __future__ import annotations

import shutil
import subprocess
import time

from tests.lab.process import terminate
from tests.lab.sandbox import Hugepages, OvsSandbox, SandboxError


def missing() -> str | None:
    if shutil.which("dpdk-testpmd") is None:
        return "dpdk-testpmd is not installed (package dpdk-dev)"
    return Hugepages.available()


def start(box: OvsSandbox, sock: str, mac: str, queues: int,
          iface: str, timeout: float = 30) -> subprocess.Popen:
    """testpmd on ``sock`` (server mode, as OVS's dpdkvhostuserclient
    expects), waiting until OVS reports ``iface`` connected."""
    proc = subprocess.Popen(
        ["dpdk-testpmd", "-l", "0,1", "--no-pci",
         f"--file-prefix={box.name}tp",
         f"--huge-dir={box.hugepages.mountpoint}", "-m", "200",
         "--single-file-segments",
         f"--vdev=net_virtio_user0,path={sock},server=1,queues={queues},"
         f"mac={mac}",
         "--", f"--rxq={queues}", f"--txq={queues}", "--nb-cores=1",
         "--total-num-mbufs=4096", "--forward-mode=txonly",
         "--stats-period=1", "--auto-start"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    end = time.monotonic() + timeout
    while "status=connected" not in box.vsctl("get", "Interface", iface,
                                              "status"):
        if time.monotonic() > end or proc.poll() is not None:
            terminate(proc)
            raise SandboxError(f"testpmd never connected to {iface}")
        time.sleep(0.2)
    return proc
