"""Flow computation: a pure function of the host's state."""
from __future__ import annotations

from virtio_ovs.network import flows as fl
from virtio_ovs.core.networks import Network
from virtio_ovs.core.port import GuestPort
from virtio_ovs.network.flows import Flow, HostState, PatchPorts

BLUE = Network("blue", "local", None, None, 1)
EXT = Network("ext", "vlan", "phys", 100, 2)
FLAT = Network("flat", "flat", "phys", None, 3)
PATCH = PatchPorts("phys", "br-ex", int_ofport=50, phy_ofport=60)


def port(name="p1", ofport=5, mac="52:54:00:12:34:56", ips=("10.0.0.5/24",),
         network="blue", valid=True) -> GuestPort:
    return GuestPort(port_id=name, name=name, kind="tap", mac=mac, ips=ips,
                     ofport=ofport, network=network, valid=valid)


def state(*ports, networks=(BLUE, EXT, FLAT), patches=(PATCH,)) -> HostState:
    return HostState("br-int", tuple(ports), {n.name: n for n in networks},
                     {p.physnet: p for p in patches})


def matches(flows) -> list[str]:
    return [f.match for f in flows]


def test_link_local_is_eui64():
    assert fl.link_local("52:54:00:12:34:56") == "fe80::5054:ff:fe12:3456"


def test_port_flows_allow_only_its_mac_and_ips_untagged():
    flows = fl.port_flows(port(ips=("10.0.0.5/24", "fd00::5/64")))
    spoof = [f for f in flows if f.table == fl.T_SPOOF and f.actions.startswith("goto")]
    for f in spoof:
        assert "in_port=5" in f.match and fl.UNTAGGED in f.match
        assert "dl_src=52:54:00:12:34:56" in f.match
    text = "\n".join(matches(spoof))
    assert "arp,arp_sha=52:54:00:12:34:56,arp_spa=10.0.0.5" in text
    assert "ip,nw_src=10.0.0.5" in text
    assert "ipv6,ipv6_src=fd00::5" in text
    assert "ipv6,ipv6_src=fe80::5054:ff:fe12:3456" in text
    # no rule lets any other source address through
    assert not any(m.endswith(",ip") or m.endswith(",ipv6") for m in matches(spoof))


def test_port_without_ips_may_use_any_address_from_its_mac():
    text = "\n".join(matches(fl.port_flows(port(ips=()))))
    assert text.count("dl_src=52:54:00:12:34:56") == 3
    assert "nw_src" not in text and "ipv6_src" not in text


def test_neighbour_advertisements_only_for_own_addresses():
    flows = fl.port_flows(port(ips=("fd00::5/64",)))
    na_allow = [f for f in flows if "icmp_type=136,nd_target" in f.match]
    na_drop = [f for f in flows if f.match.endswith("icmp6,icmp_type=136")]
    assert {f.match.rsplit("=", 1)[1] for f in na_allow} == \
        {"fd00::5", "fe80::5054:ff:fe12:3456"}
    assert na_drop and na_drop[0].actions == "drop"
    assert na_drop[0].priority < na_allow[0].priority


def test_server_only_traffic_is_dropped_above_the_port_rules():
    flows = fl.integration_flows(state(port()))
    drops = {f.match for f in flows if f.table == fl.T_SPOOF and f.priority == 300}
    assert drops == set(fl.SERVER_ONLY)
    assert all(f.priority < 300 for f in flows
               if f.table == fl.T_SPOOF and f.actions != "drop")


def test_unbound_or_unnumbered_ports_get_no_flows():
    flows = fl.integration_flows(state(port(network=None),
                                       port("p2", network="nonexistent"),
                                       port("p3", ofport=None)))
    assert not any("in_port=" in f.match for f in flows if f.table < 50
                   and "in_port=50" not in f.match)


def test_defaults_drop_and_canary_and_normal():
    flows = fl.integration_flows(state())
    assert Flow(0, 0, "", "drop") in flows
    assert Flow(fl.T_SPOOF, 0, "", "drop") in flows
    assert Flow(fl.T_CANARY, 0, "", "drop") in flows
    assert Flow(fl.T_SWITCH, 0, "", "NORMAL") in flows


def test_provider_ingress_maps_vid_or_untagged_to_local_vlan():
    flows = fl.integration_flows(state())
    assert Flow(0, 300, "in_port=50,dl_vlan=100",
                "mod_vlan_vid:2,load:2->NXM_NX_REG6[],goto_table:60") in flows
    assert Flow(0, 300, f"in_port=50,{fl.UNTAGGED}",
                "mod_vlan_vid:3,load:3->NXM_NX_REG6[],goto_table:60") in flows
    assert not any("mod_vlan_vid:1" in f.actions for f in flows)  # local net


def test_provider_egress_translates_and_drops_the_rest():
    flows = fl.provider_flows(state(), PATCH)
    assert Flow(0, 300, "in_port=60,dl_vlan=2", "mod_vlan_vid:100,NORMAL") in flows
    assert Flow(0, 300, "in_port=60,dl_vlan=3", "strip_vlan,NORMAL") in flows
    assert Flow(0, 200, "in_port=60", "drop") in flows
    assert Flow(0, 0, "", "NORMAL") in flows
    assert not any("dl_vlan=1" in f.match for f in flows)


def test_networks_without_patch_get_no_provider_flows():
    result = fl.compute_flows(state(patches=()))
    assert set(result) == {"br-int"}


def test_diff_adds_changed_flows_and_deletes_only_vanished_keys():
    a = Flow(0, 100, "in_port=1", "goto_table:10")
    b = Flow(0, 100, "in_port=2", "goto_table:10")
    b2 = Flow(0, 100, "in_port=2", "drop")
    c = Flow(0, 100, "in_port=3", "goto_table:10")
    diff = fl.diff_flows({a, b}, {b2, c})
    assert diff.add == sorted([b2, c])
    assert diff.delete == [a]  # b is replaced by b2's add, not deleted
    assert not fl.diff_flows({a}, {a})


def test_flow_text_carries_the_cookie():
    text = Flow(10, 200, "in_port=1,ip", "goto_table:60").text(0xabc)
    assert text == "table=10,priority=200,in_port=1,ip,cookie=0xabc,actions=goto_table:60"
    assert Flow(0, 0, "", "drop").match_text() == "table=0,priority=0"


def test_port_tag_is_the_local_vlan_or_dead():
    nets = {"blue": BLUE}
    assert fl.port_tag(port(), nets) == 1
    assert fl.port_tag(port(network=None), nets) == 4095
    assert fl.port_tag(port(network="gone"), nets) == 4095


def test_invalid_port_gets_no_flows_and_the_dead_vlan():
    bad = port(valid=False)
    assert fl.port_tag(bad, {"blue": BLUE}) == 4095
    assert not any(f.match.startswith("in_port=5,") or f.match == "in_port=5"
                   for f in fl.integration_flows(state(bad)))


def test_flows_ignore_what_they_do_not_depend_on():
    a = port()
    b = GuestPort(**{**a.as_dict(), "ips": a.ips, "verdict": "bypass",
                     "status": "up"})
    assert fl.compute_flows(state(a)) == fl.compute_flows(state(b))
    c = GuestPort(**{**a.as_dict(), "ips": ("10.0.0.6/24",)})
    assert fl.compute_flows(state(a)) != fl.compute_flows(state(c))
