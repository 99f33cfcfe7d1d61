"""The standalone agent and ovn-controller side by side, on the same work
and the same machine, one after the other (not a test: it prints). Needs
root.

    .venv/bin/python bench/side_by_side.py [--ports 1000] [--new 20]
                                           [--json]

Each side gets a private OVS (userspace datapath) holding ``--ports``
bound TAP ports, then:
1. new ports plugged one at a time, the libvirt way (a TAP from ``ip
   tuntap``, up, not promiscuous, then one ``ovs-vsctl add-port`` with
   iface-id and attached-mac, and for the agent its network), then
   ``--new`` more virtio-ovs's way (the TAP promiscuous, one transaction
   with ``ofport_request``). Timed from just
   before the plug to the port's first own flow (an added flow matching
   ``in_port`` on it: ``ovs-ofctl monitor watch:``), and to ovs-vswitchd
   reporting its ofport; p50 / p99;
2. cold start: the controller stopped, the flow table emptied (as after
   an ovs-vswitchd restart), the controller started, until the table
   holds as many flows as before;
3. the controller's RSS.
OVN: one chassis of the OVN lab (tests/lab/ovn.py), ovn-controller on the
same userspace datapath, the logical switch ports created beforehand, as
neutron does. Standalone: the agent of bench/agent_scale.py.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import agent_scale as scale  # noqa: E402
from bench.common import (add_integration_bridge, add_taps,  # noqa: E402
                          empty_table)
from tests.lab.ovn import OvnTopology  # noqa: E402
from tests.lab.sandbox import OvsSandbox  # noqa: E402

IN_PORT_RE = re.compile(r"in_port=([0-9]+)\b")


def added_in_port(line: str) -> str | None:
    """The port number an added flow matches on (``ovs-ofctl monitor``
    prints numbers for ports that appeared after it started): the first
    such flow is that port's own. (Flows naming a port's MAC say nothing
    on OVN: its logical switch's flows name every address of the switch
    before the port is plugged.)"""
    if "event=ADDED" not in line:
        return None
    match = IN_PORT_RE.search(line)
    return match.group(1) if match else None


def numbered(line: str) -> str | None:
    """``ovsdb-client monitor Interface name,ofport --format=csv``: "name
    ofport" of an interface that has one."""
    fields = line.strip().split(",")
    if len(fields) >= 4 and fields[-1].isdigit() and int(fields[-1]) > 0:
        return f"{fields[-2].strip(chr(34))} {fields[-1]}"
    return None


def libvirt_taps(box: OvsSandbox, names: list[str]) -> None:
    """TAPs as libvirt leaves them: up, not promiscuous."""
    with tempfile.NamedTemporaryFile("w", suffix=".ip") as batch:
        for name in names:
            batch.write(f"tuntap add dev {name} mode tap vnet_hdr\n"
                        f"link set {name} up\n")
        batch.flush()
        box.exec(["ip", "-batch", batch.name], timeout=600)


def add_ports(box: OvsSandbox, first: int, count: int, extra) -> None:
    """The bound ports: 500 per ovs-vsctl transaction (without waiting:
    ovs-vsctl's own limit is 20 s), then until each has an ofport."""
    for start in range(first, first + count, 500):
        args = ["--no-wait"]
        for i in range(start, min(first + count, start + 500)):
            args += ["--", "add-port", "br-int", f"t{i}", "--", "set",
                     "Interface", f"t{i}", f"external_ids:iface-id=p{i}",
                     f"external_ids:attached-mac={scale.mac(i)}", *extra(i)]
        box.vsctl(*args, timeout=600)
    end = time.monotonic() + 1200
    while time.monotonic() < end:
        ofports = box.vsctl("--bare", "--columns=ofport", "list",
                            "Interface", timeout=600).split()
        if sum(1 for o in ofports if o.isdigit() and int(o) > 0) >= count:
            return
        time.sleep(1)
    raise SystemExit(f"ovs-vswitchd did not number {count} ports in 1200 s")


class LibvirtWay:
    """TAPs as libvirt leaves them (up, not promiscuous), each port added
    by one ``ovs-vsctl add-port`` with iface-id and attached-mac (and
    ``extra(i)``)."""

    def __init__(self, box: OvsSandbox, extra):
        self.box, self.extra = box, extra

    def prepare(self, names: list[str]) -> None:
        libvirt_taps(self.box, names)

    def plug(self, i: int) -> None:
        self.box.vsctl("add-port", "br-int", f"t{i}", "--", "set",
                       "Interface", f"t{i}", f"external_ids:iface-id=p{i}",
                       f"external_ids:attached-mac={scale.mac(i)}",
                       *self.extra(i))

    def close(self) -> None:
        pass


