"""One read model of a guest port, whoever plugged it. Pure: no I/O.

A guest port is an OVS Interface whose external_ids carry both ``iface-id``
and ``attached-mac``: libvirt, os-vif, plain ovs-vsctl and virtio-ovs all
write them. The OVSDB adapter reads the rows; ``guest_port`` turns the
values into a ``GuestPort``; the CLI, the check and the agent all use it.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

from virtio_ovs.core import plug_request
from virtio_ovs.core.errors import UserError
from virtio_ovs.core.secgroups import EXT_SECURITY_GROUPS, parse_port_groups
from virtio_ovs.core.validate import (validate_ips, validate_mac,
                                      validate_network, validate_port_id)

OFPP_LOCAL = 0xfffe  # the bridge's own port, as OVSDB numbers it

# Interface.type values of a plain network device (a TAP, a veth, a NIC).
SYSTEM_TYPES = ("", "system", "tap")


def is_guest(external_ids: Mapping[str, str]) -> bool:
    """Does an Interface with these external_ids belong to a guest?"""
    return (plug_request.EXT_IFACE_ID in external_ids
            and plug_request.EXT_ATTACHED_MAC in external_ids)


def valid_ofport(value: object) -> int | None:
    """An Interface.ofport that names an OpenFlow port (1..65534), else
    None: unset, -1 when ovs-vswitchd could not add the interface."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 < value <= OFPP_LOCAL else None


@dataclasses.dataclass(frozen=True)
class GuestPort:
    """A guest port as OVSDB describes it (``as_dict`` gives the keys of
    ``list --format json``)."""

    port_id: str
    name: str
    kind: str  # KIND_TAP | KIND_VHOST_USER | KIND_SYSTEM
    mac: str
    bridge: str | None = None
    vm: str | None = None
    network: str | None = None
    ips: tuple[str, ...] = ()
    ofport: int | None = None
    queues: int | None = None  # expected queue count, when recorded
    mtu: int | None = None
    status: str = "no-ofport"  # "up" | "down" | "no-ofport" | "error"
    error: str | None = None
    iface_status: str | None = None
    vhost_mode: str | None = None  # QEMU's role, as in libvirt and os-vif
    socket: str | None = None
    tag: int | None = None  # Port.tag, when its VLAN columns are canonical
    plugged_by_us: bool = False
    tap_created: bool = False
    verdict: str | None = None  # the agent's last bypass check
    queues_enabled: int | None = None
    ovn_installed: bool = False  # ovn-controller has installed the port
    migration: str | None = None  # the agent's record: see EXT_MIGRATION
    hw_addr: str | None = None  # the device's MAC (Interface mac_in_use)
    security_groups: tuple[str, ...] = ()  # none: the port is unfiltered
    # False when external_ids written by someone else do not validate: such
    # a port is listed but gets no network, hence no flows.
    valid: bool = True
    problem: str | None = None  # why not valid: "field: rule"

    @property
    def bound_network(self) -> str | None:
        return self.network if self.valid else None

    @property
    def migrating(self) -> str | None:
        """"SRC -> DST" while a live migration holds the port on both."""
        if self.migration and ":" not in self.migration:
            return self.migration
        return None

    def as_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["ips"] = list(self.ips)
        data["security_groups"] = list(self.security_groups)
        return data


@dataclasses.dataclass(frozen=True)
class IfaceValues:
    """The Interface columns a GuestPort is made of, as plain values."""

    name: str
    type: str
    external_ids: Mapping[str, str]
    options: Mapping[str, str]
    ofport: int | None
    mtu_request: int | None
    error: str | None
    link_state: str | None
    ofport_request: int | None = None
    mac_in_use: str | None = None  # the device's own MAC, as OVS reads it


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _kind(iface: IfaceValues, is_tap: bool) -> str:
    if iface.type in plug_request.VHOST_IFACE_TYPES.values():
        return plug_request.KIND_VHOST_USER
    if iface.type in SYSTEM_TYPES and (
            is_tap or iface.external_ids.get(plug_request.EXT_TAP_CREATED) == "true"):
        return plug_request.KIND_TAP
    return plug_request.KIND_SYSTEM


