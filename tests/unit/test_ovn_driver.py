"""The OVN agent's driver without OVN: what it counts, what it places,
what it records, and that an unreachable NB holds none of the rest up."""
from __future__ import annotations

from virtio_ovs.backend.ovn import NB_RETRY, OvnDriver
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
