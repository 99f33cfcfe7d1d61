"""The standalone destination's gates (backend/arrival.py) on plain data:
what is set no-forward and when, what opens it, what is recorded."""
from __future__ import annotations

from virtio_ovs.backend.arrival import ArrivalGates
from virtio_ovs.core.port import GuestPort
from virtio_ovs.network.tables import T_CLASSIFY

COOKIE = 0x42


class Db:
    def __init__(self, incoming):
        self.incoming_records = dict(incoming)
        self.records: dict = {}

    def incoming(self):
        return dict(self.incoming_records)

    def set_incoming(self, records):
        for port_id, source in records.items():
            if source is None:
                self.incoming_records.pop(port_id, None)
            else:
                self.incoming_records[port_id] = source

    def chassis_name(self):
        return "hv2"

    def record_migrations(self, records):
        self.records.update(records)


class Switch:
    def __init__(self):
        self.calls: list = []

    def set_forwarding(self, ports, forward):
        self.calls.append((dict(ports), forward))


class Metrics:
    """The two metrics the gates use: counts by result, and observations."""

    def __init__(self):
        self.results: dict[str, int] = {}
        self.observed = 0
        self.migrations = self.migration = self
        self._result = ""

    def labels(self, result, direction):
        assert direction == "in"
        self._result = result
        return self

    def inc(self):
        self.results[self._result] = self.results.get(self._result, 0) + 1

    def observe(self, seconds):
        self.observed += 1


def port(port_id="vm", ofport=7, hw_addr="fe:00:00:00:00:07", kind="tap",
         migration=None):
    return GuestPort(port_id=port_id, name=f"t-{port_id}", kind=kind,
                     mac="52:54:00:00:00:01", network="blue", ofport=ofport,
                     hw_addr=hw_addr, migration=migration)


def gates(incoming, frames=0):
    db, switch = Db(incoming), Switch()
    arrivals = ArrivalGates(db, lambda: switch, COOKIE, Metrics(),
                            frames=lambda name: frames)
    return arrivals, db, switch


def test_an_expected_port_is_gated_then_opened_by_its_first_frame():
    arrivals, db, switch = gates({"vm": "hv1"})
    assert arrivals.update([port()]) == {"t-vm"}
    assert switch.calls == [({7: "fe:00:00:00:00:07"}, False)]
    arrivals.after_flows()  # the record once the flows are in
    assert db.records == {"vm": "hv1 -> hv2"}
    version = arrivals.version
    arrivals.packet_ins([(COOKIE, T_CLASSIFY, 7, b"\xff" * 12 + b"\x80\x35")])
    assert switch.calls[-1] == ({7: "fe:00:00:00:00:07"}, True)  # at once
    assert arrivals.version == version + 1  # the agent reconciles
    assert arrivals.update([port(migration="hv1 -> hv2")]) == frozenset()
    arrivals.after_flows()
    assert db.records == {"vm": "done: hv1 -> hv2"}
    assert db.incoming_records == {}
    assert arrivals.metrics.results == {"done": 1}
    assert arrivals.metrics.observed == 1


def test_packet_ins_of_others_open_nothing():
    arrivals, _, switch = gates({"vm": "hv1"})
    arrivals.update([port()])
    arrivals.packet_ins([(0x99, T_CLASSIFY, 7, b""),  # another run's
                         (COOKIE, 10, 7, b""),  # another table
                         (COOKIE, T_CLASSIFY, 8, b"")])  # another port
    assert len(switch.calls) == 1 and arrivals.version == 0


def test_a_port_that_cannot_be_gated_yet_stays_in_the_dead_vlan():
    arrivals, _, switch = gates({"vm": "hv1"})
    assert arrivals.update([port(hw_addr=None)]) == frozenset()
    assert arrivals.waiting == {"t-vm"} and switch.calls == []


def test_a_guest_that_spoke_before_the_agent_listened_is_opened():
    """The agent was down at resume: the TAP's counter says so."""
    arrivals, db, switch = gates({"vm": "hv1"}, frames=5)
    arrivals.update([port()])
    arrivals.after_flows()
    assert arrivals.version == 1
    arrivals.update([port()])
    assert switch.calls[-1] == ({7: "fe:00:00:00:00:07"}, True)
    assert db.incoming_records == {}


def test_a_gated_port_that_goes_is_an_aborted_migration():
    arrivals, db, _ = gates({"vm": "hv1"})
    arrivals.update([port()])
    arrivals.update([])
    assert db.incoming_records == {} and arrivals.closed == {}
    assert arrivals.metrics.results == {"aborted": 1}


def test_ports_not_expected_and_vhost_user_ports_are_left_alone():
    arrivals, _, switch = gates({"vu": "hv1"})
    assert arrivals.update([port(), port("vu", kind="vhost-user")]) == \
        frozenset()
    assert switch.calls == []


def test_after_an_ovs_vswitchd_restart_the_gates_are_set_again():
    arrivals, _, switch = gates({"vm": "hv1"})
    arrivals.update([port()])
    arrivals.reset()
    arrivals.update([port()])
    assert [forward for _, forward in switch.calls] == [False, False]
