"""Stateful security groups on the standalone backend: real TCP, UDP and
ICMP between guest namespaces through a real OVS with conntrack.

  network sgnet (local): s1 10.0.7.1 (web), s2 10.0.7.2 (web), s3 10.0.7.3
  (db), s4 10.0.7.4 (no group: unfiltered)
"""
from __future__ import annotations

import json
import signal

import pytest

from tests.functional.conftest import _MISSING
from tests.functional.topology import Topology
from virtio_ovs.testing import traffic
from virtio_ovs.testing.sandbox import OvsSandbox

GUESTS = {"s1": ("52:54:00:00:07:01", "10.0.7.1/24", ["web"]),
          "s2": ("52:54:00:00:07:02", "10.0.7.2/24", ["web"]),
          "s3": ("52:54:00:00:07:03", "10.0.7.3/24", ["db"]),
          "s4": ("52:54:00:00:07:04", "10.0.7.4/24", [])}
PORTS = {"tcp": (8080, 9000, 5432), "udp": (5353, 5354)}


@pytest.fixture(scope="module")
def lab():
    if _MISSING:
        pytest.skip(_MISSING)
    box = OvsSandbox(prefix="vs")
    box.start()
    topo = Topology(box)
    servers = []
    try:
        topo.write_config()
        topo.start_agent()
        topo.ctl_ok("net-create", "sgnet", "--type", "local")
        for group in ("web", "db"):
            topo.ctl_ok("sg-create", group)
        for name, (mac, ip, groups) in GUESTS.items():
            guest = topo.add_guest(name, mac, ip)
            args = [a for g in groups for a in ("--security-group", g)]
            topo.ctl_ok("bind", "--port-id", guest.port_id, "--network",
                        "sgnet", "--ip", ip, *args)
            for proto, ports in PORTS.items():
                servers += [traffic.serve(guest.netns, proto, p)
                            for p in ports]
        topo.wait_until(lambda: connects(topo, "s1", "s2", 9000)
                        and not topo.ping(topo.guests["s4"], "10.0.7.1"),
                        what="the groups' flows")
        yield topo
    finally:
        for server in servers:
            server.kill()
            server.wait()
        topo.close()
        box.stop()


def addr(topo, name: str) -> str:
    return topo.guests[name].addr


def connects(topo, src: str, dst: str, port: int, proto: str = "tcp"
             ) -> bool:
    return traffic.probe(topo.guests[src].netns, proto, addr(topo, dst), port)


def groups(topo) -> dict:
    return {g["name"]: g for g in json.loads(topo.ctl_ok("sg-list",
                                                         "--format", "json"))}


def rule_id(topo, group: str, **match) -> str:
    for rule in groups(topo)[group]["rules"]:
        if all(rule[k] == v for k, v in match.items()):
            return rule["id"]
    raise AssertionError(f"no rule {match} in {group}")


def test_a_new_group_admits_its_members_and_lets_everything_out(lab):
    assert connects(lab, "s1", "s2", 9000)  # a member of web
    assert not connects(lab, "s4", "s1", 9000)  # not a member
    assert not connects(lab, "s3", "s1", 9000)  # db is not web
    assert connects(lab, "s1", "s4", 9000)  # egress, and its replies
    assert not connects(lab, "s1", "s3", 9000)  # db admits only db
    assert lab.ping(lab.guests["s1"], addr(lab, "s4"))
    assert not lab.ping(lab.guests["s4"], addr(lab, "s1"))


def test_established_replies_pass_while_new_reverse_connections_drop(lab):
    assert connects(lab, "s1", "s4", 5432)  # s1 opens: s4's replies pass
    assert not connects(lab, "s4", "s1", 5432)  # s4 opening is new: drop


def test_tcp_udp_and_icmp_rules_by_port_and_type(lab):
    lab.ctl_ok("sg-rule-add", "web", "--direction", "ingress", "--protocol",
               "tcp", "--port-min", "8080", "--port-max", "8080",
               "--remote-ip", "10.0.7.0/24")
    lab.ctl_ok("sg-rule-add", "web", "--direction", "ingress", "--protocol",
               "udp", "--port-min", "5353", "--port-max", "5353")
    lab.ctl_ok("sg-rule-add", "web", "--direction", "ingress", "--protocol",
               "icmp", "--icmp-type", "8")
    assert traffic.eventually(lambda: connects(lab, "s4", "s1", 8080))
    assert connects(lab, "s4", "s1", 5353, "udp")
    assert lab.ping(lab.guests["s4"], addr(lab, "s1"))
    assert not connects(lab, "s4", "s1", 9000)  # no rule for that port
    assert not connects(lab, "s3", "s1", 5354, "udp")  # no rule for 5354
    for port in (8080, 5353):
        proto = "tcp" if port == 8080 else "udp"
        lab.ctl_ok("sg-rule-delete", "web", rule_id(
            lab, "web", protocol=proto, port_min=port))
    lab.ctl_ok("sg-rule-delete", "web", rule_id(lab, "web", protocol="icmp"))
    assert traffic.eventually(lambda: not connects(lab, "s4", "s1", 8080))
    assert not connects(lab, "s4", "s1", 5353, "udp")
    assert not lab.ping(lab.guests["s4"], addr(lab, "s1"))


