"""Functional tests: a real private OVS (ovsdb-server + ovs-vswitchd) in a
network namespace per test; the CLI runs inside that namespace."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from tests.lab.sandbox import OvsSandbox


def _missing_requirement() -> str | None:
    if os.geteuid() != 0:
        return "functional tests need root (network namespaces, TAPs)"
    for tool in ("ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (run tools/test.sh)"
    return None


_MISSING = _missing_requirement()

# A runner started in the background by a shell without job control
# (`nohup tools/test.sh &`) ignores SIGINT, and every command a test starts
# inherits that: the Ctrl-C a test sends (`watch`'s normal end) would do
# nothing. The tests send Ctrl-C as a user at a terminal does, so their
# commands start with the default disposition (a handler is reset on exec).
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def box():
    if _MISSING:
        pytest.skip(_MISSING)
    sandbox = OvsSandbox(prefix="vt")
    sandbox.start()
    try:
        sandbox.add_bridge("br-int")
        yield sandbox
    finally:
        sandbox.stop()


class Ctl:
    """Runs virtio-ovs-ctl inside the sandbox's namespace, with its
    OVS_RUNDIR: no --db, the way an operator would."""

    def __init__(self, box: OvsSandbox):
        self.box = box

    def __call__(self, *args: str, input: str | None = None,
                 timeout: float = 60) -> subprocess.CompletedProcess:
        return self.box.exec([sys.executable, "-m", "virtio_ovs.cli", *args],
                             check=False, input=input, timeout=timeout)

    def ok(self, *args: str, input: str | None = None) -> str:
        proc = self(*args, input=input)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def json(self, *args: str):
        return json.loads(self.ok(*args, "--format", "json"))


@pytest.fixture
def topo(box):
    """Guests, outside hosts and the agent around ``box``."""
    from tests.functional.topology import Topology
    topo = Topology(box)
    yield topo
    topo.close()


@pytest.fixture
def ctl(box):
    return Ctl(box)


AGENT_KEYS = ("virtio-ovs:agent", "virtio-ovs:agent-standby")


def db_state(box: OvsSandbox) -> dict:
    """What a plug may write, to check that a failed one wrote nothing."""
    def rows(table: str, columns: str) -> list:
        out = box.vsctl("--format=json", f"--columns={columns}", "list", table)
        data = json.loads(out)["data"]
        return sorted(json.dumps(r, sort_keys=True) for r in data)
    ids = json.loads(box.vsctl("--format=json", "--columns=external_ids",
                               "list", "Open_vSwitch"))["data"][0][0][1]
    return {
        # Networks and groups; not the agents' heartbeats.
        "Open_vSwitch": sorted(kv for kv in ids if kv[0] not in AGENT_KEYS),
        "Interface": rows("Interface", "name,type,options,external_ids,mtu_request"),
        "Port": rows("Port", "name,tag,trunks,vlan_mode,external_ids"),
        "Bridge": rows("Bridge", "name,ports"),
        "next_cfg": box.vsctl("get", "Open_vSwitch", ".", "next_cfg"),
        "links": sorted(box.exec(["ls", "/sys/class/net"]).stdout.split()),
    }


def iface_get(box: OvsSandbox, name: str, column: str) -> str:
    return box.vsctl("get", "Interface", name, column)


def sysfs(box: OvsSandbox, path: str) -> str:
    return box.exec(["cat", path]).stdout.strip()


@pytest.fixture(scope="module")
def dpdk_box():
    """OVS-DPDK on private hugepages (given back at the end)."""
    from tests.lab.sandbox import Hugepages
    reason = _MISSING or Hugepages.available()
    if reason:
        pytest.skip(reason)
    sandbox = OvsSandbox(prefix="vd", dpdk_memory_mb=256)
    sandbox.start()
    try:
        sandbox.add_bridge("br-int", "netdev")
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture(scope="session")
def guest_image():
    """(kernel, initrd) of the tiny guest, built once from Debian packages."""
    from tests.lab.guest import QEMU, build_guest
    if _MISSING:
        pytest.skip(_MISSING)
    if shutil.which(QEMU) is None:
        pytest.skip(f"{QEMU} is not installed (run tools/test.sh)")
    cache = os.environ.get("VIRTIO_OVS_GUEST_CACHE") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))), ".cache", "guest")
    return build_guest(cache)
