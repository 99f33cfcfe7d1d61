"""Set-ups shared by the benchmarks (not tests)."""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
from typing import Iterator

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from virtio_ovs.core import plug_request  # noqa: E402
from virtio_ovs.core.outcomes import PlugOutcome  # noqa: E402
from virtio_ovs.ovsdb.host.impl import IdlHostDb  # noqa: E402
from tests.lab.dummy import DummyOvs  # noqa: E402
from tests.lab.sandbox import delete_netns  # noqa: E402


def vif(i: int) -> plug_request.Vif:
    """Bound port number ``i`` of network blue on br-int."""
    mac = f"52:54:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"
    return plug_request.make_vif(port_id=f"p{i}", mac=mac, tap=f"t{i}",
                          bridge="br-int", network="blue",
                          ips=[f"10.{i >> 16 & 255}.{i >> 8 & 255}."
                               f"{(i & 255) or 254}/8"])


@contextlib.contextmanager
def dummy_with_ports(prefix: str, ports: int) -> Iterator[tuple[DummyOvs,
                                                                 str]]:
    """A private OVS with the dummy datapath (no root) holding ``ports``
    bound ports, and an agent config for it: (ovs, config path)."""
    ovs = DummyOvs(prefix).start()
    try:
        os.environ["OVS_RUNDIR"] = ovs.dir
        ovs.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int",
                  "fail_mode=secure")
        db = IdlHostDb(ovs.remote, 300, is_tap=lambda name: True)
        db.create_network("blue", "local", None, None, {})
        for first in range(0, ports, 1000):
            db.plug([vif(i) for i in range(first, min(ports, first + 1000))],
                    PlugOutcome())
        db.close()
        path = os.path.join(ovs.dir, "agent.conf")
        with open(path, "w") as f:
            f.write(f"[ovs]\novsdb_connection = {ovs.remote}\n"
                    "datapath_type = system\novsdb_timeout = 120\n"
                    "[agent]\nreport_interval = 30\ncheck_interval = 0\n"
                    "gc_interval = 0\n")
        yield ovs, path
    finally:
        ovs.stop()


@contextlib.contextmanager
def private_netns(prefix: str) -> Iterator[str]:
    """A network namespace of our own (root), deleted at the end."""
    netns = f"{prefix}{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        yield netns
    finally:
        delete_netns(netns)


def add_taps(netns: str, names: list[str], vnet_hdr: bool = False,
             promisc: bool = False) -> None:
    """Create TAPs in ``netns`` with one ``ip -batch`` (no process per TAP)."""
    flags = " vnet_hdr" if vnet_hdr else ""
    with tempfile.NamedTemporaryFile("w", suffix=".ip") as batch:
        batch.writelines(f"tuntap add dev {name} mode tap{flags}\n"
                         for name in names)
        if promisc:
            batch.writelines(f"link set {name} promisc on\n"
                             for name in names)
        batch.flush()
        subprocess.run(["ip", "netns", "exec", netns, "ip", "-batch",
                        batch.name], check=True, timeout=300)


def empty_table(box) -> None:
    """br-int without a flow, as after an ovs-vswitchd restart."""
    box.exec(["ovs-ofctl", "-O", "OpenFlow14", "del-flows", "br-int"])


def add_integration_bridge(box) -> None:
    """br-int in a sandbox as the agent makes it (secure, OpenFlow 1.4), as
    it is once an agent has run: a plug then writes no VLAN columns (on a
    bridge that is not secure it would put each port in the dead VLAN),
    and the agent's start changes nothing but flows, as a restart on a
    real host does."""
    box.add_bridge("br-int")
    box.vsctl("set", "Bridge", "br-int", "fail_mode=secure",
              "protocols=OpenFlow10,OpenFlow13,OpenFlow14")


def count_ofports(vsctl) -> int:
    """Interfaces ovs-vswitchd has numbered (bridges' own ports excluded);
    ``vsctl`` is a sandbox's ``vsctl``."""
    out = vsctl("--format=json", "--columns=ofport", "list", "Interface")
    return sum(1 for [ofport] in json.loads(out)["data"]
               if isinstance(ofport, int) and 0 < ofport < 65534)
