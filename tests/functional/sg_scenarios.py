"""Security group scenarios, run on both backends with real TCP, UDP and
ICMP between guest namespaces. A ``lab`` gives: ``ctl``/``ctl_ok``
(virtio-ovs-ctl), ``connects(src, dst, port, proto)``, ``ping(src, dst)``,
``port_id(name)``, ``ns(name)``, ``addr(name)`` and ``restart()`` (of the
daemon that programs the switch: the agent, or ovn-controller).

Guests: w1, w2 in group web; d3 in group db; x4 in no group (unfiltered).
Each runs echo servers on tcp 8080, 9000, 5432 and udp 5353, 5354.
"""
from __future__ import annotations

import json

from tests.lab import traffic

GUEST_GROUPS = {"w1": ["web"], "w2": ["web"], "d3": ["db"], "x4": []}
SERVERS = {"tcp": (8080, 9000, 5432), "udp": (5353, 5354)}


def start_servers(netns: str) -> list:
    return [traffic.serve(netns, proto, port)
            for proto, ports in SERVERS.items() for port in ports]


def groups(lab) -> dict:
    return {g["name"]: g for g in json.loads(lab.ctl_ok("sg-list",
                                                        "--format", "json"))}


def rule_id(lab, group: str, **match) -> str:
    for rule in groups(lab)[group]["rules"]:
        if all(rule[k] == v for k, v in match.items()):
            return rule["id"]
    raise AssertionError(f"no rule {match} in {group}")


def new_group_admits_members_and_lets_everything_out(lab):
    assert lab.connects("w1", "w2", 9000)  # a member of web
    assert not lab.connects("x4", "w1", 9000)  # not a member
    assert not lab.connects("d3", "w1", 9000)  # db is not web
    assert not lab.connects("w1", "d3", 9000)  # db admits only db
    assert lab.connects("w1", "x4", 9000)  # egress, and its replies
    assert lab.ping("w1", "x4")
    assert not lab.ping("x4", "w1")


def replies_pass_but_reverse_new_connections_drop(lab):
    assert lab.connects("w1", "x4", 5432)  # w1 opens: x4's replies pass
    assert not lab.connects("x4", "w1", 5432)  # x4 opening is new: drop


def rules_by_protocol_port_and_icmp_type(lab):
    lab.ctl_ok("sg-rule-add", "web", "--direction", "ingress", "--protocol",
               "tcp", "--port-min", "8080", "--port-max", "8080",
               "--remote-ip", lab.subnet)
    lab.ctl_ok("sg-rule-add", "web", "--direction", "ingress", "--protocol",
               "udp", "--port-min", "5353", "--port-max", "5353")
    lab.ctl_ok("sg-rule-add", "web", "--direction", "ingress", "--protocol",
               "icmp", "--icmp-type", "8")
    assert traffic.eventually(lambda: lab.connects("x4", "w1", 8080))
    assert traffic.eventually(lambda: lab.connects("x4", "w1", 5353, "udp"))
    assert traffic.eventually(lambda: lab.ping("x4", "w1"))
    assert not lab.connects("x4", "w1", 9000)  # no rule for that port
    assert not lab.connects("x4", "w1", 5354, "udp")
    lab.ctl_ok("sg-rule-delete", "web", rule_id(lab, "web", protocol="tcp",
                                                port_min=8080))
    lab.ctl_ok("sg-rule-delete", "web", rule_id(lab, "web", protocol="udp"))
    lab.ctl_ok("sg-rule-delete", "web", rule_id(lab, "web", protocol="icmp"))
    assert traffic.eventually(lambda: not lab.connects("x4", "w1", 8080))
    assert traffic.eventually(lambda: not lab.connects("x4", "w1", 5353,
                                                       "udp"))
    assert traffic.eventually(lambda: not lab.ping("x4", "w1"))


def egress_rules_limit_what_leaves(lab):
    for ethertype in ("IPv4", "IPv6"):
        lab.ctl_ok("sg-rule-delete", "db", rule_id(
            lab, "db", direction="egress", ethertype=ethertype,
            protocol=None))
    lab.ctl_ok("sg-rule-add", "db", "--direction", "egress", "--protocol",
               "udp", "--port-min", "5353", "--port-max", "5353")
    try:
        assert traffic.eventually(lambda: not lab.connects("d3", "x4", 9000))
        assert lab.connects("d3", "x4", 5353, "udp")
        assert not lab.connects("d3", "x4", 5354, "udp")
        assert not lab.ping("d3", "x4")
    finally:
        for ethertype in ("IPv4", "IPv6"):
            lab.ctl_ok("sg-rule-add", "db", "--direction", "egress",
                       "--ethertype", ethertype)
    assert traffic.eventually(lambda: lab.connects("d3", "x4", 9000))


