"""Stateful security groups on the standalone backend: the scenarios of
sg_scenarios.py on a real OVS with conntrack, guests in namespaces on one
local network, the agent programming br-int."""
from __future__ import annotations

import signal

import pytest

from tests.functional import sg_scenarios as sc
from tests.functional.conftest import _MISSING
from tests.functional.topology import Topology
from tests.lab import traffic
from tests.lab.sandbox import OvsSandbox

ADDRESSES = {"w1": "10.0.7.1/24", "w2": "10.0.7.2/24", "d3": "10.0.7.3/24",
             "x4": "10.0.7.4/24"}


class StandaloneLab:
    subnet = "10.0.7.0/24"

    def __init__(self, topo: Topology):
        self.topo = topo
        self.ctl = topo.ctl
        self.ctl_ok = topo.ctl_ok

    def port_id(self, name: str) -> str:
        return self.topo.guests[name].port_id

    def ns(self, name: str) -> str:
        return self.topo.guests[name].netns

    def addr(self, name: str) -> str:
        return self.topo.guests[name].addr

    def connects(self, src: str, dst: str, port: int, proto: str = "tcp"
                 ) -> bool:
        return traffic.probe(self.ns(src), proto, self.addr(dst), port)

    def ping(self, src: str, dst: str) -> bool:
        return self.topo.ping(self.topo.guests[src], self.addr(dst))

    def restart(self) -> None:
        assert self.topo.stop_agent(signal.SIGTERM) == 0
        self.topo.start_agent()


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
        for i, (name, groups) in enumerate(sc.GUEST_GROUPS.items(), 1):
            guest = topo.add_guest(name, f"52:54:00:00:07:0{i}",
                                   ADDRESSES[name])
            args = [a for g in groups for a in ("--security-group", g)]
            topo.ctl_ok("bind", "--port-id", guest.port_id, "--network",
                        "sgnet", "--ip", ADDRESSES[name], *args)
            servers += sc.start_servers(guest.netns)
        lab = StandaloneLab(topo)
        topo.wait_until(lambda: lab.connects("w1", "w2", 9000)
                        and not lab.ping("x4", "w1"), what="the groups' flows")
        yield lab
    finally:
        for server in servers:
            server.kill()
            server.wait()
        topo.close()
        box.stop()


def test_a_new_group_admits_its_members_and_lets_everything_out(lab):
    sc.new_group_admits_members_and_lets_everything_out(lab)


def test_established_replies_pass_while_new_reverse_connections_drop(lab):
    sc.replies_pass_but_reverse_new_connections_drop(lab)


def test_tcp_udp_and_icmp_rules_by_port_and_type(lab):
    sc.rules_by_protocol_port_and_icmp_type(lab)


def test_egress_rules_limit_what_leaves(lab):
    sc.egress_rules_limit_what_leaves(lab)


def test_remote_group_rules_follow_membership(lab):
    took = sc.remote_group_rules_follow_membership(lab)
    print(f"standalone: membership change to traffic {took * 1000:.0f} ms")


def test_an_open_connection_survives_rule_changes_and_an_agent_restart(lab):
    sc.open_connection_survives_rule_changes_and_a_restart(lab)


@pytest.mark.parametrize("args, rule", sc.BAD_RULES)
def test_bad_rules_exit_1_and_write_nothing(lab, args, rule):
    sc.bad_rule_exits_1_and_writes_nothing(lab, args, rule)


def test_groups_in_use_cannot_go_and_unknown_groups_are_refused(lab):
    sc.groups_in_use_stay_and_unknown_groups_are_refused(lab)


def test_conntrack_zone_is_the_network(lab):
    """One zone per network: the flows carry the local VLAN into ct()."""
    flows = lab.topo.box.ofctl("dump-flows", "br-int", "table=40")
    assert "ct(table=41,zone=NXM_NX_REG6[0..15])" in flows
