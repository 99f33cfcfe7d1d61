"""The OVN backend on a real multi-host OVN: central NB/SB + ovn-northd,
two hypervisors (each its own ovsdb-server, userspace ovs-vswitchd and
ovn-controller, Geneve over an underlay), guests in namespaces and a QEMU
guest. One topology for the whole module."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.functional import sg_scenarios as sc
from tests.lab import traffic
from tests.lab.ovn import OvnTopology, missing_requirement
from tests.lab.sandbox import _run

BLUE, RED = "blue", "red"


@pytest.fixture(scope="module")
def ovn():
    reason = missing_requirement()
    if reason:
        pytest.skip(reason)
    topo = OvnTopology(hosts=2, bridge_mappings="phys:br-ex").start()
    try:
        h1, h2 = topo.hosts
        for host in topo.hosts:
            host.box.vsctl("add-br", "br-ex", "--", "set", "Bridge", "br-ex",
                           "datapath_type=netdev")
        _outside(topo, h1)
        h1.ctl_ok("net-create", BLUE, "--type", "geneve")
        h2.ctl_ok("net-create", RED, "--type", "geneve")
        topo.guests = {}
        for name, host, net, mac, ip in (
                ("ga", h1, BLUE, "02:00:00:77:00:0a", "10.77.0.10/24"),
                ("gb", h2, BLUE, "02:00:00:77:00:0b", "10.77.0.11/24"),
                ("gc", h1, RED, "02:00:00:77:00:0c", "10.77.0.11/24"),
                ("gd", h2, RED, "02:00:00:77:00:0d", "10.77.0.12/24")):
            guest = topo.add_guest(host, name, mac, ip)
            host.ctl_ok("bind", "--port-id", guest.port_id, "--network", net,
                        "--ip", ip)
            topo.guests[name] = guest
        topo.wait_hv_sync()
        yield topo
    finally:
        topo.stop()


def _outside(topo, host) -> None:
    """Two outside hosts behind host's br-ex: 10.78.0.100 untagged (for a
    flat network) and 10.79.0.100 on an access port of VLAN 100 (for a vlan
    network)."""
    for suffix, tag, cidr in (("out", None, "10.78.0.100/24"),
                              ("o100", 100, "10.79.0.100/24")):
        netns = topo.add_netns(suffix)
        uplink = f"{topo.name}{suffix}"
        host.box.exec(["ip", "link", "add", uplink, "type", "veth", "peer",
                       "name", "eth0", "netns", netns])
        host.box.exec(["ip", "link", "set", uplink, "up"])
        host.box.vsctl("add-port", "br-ex", uplink, *(
            ["--", "set", "Port", uplink, f"tag={tag}"] if tag else []))
        for cmd in (["ip", "link", "set", "eth0", "up"],
                    ["ip", "addr", "add", cidr, "dev", "eth0"],
                    ["ethtool", "-K", "eth0", "tx", "off"]):
            _run(["ip", "netns", "exec", netns, *cmd])


def eventually(condition, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.2)
    return False


def ports_json(host) -> dict:
    return {r["port_id"]: r for r in json.loads(host.ctl_ok(
        "list", "--format", "json"))}


def test_networks_are_one_truth_for_every_host(ovn):
    h1, h2 = ovn.hosts
    assert h1.ctl_ok("net-list", "--format", "json") == \
        h2.ctl_ok("net-list", "--format", "json")
    nets = {n["name"]: n for n in json.loads(h2.ctl_ok("net-list", "--format",
                                                        "json"))}
    assert nets[BLUE]["type"] == "geneve" and nets[BLUE]["local_vlan"] is None
    # Logical switches in the NB, marked as ours.
    assert ovn.central.nbctl("get", "Logical_Switch", BLUE,
                             "external_ids:virtio-ovs\\:network") == BLUE
    for args, rule in (
            (("net-create", BLUE, "--type", "geneve"), "name: network 'blue' exists"),
            (("net-create", "x", "--type", "local"), "type: with the OVN backend"),
            (("net-create", "x", "--type", "geneve", "--physnet", "phys"),
             "physnet: a geneve network takes no physnet"),
            (("net-create", "x", "--type", "vlan", "--physnet", "phys"),
             "segment: a vlan network needs a segment"),
            (("net-delete", BLUE), "name: network 'blue' has bound ports: ga, gb")):
        proc = h2.ctl(*args)
        assert proc.returncode == 1 and rule in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    h2.ctl_ok("net-create", "tmp", "--type", "geneve")
    h1.ctl_ok("net-delete", "tmp")
    assert "tmp" not in h2.ctl_ok("net-list")


def test_the_nb_over_tcp_shows_the_same_networks(ovn):
    """A tcp: NB remote (here on the central's own loopback, from inside
    the central's namespace) gives what the unix: one gives."""
    h1 = ovn.hosts[0]
    conf = f"{ovn.dir}/tcp.conf"
    with open(conf, "w") as f:
        f.write(f"[ovs]\novsdb_connection = {h1.box.remote}\n[agent]\n"
                f"backend = ovn\n[ovn]\n"
                f"ovn_nb_connection = {ovn.central.nb_tcp_remote}\n")
    proc = subprocess.run(["ip", "netns", "exec", ovn.central.netns,
                           sys.executable, "-m", "virtio_ovs.cli",
                           "--config-file", conf, "net-list", "--format",
                           "json"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == json.loads(
        h1.ctl_ok("net-list", "--format", "json"))


def test_guests_on_two_hosts_reach_each_other(ovn):
    ga, gb = ovn.guests["ga"], ovn.guests["gb"]
    assert ga.ping(gb.ip, count=3) and gb.ping(ga.ip, count=3)
    ports = ports_json(ovn.hosts[0])
    assert (ports["ga"]["ovn_switch"], ports["ga"]["ovn_up"],
            ports["ga"]["ovn_installed"], ports["ga"]["tag"]) == \
        (BLUE, True, True, None)


def test_networks_with_overlapping_ips_stay_isolated(ovn):
    ga, gc, gd = ovn.guests["ga"], ovn.guests["gc"], ovn.guests["gd"]
    assert gd.ping("10.77.0.11")  # gc (red), not gb (blue) with that IP
    neigh = gd.run("ip", "neigh", "show", "10.77.0.11").stdout
    assert gc.mac in neigh and ovn.guests["gb"].mac not in neigh
    assert not ga.ping(gd.ip, count=2)
    assert not gc.ping(ga.ip, count=2)


def test_flat_and_vlan_networks_reach_the_outside(ovn):
    h1 = ovn.hosts[0]
    h1.ctl_ok("net-create", "ext", "--type", "flat", "--physnet", "phys")
    h1.ctl_ok("net-create", "v100", "--type", "vlan", "--physnet", "phys",
              "--segment", "100")
    ge = ovn.add_guest(h1, "ge", "02:00:00:78:00:14", "10.78.0.20/24")
    gv = ovn.add_guest(h1, "gv", "02:00:00:79:00:14", "10.79.0.20/24")
    h1.ctl_ok("bind", "--port-id", "ge", "--network", "ext", "--ip",
              "10.78.0.20/24")
    h1.ctl_ok("bind", "--port-id", "gv", "--network", "v100", "--ip",
              "10.79.0.20/24")
    assert ovn.central.nbctl("get", "Logical_Switch_Port", "ln-v100",
                             "tag_request") == "100"
    assert eventually(lambda: ge.ping("10.78.0.100"))
    assert eventually(lambda: gv.ping("10.79.0.100"))
    assert not ge.ping("10.79.0.100", count=2)  # the VLAN is not the flat net


def test_port_security_drops_a_spoofed_ip_or_mac(ovn):
    h2 = ovn.hosts[1]
    gs = ovn.add_guest(h2, "gs", "02:00:00:77:00:1e", "10.77.0.30/24")
    h2.ctl_ok("bind", "--port-id", "gs", "--network", BLUE, "--ip",
              "10.77.0.30/24")
    ga = ovn.guests["ga"]
    assert eventually(lambda: gs.ping(ga.ip))
    assert ovn.central.nbctl("get", "Logical_Switch_Port", "gs",
                             "port_security") == '["02:00:00:77:00:1e 10.77.0.30"]'
    def use_address(cidr: str) -> None:
        gs.run("ip", "addr", "flush", "dev", "eth0")
        gs.run("ip", "addr", "add", cidr, "dev", "eth0")
        assert cidr in gs.run("ip", "-br", "addr", "show", "eth0").stdout

    use_address("10.77.0.31/24")
    assert not gs.ping(ga.ip, count=3)  # spoofed source IP
    use_address("10.77.0.30/24")
    assert eventually(lambda: gs.ping(ga.ip))
    gs.run("ip", "link", "set", "eth0", "address", "02:00:00:77:00:99")
    gs.run("ip", "neigh", "flush", "all")
    assert not gs.ping(ga.ip, count=3)  # spoofed source MAC
    gs.run("ip", "link", "set", "eth0", "address", "02:00:00:77:00:1e")
    assert eventually(lambda: gs.ping(ga.ip))


def test_plug_returns_when_ovn_controller_installed_the_port(ovn):
    h2 = ovn.hosts[1]
    start = time.monotonic()
    h2.ctl_ok("plug", "--port-id", "pt1", "--mac", "02:00:00:77:01:01",
              "--tap", "tapo1", "--queues", "2", "--network", BLUE, "--ip",
              "10.77.1.1/24")
    took = time.monotonic() - start
    port = ports_json(h2)["pt1"]
    assert port["ovn_installed"] and port["ovn_switch"] == BLUE, port
    assert port["tag"] is None and port["kind"] == "tap" and port["queues"] == 2
    assert h2.box.vsctl("get", "Port", "tapo1", "tag") == "[]"
    assert took < 5
    h2.ctl_ok("unplug", "--port-id", "pt1")
    assert ovn.central.nbctl("--bare", "--columns=name", "find",
                             "Logical_Switch_Port", "name=pt1") == ""
    assert "tapo1" not in h2.box.exec(["ls", "/sys/class/net"]).stdout.split()


def test_plug_times_out_without_ovn_controller_and_no_wait_skips(ovn):
    h2 = ovn.hosts[1]
    h2.stop_controller()
    try:
        start = time.monotonic()
        proc = h2.ctl("--timeout", "2", "plug", "--port-id", "pt2", "--mac",
                      "02:00:00:77:01:02", "--tap", "tapo2", "--network",
                      BLUE)
        assert proc.returncode == 2, proc.stderr
        assert "waiting for ovn-controller to install pt2" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert time.monotonic() - start < 6
        # Committed on both sides: the port stays, ovn-controller will come.
        assert ports_json(h2)["pt2"]["ovn_switch"] == BLUE
        proc = h2.ctl("--no-wait", "plug", "--port-id", "pt3", "--mac",
                      "02:00:00:77:01:03", "--tap", "tapo3", "--network", BLUE)
        assert proc.returncode == 0, proc.stderr
    finally:
        h2.start_controller()
    assert eventually(lambda: all(ports_json(h2)[p]["ovn_installed"]
                                  for p in ("pt2", "pt3")))
    for port in ("pt2", "pt3"):
        h2.ctl_ok("unplug", "--port-id", port)


def test_bind_refuses_what_is_not_ours_and_writes_nothing(ovn):
    h1 = ovn.hosts[0]
    ovn.central.nbctl("lsp-add", BLUE, "neutron-port")
    guest = ovn.add_guest(h1, "gn", "02:00:00:77:00:2e", "10.77.0.40/24",
                          port_id="neutron-port")
    proc = h1.ctl("bind", "--port-id", guest.port_id, "--network", BLUE)
    assert proc.returncode == 1
    assert "was not created by virtio-ovs" in proc.stderr
    assert ports_json(h1)["neutron-port"]["network"] is None
    proc = h1.ctl("bind", "--port-id", "ga", "--network", "nope")
    assert proc.returncode == 1 and "no network named 'nope'" in proc.stderr
    ovn.central.nbctl("lsp-del", "neutron-port")


def test_standalone_migration_preparation_is_refused_on_ovn(ovn):
    """OVN sees a second chassis by itself: migration-expect and plug
    --migrating-from are the standalone backend's, and write nothing."""
    h1 = ovn.hosts[0]
    proc = h1.ctl("migration-expect", "--port-id", "mx", "--from", "hv9")
    assert proc.returncode == 1 and proc.stderr.startswith(
        "virtio-ovs-ctl: migration-expect: the ovn backend sees"), proc.stderr
    proc = h1.ctl("plug", "--port-id", "mx", "--mac", "02:00:00:77:00:3e",
                  "--tap", "mxt", "--network", BLUE, "--migrating-from",
                  "hv9")
    assert proc.returncode == 1 and "migrating_from: applies to the " \
        "standalone backend" in proc.stderr, proc.stderr
    assert "mx" not in ports_json(h1)
    assert "incoming" not in h1.box.vsctl("get", "Open_vSwitch", ".",
                                          "external_ids")


def test_qemu_guest_with_two_queues_reaches_a_guest_on_the_other_host(
        ovn, guest_image):
    from tests.lab.guest import QemuGuest
    h1 = ovn.hosts[0]
    mac, ip = "52:54:00:77:00:33", "10.77.0.33/24"
    h1.ctl_ok("plug", "--port-id", "vmq", "--mac", mac, "--tap", "tapvmq",
              "--queues", "2", "--network", BLUE, "--ip", ip, "--vm", "vmq")
    guest = QemuGuest("vmq", h1.box.dir, *guest_image, tap="tapvmq", mac=mac,
                      ip=ip, queues=2, netns=h1.box.netns, env=h1.box.env)
    guest.start()
    try:
        assert "queues=2" in guest.wait_ready()
        out = guest.run("ping -c 3 -W 2 10.77.0.11", timeout=30)
        assert "3 packets received" in out, out
        proc = h1.box.exec([sys.executable, "-m", "virtio_ovs.cli", "check",
                            "--port-id", "vmq", "--format", "json"],
                           check=False, timeout=60)
        [report] = json.loads(proc.stdout)
        # This host has no /dev/vhost-net: the check says so, as anywhere.
        assert (report["queues_expected"], report["queues_configured"],
                report["queues_enabled"]) == (2, 2, 2)
        assert report["verdict"] in ("through-qemu", "bypass")
    finally:
        guest.stop()
        h1.ctl_ok("unplug", "--port-id", "vmq")


def test_ovn_controller_killed_and_restarted_under_ping(ovn):
    h1 = ovn.hosts[0]
    ga, gb = ovn.guests["ga"], ovn.guests["gb"]
    ping = subprocess.Popen(["ip", "netns", "exec", ga.netns, "ping", "-i",
                             "0.02", "-W", "1", gb.ip],
                            stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        h1.stop_controller(kill=True)
        time.sleep(1)
        h1.start_controller()
        assert eventually(lambda: "ovn-installed" in h1.box.vsctl(
            "get", "Interface", ga.port, "external_ids"))
        time.sleep(1)
    finally:
        ping.send_signal(signal.SIGINT)
        out = ping.communicate(timeout=10)[0]
    sent, received = map(int, re.search(
        r"(\d+) packets transmitted, (\d+) received", out).groups())
    print(f"ping across an ovn-controller kill and restart: {sent} sent, "
          f"{sent - received} lost")
    assert sent > 100 and received >= 0.95 * sent, out[-300:]
    assert ga.ping(gb.ip)


def test_standalone_agent_refuses_an_ovn_br_int(ovn):
    h1 = ovn.hosts[0]
    conf = f"{h1.box.dir}/standalone.conf"
    with open(conf, "w") as f:
        f.write("[ovs]\ndatapath_type = netdev\n")
    flows_before = h1.box.ofctl("dump-flows", "br-int", "--no-stats")
    proc = h1.box.exec([sys.executable, "-m", "virtio_ovs.agent.main",
                        "--config-file", conf], check=False, timeout=30)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert "integration_bridge: br-int is programmed by ovn-controller" in \
        lines[-1] and "backend = ovn" in lines[-1], proc.stderr
    assert "Traceback" not in proc.stderr
    assert h1.box.ofctl("dump-flows", "br-int", "--no-stats") == flows_before


def test_agent_in_ovn_mode_beats_and_programs_no_flows(ovn):
    h2 = ovn.hosts[1]
    conf = f"{h2.box.dir}/agent-ovn.conf"
    with open(conf, "w") as f:
        f.write("[ovs]\ndatapath_type = netdev\n[agent]\nbackend = ovn\n"
                "report_interval = 1\ncheck_interval = 1\n")
    agent = subprocess.Popen(h2.box.exec_cmd([
        sys.executable, "-m", "virtio_ovs.agent.main", "--config-file", conf]),
        env=h2.box.env, stderr=subprocess.PIPE, text=True)
    try:
        def status() -> dict:
            return json.loads(h2.ctl_ok("status", "--format", "json"))
        assert eventually(lambda: status().get("state") == "up"
                          and status().get("synced"))
        assert status()["backend"] == "ovn"
        assert eventually(lambda: ports_json(h2)["gb"]["verdict"] is not None)
        cookie = status()["cookie"]
        assert f"cookie={cookie}" not in h2.box.ofctl("dump-flows", "br-int")
        assert ovn.guests["gb"].ping(ovn.guests["ga"].ip)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.communicate(timeout=10)
    assert agent.returncode == 0


# ----------------------------------------------------------- security groups
class OvnLab:
    """The security group scenarios on OVN: guests on both hosts of one
    geneve network; ``restart`` restarts ovn-controller on host 1."""

    subnet = "10.77.9.0/24"

    def __init__(self, topo, guests: dict):
        self.topo = topo
        self.guests = guests
        self.ctl = topo.hosts[1].ctl
        self.ctl_ok = topo.hosts[1].ctl_ok

    def port_id(self, name: str) -> str:
        return self.guests[name].port_id

    def ns(self, name: str) -> str:
        return self.guests[name].netns

    def addr(self, name: str) -> str:
        return self.guests[name].ip

    def connects(self, src: str, dst: str, port: int, proto: str = "tcp"
                 ) -> bool:
        return traffic.probe(self.ns(src), proto, self.addr(dst), port)

    def ping(self, src: str, dst: str) -> bool:
        return self.guests[src].ping(self.addr(dst))

    def restart(self) -> None:
        host = self.topo.hosts[0]
        host.stop_controller()
        host.start_controller()
        self.topo.wait_hv_sync()


@pytest.fixture(scope="module")
def sg_lab(ovn):
    h1, h2 = ovn.hosts
    h1.ctl_ok("net-create", "sgn", "--type", "geneve")
    for group in ("web", "db"):
        h2.ctl_ok("sg-create", group)
    guests, servers = {}, []
    try:
        for i, (name, groups) in enumerate(sc.GUEST_GROUPS.items(), 1):
            host = (h1, h2)[i % 2]
            cidr = f"10.77.9.{i}/24"
            guest = ovn.add_guest(host, name, f"02:00:00:77:09:0{i}", cidr)
            args = [a for g in groups for a in ("--security-group", g)]
            host.ctl_ok("bind", "--port-id", guest.port_id, "--network",
                        "sgn", "--ip", cidr, *args)
            guests[name] = guest
            servers += sc.start_servers(guest.netns)
        ovn.wait_hv_sync()
        yield OvnLab(ovn, guests)
    finally:
        for server in servers:
            server.kill()
            server.wait()


def test_sg_new_group_admits_members_and_lets_everything_out(sg_lab):
    sc.new_group_admits_members_and_lets_everything_out(sg_lab)
    acls = sg_lab.topo.central.nbctl("acl-list", "vovs_web")
    assert "allow-related" in acls and "$vovs_web_ip4" in acls


def test_sg_established_replies_pass_while_new_reverse_drop(sg_lab):
    sc.replies_pass_but_reverse_new_connections_drop(sg_lab)


def test_sg_tcp_udp_and_icmp_rules_by_port_and_type(sg_lab):
    sc.rules_by_protocol_port_and_icmp_type(sg_lab)


def test_sg_egress_rules_limit_what_leaves(sg_lab):
    sc.egress_rules_limit_what_leaves(sg_lab)


def test_sg_remote_group_rules_follow_membership(sg_lab):
    took = sc.remote_group_rules_follow_membership(sg_lab)
    print(f"OVN: membership change to traffic {took * 1000:.0f} ms")


def test_sg_open_connection_survives_rule_changes_and_a_restart(sg_lab):
    sc.open_connection_survives_rule_changes_and_a_restart(sg_lab)


@pytest.mark.parametrize("args, rule", sc.BAD_RULES)
def test_sg_bad_rules_exit_1_and_write_nothing(sg_lab, args, rule):
    sc.bad_rule_exits_1_and_writes_nothing(sg_lab, args, rule)


def test_sg_groups_in_use_stay_and_unknown_groups_are_refused(sg_lab):
    sc.groups_in_use_stay_and_unknown_groups_are_refused(sg_lab)
