"""virtio-ovs-agent on a real OVS: networks, isolation, external traffic,
anti-spoofing, restarts.

Topology (all in namespaces made here):
  blue (local):  g1 10.0.1.1, g2 10.0.1.2
  red (local):   g3 10.0.1.3, g4 10.0.1.4      same subnet as blue on purpose
  ext100 (vlan physnet phys, segment 100): g5 10.0.5.5
  extflat (flat physnet phys):             g6 10.0.5.6
  outside, behind br-ex: 10.0.5.100 on VLAN 100; 10.0.5.101 and
                         10.0.1.200 untagged (a local net must not reach it)
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from tests.functional import packets as pk
from tests.functional.conftest import _MISSING
from tests.functional.topology import Topology
from tests.lab.sandbox import OvsSandbox

GUESTS = {
    "g1": ("52:54:00:00:01:01", "10.0.1.1/24", "blue"),
    "g2": ("52:54:00:00:01:02", "10.0.1.2/24", "blue"),
    "g3": ("52:54:00:00:01:03", "10.0.1.3/24", "red"),
    "g4": ("52:54:00:00:01:04", "10.0.1.4/24", "red"),
    "g5": ("52:54:00:00:01:05", "10.0.5.5/24", "ext100"),
    "g6": ("52:54:00:00:01:06", "10.0.5.6/24", "extflat"),
}
OUTSIDE = {"out100": "10.0.5.100", "outflat": "10.0.5.101",
           "outlocal": "10.0.1.200"}


@pytest.fixture(scope="module")
def topo():
    if _MISSING:
        pytest.skip(_MISSING)
    box = OvsSandbox(prefix="va")
    box.start()
    topo = Topology(box)
    try:
        box.add_bridge("br-ex")
        topo.outside = topo.add_outside("br-ex", {
            100: ["10.0.5.100/24"], None: ["10.0.5.101/24", "10.0.1.200/24"]})
        topo.write_config(mappings="phys:br-ex")
        topo.start_agent()
        topo.wait_until(lambda: topo.ctl("status", "--format", "json")
                        .returncode == 0 and json.loads(topo.ctl(
                            "status", "--format", "json").stdout)
                        .get("synced"), what="the agent's first sync")
        topo.ctl_ok("net-create", "blue", "--type", "local")
        topo.ctl_ok("net-create", "red", "--type", "local")
        topo.ctl_ok("net-create", "ext100", "--type", "vlan", "--physnet",
                    "phys", "--segment", "100")
        topo.ctl_ok("net-create", "extflat", "--type", "flat", "--physnet",
                    "phys")
        for name, (mac, ip, net) in GUESTS.items():
            guest = topo.add_guest(name, mac, ip)
            topo.ctl_ok("bind", "--port-id", guest.port_id, "--network", net,
                        "--ip", ip)
        yield topo
    finally:
        topo.close()
        box.stop()


def expected_reach(src: str, dst: str) -> bool:
    nets = {g: v[2] for g, v in GUESTS.items()}
    if dst in nets:
        return nets[src] == nets[dst]
    return {"out100": "ext100", "outflat": "extflat"}.get(dst) == nets[src]


def full_matrix(topo: Topology) -> dict:
    sources = {g: topo.guests[g].netns for g in GUESTS}
    targets = {g: topo.guests[g].addr for g in GUESTS} | OUTSIDE
    return topo.ping_matrix(sources, targets)


def test_ping_matrix_is_exactly_as_the_networks_say(topo):
    topo.wait_until(lambda: topo.ping(topo.guests["g1"], "10.0.1.2"),
                    what="g1 to reach g2")
    matrix = full_matrix(topo)
    wrong = {k: v for k, v in matrix.items() if v != expected_reach(*k)}
    assert not wrong, f"unexpected reachability: {wrong}"
    assert sum(matrix.values()) == 6  # g1<->g2, g3<->g4, g5->out, g6->out


def test_outside_reaches_only_the_mapped_networks(topo):
    matrix = topo.ping_matrix({f"out{vlan}": ns for vlan, ns in
                               topo.outside.items()},
                              {g: topo.guests[g].addr for g in GUESTS})
    assert {k for k, ok in matrix.items() if ok} == {("out100", "g5"),
                                                     ("outNone", "g6")}


def test_local_vlans_carry_the_networks_and_no_port_has_a_tag(topo):
    """Each network's local VLAN is the register its guests' frames carry
    on br-int; no Port.tag is written (the flows forward explicitly)."""
    nets = {n["name"]: n for n in json.loads(topo.ctl_ok("net-list", "--format",
                                                         "json"))}
    assert sorted(n["local_vlan"] for n in nets.values()) == [1, 2, 3, 4]
    flows = topo.box.ofctl("--no-names", "dump-flows", "br-int")
    for name, (_, _, net) in GUESTS.items():
        port = topo.guests[name].port
        assert topo.box.vsctl("get", "Port", port, "tag") == "[]"
        ofport = topo.box.vsctl("get", "Interface", port, "ofport")
        vlan = nets[net]["local_vlan"]
        assert re.search(rf"priority=100,in_port={ofport} actions="
                         rf"load:0x{vlan:x}->NXM_NX_REG6\[\]", flows), name


def _capture(topo, netns_list, markers, seconds=2.0):
    procs = [topo.popen(ns, [sys.executable, "-m", "tests.functional.packets",
                             "capture", "eth0", str(seconds),
                             *[m.hex() for m in markers]],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for ns in netns_list]
    for proc in procs:
        assert proc.stderr.readline().strip() == "ready"
    return procs


def _collect(procs) -> dict:
    total: dict[str, int] = {}
    for proc in procs:
        out, _ = proc.communicate(timeout=20)
        for marker, count in json.loads(out).items():
            total[marker] = total.get(marker, 0) + count
    return total


def test_spoofed_frames_are_received_nowhere(topo):
    g1, g2 = topo.guests["g1"], topo.guests["g2"]
    bcast = "ff:ff:ff:ff:ff:ff"
    frames = {
        b"LEGIT-ICMP": pk.ether(g2.mac, g1.mac, 0x0800, pk.ipv4(
            g1.addr, g2.addr, 1, pk.icmp_echo(b"LEGIT-ICMP"))),
        b"SPOOF-MAC": pk.ether(g2.mac, "52:54:00:99:99:99", 0x0800, pk.ipv4(
            g1.addr, g2.addr, 1, pk.icmp_echo(b"SPOOF-MAC"))),
        b"SPOOF-IP": pk.ether(g2.mac, g1.mac, 0x0800, pk.ipv4(
            "10.0.1.2", g2.addr, 1, pk.icmp_echo(b"SPOOF-IP"))),
        b"DHCP-OFFER": pk.ether(bcast, g1.mac, 0x0800, pk.ipv4(
            g1.addr, "255.255.255.255", 17, pk.udp(67, 68, b"DHCP-OFFER"))),
        b"TAGGED": pk.ether(g2.mac, g1.mac, 0x0800, pk.ipv4(
            g1.addr, g2.addr, 1, pk.icmp_echo(b"TAGGED")), vlan=2),
    }
    # Gratuitous ARP claiming g2's address (10.0.1.2) from g1; matched by
    # its sender address bytes, 52:54:00:00:01:01 + 10.0.1.2.
    garp_marker = pk.mac_bytes(g1.mac) + bytes([10, 0, 1, 2])
    legit_arp_marker = pk.mac_bytes(g1.mac) + bytes([10, 0, 1, 1])
    frames[garp_marker] = pk.ether(bcast, g1.mac, 0x0806, pk.arp(
        1, g1.mac, "10.0.1.2", "00:00:00:00:00:00", "10.0.1.2"))
    frames[legit_arp_marker] = pk.ether(bcast, g1.mac, 0x0806, pk.arp(
        1, g1.mac, "10.0.1.1", "00:00:00:00:00:00", "10.0.1.1"))
    receivers = [topo.guests[g].netns for g in GUESTS if g != "g1"]
    receivers += list(topo.outside.values())
    procs = _capture(topo, receivers, list(frames))
    topo.run(g1.netns, [sys.executable, "-m", "tests.functional.packets",
                        "send", "eth0", *[f.hex() for f in frames.values()]])
    seen = _collect(procs)
    # The legitimate frames prove the capture works (the test can fail).
    assert seen[b"LEGIT-ICMP".hex()] >= 1
    assert seen[legit_arp_marker.hex()] >= 1
    for marker in (b"SPOOF-MAC", b"SPOOF-IP", b"DHCP-OFFER", b"TAGGED",
                   garp_marker):
        assert seen[marker.hex()] == 0, f"{marker!r} got through"


def test_status_reports_the_agent(topo):
    status = json.loads(topo.ctl_ok("status", "--format", "json"))
    assert status["state"] == "up"
    assert status["ports"] == 6 and status["bound_ports"] == 6
    assert status["networks"] == 4 and status["flows"] > 20
    assert status["bridge_mappings"] == {"phys": "br-ex"}


def test_agent_restart_loses_no_packet(topo):
    g1 = topo.guests["g1"]
    old_cookie = json.loads(topo.ctl_ok("status", "--format", "json"))["cookie"]
    ping = topo.popen(g1.netns, ["ping", "-n", "-q", "-i", "0.02", "-c", "250",
                                 "-W", "1", "10.0.1.2"], stdout=subprocess.PIPE)
    time.sleep(0.5)
    assert topo.stop_agent() == 0
    topo.start_agent()
    topo.wait_until(lambda: json.loads(topo.ctl_ok(
        "status", "--format", "json")).get("cookie") != old_cookie and
        json.loads(topo.ctl_ok("status", "--format", "json")).get("synced"),
        what="the new agent's sync")
    out, _ = ping.communicate(timeout=30)
    print(f"\nagent restart under ping: {out.strip().splitlines()[-2]}")
    assert " 0% packet loss" in out, out
    # Stale flows of the old run are gone; every flow has the new cookie.
    cookie = json.loads(topo.ctl_ok("status", "--format", "json"))["cookie"]
    for bridge in ("br-int", "br-ex"):
        cookies = {line.split(",")[0].strip() for line in
                   topo.flows(bridge).splitlines() if "cookie=" in line}
        assert cookies == {f"cookie={cookie}"}


def test_vswitchd_restart_restores_traffic(topo):
    g1 = topo.guests["g1"]
    old_pid = topo.box.pid("ovs-vswitchd")
    log_before = len(topo.agent_log_text())
    topo.box.stop_vswitchd()
    topo.box.start_vswitchd()
    started = time.monotonic()
    assert topo.box.pid("ovs-vswitchd") not in (None, old_pid)
    topo.wait_until(lambda: topo.ping(g1, "10.0.1.2", wait=0.2), timeout=30,
                    what="traffic after the ovs-vswitchd restart")
    print(f"\ntraffic back {time.monotonic() - started:.2f} s after the new "
          "ovs-vswitchd started (pings of 0.2 s each)")
    log = topo.agent_log_text()[log_before:]
    assert "re-programming" in log, log[-3000:]
    assert topo.ping(topo.guests["g5"], "10.0.5.100")
    assert not topo.ping(g1, "10.0.1.3")


def test_ovsdb_server_restart_is_survived(topo):
    topo.box.stop_ovsdb()
    time.sleep(0.5)
    topo.box.start_ovsdb()
    guest = topo.add_guest("g7", "52:54:00:00:01:07", "10.0.1.7/24")
    topo.wait_until(lambda: topo.ctl("bind", "--port-id", guest.port_id,
                                     "--network", "blue", "--ip",
                                     "10.0.1.7/24").returncode == 0,
                    what="bind after the ovsdb-server restart")
    topo.wait_until(lambda: topo.ping(guest, "10.0.1.1"),
                    what="the new port's flows after the ovsdb-server restart")


def test_unbound_port_is_isolated_and_net_delete_is_refused_while_bound(topo):
    guest = topo.add_guest("g8", "52:54:00:00:01:08", "10.0.1.8/24")
    ofport = topo.box.vsctl("get", "Interface", guest.port, "ofport")
    flows = topo.box.ofctl("--no-names", "dump-flows", "br-int")
    # No flow takes its frames in or sends any frame out to it.
    assert not re.search(rf"in_port={ofport}[ ,]|output:{ofport}\b", flows)
    assert not topo.ping(guest, "10.0.1.1")
    proc = topo.ctl("net-delete", "blue")
    assert proc.returncode == 1 and "has bound ports" in proc.stderr
    topo.ctl_ok("bind", "--port-id", guest.port_id, "--network", "red",
                "--ip", "10.0.1.8/24")
    topo.wait_until(lambda: topo.ping(guest, "10.0.1.3"), what="g8 in red")
    topo.ctl_ok("unbind", "--port-id", guest.port_id)
    topo.wait_until(lambda: not topo.ping(guest, "10.0.1.3", wait=0.5),
                    what="g8 isolated again")