def _ofport(iface: IfaceValues) -> int | None:
    """The port's OpenFlow number, or the one virtio-ovs requested at plug
    while ovs-vswitchd has not reported it yet (it honours the request):
    the agent installs a new port's flows without waiting for it. A
    refused interface (ofport -1) has none."""
    if iface.ofport is not None:
        return valid_ofport(iface.ofport)
    return valid_ofport(iface.ofport_request)


def _status(iface: IfaceValues) -> str:
    if iface.error:
        return "error"
    if valid_ofport(iface.ofport) is None:
        return "no-ofport"
    return iface.link_state or "down"


def _validated(ids: Mapping[str, str]) -> tuple[str, tuple[str, ...],
                                                 str | None, str | None]:
    """MAC, allowed IPs and network, validated, and the problem (None when
    valid). An invalid port keeps its raw MAC and loses the rest: it gets
    no flows, and no flow text is ever built from an unvalidated value."""
    mac = ids[plug_request.EXT_ATTACHED_MAC]
    ips = ids.get(plug_request.EXT_IPS)
    try:
        validate_port_id(ids[plug_request.EXT_IFACE_ID])
        return (validate_mac(mac), validate_ips(ips.split(",") if ips else []),
                validate_network(ids.get(plug_request.EXT_NETWORK)), None)
    except UserError as exc:
        field = {"mac": plug_request.EXT_ATTACHED_MAC, "ips": plug_request.EXT_IPS,
                 "network": plug_request.EXT_NETWORK,
                 "port_id": plug_request.EXT_IFACE_ID}.get(exc.field, exc.field)
        return mac, (), None, f"external_ids:{field}: {exc.rule}"


def guest_port(iface: IfaceValues, is_tap: bool, bridge: str | None = None,
               tag: int | None = None) -> GuestPort:
    """The GuestPort of an Interface for which ``is_guest`` holds.

    ``is_tap``: the device is a TUN/TAP (the adapter asked the kernel).
    """
    ids = iface.external_ids
    mac, ips, network, problem = _validated(ids)
    kind = _kind(iface, is_tap)
    modes = {t: m for m, t in plug_request.VHOST_IFACE_TYPES.items()}
    return GuestPort(
        port_id=ids[plug_request.EXT_IFACE_ID], name=iface.name, kind=kind, mac=mac,
        bridge=bridge, vm=ids.get(plug_request.EXT_VM_ID) or ids.get(plug_request.EXT_VM_UUID),
        network=network, ips=ips, ofport=_ofport(iface),
        queues=_int_or_none(ids.get(plug_request.EXT_QUEUES)), mtu=iface.mtu_request,
        status=_status(iface), error=iface.error,
        iface_status=ids.get(plug_request.EXT_IFACE_STATUS),
        vhost_mode=modes.get(iface.type),
        socket=(iface.options.get("vhost-server-path")
                if kind == plug_request.KIND_VHOST_USER else None),
        tag=tag, plugged_by_us=plug_request.EXT_QUEUES in ids,
        tap_created=ids.get(plug_request.EXT_TAP_CREATED) == "true",
        verdict=ids.get(plug_request.EXT_VERDICT),
        queues_enabled=_int_or_none(ids.get(plug_request.EXT_QUEUES_ENABLED)),
        ovn_installed=ids.get("ovn-installed") == "true",
        migration=ids.get(plug_request.EXT_MIGRATION),
        hw_addr=iface.mac_in_use,
        security_groups=parse_port_groups(ids.get(EXT_SECURITY_GROUPS)),
        valid=problem is None, problem=problem)


def canonical_tag(tag: list, vlan_mode: list, trunks: list) -> int | None:
    """Port.tag when the VLAN columns are what ``plug_request.vlan_columns`` would
    write for it (so the agent need not rewrite them), else None."""
    if len(tag) != 1:
        return None
    return tag[0] if (tag, vlan_mode, trunks) == plug_request.vlan_columns(tag[0]) \
        else None
