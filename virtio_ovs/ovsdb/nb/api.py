"""The OVN northbound database: everything virtio-ovs asks of it.

``NorthboundDb`` is the only way into the NB, a second facade of the same
kind as ``ovsdb.host.api.HostDb``: one object owns one connection, each
method is one transaction (or none), and the docstrings here are the
contract; several writes compose into one transaction with ``commit``.
virtio-ovs's networks are Logical_Switches, and its ports
Logical_Switch_Ports, marked in external_ids so that it never touches
what others (neutron, an operator) created.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Iterable, Mapping

from virtio_ovs.core.records import Invalid
from virtio_ovs.core.migration import Placement
from virtio_ovs.core.networks import Network
from virtio_ovs.core.secgroups import Rule, SecurityGroup

MARK = "virtio-ovs:network"  # on a Logical_Switch: the network's name
LSP_MARK = "virtio-ovs:managed"  # on a Logical_Switch_Port: "true"
NEUTRON_PREFIX = "neutron:"  # ML2/OVN's external_ids keys
NEUTRON_NETWORK_NAME = "neutron:network_name"  # on a Logical_Switch
OURS, NEUTRON, OTHER = "virtio-ovs", "neutron", "other"


def owner_of(external_ids: Mapping[str, str], mark: str = LSP_MARK) -> str:
    """Who created a row: virtio-ovs (its mark), neutron (ML2/OVN writes
    ``neutron:*`` keys on every switch and port it creates) or another
    client (an operator, another CMS)."""
    if mark == MARK and external_ids.get(MARK) or \
            mark == LSP_MARK and external_ids.get(LSP_MARK) == "true":
        return OURS
    if any(key.startswith(NEUTRON_PREFIX) for key in external_ids):
        return NEUTRON
    return OTHER


def not_ours(kind: str, name: str, owner: str) -> str:
    """The one-line rule for a write refused on someone else's row."""
    if owner == NEUTRON:
        return (f"{kind} {name!r} belongs to neutron (neutron:* external_ids);"
                " change it through neutron, virtio-ovs never writes it")
    return f"{kind} {name!r} exists and was not created by virtio-ovs"


@dataclasses.dataclass(frozen=True)
class LspSpec:
    """A guest port as a Logical_Switch_Port (name = the port id)."""

    port_id: str
    network: str
    mac: str
    ips: tuple[str, ...]  # CIDRs; the LSP gets the addresses alone
    vm: str | None = None
    security_groups: tuple[str, ...] | None = None  # None: keep as they are
    # Where it is plugged: this host's chassis name (its system-id) and the
    # activation strategy its kind and this OVN support; requested-chassis
    # follows core.migration.wanted. ``placement``: exactly this (an undo).
    chassis: str | None = None
    strategy: str | None = None
    placement: Placement | None = None


@dataclasses.dataclass(frozen=True)
class LspState:
    port_id: str
    network: str  # the Logical_Switch's name
    up: bool
    owner: str = OURS  # OURS, NEUTRON or OTHER
    network_name: str | None = None  # neutron's name for the network


