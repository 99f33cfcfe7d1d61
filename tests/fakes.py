"""In-process stand-ins for the adapters, for tests of the layers above
them (the plugger's rollback). Each records what it was asked to do and can
be told to raise at a given step."""
from __future__ import annotations

import contextlib

from virtio_ovs.core.errors import (EnvironmentFailure, OvsdbTimeout,
                                    VswitchdError)
from virtio_ovs.core.outcomes import Committed, PlugOutcome, UnplugOutcome
from virtio_ovs.core.port import GuestPort
from virtio_ovs.core.roles import PortStore


class Interrupt(BaseException):
    """Stands for Ctrl-C (KeyboardInterrupt) or SIGTERM at a given step."""


class Steps:
    """Raises Interrupt when step ``fail_at`` is reached."""

    def __init__(self, fail_at: str | None = None):
        self.fail_at = fail_at
        self.seen: list[str] = []

    def __call__(self, step: str) -> None:
        self.seen.append(step)
        if step == self.fail_at:
            raise Interrupt(step)


class FakeTaps:
    def __init__(self, steps: Steps):
        self.steps = steps
        self.links: set[str] = set()
        self.marked: set[str] = set()  # created by virtio-ovs

    def create(self, taps, created) -> None:
        for tap in taps:
            self.steps(f"create {tap.name}")
            self.links.add(tap.name)
            self.marked.add(tap.name)
            created.append(tap.name)

    def bring_up(self, name) -> None:
        self.steps(f"up {name}")

    def delete(self, name) -> None:
        self.steps(f"delete {name}")
        self.links.discard(name)
        self.marked.discard(name)

    def is_marked(self, name) -> bool:
        return name in self.marked

    def guard(self, exclusive, timeout):
        self.steps("lock exclusive" if exclusive else "lock shared")
        return contextlib.nullcontext()

    def delete_many(self, names) -> None:
        for name in names:
            self.delete(name)


class FakeHostDb(PortStore):
    """The port store a plugger and a backend use. Ports as a dict of port
    id -> device name; ``refuse`` names devices ovs-vswitchd would
    refuse."""

    remote, timeout = "fake:", 1.0

    def __init__(self, steps: Steps, refuse: frozenset[str] = frozenset()):
        self.steps = steps
        self.refuse = refuse
        self.rows: dict[str, str] = {}
        self.others: set[str] = set()  # devices of other processes' rows
        self.lose_answer = False  # commit, then time out without knowing
        self.tap_created = True  # what the rows record
        self.chassis = "hv1"  # Open_vSwitch external_ids:system-id
        self.unreachable = False  # read-backs fail
        self.committed: list[tuple] = []  # what commit() applied

    def devices_in_use(self, names):
        self.steps("read back")
        if self.unreachable:
            raise EnvironmentFailure("OVSDB unreachable")
        return (set(self.rows.values()) | self.others) & set(names)

    def validate_plug(self, vifs, local_vlans=True):
        return [v.port_id for v in vifs if v.port_id not in self.rows]

    def plug(self, vifs, outcome: PlugOutcome, wait=True,
             created_taps=frozenset(), local_vlans=True):
        self.steps("commit")
        for vif in vifs:
            self.rows[vif.port_id] = vif.name
            outcome.plugged.append(vif.port_id)
        if self.lose_answer:
            outcome.committed = Committed.UNKNOWN
            raise OvsdbTimeout("no answer")
        outcome.committed = Committed.YES
        outcome.new_ports = [v.port_id for v in vifs]
        self.steps("wait")
        outcome.refused = {v.name: "refused" for v in vifs
                           if v.name in self.refuse}
        if outcome.refused:
            raise VswitchdError("ovs-vswitchd refused")
        return outcome

    def unplug(self, port_ids, if_exists=False, wait=True, outcome=None):
        """Removes the rows; ``lose_answer``: then times out, and the
        read-back says committed."""
        outcome = UnplugOutcome() if outcome is None else outcome
        outcome.ports = [GuestPort(port_id=p, name=self.rows.pop(p),
                                   kind="tap", mac="52:54:00:00:00:01",
                                   tap_created=self.tap_created)
                         for p in port_ids if p in self.rows]
        self.steps("unplug commit")
        outcome.committed = Committed.YES
        if self.lose_answer:
            raise OvsdbTimeout("no answer; read back: committed")
        return outcome

    def remove_ports(self, outcome):
        self.steps("remove rows")
        for port_id in outcome.new_ports:
            self.rows.pop(port_id, None)

    def get_port(self, port_id):
        if port_id not in self.rows:
            return None
        return GuestPort(port_id=port_id, name=self.rows[port_id],
                         kind="tap", mac="52:54:00:00:30:01")

    def commit(self, *commands, wait=False):
        """A host transaction: nothing is applied if ``host commit`` is
        interrupted; with ``lose_answer`` it is applied, then times out."""
        self.steps("host commit")
        self.committed.append(commands)
        if self.lose_answer:
            raise OvsdbTimeout("no answer")
        return ["updated"] * len(commands)

    def chassis_name(self):
        return self.chassis

    def wait_ovn_installed(self, port_ids):
        self.steps("wait ovn-installed")

    def _unused(self, *args, **kwargs):
        raise NotImplementedError

    list_ports = bind_port = set_port_groups = _unused