def remote_group_rules_follow_membership(lab) -> float:
    """Returns the time from a membership change to the traffic it allows."""
    lab.ctl_ok("sg-rule-add", "db", "--direction", "ingress", "--protocol",
               "tcp", "--port-min", "5432", "--port-max", "5432",
               "--remote-group", "web")
    assert traffic.eventually(lambda: lab.connects("w1", "d3", 5432))
    assert not lab.connects("x4", "d3", 5432)
    lab.ctl_ok("port-update", "--port-id", lab.port_id("w1"),
               "--no-security-group")
    # Within the reaction time: a probe that fails takes its 1 s timeout.
    assert traffic.eventually(lambda: not lab.connects("w1", "d3", 5432),
                              timeout=2) is not None, "w1 left web: still in"
    lab.ctl_ok("port-update", "--port-id", lab.port_id("x4"),
               "--security-group", "web")
    took = traffic.eventually(lambda: lab.connects("x4", "d3", 5432),
                              timeout=2)
    assert took is not None, "x4 joined web but cannot reach db"
    lab.ctl_ok("port-update", "--port-id", lab.port_id("x4"),
               "--no-security-group")
    lab.ctl_ok("port-update", "--port-id", lab.port_id("w1"),
               "--security-group", "web")
    assert traffic.eventually(lambda: lab.connects("w1", "d3", 5432))
    assert traffic.eventually(lambda: not lab.connects("x4", "d3", 5432))
    return took


def open_connection_survives_rule_changes_and_a_restart(lab):
    lab.ctl_ok("sg-rule-add", "web", "--direction", "ingress", "--protocol",
               "tcp", "--port-min", "8080", "--port-max", "8080")
    assert traffic.eventually(lambda: lab.connects("x4", "w1", 8080))
    holder = traffic.hold(lab.ns("x4"), lab.addr("w1"), 8080, 8)
    lab.ctl_ok("sg-rule-add", "web", "--direction", "ingress", "--protocol",
               "tcp", "--port-min", "7000", "--port-max", "7001")
    lab.ctl_ok("sg-rule-delete", "web", rule_id(lab, "web", port_min=7000))
    lab.restart()
    out = holder.communicate(timeout=30)[0]
    assert holder.returncode == 0, out
    lab.ctl_ok("sg-rule-delete", "web", rule_id(lab, "web", port_min=8080))


BAD_RULES = [
    (("--protocol", "icmp", "--port-min", "1", "--port-max", "2"),
     "port_min: a port range needs --protocol tcp or udp"),
    (("--protocol", "tcp", "--port-min", "90", "--port-max", "80"),
     "port_min: 90 is above port_max 80"),
    (("--remote-ip", "10.0.0.300/24",), "remote_ip: '10.0.0.300/24' is not"),
    (("--remote-group", "nosuch",), "remote_group: no security group named"),
    (("--protocol", "sctpx",), "protocol: 'sctpx' is not"),
]


def bad_rule_exits_1_and_writes_nothing(lab, args, rule):
    before = groups(lab)
    proc = lab.ctl("sg-rule-add", "web", "--direction", "ingress", *args)
    assert proc.returncode == 1 and rule in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert groups(lab) == before


def groups_in_use_stay_and_unknown_groups_are_refused(lab):
    proc = lab.ctl("sg-delete", "web")
    assert proc.returncode == 1 and "used by ports" in proc.stderr
    proc = lab.ctl("port-update", "--port-id", lab.port_id("x4"),
                   "--security-group", "nosuch")
    assert proc.returncode == 1 and "no security group named 'nosuch'" \
        in proc.stderr, proc.stderr
    assert json.loads(lab.ctl_ok("sg-create", "tmp", "--format", "json")
                      )["name"] == "tmp"
    assert json.loads(lab.ctl_ok("sg-delete", "tmp", "--format", "json")) \
        == {"deleted": "tmp", "dry_run": False}
    assert "tmp" not in groups(lab)