class NorthboundDb(abc.ABC):
    remote: str
    timeout: float

    @abc.abstractmethod
    def commit(self, *commands) -> list[str]:
        """Run ``commands`` (of ``ovsdb.nb.commands`` and
        ``ovsdb.nb.sg_commands``) in one transaction; their outcomes, in
        order. A command with ``undo(outcome)`` tells, after the commit,
        which commands would put back what it changed."""

    @abc.abstractmethod
    def create_network(self, name: str, net_type: str, physnet: str | None,
                       segment: int | None) -> Network:
        """Create a Logical_Switch for network ``name`` (geneve, or flat/vlan
        with a localnet port ``ln-<name>`` for ``physnet``, tagged with
        ``segment`` for vlan). UserError as ``validate_ovn_network`` says,
        or when a switch of that name exists (ours or not)."""

    @abc.abstractmethod
    def delete_network(self, name: str) -> None:
        """Delete network ``name``'s switch and its localnet port.
        UserError when it does not exist or guest ports are on it."""

    @abc.abstractmethod
    def list_networks(self) -> list[Network]:
        """virtio-ovs's networks (switches marked ours), by name."""

    @abc.abstractmethod
    def validate_ports(self, specs: Iterable[LspSpec]) -> None:
        """UserError when a network does not exist, or a port name belongs
        to a Logical_Switch_Port that virtio-ovs did not create."""

    @abc.abstractmethod
    def validate_not_foreign(self, port_ids: Iterable[str]) -> None:
        """UserError when one of ``port_ids`` names an LSP that virtio-ovs
        did not create (neutron's, an operator's): what a verb that would
        remove or change the port must find before it writes anything."""

    @abc.abstractmethod
    def ensure_ports(self, specs: Iterable[LspSpec]) -> list[str]:
        """Create or update the ports, all in one transaction: addresses
        and port_security = the MAC and the addresses of its CIDRs (the MAC
        alone when there are none). A port on another network of ours is
        moved. Returns the port ids that did not exist before (the ones a
        rollback deletes)."""

    @abc.abstractmethod
    def delete_ports(self, port_ids: Iterable[str]) -> list[str]:
        """Delete those of the ports that exist and are ours, in one
        transaction; returns the deleted ids."""

    @abc.abstractmethod
    def port_states(self, port_ids: Iterable[str] | None = None
                    ) -> dict[str, LspState]:
        """Port id -> switch, ``up`` (ovn-northd sets it once a chassis has
        claimed the port) and owner: for each LSP named in ``port_ids``,
        whoever created it (neutron's included); with None, for every port
        on our networks."""

    @abc.abstractmethod
    def placements(self, port_ids: Iterable[str] | None = None
                   ) -> dict[str, Placement]:
        """Port id -> requested chassis and activation strategy, for our
        LSPs named in ``port_ids`` (or all of ours), from the replica."""

    @abc.abstractmethod
    def create_group(self, name: str) -> SecurityGroup:
        """A Port_Group ``vovs_<name>`` with the default rules' ACLs.
        UserError if it exists."""

    @abc.abstractmethod
    def delete_group(self, name: str) -> None:
        """UserError while a port is in it or another group's rule names
        it as its remote group."""

    @abc.abstractmethod
    def list_groups(self) -> list[SecurityGroup]:
        """virtio-ovs's groups, by name, with their valid rules."""

    @abc.abstractmethod
    def invalid_rules(self) -> list[Invalid]:
        """The ACLs of virtio-ovs's groups whose rule record is not a
        valid rule (they are left out of ``list_groups`` and of every
        write's checks)."""

    @abc.abstractmethod
    def add_rule(self, group: str, rule: Rule) -> bool:
        """One allow-related ACL (False if the group has the rule)."""

    @abc.abstractmethod
    def delete_rule(self, group: str, rule_id: str) -> None:
        """UserError for an unknown group or rule."""

    @abc.abstractmethod
    def set_port_groups(self, port_id: str, names: tuple[str, ...]) -> bool:
        """The LSP's Port_Groups (and the drop group when any); UserError
        when the port is not one of our LSPs."""

    @abc.abstractmethod
    def start(self) -> None:
        """Connect; OvsdbTimeout after ``timeout``."""

    @property
    @abc.abstractmethod
    def seqno(self) -> int:
        """Changes whenever the replica changes (0 before connecting)."""

    @abc.abstractmethod
    def run(self) -> None:
        """Process what the server sent (nothing before connecting)."""

    @abc.abstractmethod
    def register_wakeup(self, poller) -> None:
        """Make ``poller`` wake when the connection has something to
        process. Does not block."""

    @abc.abstractmethod
    def close(self) -> None:
        """Drop the connection."""