class VirtioOvsWay:
    """As ``virtio-ovs-ctl plug`` writes a port: its TAP promiscuous and
    up, one transaction with the port, its ids and ``ofport_request``;
    in-process, so that the time is the transaction's, not a process
    start."""

    def __init__(self, box: OvsSandbox, network: str | None):
        from virtio_ovs.backend.factory import open_host_db
        self.box, self.network = box, network
        self.db = open_host_db(box.remote, 30)
        self.db.start()

    def prepare(self, names: list[str]) -> None:
        add_taps(self.box.netns, names, promisc=True)
        for name in names:
            self.box.exec(["ip", "link", "set", name, "up"])

    def plug(self, i: int) -> None:
        from virtio_ovs.core import plug_request
        from virtio_ovs.core.outcomes import PlugOutcome
        vif = plug_request.make_vif(
            port_id=f"p{i}", mac=scale.mac(i), tap=f"t{i}", bridge="br-int",
            network=self.network, ips=[scale.ip(i)] if self.network else None)
        self.db.plug([vif], PlugOutcome(), wait=False,
                     local_vlans=self.network is not None)

    def close(self) -> None:
        self.db.close()


def reactions(box: OvsSandbox, first: int, count: int, way,
              cap: float = 10) -> dict:
    """New ports plugged one at a time (``way``): ms from just before the
    plug to the port's first own flow, and to its ofport; p50, p99."""
    # Without actions: OVS 3.1 asserts (and ovs-vswitchd dies) when a flow
    # monitor update passes 64 KiB (ofp-msgs.c, ofpmp_postappend), which
    # one of ovn-controller's flows with its actions did at 1,000 ports.
    flows = scale.PipeWatch(box, ["ovs-ofctl", "monitor", "br-int",
                                  "watch:!initial,!actions"], added_in_port)
    ofports = scale.PipeWatch(box, ["ovsdb-client", "monitor", box.remote,
                                    "Open_vSwitch", "Interface",
                                    "name,ofport", "--format=csv"], numbered)
    time.sleep(0.5)
    way.prepare([f"t{i}" for i in range(first, first + count)])
    to_flow, to_ofport = [], []
    for i in range(first, first + count):
        start = time.monotonic()
        way.plug(i)
        end = start + cap
        number = None
        while time.monotonic() < end:
            number = number or next((k.split()[1] for k in list(ofports.seen)
                                     if k.split()[0] == f"t{i}"), None)
            if number is not None and number in flows.seen:
                break
            time.sleep(0.0005)
        to_ofport.append((ofports.seen.get(f"t{i} {number}", end) - start)
                         * 1000)
        to_flow.append((flows.seen.get(number, end) - start) * 1000)
        time.sleep(0.2)  # one port at a time: let the last one settle
    flows.stop()
    ofports.stop()
    way.close()
    # Per port: how long after ovs-vswitchd reported its ofport its first
    # own flow came (negative: before).
    after = [f - o for f, o in zip(to_flow, to_ofport)]
    return {"flow_p50_ms": statistics.median(to_flow),
            "flow_p99_ms": scale.percentile(to_flow, 0.99),
            "ofport_p50_ms": statistics.median(to_ofport),
            "ofport_p99_ms": scale.percentile(to_ofport, 0.99),
            "after_ofport_p50_ms": statistics.median(after),
            "after_ofport_p99_ms": scale.percentile(after, 0.99)}


def both_ways(box: OvsSandbox, first: int, count: int, extra,
              network: str | None) -> dict:
    """The libvirt way, then the virtio-ovs way, ``count`` ports each."""
    result = reactions(box, first, count, LibvirtWay(box, extra))
    ours = reactions(box, first + count, count, VirtioOvsWay(box, network))
    result.update({f"ours_{k}": v for k, v in ours.items()})
    return result


# ------------------------------------------------------------ standalone
def standalone(ports: int, new: int) -> dict:
    with OvsSandbox(prefix="vsbs") as box:
        add_integration_bridge(box)
        scale.ctl(box, "net-create", "blue", "--type", "local")
        libvirt_taps(box, [f"t{i}" for i in range(ports)])
        network = lambda i: ['external_ids:"virtio-ovs:network"=blue',  # noqa
                             f'external_ids:"virtio-ovs:ips"={scale.ip(i)}']
        add_ports(box, 0, ports, network)
        agent = scale.start_agent(box)
        try:
            scale.wait_flows(box, ports * scale.flows_per_port(), 600)
            result = both_ways(box, ports, new, network, "blue")
            total = scale.flow_count(box)
            agent.terminate()
            agent.wait()
            empty_table(box)
            start = time.monotonic()
            agent = scale.start_agent(box)
            wait_count(box, total, 600)
            result["cold_start_s"] = time.monotonic() - start
            result["rss_mb"] = scale.rss_mb(agent.pid)
        finally:
            agent.terminate()
            agent.wait()
    return result


