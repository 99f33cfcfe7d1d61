"""The backend seam: what a verb asks of the network side, and what the
agent does per reconcile. ``factory.build`` chooses the implementations,
in one place, for the CLI and the agent alike.

The docstrings here are the contract. Each write is one transaction per
database; a write that fails before its commit has written nothing.
Where a write spans two databases (the OVN backend: the northbound and
the host's OVSDB), the order and the undo are ``ovn.across``'s, and only
there.
"""
from __future__ import annotations

import abc
import dataclasses
import select
from typing import Sequence

from virtio_ovs.core.errors import UserError
from virtio_ovs.core.plug_request import Vif
from virtio_ovs.core.networks import Network
from virtio_ovs.core.outcomes import PlugOutcome, UnplugOutcome
from virtio_ovs.core.records import Invalid
from virtio_ovs.core.secgroups import Rule, SecurityGroup


class Backend(abc.ABC):
    """Networks, ports, bindings and security groups on one backend."""

    name: str
    # Extra columns of ``port_records`` that ``list`` shows.
    record_columns: tuple[str, ...] = ()

    # --------------------------------------------------------- networks
    @abc.abstractmethod
    def create_network(self, name: str, net_type: str, physnet: str | None,
                       segment: int | None) -> Network:
        """A new network; UserError for a name taken or a type, physnet
        or segment the backend rules out."""

    @abc.abstractmethod
    def delete_network(self, name: str) -> None:
        """UserError when it does not exist or ports are bound to it."""

    @abc.abstractmethod
    def list_networks(self) -> list[Network]:
        """Every network of virtio-ovs, by name."""

    # ------------------------------------------------------------ ports
    @abc.abstractmethod
    def plug(self, vifs: list[Vif], wait: bool) -> PlugOutcome:
        """Plug ``vifs`` all or nothing (TAPs created as needed), with
        their networks and groups. With ``wait``, returns once the data
        plane has them (ovs-vswitchd's ofports; on OVN, ovn-controller's
        ``ovn-installed``)."""

    @abc.abstractmethod
    def unplug(self, port_ids: Sequence[str], if_exists: bool, wait: bool
               ) -> UnplugOutcome:
        """Remove the ports (and the TAPs virtio-ovs created) and what the
        backend holds for them."""

    @abc.abstractmethod
    def bind(self, port_id: str, network: str, ips: tuple[str, ...] | None,
             wait: bool, groups: tuple[str, ...] | None = None) -> bool:
        """Bind a guest port (whoever plugged it) to ``network`` with its
        allowed IPs (None: keep) and groups (None: keep), all or nothing.
        True if anything changed."""

    def expect_migration(self, port_id: str, source: str | None) -> bool:
        """Expect a live migration of ``port_id`` from host ``source``
        here (None: not any more); True if that changed. Only where the
        hosts share no database (standalone): elsewhere a UserError."""
        raise UserError("migration-expect", f"the {self.name} backend sees "
                        "a migration by itself (the same port on a second "
                        "chassis); nothing to prepare")

    @abc.abstractmethod
    def unbind(self, port_id: str) -> None:
        """Undo ``bind``; the port stays plugged, isolated."""

    @abc.abstractmethod
    def port_records(self) -> list[dict]:
        """Every guest port's JSON record (``GuestPort.as_dict`` plus the
        backend's ``record_columns``)."""

    @abc.abstractmethod
    def port_record(self, port_id: str) -> dict | None:
        """One port's record, equal to its entry in ``port_records``."""

    # -------------------------------------------------- security groups
    @abc.abstractmethod
    def create_group(self, name: str) -> SecurityGroup:
        """A new group with the default rules."""

    @abc.abstractmethod
    def delete_group(self, name: str) -> None:
        """UserError while a port uses it or a rule names it."""

    @abc.abstractmethod
    def list_groups(self) -> list[SecurityGroup]:
        """Every group, by name."""

    @abc.abstractmethod
    def add_rule(self, group: str, rule: Rule) -> bool:
        """False if the group has the rule already."""

    @abc.abstractmethod
    def delete_rule(self, group: str, rule_id: str) -> None:
        """UserError for an unknown group or rule."""

    @abc.abstractmethod
    def set_port_groups(self, port_id: str, names: tuple[str, ...]) -> bool:
        """A port's groups (empty: unfiltered); True if changed."""

    # --------------------------------------------------------- the rest
    def invalid_records(self) -> list[Invalid]:
        """The records of networks, groups and rules under virtio-ovs's
        marks that are not valid (anyone with write access may have
        written them): skipped everywhere, shown by the listings."""
        return []

    @abc.abstractmethod
    def flow_bridges(self) -> set[str]:
        """The bridges whose OpenFlow tables virtio-ovs programs (for the
        flow counts of ``metrics``); empty when another controller does."""

    def close(self) -> None:
        """Drop the connections the backend opened (not the host
        database's, which its owner closes)."""


