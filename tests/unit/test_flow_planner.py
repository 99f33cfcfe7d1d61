"""The incremental planner gives exactly what the full computation gives,
and its diffs turn the previous flows into the new ones."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from virtio_ovs.core.networks import Network
from virtio_ovs.core.port import GuestPort
from virtio_ovs.core.secgroups import SecurityGroup, default_rules
from virtio_ovs.network.flows import FlowPlanner, HostState, compute_flows

NETS = {"blue": Network("blue", "local", None, None, 1),
        "red": Network("red", "local", None, None, 2)}
GROUPS = {"web": SecurityGroup("web", default_rules("web"))}

port_st = st.builds(
    lambda i, ofport, net, ips, sg: GuestPort(
        port_id=f"p{i}", name=f"t{i}", kind="tap",
        mac=f"52:54:00:00:00:{i:02x}", network=net, ofport=ofport,
        ips=(f"10.0.0.{i}/24",) if ips else (),
        security_groups=("web",) if sg else ()),
    st.integers(1, 8), st.one_of(st.none(), st.integers(1, 12)),
    st.sampled_from([None, "blue", "red", "gone"]), st.booleans(),
    st.booleans())
states = st.lists(st.lists(port_st, max_size=6, unique_by=lambda p: p.name),
                  min_size=1, max_size=6)


def apply(flows: set, diff) -> set:
    keys = {f.key for f in diff.add}
    return {f for f in flows if f not in diff.delete and f.key not in keys} \
        | set(diff.add)


@settings(max_examples=200, deadline=None)
@given(sequence=states, groups=st.booleans(),
       held=st.lists(st.frozensets(st.sampled_from(["t1", "t2", "t3"])),
                     min_size=6, max_size=6))
def test_incremental_plans_equal_full_computation(sequence, groups, held):
    planner = FlowPlanner()
    switch: set = set()
    for ports, hold in zip(sequence, held):
        state = HostState("br-int", tuple(ports), NETS, {},
                          GROUPS if groups else {}, held=hold)
        hints = planner.plan(state)
        full = compute_flows(state)
        assert planner.desired == full
        if hints is None:
            switch = set(full["br-int"])
        else:
            switch = apply(switch, hints["br-int"])
        assert switch == full["br-int"]


def test_a_plug_outside_groups_is_computed_incrementally():
    planner = FlowPlanner()
    one = GuestPort(port_id="p1", name="t1", kind="tap",
                    mac="52:54:00:00:00:01", network="blue", ofport=1)
    two = GuestPort(port_id="p2", name="t2", kind="tap",
                    mac="52:54:00:00:00:02", network="blue", ofport=2)
    assert planner.plan(HostState("br-int", (one,), NETS, {})) is None
    hints = planner.plan(HostState("br-int", (one, two), NETS, {}))
    assert hints is not None and hints["br-int"].add
    # Its own flows, its MAC's forwarding and the network's flood chunk
    # (changed in place): all of them name the new port, none is deleted.
    assert all("in_port=2" in f.match or two.mac in f.match
               or "output:2" in f.actions for f in hints["br-int"].add)
    assert not hints["br-int"].delete


def test_a_number_two_ports_claim_gives_neither_flows():
    """A requested OpenFlow number can lose a race to another plug until
    ovs-vswitchd reports the real numbers: no port gets the other's flows
    meanwhile, and both get their own once the numbers differ."""
    def port(i: int, ofport: int, net: str) -> GuestPort:
        return GuestPort(port_id=f"p{i}", name=f"t{i}", kind="tap",
                         mac=f"52:54:00:00:00:0{i}", network=net,
                         ofport=ofport)
    planner = FlowPlanner()
    clash = HostState("br-int", (port(1, 5, "blue"), port(2, 5, "red")),
                      NETS, {})
    planner.plan(clash)
    assert not any("in_port=5" in f.match for f in planner.desired["br-int"])
    assert planner.desired == compute_flows(clash)
    settled = HostState("br-int", (port(1, 5, "blue"), port(2, 6, "red")),
                        NETS, {})
    hints = planner.plan(settled)
    assert planner.desired == compute_flows(settled)
    added = {f.match.split(",")[0] for f in hints["br-int"].add
             if f.match.startswith("in_port")}
    assert added == {"in_port=5", "in_port=6"}


@settings(max_examples=50, deadline=None)
@given(states)
def test_first_sync_chunks_hold_the_table_with_each_port_whole(sequence):
    """The first sync's units: every flow once, each port's own flows in
    one chunk (one atomic bundle), whatever the planner went through."""
    planner = FlowPlanner()
    for ports in sequence:
        state = HostState("br-int", tuple(ports), NETS, {}, GROUPS)
        planner.plan(state)
        flows = planner.desired["br-int"]
        chunks = planner.cache.chunks(flows)
        assert sorted(f for c in chunks for f in c) == sorted(flows)
        for port in ports:
            own = set(planner.cache.port_flows_of(port.name))
            assert not own or any(own <= set(c) for c in chunks)
