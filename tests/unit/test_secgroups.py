"""Security groups: the model's rules, and the flows and ACLs made of
them (all pure)."""
from __future__ import annotations

import pytest

from virtio_ovs.core.errors import UserError
from virtio_ovs.core.networks import Network
from virtio_ovs.core.port import GuestPort
from virtio_ovs.core.secgroups import (SecurityGroup, default_rules,
                                       make_rule, parse_groups, sg_key)
from virtio_ovs.core import ovn_acls
from virtio_ovs.network import sg_flows
from virtio_ovs.network.flows import HostState, compute_flows

NET = Network("blue", "local", None, None, 7)


def port(i: int, groups=("web",)) -> GuestPort:
    return GuestPort(port_id=f"p{i}", name=f"t{i}", kind="tap",
                     mac=f"52:54:00:00:00:{i:02x}", network="blue",
                     ips=(f"10.0.0.{i}/24",), ofport=i,
                     security_groups=tuple(groups))


def state(ports, groups) -> HostState:
    return HostState("br-int", tuple(ports), {"blue": NET}, {},
                     {g.name: g for g in groups})


@pytest.mark.parametrize("kw, field", [
    (dict(direction="in"), "direction"),
    (dict(direction="ingress", ethertype="IPv5"), "ethertype"),
    (dict(direction="ingress", protocol="icmp", port_min=1, port_max=2),
     "port_min"),
    (dict(direction="ingress", protocol="tcp", port_min=9, port_max=8),
     "port_min"),
    (dict(direction="ingress", protocol="tcp", port_min=1), "port_max"),
    (dict(direction="ingress", protocol="tcp", icmp_type=8), "icmp_type"),
    (dict(direction="ingress", protocol="icmp", icmp_code=0), "icmp_code"),
    (dict(direction="ingress", protocol="icmpv6"), "protocol"),
    (dict(direction="ingress", remote_ip="fd00::/64"), "remote_ip"),
    (dict(direction="ingress", remote_ip="10.0.0.0/33"), "remote_ip"),
    (dict(direction="ingress", remote_group="x", remote_ip="1.2.3.4/32"),
     "remote_ip"),
    (dict(direction="ingress", remote_group="nosuch"), "remote_group"),
    (dict(direction="ingress", protocol=256), "protocol"),
])
def test_bad_rules_name_their_field(kw, field):
    with pytest.raises(UserError) as err:
        make_rule(**kw, known=("web",))
    assert err.value.field == field


def test_rules_are_normalised_and_ids_stable():
    a = make_rule(direction="ingress", protocol="TCP", port_min=80,
                  port_max=80, remote_ip="10.0.0.9/24")
    b = make_rule(direction="ingress", protocol="6", port_min=80,
                  port_max=80, remote_ip="10.0.0.0/24")
    assert a == b and a.id == b.id and a.remote_ip == "10.0.0.0/24"
    assert make_rule(direction="egress", protocol=132).protocol == "132"


def test_a_new_group_lets_out_and_admits_its_own():
    rules = default_rules("web")
    assert {(r.direction, r.ethertype, r.remote_group) for r in rules} == {
        ("egress", "IPv4", None), ("egress", "IPv6", None),
        ("ingress", "IPv4", "web"), ("ingress", "IPv6", "web")}


def test_groups_round_trip_and_skip_garbage():
    group = SecurityGroup("web", default_rules("web"))
    ids = {sg_key("web"): group.to_json(), sg_key("bad"): "{", "other": "x"}
    assert parse_groups(ids) == {"web": group}


@pytest.mark.parametrize("low, high", [(1, 1), (80, 90), (1, 65535),
                                       (1024, 2047), (5000, 5002)])
def test_port_masks_cover_the_range_exactly(low, high):
    covered = set()
    for text in sg_flows.port_masks(low, high):
        value, _, mask = text.partition("/")
        value, mask = int(value, 0), int(mask, 0) if mask else 0xffff
        covered |= {p for p in range(65536) if p & mask == value}
    assert covered == set(range(low, high + 1))


def test_ports_without_groups_get_no_firewall():
    flows = compute_flows(state([port(1, ())], []))["br-int"]
    assert not any(f.table in (40, 41, 70, 71) for f in flows)
    assert any("goto_table:60" in f.actions and f.table == 10 for f in flows)


def test_remote_group_rules_cost_linear_flows():
    web = SecurityGroup("web", default_rules("web"))
    counts = [len(compute_flows(state([port(i) for i in range(1, n + 1)],
                                      [web]))["br-int"]) for n in (10, 20, 30)]
    # O(N), not O(N^2): each 10 more ports in the group cost the same
    assert counts[2] - counts[1] == counts[1] - counts[0] < 200


def test_ingress_rule_flows_match_the_port_and_commit():
    web = SecurityGroup("web", (make_rule(direction="ingress",
                                          protocol="udp", port_min=53,
                                          port_max=53,
                                          remote_ip="10.0.0.0/24"),))
    flows = compute_flows(state([port(3)], [web]))["br-int"]
    [rule] = [f for f in flows if f.table == 71 and "udp" in f.match]
    assert "reg5=3" in rule.match and "tp_dst=53" in rule.match
    assert "nw_src=10.0.0.0/24" in rule.match
    assert rule.actions.startswith("ct(commit,zone=NXM_NX_REG6[0..15])")


def test_ovn_acls_of_a_rule():
    rule = make_rule(direction="ingress", protocol="tcp", port_min=80,
                     port_max=90, remote_group="db", known=None)
    assert ovn_acls.acl("web", rule) == (
        "to-lport", 1002, "outport == @vovs_web && ip4 && ip4.src == "
        "$vovs_db_ip4 && tcp && tcp.dst >= 80 && tcp.dst <= 90",
        "allow-related")
    egress = make_rule(direction="egress", ethertype="IPv6",
                       protocol="icmpv6", icmp_type=128)
    assert ovn_acls.acl("web", egress)[2] == \
        "inport == @vovs_web && ip6 && icmp6 && icmp6.type == 128"


@pytest.mark.parametrize("protocol", ["\u0663", "\u00b2", " 6", "6 ", "1_7",
                                      "+6", "0x6", "256", 6.0, True])
def test_a_protocol_number_is_ascii_digits_only(protocol):
    with pytest.raises(UserError, match="protocol"):
        make_rule(direction="ingress", protocol=protocol)
    assert make_rule(direction="ingress", protocol="6").protocol == "tcp"
    assert make_rule(direction="ingress", protocol=47).protocol == "47"
