"""Flow computation: a pure function of the host's state."""
from __future__ import annotations

import dataclasses

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


def test_defaults_drop_and_canary_and_no_normal():
    flows = fl.integration_flows(state(port()))
    assert Flow(0, 0, "", "drop") in flows
    assert Flow(fl.T_SPOOF, 0, "", "drop") in flows
    assert Flow(fl.T_CANARY, 0, "", "drop") in flows
    # Explicit forwarding only: NORMAL would need Port.tag.
    assert not any("NORMAL" in f.actions for f in flows)
    assert not any(f.table == fl.T_SWITCH and f.priority == 0 for f in flows)


def test_provider_ingress_maps_vid_or_untagged_to_the_network_untagged():
    flows = fl.integration_flows(state())
    assert Flow(0, 300, "in_port=50,dl_vlan=100",
                "strip_vlan,load:2->NXM_NX_REG6[],goto_table:60") in flows
    assert Flow(0, 300, f"in_port=50,{fl.UNTAGGED}",
                "load:3->NXM_NX_REG6[],goto_table:60") in flows
    assert not any("load:1->NXM_NX_REG6" in f.actions for f in flows
                   if f.table == 0)  # a local network has no provider


def test_each_mac_goes_to_its_port_within_its_network_only():
    a, b = port("a", 5, "52:54:00:00:00:0a"), port("b", 6, "52:54:00:00:00:0b")
    c = port("c", 7, "52:54:00:00:00:0c", network="ext")
    flows = fl.integration_flows(state(a, b, c))
    switch = {f.match: f.actions for f in flows if f.table == fl.T_SWITCH}
    assert switch["reg6=1,dl_dst=52:54:00:00:00:0a"] == "output:5"
    assert switch["reg6=1,dl_dst=52:54:00:00:00:0b"] == "output:6"
    assert switch["reg6=2,dl_dst=52:54:00:00:00:0c"] == "output:7"
    assert "reg6=2,dl_dst=52:54:00:00:00:0a" not in switch
    # unknown destinations: the provider patch (tagged with the local VLAN
    # that br-ex translates), or nowhere on a local network
    assert switch["reg6=2"] == "push_vlan:0x8100,mod_vlan_vid:2,output:50"
    assert "reg6=1" not in switch


def test_broadcast_floods_the_network_and_its_provider_only():
    a, b = port("a", 5, "52:54:00:00:00:0a"), port("b", 6, "52:54:00:00:00:0b")
    c = port("c", 7, "52:54:00:00:00:0c", network="ext")
    flows = fl.integration_flows(state(a, b, c))
    flood = {f.match: f.actions for f in flows if f.table == fl.T_FLOOD}
    assert flood == {
        "reg6=1,reg7=0": "output:5,output:6",
        "reg6=2,reg7=0": "output:7,push_vlan:0x8100,mod_vlan_vid:2,"
                         "output:50"}
    starts = {f.match: f.actions for f in flows if f.table == fl.T_SWITCH
              and fl.MULTICAST in f.match}
    assert starts[f"reg6=1,{fl.MULTICAST}"] == \
        "load:0->NXM_NX_REG7[],goto_table:61"
    # a provider network without a local port still floods to the provider
    assert starts[f"reg6=3,{fl.MULTICAST}"] == \
        "push_vlan:0x8100,mod_vlan_vid:3,output:50"


def test_flood_chunks_are_chained_and_bounded():
    ports = [port(f"p{i}", i, f"52:54:00:00:{i >> 8:02x}:{i & 255:02x}")
             for i in range(1, 700)]
    flows = fl.integration_flows(state(*ports))
    flood = sorted((f for f in flows if f.table == fl.T_FLOOD),
                   key=lambda f: f.match)
    assert [f.match for f in flood] == ["reg6=1,reg7=0", "reg6=1,reg7=1",
                                        "reg6=1,reg7=2"]
    assert flood[0].actions.endswith("load:1->NXM_NX_REG7[],resubmit(,61)")
    assert flood[1].actions.endswith("load:2->NXM_NX_REG7[],resubmit(,61)")
    outputs = [a for f in flood for a in f.actions.split(",")
               if a.startswith("output:")]
    assert sorted(outputs) == sorted(f"output:{i}" for i in range(1, 700))
    assert max(f.actions.count("output:") for f in flood) <= 256


def test_a_filtered_port_is_reached_through_the_ingress_stage():
    guarded = GuestPort(**{**port().as_dict(), "ips": ("10.0.0.5/24",),
                           "security_groups": ("web",)})
    flows = fl.integration_flows(state(guarded))
    assert Flow(fl.T_SWITCH, 100, "reg6=1,dl_dst=52:54:00:12:34:56",
                "load:5->NXM_NX_REG5[],goto_table:70") in flows


def test_one_mac_twice_in_a_network_goes_to_the_lower_port_number():
    a, b = port("a", 9), port("b", 4)
    flows = fl.integration_flows(state(a, b))
    unicast = [f for f in flows if f.table == fl.T_SWITCH
               and "dl_dst=52:54:00:12:34:56" in f.match]
    assert [f.actions for f in unicast] == ["output:4"]


def test_held_ports_get_no_flows_at_all():
    a, b = port("a", 5, "52:54:00:00:00:0a"), port("b", 6, "52:54:00:00:00:0b")
    held = dataclasses.replace(state(a, b), held=frozenset({"b"}))
    flows = fl.integration_flows(held)
    assert not any("in_port=6" in f.match
                   or "output:6" in f.actions.split(",")
                   or "52:54:00:00:00:0b" in f.match for f in flows)


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


def test_invalid_port_gets_no_flows():
    bad = port(valid=False)
    assert not any(f.match.startswith("in_port=5,") or f.match == "in_port=5"
                   or "output:5" in f.actions.split(",")
                   for f in fl.integration_flows(state(bad)))


def test_flows_ignore_what_they_do_not_depend_on():
    a = port()
    b = GuestPort(**{**a.as_dict(), "ips": a.ips, "verdict": "bypass",
                     "status": "up"})
    assert fl.compute_flows(state(a)) == fl.compute_flows(state(b))
    c = GuestPort(**{**a.as_dict(), "ips": ("10.0.0.6/24",)})
    assert fl.compute_flows(state(a)) != fl.compute_flows(state(c))
