"""The OVN agent's driver without OVN: what it counts, what it places,
what it records, and that an unreachable NB holds none of the rest up."""
from __future__ import annotations

from virtio_ovs.backend.ovn import ARRIVAL_GRACE, NB_RETRY, OvnDriver
from virtio_ovs.core.errors import EnvironmentFailure
from virtio_ovs.core.migration import Placement
from virtio_ovs.core.port import GuestPort


class Host:
    def __init__(self, ports):
        self.ports = ports
        self.records: dict = {}

    def list_ports(self):
        return self.ports

    def chassis_name(self):
        return "hv2"

    def record_migrations(self, records):
        self.records.update(records)


class Nb:
    seqno = 0

    def __init__(self, placements=None, fail=False):
        self.current = placements or {}
        self.fail = fail
        self.committed: list = []

    def placements(self, port_ids=None):
        if self.fail:
            raise EnvironmentFailure("OVSDB unix:/nb.sock unreachable")
        return dict(self.current)

    def commit(self, *commands):
        for command in commands:
            self.committed.append(command)
            self.current[command.port_id] = command.wanted
        return ["updated"] * len(commands)


def port(**kw) -> GuestPort:
    return GuestPort(port_id="vm1", name="tapd", kind="tap", mac="m", **kw)


def test_an_unreachable_nb_holds_up_neither_the_counts_nor_the_loop():
    nb = Nb({"vm1": Placement(("hv1",))}, fail=True)
    driver = OvnDriver(Host([port(ovn_installed=True)]), nb, (23, 3))
    result = driver.reconcile(1)
    assert result.counts == {"ports": 1, "bound_ports": 1} and driver.synced
    assert driver.nb_retry_at > 0  # tried once, then not before NB_RETRY
    nb.fail = False
    driver.reconcile(2)
    assert nb.committed == []  # still waiting for the retry time
    driver.nb_retry_at -= NB_RETRY
    driver.reconcile(3)
    assert nb.committed  # the retry came


def test_a_port_plugged_here_by_libvirt_starts_the_migration_and_is_recorded():
    host = Host([port()])
    nb = Nb({"vm1": Placement(("hv1",))})
    driver = OvnDriver(host, nb, (23, 3))
    driver.reconcile(1)
    assert nb.current["vm1"] == Placement(("hv1", "hv2"), "rarp")
    assert host.records == {"vm1": "hv1 -> hv2"}
    nb.current["vm1"] = Placement(("hv2",))  # the source unplugged
    host.ports = [port(migration="hv1 -> hv2")]
    driver.reconcile(2)
    assert host.records == {"vm1": "done: hv1 -> hv2"}


def test_without_multichassis_binding_nothing_is_placed():
    nb = Nb({"vm1": Placement(("hv1",))})
    OvnDriver(Host([port()]), nb, (22, 3)).reconcile(1)
    assert nb.committed == []


def test_a_destination_not_plugged_yet_is_awaited_not_aborted():
    """The destination's plug writes the NB first, then the host's row: an
    agent in between waits (ARRIVAL_GRACE) instead of leaving the list;
    a port that was here and went is an abort at once."""
    host = Host([])
    moving = Placement(("hv1", "hv2"), "rarp")
    nb = Nb({"vm1": moving})
    driver = OvnDriver(host, nb, (23, 3))
    driver.reconcile(1)
    assert nb.committed == [] and host.records == {}
    host.ports = [port()]
    driver.reconcile(2)  # plugged: recorded, nothing to change
    assert nb.committed == [] and host.records == {"vm1": "hv1 -> hv2"}
    host.ports = []
    driver.reconcile(3)  # it went: aborted, back to the source
    assert nb.current["vm1"] == Placement(("hv1",))


def test_a_destination_never_plugged_leaves_after_the_grace():
    nb = Nb({"vm1": Placement(("hv1", "hv2"), "rarp")})
    driver = OvnDriver(Host([]), nb, (23, 3))
    driver.reconcile(1)
    assert nb.committed == []
    driver.awaited["vm1"] -= ARRIVAL_GRACE
    driver.reconcile(2)
    assert nb.current["vm1"] == Placement(("hv1",))


def test_the_destination_activated_by_ovn_is_alone_at_once():
    """The SB says hv2 was activated (the guest's RARP): hv2 alone at
    once, without waiting for the source's unplug."""
    host = Host([port()])
    nb = Nb({"vm1": Placement(("hv1", "hv2"), "rarp")})
    sb = Sb({})
    host.ovn_remote = lambda: "unix:/sb.sock"
    host.chassis_name = lambda: "hv2"
    driver = OvnDriver(host, nb, (23, 3), open_sb=lambda remote: sb)
    driver.reconcile(1)
    assert sb.watched == {"vm1"} and nb.committed == []
    sb.activated_ports["vm1"] = "hv2"  # the resumed guest's RARP
    driver.reconcile(2)
    assert nb.current["vm1"] == Placement(("hv2",))
    assert host.records == {"vm1": "done: hv1 -> hv2"}


class Sb:
    seqno = 0

    def __init__(self, activated):
        self.activated_ports = activated
        self.watched: set = set()

    def watch(self, port_ids):
        self.watched = set(port_ids)

    def activated(self):
        return {p: c for p, c in self.activated_ports.items()
                if p in self.watched}