class NetworkOwnedElsewhere:
    """For a Backend whose networks, groups and bindings belong to someone
    else (neutron): every verb that would write them is refused, with
    ``refusal`` as its one line, before anything is written; a plug goes
    into OVS only, as os-vif's does. Mix in before the Backend."""

    refusal: str
    refusal_field: str

    def _refuse(self, *args, **kwargs):
        raise UserError(self.refusal_field, self.refusal)

    create_network = delete_network = list_networks = create_group = \
        delete_group = list_groups = add_rule = delete_rule = \
        set_port_groups = bind = unbind = _refuse

    def invalid_records(self) -> list[Invalid]:
        return []  # none of the records are ours to read

    def plug(self, vifs: list[Vif], wait: bool) -> PlugOutcome:
        """Into OVS only: a network would be someone else's write."""
        if any(vif.network for vif in vifs):
            raise UserError("network", self.refusal)
        return self.plugger.plug(vifs, wait, local_vlans=False)


@dataclasses.dataclass
class Reconciled:
    """What one reconcile found, for the heartbeat and the metrics."""

    counts: dict[str, int]
    ports: tuple = ()  # the guest ports it saw (GuestPort)
    wanted: frozenset[str] = frozenset()  # port ids that should be wired
    wired: frozenset[str] = frozenset()  # ... and are
    flows: dict[str, int] = dataclasses.field(default_factory=dict)


class AgentDriver(abc.ABC):
    """What the agent does on each reconcile, per backend: the standalone
    backend's bridges and flows, or (OVN) only counting what
    ovn-controller installed. Runs on the agent's loop thread."""

    @abc.abstractmethod
    def up_to_date(self, wiring_version: int) -> bool:
        """Nothing the data plane depends on changed since the last
        successful ``reconcile`` (so it can be skipped)."""

    @abc.abstractmethod
    def reconcile(self, wiring_version: int) -> Reconciled:
        """Bring the data plane to the database's state. EnvironmentFailure
        to be retried; UserError when the configuration cannot work here
        (the agent then exits 1 if it never reconciled, else retries)."""

    def preflight(self) -> None:
        """At start, once the replica is in, before the lock decides the
        role: UserError when this backend could not own what it would
        take over (so that a standby cannot fail only at takeover)."""

    @abc.abstractmethod
    def resync(self) -> None:
        """Forget what was applied: the next reconcile programs
        everything again, as at start."""

    @property
    @abc.abstractmethod
    def synced(self) -> bool:
        """The first full sync since start (or the last resync) is done."""

    def wakeup_fds(self) -> list[int]:
        """Connections the agent's poll must wake on."""
        return []

    def register_wakeup(self, poller) -> None:
        """Make the agent's ``poller`` wake on the driver's connections."""
        for fd in self.wakeup_fds():
            poller.fd_wait(fd, select.POLLIN)

    def changes(self) -> int:
        """A number that moves when the driver's own databases changed
        (the agent then reconciles, as for a change of the host's)."""
        return 0

    def service(self) -> bool:
        """Serve those connections; True when the data plane was lost
        (ovs-vswitchd restarted) and a resync has been scheduled."""
        return False

    def heartbeat(self, interval: float) -> None:
        """Liveness probes and checks, once per heartbeat."""

    def status(self) -> dict:
        """Backend facts for the heartbeat record."""
        return {}

    def close(self) -> None:
        """Close the connections (flows stay in place)."""


class CountingDriver(AgentDriver):
    """For a backend where someone else programs br-int (ovn-controller,
    neutron's OVS agent): the agent only counts the ports and how many of
    them are wired (for the heartbeat, the metrics and the wiring time)."""

    def __init__(self, db):
        self.db = db  # a PortStore
        self._synced = False

    @abc.abstractmethod
    def wired(self, port) -> bool:
        """Whether the other controller has wired this guest port."""

    @property
    def synced(self) -> bool:
        return self._synced

    def up_to_date(self, wiring_version: int) -> bool:
        return False  # counting is cheap, and "wired" may change anytime

    def reconcile(self, wiring_version: int) -> Reconciled:
        ports = self.db.list_ports()
        wired = frozenset(p.port_id for p in ports if self.wired(p))
        self._synced = True
        return Reconciled(
            counts={"ports": len(ports), "bound_ports": len(wired)},
            ports=tuple(ports), wanted=frozenset(p.port_id for p in ports),
            wired=wired)

    def resync(self) -> None:
        self._synced = False
