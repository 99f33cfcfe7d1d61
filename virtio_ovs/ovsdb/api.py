"""What virtio-ovs asks of OVSDB. The docstrings here define the behaviour;
``impl_idl`` implements it on the python-ovs IDL."""
from __future__ import annotations

import abc
import dataclasses
from typing import Iterable

from virtio_ovs.model import Vif
from virtio_ovs.networks import Network


@dataclasses.dataclass
class VifRecord:
    """A guest port as OVSDB describes it, whoever plugged it."""

    port_id: str
    name: str
    kind: str  # "tap" | "vhost-user" | "system" (another kind of device)
    mac: str
    bridge: str | None
    vm: str | None
    network: str | None
    ips: list[str]
    ofport: int | None
    queues: int | None  # expected queue count, when recorded
    mtu: int | None
    status: str  # "up" | "down" | "no-ofport" | "error"
    error: str | None
    iface_status: str | None
    vhost_mode: str | None = None
    socket: str | None = None
    tag: int | None = None
    plugged_by_us: bool = False
    tap_created: bool = False
    verdict: str | None = None  # the agent's last bypass check
    queues_enabled: int | None = None

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class PlugResult:
    plugged: list[str]  # port ids newly added
    updated: list[str]  # port ids whose ids/MTU changed
    unchanged: list[str]


class API(abc.ABC):
    """OVSDB operations on guest ports. Every method either completes or
    raises; nothing is written when it raises before commit."""

    @abc.abstractmethod
    def check_plug(self, vifs: Iterable[Vif]) -> list[str]:
        """Check ``vifs`` against the database without writing.

        Raises UserError when a bridge is unknown, a vhost-user port asks
        for a bridge whose datapath is not ``netdev`` or an interface type
        this OVS lacks, or a port id is already plugged with another MAC or
        device, or a device name belongs to another port. Returns the port
        ids that are not plugged yet.
        """

    @abc.abstractmethod
    def plug(self, vifs: Iterable[Vif], wait: bool = True) -> PlugResult:
        """Plug all ``vifs`` in one transaction (all or nothing).

        A new port gets its Port, Interface and external_ids, its MTU
        request, and either its network's local VLAN (``vif.network``) or
        the dead VLAN (tag 4095, trunk 4095); traffic needs the agent's flows
        in both cases. Plugging a VIF that is already
        plugged the same way changes nothing (no write at all); one whose
        ids or MTU differ is updated in place and keeps its VLAN.

        With ``wait``, returns once ovs-vswitchd has applied the change and
        every new Interface has an ofport; an Interface that gets an
        ``error`` instead makes the whole plug roll back and raises
        VswitchdError with OVS's text.
        """

    @abc.abstractmethod
    def unplug(self, port_id: str, if_exists: bool = False,
               wait: bool = True) -> VifRecord | None:
        """Remove the port carrying ``iface-id=port_id``.

        Returns what was removed, or None when there was no such port and
        ``if_exists`` is set; without ``if_exists`` a missing port raises
        UserError.
        """

    @abc.abstractmethod
    def list_vifs(self) -> list[VifRecord]:
        """All guest ports: Interfaces with ``iface-id`` and ``attached-mac``
        external_ids, sorted by port id."""

    @abc.abstractmethod
    def get_vif(self, port_id: str) -> VifRecord | None:
        """The guest port with ``iface-id=port_id``, or None."""

    @abc.abstractmethod
    def create_network(self, name: str, net_type: str, physnet: str | None,
                       segment: int | None,
                       mappings: dict[str, str]) -> Network:
        """Store a new network with the lowest free local VLAN.

        UserError when the name exists, a vlan network lacks a physnet from
        ``mappings`` or a segment in 1..4094, a flat network lacks a
        physnet, a local network has either, or (physnet, segment) is
        taken. Concurrent creates cannot get the same local VLAN.
        """

    @abc.abstractmethod
    def delete_network(self, name: str) -> None:
        """Remove a network; UserError while any port is bound to it."""

    @abc.abstractmethod
    def list_networks(self) -> list[Network]:
        """All networks, sorted by name."""

    @abc.abstractmethod
    def bind_port(self, port_id: str, network: str | None,
                  ips: tuple[str, ...] | None) -> bool:
        """Bind a guest port (whoever plugged it) to ``network`` (None
        unbinds) and set its allowed IPs (None keeps them). True if
        something changed."""

    @abc.abstractmethod
    def agent_status(self) -> dict | None:
        """The agent's last heartbeat record, or None if it never ran."""