def test_egress_rules_limit_what_leaves(lab):
    for ethertype in ("IPv4", "IPv6"):
        lab.ctl_ok("sg-rule-delete", "db", rule_id(
            lab, "db", direction="egress", ethertype=ethertype,
            protocol=None))
    lab.ctl_ok("sg-rule-add", "db", "--direction", "egress", "--protocol",
               "udp", "--port-min", "5353", "--port-max", "5353")
    try:
        assert traffic.eventually(lambda: not connects(lab, "s3", "s4", 9000))
        assert connects(lab, "s3", "s4", 5353, "udp")
        assert not lab.ping(lab.guests["s3"], addr(lab, "s4"))
    finally:
        for ethertype in ("IPv4", "IPv6"):
            lab.ctl_ok("sg-rule-add", "db", "--direction", "egress",
                       "--ethertype", ethertype)
    assert traffic.eventually(lambda: connects(lab, "s3", "s4", 9000))


def test_remote_group_rules_follow_membership(lab):
    lab.ctl_ok("sg-rule-add", "db", "--direction", "ingress", "--protocol",
               "tcp", "--port-min", "5432", "--port-max", "5432",
               "--remote-group", "web")
    assert traffic.eventually(lambda: connects(lab, "s1", "s3", 5432))
    assert not connects(lab, "s4", "s3", 5432)
    lab.ctl_ok("port-update", "--port-id", "port-s1", "--no-security-group")
    took = traffic.eventually(lambda: not connects(lab, "s1", "s3", 5432),
                              timeout=5)
    assert took is not None, "s1 left web but still reaches db"
    lab.ctl_ok("port-update", "--port-id", "port-s4", "--security-group",
               "web")
    took = traffic.eventually(lambda: connects(lab, "s4", "s3", 5432),
                              timeout=5)
    assert took is not None, "s4 joined web but cannot reach db"
    print(f"membership change to traffic: {took * 1000:.0f} ms")
    lab.ctl_ok("port-update", "--port-id", "port-s4", "--no-security-group")
    lab.ctl_ok("port-update", "--port-id", "port-s1", "--security-group",
               "web")
    assert traffic.eventually(lambda: connects(lab, "s1", "s3", 5432))


def test_an_open_connection_survives_rule_changes_and_an_agent_restart(lab):
    lab.ctl_ok("sg-rule-add", "web", "--direction", "ingress", "--protocol",
               "tcp", "--port-min", "8080", "--port-max", "8080")
    assert traffic.eventually(lambda: connects(lab, "s4", "s1", 8080))
    holder = traffic.hold(lab.guests["s4"].netns, addr(lab, "s1"), 8080, 8)
    lab.ctl_ok("sg-rule-add", "web", "--direction", "ingress", "--protocol",
               "tcp", "--port-min", "7000", "--port-max", "7001")
    lab.ctl_ok("sg-rule-delete", "web", rule_id(lab, "web", port_min=7000))
    assert lab.stop_agent(signal.SIGTERM) == 0
    lab.start_agent()
    out = holder.communicate(timeout=30)[0]
    assert holder.returncode == 0, out
    lab.ctl_ok("sg-rule-delete", "web", rule_id(lab, "web", port_min=8080))


@pytest.mark.parametrize("args, rule", [
    (("--protocol", "icmp", "--port-min", "1", "--port-max", "2"),
     "port_min: a port range needs --protocol tcp or udp"),
    (("--protocol", "tcp", "--port-min", "90", "--port-max", "80"),
     "port_min: 90 is above port_max 80"),
    (("--remote-ip", "10.0.0.300/24",), "remote_ip: '10.0.0.300/24' is not"),
    (("--remote-group", "nosuch",), "remote_group: no security group named"),
    (("--protocol", "sctpx",), "protocol: 'sctpx' is not"),
])
def test_bad_rules_exit_1_and_write_nothing(lab, args, rule):
    before = groups(lab)
    proc = lab.ctl("sg-rule-add", "web", "--direction", "ingress", *args)
    assert proc.returncode == 1 and rule in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert groups(lab) == before


def test_groups_in_use_cannot_go_and_unknown_groups_are_refused(lab):
    proc = lab.ctl("sg-delete", "web")
    assert proc.returncode == 1 and "used by ports: port-s1" in proc.stderr
    proc = lab.ctl("port-update", "--port-id", "port-s4", "--security-group",
                   "nosuch")
    assert proc.returncode == 1
    assert "security_groups: no security group named 'nosuch'" in proc.stderr
    lab.ctl_ok("sg-create", "tmp")
    lab.ctl_ok("sg-delete", "tmp")
    assert "tmp" not in groups(lab)
