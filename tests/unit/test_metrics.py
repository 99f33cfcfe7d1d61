"""The Prometheus families built from a snapshot, and the wiring clock."""
from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from virtio_ovs.core import verdicts
from virtio_ovs.core.errors import UserError
from virtio_ovs.core.port import GuestPort
from virtio_ovs.core.validate import validate_bind
from virtio_ovs.metrics import (AgentMetrics, Snapshot, WiringClock,
                                reports_by_port, render)


def samples(text: bytes) -> dict[tuple, float]:
    """(name, sorted labels) -> value, from the text exposition."""
    result = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            result[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return result


def vhost_user_report() -> verdicts.PortReport:
    ev = verdicts.VhostUserEvidence(
        "v1", "vhu1", 2, {"status": "connected", "num_of_vrings": "4"},
        {0: {"enabled": True, "pmd_core": 1},
         1: {"enabled": False, "pmd_core": 1}},
        counters_total={0: {"rx": 120, "tx": 7}, 1: {"rx": 0, "tx": 0}})
    return verdicts.decide_vhost_user(ev)


PORTS = (GuestPort("v1", "vhu1", "vhost-user", "52:54:00:00:00:01",
                   vm="vm-a", network="blue"),
         GuestPort("t1", "tapt1", "tap", "52:54:00:00:00:02", vm="vm-b"))


def test_families_carry_verdicts_queues_and_counters():
    snap = Snapshot(PORTS, reports_by_port([vhost_user_report()]),
                    {"br-int": 12}, last_sync=1700000000.5, active=True)
    got = samples(render(snap))
    assert got[("virtio_ovs_port_info", (("kind", "vhost-user"),
                ("network", "blue"), ("port_id", "v1"), ("vm", "vm-a")))] == 1
    assert got[("virtio_ovs_port_info", (("kind", "tap"), ("network", ""),
                ("port_id", "t1"), ("vm", "vm-b")))] == 1
    verdicts = {dict(k[1])["verdict"]: v for k, v in got.items()
                if k[0] == "virtio_ovs_port_verdict"}
    assert verdicts == {"bypass": 1, "through-qemu": 0, "not-running": 0,
                        "unknown": 0}
    queues = {dict(k[1])["state"]: v for k, v in got.items()
              if k[0] == "virtio_ovs_port_queues"}
    assert queues == {"expected": 2, "configured": 2, "enabled": 1}
    assert got[("virtio_ovs_port_queues_mismatch", (("port_id", "v1"),))] == 1
    assert got[("virtio_ovs_port_queue_packets_total", (
        ("direction", "rx"), ("port_id", "v1"), ("queue", "0")))] == 120
    assert got[("virtio_ovs_flows", (("bridge", "br-int"),))] == 12
    assert got[("virtio_ovs_agent_last_sync_timestamp_seconds", ())] == \
        1700000000.5
    assert got[("virtio_ovs_agent_active", ())] == 1
    # No check yet for t1: no verdict is invented for it.
    assert not any(dict(k[1]).get("port_id") == "t1" for k in got
                   if k[0] != "virtio_ovs_port_info")


def test_a_port_that_goes_leaves_the_output():
    metrics = AgentMetrics()
    metrics.update(ports=PORTS, reports=reports_by_port([vhost_user_report()]))
    from prometheus_client import generate_latest
    assert b'port_id="v1"' in generate_latest(metrics.registry)
    metrics.update(ports=PORTS[1:])
    text = generate_latest(metrics.registry)
    assert b'port_id="v1"' not in text and b'port_id="t1"' in text
    # The histograms are exported from the start, empty.
    assert b"virtio_ovs_port_wiring_seconds_count 0.0" in text
    assert b"virtio_ovs_reconcile_seconds_bucket" in text


def test_wiring_clock_times_reactions_not_the_cold_start():
    clock = WiringClock()
    assert clock.update({"a", "b"}, {"a"}, seen_at=0.0, now=0.5) == []
    # b waited since the first sync; c is new and wired at once.
    assert clock.update({"a", "b", "c"}, {"a", "c"}, 1.0, 1.02) == \
        [pytest.approx(0.02)]
    assert clock.update({"a", "b", "c"}, {"a", "b", "c"}, 2.0, 2.5) == [2.5]
    assert clock.update({"a", "b", "c"}, {"a", "b", "c"}, 3.0, 3.1) == []
    # c unbound, then bound again: timed again from its new sighting.
    assert clock.update({"a", "b"}, {"a", "b"}, 4.0, 4.1) == []
    assert clock.update({"a", "b", "c"}, {"a", "b"}, 5.0, 5.1) == []
    assert clock.update({"a", "b", "c"}, {"a", "b", "c"}, 6.0, 6.05) == \
        [pytest.approx(1.05)]
    clock.update(set(), set(), 7.0, 7.0)
    assert clock.since == {} and clock.wired == set()  # bounded


@pytest.mark.parametrize("value, expected", [
    ("127.0.0.1:9477", ("127.0.0.1", 9477)), ("[::1]:9477", ("::1", 9477)),
    ("localhost:1", ("localhost", 1))])
def test_metrics_bind_accepts_host_port(value, expected):
    assert validate_bind(value) == expected


@pytest.mark.parametrize("value", ["9477", "127.0.0.1:0", "127.0.0.1:65536",
                                   "host:port", ":9477", "a b:1",
                                   "127.0.0.1:9477\n", "1.2.3.4:٣"])
def test_metrics_bind_refuses_anything_else(value):
    with pytest.raises(UserError, match="metrics_bind"):
        validate_bind(value)
