"""The watch's events from two views of the host (pure)."""
from __future__ import annotations

import dataclasses

from virtio_ovs.core import events as ev
from virtio_ovs.core.port import GuestPort

P1 = GuestPort("p1", "tapp1", "tap", "52:54:00:00:00:01", vm="vm1",
               bridge="br-int", queues=2)


def names(events):
    return [e["event"] for e in events]


def test_plug_bind_verdict_queues_unplug():
    bound = dataclasses.replace(P1, network="blue")
    checked = dataclasses.replace(bound, verdict="bypass", queues_enabled=2)
    fewer = dataclasses.replace(checked, verdict="bypass,queues-mismatch",
                                queues_enabled=1)
    assert ev.port_events({}, {"p1": P1}) == [{
        "event": "port-plugged", "port_id": "p1", "name": "tapp1",
        "vm": "vm1", "kind": "tap", "bridge": "br-int", "network": None,
        "queues": 2}]
    [bind] = ev.port_events({"p1": P1}, {"p1": bound})
    assert (bind["event"], bind["network"], bind["previous"]) == \
        ("port-bound", "blue", None)
    assert names(ev.port_events({"p1": bound}, {"p1": checked})) == \
        ["verdict-changed", "queues-changed"]
    [_, queues] = ev.port_events({"p1": checked}, {"p1": fewer})
    assert (queues["enabled"], queues["previous_enabled"]) == (1, 2)
    assert names(ev.port_events({"p1": fewer}, {"p1": P1})) == \
        ["port-unbound", "verdict-changed", "queues-changed"]
    assert ev.port_events({"p1": P1}, {}) == [{
        "event": "port-unplugged", "port_id": "p1", "name": "tapp1",
        "vm": "vm1"}]
    assert ev.port_events({"p1": P1}, {"p1": P1}) == []


def test_ovn_installed_is_its_own_event():
    installed = dataclasses.replace(P1, ovn_installed=True)
    [event] = ev.port_events({"p1": P1}, {"p1": installed})
    assert event["event"] == "port-ovn-installed" and event["ovn_installed"]


def status(heartbeat, pid=10, interval=1.0):
    return {"host": "h", "pid": pid, "heartbeat": heartbeat,
            "report_interval": interval, "role": "active"}


def test_agent_up_down_and_replaced():
    found, up = ev.agent_events(None, False, status(100.0), now=100.5)
    assert names(found) == ["agent-up"] and up
    found, up = ev.agent_events(status(100.0), True, status(101.0), 101.2)
    assert found == [] and up
    # Three missed heartbeats: down, without any new notification.
    found, up = ev.agent_events(status(101.0), True, status(101.0), 104.01)
    assert names(found) == ["agent-down"] and not up
    assert found[0]["last_heartbeat"] == 101.0
    found, up = ev.agent_events(status(101.0), False, status(105.0), 105.1)
    assert names(found) == ["agent-up"]
    # A restart within the deadline is a new agent: a new pid.
    found, up = ev.agent_events(status(105.0), True, status(105.5, pid=11),
                                105.6)
    assert names(found) == ["agent-up"] and found[0]["pid"] == 11
    assert ev.agent_events(None, False, None, 1.0) == ([], False)


def test_the_agent_s_migration_records_are_events():
    import dataclasses
    from virtio_ovs.core import events as ev
    from virtio_ovs.core.port import GuestPort
    port = GuestPort(port_id="p1", name="tap1", kind="tap", mac="m")
    moves = [("hv1 -> hv2", ev.MIGRATION_START),
             ("done: hv1 -> hv2", ev.MIGRATION_DONE),
             ("hv2 -> hv3", ev.MIGRATION_START),
             ("aborted: hv2 -> hv3", ev.MIGRATION_ABORTED)]
    before = port
    for record, kind in moves:
        after = dataclasses.replace(before, migration=record)
        [event] = ev.port_events({"p1": before}, {"p1": after})
        assert event["event"] == kind
        assert (event["source"], event["destination"]) == tuple(
            record.rpartition(": ")[2].split(" -> "))
        before = after
