"""What the rest of virtio-ovs asks of the host database, by role.

Each consumer is typed against the one role it uses (the checker against
``Evidence``, gc against ``TapUse``, the agent's reconciler against
``SwitchSetup``...); ``ovsdb.host.api.HostDb`` is all of them over one
connection. The docstrings here are the contract.

Every method either completes or raises; a method that raises before its
commit has written nothing. UserError means the request is wrong (exit 1);
EnvironmentFailure means OVSDB or ovs-vswitchd failed (exit 2).

**Threads.** One object owns one IDL connection, which is not thread-safe:
every method runs on the thread that owns the object (the agent's loop),
except those marked *any thread* below, which open a short-lived
connection of their own.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Callable, Iterable, Mapping, Protocol, Sequence

from virtio_ovs.core.plug_request import Vif
from virtio_ovs.core.networks import Network
from virtio_ovs.core.outcomes import PlugOutcome, UnplugOutcome
from virtio_ovs.core.port import GuestPort
from virtio_ovs.core.records import Invalid
from virtio_ovs.core.secgroups import Rule, SecurityGroup


@dataclasses.dataclass(frozen=True)
class BridgeSpec:
    """The bridges the standalone agent owns: the integration bridge and,
    per physnet, a provider bridge joined to it by a patch pair."""

    integration_bridge: str
    datapath_type: str
    protocols: tuple[str, ...]
    mappings: Mapping[str, str]  # physnet -> provider bridge


class TapUse(Protocol):
    """Which devices the database uses (gc and the plug's rollback)."""

    @abc.abstractmethod
    def devices_in_use(self, names: Iterable[str]) -> set[str]:
        """Which of ``names`` an Interface row names, read afresh (a new
        connection: the answer must not depend on a replica that a lost
        connection left behind). EnvironmentFailure if OVSDB cannot
        answer. *Any thread.*"""


class PortStore(TapUse, Protocol):
    """Guest ports: every Interface with ``iface-id`` and ``attached-mac``,
    whoever plugged it."""

    @abc.abstractmethod
    def validate_plug(self, vifs: Iterable[Vif], local_vlans: bool = True
                   ) -> list[str]:
        """Check ``vifs`` against the database without writing.

        UserError when a bridge is unknown, a vhost-user port asks for a
        bridge whose datapath is not ``netdev`` or an interface type this
        OVS lacks, a port id is already plugged with another MAC or device,
        a device name belongs to another port, or (with ``local_vlans``)
        a network is unknown. Returns the port ids that are not plugged yet.
        """

    @abc.abstractmethod
    def plug(self, vifs: Iterable[Vif], outcome: PlugOutcome,
             wait: bool = True, created_taps: frozenset[str] = frozenset(),
             local_vlans: bool = True) -> PlugOutcome:
        """Plug all ``vifs`` in one transaction (all or nothing), filling
        ``outcome`` as it goes (also when it raises), and return it.

        A new port gets its Port, Interface and external_ids, its MTU
        request, its requested OpenFlow number, and on a bridge that is
        not ``fail_mode=secure`` the dead VLAN (tag 4095, trunk 4095; the
        agent's secure bridge forwards by flows only). With
        ``local_vlans`` False (the OVN backend: the network is in the NB
        and ovn-controller owns br-int) it gets no VLAN columns and
        ``vif.network`` is not looked up here. A VIF already plugged
        the same way changes nothing (no write at all); one whose ids or
        MTU differ is updated in place and keeps its VLAN columns. Devices
        in ``created_taps`` are marked ``virtio-ovs:tap-created`` (unplug
        deletes them).

        Concurrent plugs and unplugs are serialised by the database, as
        ovs-vsctl's are: each verifies every bridge's ``ports``, so the
        second to commit is rebuilt on the first one's result (and gets
        UserError if it now conflicts).

        When the commit's answer is lost (timeout, lost connection), the
        outcome is read back from the database on a new connection before
        raising OvsdbTimeout: ``outcome.committed`` is YES if every VIF is
        there as asked, NO if not, UNKNOWN if the read-back failed too.

        With ``wait``, returns once ovs-vswitchd has applied the change and
        every new Interface has an ofport. Interfaces that get an ``error``
        instead are listed in ``outcome.refused`` and VswitchdError is
        raised; the rows stay (see ``remove_ports``).
        """

    @abc.abstractmethod
    def remove_ports(self, outcome: PlugOutcome) -> None:
        """Roll back a committed plug: delete the Ports (and Interfaces) it
        inserted, ``outcome.new_ports``. Ports already gone are skipped."""

    @abc.abstractmethod
    def unplug(self, port_ids: Sequence[str], if_exists: bool = False,
               wait: bool = True, outcome: UnplugOutcome | None = None
               ) -> UnplugOutcome:
        """Remove the ports carrying ``iface-id`` in ``port_ids``, in one
        transaction (all or nothing), filling ``outcome`` (the ports as
        they were, and whether they are gone) as it goes, also when it
        raises; returns it.

        A missing port raises UserError, or is skipped with ``if_exists``.
        When the commit's answer is lost, ``outcome.committed`` is read
        back afresh (UNKNOWN when that fails too) before OvsdbTimeout is
        raised; when only the wait for ovs-vswitchd timed out, it is YES.
        """

    @abc.abstractmethod
    def list_ports(self) -> list[GuestPort]:
        """Every guest port, sorted by port id."""

    @abc.abstractmethod
    def get_port(self, port_id: str) -> GuestPort | None:
        """The guest port with ``iface-id=port_id``, or None. Equal to the
        matching entry of ``list_ports()``."""

    @abc.abstractmethod
    def bind_port(self, port_id: str, network: str | None,
                  ips: tuple[str, ...] | None, local_vlans: bool = True
                  ) -> bool:
        """Bind a guest port (whoever plugged it) to ``network`` (None
        unbinds) and set its allowed IPs (None keeps them). True if
        something changed. UserError when the port is not a guest port, or
        (with ``local_vlans``) the network is not in this database."""

    @abc.abstractmethod
    def set_port_groups(self, port_id: str, names: tuple[str, ...],
                        check: bool = True) -> bool:
        """A guest port's groups (empty: unfiltered); True if changed.
        ``check`` False: the groups live elsewhere (OVN's NB)."""

    @abc.abstractmethod
    def wait_ovn_installed(self, port_ids: Iterable[str]) -> None:
        """Return once ovn-controller has installed each port (it writes
        ``external_ids:ovn-installed=true`` on the Interface, OVN >= 20.09).
        OvsdbTimeout after ``timeout``, naming the ports still missing."""


class NetworkStore(Protocol):
    """The standalone backend's networks, in ``Open_vSwitch:external_ids``."""

    @abc.abstractmethod
    def create_network(self, name: str, net_type: str, physnet: str | None,
                       segment: int | None,
                       mappings: Mapping[str, str]) -> Network:
        """Store a new network with the lowest free local VLAN.

        UserError when the name exists, a vlan network lacks a physnet from
        ``mappings`` or a segment in 1..4094, a flat network lacks a
        physnet, a local network has either, or (physnet, segment) is
        taken. Concurrent creates cannot get the same local VLAN.
        """

    @abc.abstractmethod
    def delete_network(self, name: str) -> None:
        """Remove a network (an invalid record of that name too);
        UserError while any port is bound to it."""

    @abc.abstractmethod
    def list_networks(self) -> list[Network]:
        """All networks, sorted by name."""

    @abc.abstractmethod
    def networks(self) -> dict[str, Network]:
        """The valid networks, by name, from the replica (no round trip)."""

    @abc.abstractmethod
    def invalid_records(self) -> list[Invalid]:
        """The network and group records under virtio-ovs's keys that are
        not valid (anyone may write OVSDB): each is skipped everywhere,
        and only it."""


class GroupStore(Protocol):
    """The standalone backend's security groups."""

    @abc.abstractmethod
    def create_group(self, name: str) -> SecurityGroup:
        """A new group with the default rules (all egress; ingress from
        the group's own members). UserError if it exists."""

    @abc.abstractmethod
    def delete_group(self, name: str) -> None:
        """UserError while a port uses it or another group's rule names it
        as its remote group."""

    @abc.abstractmethod
    def list_groups(self) -> list[SecurityGroup]:
        """Every group, by name."""

    @abc.abstractmethod
    def add_rule(self, group: str, rule: Rule) -> bool:
        """Add ``rule`` (False if the group has it already). UserError for
        an unknown group or remote group."""

    @abc.abstractmethod
    def delete_rule(self, group: str, rule_id: str) -> None:
        """UserError for an unknown group or rule id."""

    @abc.abstractmethod
    def groups(self) -> dict[str, SecurityGroup]:
        """The groups, by name, from the replica (no round trip)."""


class AgentRecords(Protocol):
    """The agent's records: heartbeat, standby, check verdicts."""

    @abc.abstractmethod
    def agent_status(self) -> dict | None:
        """The agent's last heartbeat record, or None if it never ran."""

    @abc.abstractmethod
    def write_agent_status(self, status: dict) -> None:
        """Store the agent's heartbeat record."""

    @abc.abstractmethod
    def standby_status(self) -> dict | None:
        """The record of an agent waiting for the lock, or None."""

    @abc.abstractmethod
    def write_standby_status(self, status: dict | None) -> None:
        """Store (None: remove) a standby agent's record. Written on a new
        connection: the standby's own cannot write without the lock."""

    @abc.abstractmethod
    def record_verdicts(self, verdicts: Mapping[str, tuple[str, int | None]]
                        ) -> None:
        """Port id -> (verdict, enabled queues), as the agent's periodic
        check found them, into each Interface's external_ids."""

    @abc.abstractmethod
    def record_migrations(self, records: Mapping[str, str | None]) -> None:
        """Port id -> the agent's record of its live migration
        (``virtio-ovs:migration``; None removes it), on each Interface."""

    @abc.abstractmethod
    def incoming(self) -> dict[str, str]:
        """Port id -> source host of each live migration expected here
        (standalone: ``core.migration.parse_incoming``), from the
        replica."""

    @abc.abstractmethod
    def wait_gated(self, port_ids: Iterable[str]) -> None:
        """Until the agent has gated and wired each of these ports (their
        migration record ``SRC -> HERE``); OvsdbTimeout after the
        connection's timeout."""

    @abc.abstractmethod
    def set_incoming(self, records: Mapping[str, str | None]) -> None:
        """Port id -> source host: expect a live migration of the port
        here; None: forget the expectation. One transaction."""


class SwitchSetup(Protocol):
    """The bridges and OpenFlow numbers the standalone agent needs."""

    @abc.abstractmethod
    def provider_problems(self, spec: BridgeSpec) -> dict[str, str]:
        """Physnet -> why its provider bridge cannot be wired now (it does
        not exist, or has another datapath type than the integration
        bridge), for the mapped physnets that cannot; from the replica."""

    @abc.abstractmethod
    def ensure_bridges(self, spec: BridgeSpec, connect: bool) -> bool:
        """Make the integration bridge (created if missing) and check the
        provider bridges (EnvironmentFailure if one went missing or has
        another datapath type: leave out those that ``provider_problems``
        names); all get ``fail_mode=secure`` and ``protocols``.
        Creates the patch pairs; with ``connect`` False a new patch port's
        peer does not exist, so it carries nothing until the agent's flows
        are in; with ``connect`` True the peers are joined. Waits for
        ovs-vswitchd. True if anything changed."""

    @abc.abstractmethod
    def ofports(self, names: set[str]) -> dict[str, int]:
        """Interface name -> valid ofport, for those of ``names`` that have
        one, from the replica."""

    @abc.abstractmethod
    def controller_of(self, bridge: str) -> str | None:
        """Who else programs ``bridge``, or None: ovn-controller when
        ``Open_vSwitch external_ids:ovn-bridge`` names it (or names nothing
        and ``ovn-remote`` is set, for ``br-int``), or the bridge's
        ``controller`` targets."""

    @abc.abstractmethod
    def bridge_names(self) -> set[str]:
        """The names of every Bridge row."""

    @abc.abstractmethod
    def chassis_name(self) -> str | None:
        """This host's OVN chassis name: ``Open_vSwitch
        external_ids:system-id`` (ovn-controller's), or None."""

    @abc.abstractmethod
    def ovn_remote(self) -> str | None:
        """ovn-controller's southbound database: ``Open_vSwitch
        external_ids:ovn-remote``, or None."""


class Replica(Protocol):
    """The connection and its replica, for an event loop."""

    remote: str
    timeout: float

    @abc.abstractmethod
    def start(self, cancelled: Callable[[], bool] | None = None) -> None:
        """Connect and wait for the first full replica (bounded by
        ``timeout``; OvsdbTimeout after it, or as soon as ``cancelled()``
        says so: it is asked at least every 200 ms)."""

    @abc.abstractmethod
    def run(self) -> None:
        """Process what the server sent."""

    @property
    @abc.abstractmethod
    def seqno(self) -> int:
        """Changes whenever the replica changes."""

    @abc.abstractmethod
    def wiring_version(self) -> int:
        """A number that changes whenever something a port's flows or tag
        depend on may have changed (its ids, MAC, IPs, network, groups,
        ofport, bridge, tag; any Port or Bridge row; any other Interface;
        the networks and groups), and only then: a verdict, a status or a
        heartbeat written leaves it. From the replica (no round trip)."""

    @property
    @abc.abstractmethod
    def lock_state(self) -> str:
        """The lock this connection was opened with: "held" (also without
        a lock), "contended" (another client holds it) or "pending" (not
        answered yet). The lock is OVSDB's own: the server gives it to one
        client at a time and frees it when that client's connection
        closes, so one agent per database is active."""

    @abc.abstractmethod
    def register_wakeup(self, poller) -> None:
        """Make ``poller`` (an ``ovs.poller.Poller``) wake when the
        connection has something to process. Does not block."""

    @abc.abstractmethod
    def close(self) -> None:
        """Drop the connection."""


class Evidence(Protocol):
    """What the data-plane check reads from OVSDB."""

    @abc.abstractmethod
    def vhost_user_counters(self) -> dict[str, tuple[dict, dict]]:
        """Interface name -> (status, statistics) of every vhost-user
        Interface. Statistics are read through a short-lived connection:
        they are never replicated by the long-lived one. *Any thread.*"""
