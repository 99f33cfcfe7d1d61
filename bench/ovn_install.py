"""Benchmark: on a two-host OVN (central + 2 hypervisors, userspace
datapath, Geneve), how long from a Logical_Switch_Port's commit in the NB
until ovn-controller has installed the port (``ovn-installed=true`` on its
OVS Interface), over N ports; and a whole ``virtio-ovs-ctl plug`` with the
wait, the way an operator runs it.

    .venv/bin/python bench/ovn_install.py [--ports 100] [--plugs 10]

The OVS ports (TAPs with iface-id) exist before their LSPs, as when a VM
is plugged before its port is bound. Not a test: it prints.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import add_taps  # noqa: E402
import ovs.poller  # noqa: E402
from virtio_ovs.core import plug_request  # noqa: E402
from virtio_ovs.core.outcomes import PlugOutcome  # noqa: E402
from virtio_ovs.ovsdb.host.impl import IdlHostDb  # noqa: E402
from virtio_ovs.ovsdb.nb.api import LspSpec  # noqa: E402
from virtio_ovs.ovsdb.nb.impl import IdlNorthboundDb  # noqa: E402
from tests.lab.ovn import OvnTopology  # noqa: E402


def mac(i: int) -> str:
    return f"52:54:00:99:{i >> 8 & 255:02x}:{i & 255:02x}"


def wait_installed(db, port_id: str, deadline: float) -> float:
    """Sleep on the host IDL until the port is installed; the time then."""
    while True:
        port = next((p for p in db.list_ports() if p.port_id == port_id), None)
        if port is not None and port.ovn_installed:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise SystemExit(f"{port_id} not installed in time")
        poller = ovs.poller.Poller()
        db.register_wakeup(poller)
        poller.timer_wait(5)
        poller.block()
        db.run()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", type=int, default=100)
    parser.add_argument("--plugs", type=int, default=10)
    args = parser.parse_args()
    topo = OvnTopology(hosts=2, prefix="vb").start()
    try:
        h1 = topo.hosts[0]
        h1.ctl_ok("net-create", "bench", "--type", "geneve")
        add_taps(h1.box.netns, [f"tb{i}" for i in range(args.ports)])
        host = IdlHostDb(h1.box.remote, 30, is_tap=lambda name: True)
        vifs = [plug_request.make_vif(port_id=f"b{i}", mac=mac(i), tap=f"tb{i}",
                               bridge="br-int", network="bench")
                for i in range(args.ports)]
        host.plug(vifs, PlugOutcome(), local_vlans=False)
        nb = IdlNorthboundDb(topo.central.nb_remote, 30)
        latencies = []
        for vif in vifs:
            nb.ensure_ports([LspSpec(vif.port_id, "bench", vif.mac, ())])
            committed = time.monotonic()
            installed = wait_installed(host, vif.port_id, committed + 30)
            latencies.append((installed - committed) * 1000)
        plugs = []
        for i in range(args.plugs):
            start = time.monotonic()
            h1.ctl_ok("plug", "--port-id", f"c{i}", "--mac", mac(1000 + i),
                      "--tap", f"tc{i}", "--network", "bench")
            plugs.append((time.monotonic() - start) * 1000)
    finally:
        topo.stop()
    print(f"LSP committed -> ovn-installed, {args.ports} ports on a 2-host "
          f"OVN: p50 {statistics.median(latencies):.1f} ms, p99 "
          f"{pct(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms")
    print(f"virtio-ovs-ctl plug --network (LSP + TAP + OVS port + wait for "
          f"ovn-installed, including the CLI's start), {args.plugs} plugs: "
          f"p50 {statistics.median(plugs):.0f} ms, max {max(plugs):.0f} ms")
    print(f"command: .venv/bin/python bench/ovn_install.py --ports "
          f"{args.ports} --plugs {args.plugs}")


if __name__ == "__main__":
    main()