def wait_count(box: OvsSandbox, count: int, timeout: float) -> None:
    """Until br-int holds ``count`` flows again."""
    end = time.monotonic() + timeout
    while scale.flow_count(box) < count:
        if time.monotonic() > end:
            raise SystemExit(f"flow table not whole after {timeout} s")
        time.sleep(0.01)


# ------------------------------------------------------------------- OVN
def ovn(ports: int, new: int) -> dict:
    topo = OvnTopology(hosts=1, prefix="bsbs").start()
    try:
        host = topo.hosts[0]
        create_lsps(topo, ports + 2 * new)
        libvirt_taps(host.box, [f"t{i}" for i in range(ports)])
        add_ports(host.box, 0, ports, lambda i: [])
        wait_installed(host.box, ports, 600)
        result = both_ways(host.box, ports, new, lambda i: [], None)
        total = scale.flow_count(host.box)
        host.stop_controller()
        empty_table(host.box)
        start = time.monotonic()
        host.start_controller()
        wait_count(host.box, total, 600)
        result["cold_start_s"] = time.monotonic() - start
        pid = int(open(host.controller_pidfile).read())
        result["rss_mb"] = scale.rss_mb(pid)
    finally:
        topo.stop()
    return result


def create_lsps(topo: OvnTopology, count: int) -> None:
    """The logical switch and its ports, as neutron creates them before
    the VM is plugged; 200 ports per ovn-nbctl call."""
    topo.central.nbctl("ls-add", "bsw")
    for first in range(0, count, 200):
        args = []
        for i in range(first, min(count, first + 200)):
            args += ["--", "lsp-add", "bsw", f"p{i}", "--",
                     "lsp-set-addresses", f"p{i}",
                     f"{scale.mac(i)} {lsp_ip(i)}"]
        topo.central.nbctl(*args)


def lsp_ip(i: int) -> str:
    """A distinct address per port (OVN refuses duplicates in a switch)."""
    j = i + 1
    return f"10.{j >> 16 & 255}.{j >> 8 & 255}.{j & 255}"


def wait_installed(box: OvsSandbox, count: int, timeout: float) -> None:
    start = time.monotonic()
    while True:
        out = box.vsctl("--bare", "--columns=name", "find", "Interface",
                        "external_ids:ovn-installed=true")
        if len(out.split()) >= count:
            return
        if time.monotonic() - start > timeout:
            raise SystemExit(f"ovn-controller installed {len(out.split())} "
                             f"of {count} ports in {timeout} s")
        time.sleep(0.2)


FIGURES = (("flow_p50_ms", "new port (libvirt way) -> its first own flow, "
            "p50", "ms"),
           ("flow_p99_ms", "... p99", "ms"),
           ("ofport_p50_ms", "... ovs-vswitchd reported its ofport, p50",
            "ms"),
           ("ours_flow_p50_ms", "new port (virtio-ovs's plug) -> its first "
            "own flow, p50", "ms"),
           ("ours_flow_p99_ms", "... p99", "ms"),
           ("ours_ofport_p50_ms", "... ovs-vswitchd reported its ofport, "
            "p50", "ms"),
           ("cold_start_s", "controller restarted -> flow table whole", "s"),
           ("rss_mb", "controller RSS", "MB"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", type=int, default=1000)
    parser.add_argument("--new", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {"standalone": standalone(args.ports, args.new),
               "ovn": ovn(args.ports, args.new)}
    command = (f".venv/bin/python bench/side_by_side.py --ports {args.ports}"
               f" --new {args.new}")
    if args.json:
        print(json.dumps({**results, "ports": args.ports,
                          "command": command}))
        return
    print(f"{args.ports} bound ports, {args.new} new ones; standalone agent "
          "vs ovn-controller (ratio: agent / ovn-controller):")
    for key, text, unit in FIGURES:
        ours, theirs = results["standalone"][key], results["ovn"][key]
        print(f"  {text:58} {ours:9.2f} {unit:2} {theirs:9.2f} {unit:2} "
              f"{ours / theirs if theirs else float('nan'):6.2f}")
    for text, figure in floor_figures(results["standalone"]):
        print(f"  agent, {text:51} {figure}")
    print(f"command: {command}")


def floor_figures(agent: dict) -> list[tuple[str, str]]:
    """The agent against the floor (ovs-vswitchd's own time), for ports
    plugged the libvirt way: the issue's targets are <= 1.1 and <= 30 ms."""
    return [("libvirt way: first own flow / ofport, p50",
             f"{agent['flow_p50_ms'] / agent['ofport_p50_ms']:.2f}"),
            ("libvirt way: first own flow after its ofport, p99",
             f"{agent['after_ofport_p99_ms']:.1f} ms")]


if __name__ == "__main__":
    main()
