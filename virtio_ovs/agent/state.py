"""The host's state as the agent needs it, kept from IDL notifications.

python-ovs converts a column on every attribute access, which costs about
30 µs; reading every row on every change would make a reconcile of 1000
ports take half a second. The cache converts only the rows the IDL
notified as changed, and keeps plain values for the rest.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Mapping

from virtio_ovs import model
from virtio_ovs.errors import UserError
from virtio_ovs.flows import GuestPort, HostState, PatchPorts
from virtio_ovs.networks import parse_networks
from virtio_ovs.ovsdb.connection import Connection
from virtio_ovs.ovsdb.views import optional


def int_patch_name(bridge: str) -> str:
    return f"int-{bridge}"


def phy_patch_name(bridge: str) -> str:
    return f"phy-{bridge}"


@dataclasses.dataclass(frozen=True)
class IfaceInfo:
    name: str
    ofport: int | None
    id_items: tuple[tuple[str, str], ...]  # external_ids, hashable

    @property
    def ids(self) -> dict[str, str]:
        return dict(self.id_items)


@dataclasses.dataclass(frozen=True)
class PortInfo:
    name: str
    ifaces: tuple
    vlan: tuple  # (tag, vlan_mode, trunks) as model.vlan_columns gives them


@dataclasses.dataclass(frozen=True)
class BridgeInfo:
    name: str
    ports: tuple


def _iface_info(row) -> IfaceInfo:
    ofport = optional(row.ofport)
    return IfaceInfo(row.name, ofport if ofport is not None and ofport > 0
                     else None, tuple(sorted(row.external_ids.items())))


def _port_info(row) -> PortInfo:
    return PortInfo(row.name, tuple(i.uuid for i in row.interfaces),
                    (list(row.tag), list(row.vlan_mode), list(row.trunks)))


def _bridge_info(row) -> BridgeInfo:
    return BridgeInfo(row.name, tuple(p.uuid for p in row.ports))


CONVERTERS: dict[str, Callable] = {"Interface": _iface_info, "Port": _port_info,
                                   "Bridge": _bridge_info}


class StateCache:
    """Plain copies of the Interface, Port and Bridge rows."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self.rows: dict[str, dict] = {t: {} for t in CONVERTERS}
        self._changed: dict[str, set] = {t: set() for t in CONVERTERS}
        conn.add_listener(self._on_notify)

    def _on_notify(self, event, row) -> None:
        changed = self._changed.get(row._table.name)
        if changed is not None:
            changed.add(row.uuid)

    def refresh(self) -> None:
        for table, convert in CONVERTERS.items():
            live = self.conn.rows(table)
            cache = self.rows[table]
            for uuid in self._changed[table]:
                row = live.get(uuid)
                if row is None:
                    cache.pop(uuid, None)
                else:
                    cache[uuid] = convert(row)
            self._changed[table].clear()
            # A reconnect may clear the replica without notifications.
            if len(cache) != len(live) or any(u not in live for u in cache):
                for uuid in [u for u in cache if u not in live]:
                    del cache[uuid]
                for uuid, row in live.items():
                    if uuid not in cache:
                        cache[uuid] = convert(row)


@functools.lru_cache(maxsize=65536)
def _guest_port(name: str, iface: IfaceInfo) -> GuestPort:
    """A port whose ids do not validate (someone else wrote them) stays
    isolated: no network, so no flows that could let it through."""
    ids = iface.ids
    ips = ids.get(model.EXT_IPS)
    try:
        mac = model.validate_mac(ids[model.EXT_ATTACHED_MAC])
        allowed = model.validate_ips(ips.split(",") if ips else [])
        network = model.validate_network(ids.get(model.EXT_NETWORK))
    except UserError:
        return GuestPort(name, iface.ofport, ids[model.EXT_ATTACHED_MAC], (),
                         None)
    return GuestPort(name, iface.ofport, mac, allowed, network)


def _is_guest(iface: IfaceInfo) -> bool:
    keys = {key for key, _ in iface.id_items}
    return model.EXT_IFACE_ID in keys and model.EXT_ATTACHED_MAC in keys


def guest_ports(cache: StateCache, bridge_name: str
                ) -> list[tuple[object, GuestPort]]:
    """(Port uuid, GuestPort) for ports on the bridge whose Interface has
    iface-id and attached-mac, whoever plugged them."""
    bridge = next((b for b in cache.rows["Bridge"].values()
                   if b.name == bridge_name), None)
    if bridge is None:
        return []
    result = []
    for port_uuid in bridge.ports:
        port = cache.rows["Port"].get(port_uuid)
        if port is None:
            continue
        for iface_uuid in port.ifaces:
            iface = cache.rows["Interface"].get(iface_uuid)
            if iface is None or not _is_guest(iface):
                continue
            result.append((port_uuid, _guest_port(port.name, iface)))
    return sorted(result, key=lambda item: item[1].name)


def read_host_state(cache: StateCache, integration_bridge: str,
                    mappings: Mapping[str, str]) -> tuple[HostState, list]:
    """The state for flow computation, and (Port uuid, GuestPort) pairs."""
    cache.refresh()
    by_name = {i.name: i for i in cache.rows["Interface"].values()}
    patches = {}
    for physnet, bridge in mappings.items():
        int_iface = by_name.get(int_patch_name(bridge))
        phy_iface = by_name.get(phy_patch_name(bridge))
        if int_iface and phy_iface and int_iface.ofport and phy_iface.ofport:
            patches[physnet] = PatchPorts(physnet, bridge, int_iface.ofport,
                                          phy_iface.ofport)
    ports = guest_ports(cache, integration_bridge)
    state = HostState(
        integration_bridge=integration_bridge,
        ports=tuple(p for _, p in ports),
        networks=parse_networks(cache.conn.the_open_vswitch().external_ids),
        patches=patches)
    return state, ports


def tag_changes(cache: StateCache, ports: list, wanted: Callable
                ) -> dict[object, int]:
    """Port uuid -> tag, for ports whose tag/vlan_mode/trunks differ from
    ``wanted(guest_port)`` (local VLAN, or 4095 with trunks=4095)."""
    changes = {}
    for port_uuid, port in ports:
        tag = wanted(port)
        if cache.rows["Port"][port_uuid].vlan != model.vlan_columns(tag):
            changes[port_uuid] = tag
    return changes
