"""Plain-value copies of the host database's rows, kept from IDL
notifications, and the guest ports made of them.

python-ovs converts a column on every attribute access, which costs about
30 µs; reading every row on every change would make a reconcile of 1000
ports take half a second. The cache converts only the rows the IDL
notified as changed, and keeps plain values for the rest.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from virtio_ovs.core.port import (GuestPort, IfaceValues, canonical_tag,
                                  guest_port, is_guest, valid_ofport)
from virtio_ovs.ovsdb.connection import Connection
from virtio_ovs.ovsdb.host.views import (map_of, optional_of, ref_uuids,
                                         set_of, string_of)


@dataclasses.dataclass(frozen=True)
class PortValues:
    name: str
    ifaces: tuple  # Interface uuids
    tag: int | None  # canonical_tag of the VLAN columns


@dataclasses.dataclass(frozen=True)
class BridgeValues:
    name: str
    ports: tuple  # Port uuids


def guest_port_of_row(iface, view, is_tap: Callable[[str], bool]
                      ) -> GuestPort | None:
    """One live Interface row as a GuestPort (None if it is not a guest's),
    without converting the other rows: for readers of a single port."""
    values = _iface_values(iface)
    if not is_guest(values.external_ids):
        return None
    port = view.port_of_iface.get(iface.uuid)
    bridge = view.bridge_of_iface(iface)
    return guest_port(values, is_tap(values.name),
                      bridge.name if bridge is not None else None,
                      _port_values(port).tag if port is not None else None)


def _iface_values(row) -> IfaceValues:
    return IfaceValues(name=string_of(row, "name"),
                       type=string_of(row, "type"),
                       external_ids=map_of(row, "external_ids"),
                       options=map_of(row, "options"),
                       ofport=optional_of(row, "ofport"),
                       mtu_request=optional_of(row, "mtu_request"),
                       ofport_request=optional_of(row, "ofport_request"),
                       error=optional_of(row, "error"),
                       link_state=optional_of(row, "link_state"),
                       mac_in_use=optional_of(row, "mac_in_use"))


def _port_values(row) -> PortValues:
    return PortValues(string_of(row, "name"), ref_uuids(row, "interfaces"),
                      canonical_tag(set_of(row, "tag"),
                                    set_of(row, "vlan_mode"),
                                    set_of(row, "trunks")))


def _wiring(entry) -> tuple | None:
    """What of a guest entry its flows, tag and labels depend on (not its
    verdict, status or link state)."""
    if entry is None:
        return None
    port_uuid, p = entry
    return (port_uuid, p.port_id, p.name, p.kind, p.vm, p.bridge, p.mac,
            p.ips, p.network, p.ofport, p.tag, p.security_groups, p.problem,
            p.hw_addr)


def _bridge_values(row) -> BridgeValues:
    return BridgeValues(string_of(row, "name"), ref_uuids(row, "ports"))


CONVERTERS: dict[str, Callable] = {"Interface": _iface_values,
                                   "Port": _port_values,
                                   "Bridge": _bridge_values}


class StateCache:
    """Plain copies of the Interface, Port and Bridge rows.

    ``is_tap(name)`` asks the kernel whether a device is a TUN/TAP; it is
    called once per changed guest Interface.
    """

    def __init__(self, conn: Connection, is_tap: Callable[[str], bool]):
        self.conn = conn
        self.is_tap = is_tap
        self.rows: dict[str, dict] = {t: {} for t in CONVERTERS}
        self._changed: dict[str, set] = {t: set() for t in CONVERTERS}
        self._guests: dict = {}  # Interface uuid -> GuestPort (no bridge/tag)
        self._joined: dict = {}  # Interface uuid -> (key, GuestPort with them)
        # Kept up to date from the changed rows only, so that a plug costs
        # O(its rows), not O(all ports):
        self._port_bridge: dict = {}  # Port uuid -> bridge name
        self._iface_port: dict = {}  # Interface uuid -> Port uuid
        self._entries: dict = {}  # Interface uuid -> (Port uuid, GuestPort)
        self._sorted: list | None = None
        self._wiring = 0  # see wiring_version
        self._context: dict | None = None
        conn.add_listener(self._on_notify)

    def _on_notify(self, event, row) -> None:
        changed = self._changed.get(row._table.name)
        if changed is not None:
            changed.add(row.uuid)

    def refresh(self) -> None:
        """Convert the rows notified since the last refresh."""
        dirty: set = set()  # Interface uuids whose guest entry may change
        rebuild = False
        for table, convert in CONVERTERS.items():
            live = self.conn.rows(table)
            cache = self.rows[table]
            changed, self._changed[table] = self._changed[table], set()
            if changed and table != "Interface":
                self._wiring += 1  # Port, Bridge: ports' bridges and tags
            for uuid in changed:
                row = live.get(uuid)
                old = cache.pop(uuid, None)
                new = cache[uuid] = convert(row) if row is not None else None
                if new is None:
                    del cache[uuid]
                dirty |= self._relink(table, uuid, old, new)
            # A reconnect clears the replica without notifications, then
            # notifies every row of the new dump as created: check the
            # whole table then (or when the counts differ), not on every
            # refresh, which costs O(rows).
            if len(cache) != len(live) or (
                    len(changed) * 2 > len(live) and
                    any(u not in live for u in cache)):
                for uuid in [u for u in cache if u not in live]:
                    del cache[uuid]
                for uuid, row in live.items():
                    if uuid not in cache:
                        cache[uuid] = convert(row)
                rebuild = True
        if rebuild:
            self._rebuild()
        else:
            self._update(dirty)

    def _relink(self, table: str, uuid, old, new) -> set:
        """Follow one changed row in the reverse maps; the Interfaces whose
        entry it may change."""
        if table == "Interface":
            self._forget(uuid)
            return {uuid}
        if table == "Port":
            affected = set(old.ifaces if old else ()) | set(
                new.ifaces if new else ())
            for iface in old.ifaces if old else ():
                if self._iface_port.get(iface) == uuid:
                    del self._iface_port[iface]
            for iface in new.ifaces if new else ():
                self._iface_port[iface] = uuid
            return affected
        before = set(old.ports) if old else set()
        after = set(new.ports) if new else set()
        if old and new and old.name != new.name:
            moved = before | after
        else:
            moved = before ^ after
        for port in before - after:
            if self._port_bridge.get(port) == old.name:
                del self._port_bridge[port]
        for port in after:
            self._port_bridge[port] = new.name
        ports = self.rows["Port"]
        return {i for port in moved if port in ports
                for i in ports[port].ifaces}

    def _rebuild(self) -> None:
        self._wiring += 1
        self._guests.clear()
        self._joined.clear()
        self._port_bridge = {p: b.name for b in self.rows["Bridge"].values()
                             for p in b.ports}
        self._iface_port = {i: uuid for uuid, port in self.rows["Port"].items()
                            for i in port.ifaces}
        self._entries.clear()
        self._update(set(self.rows["Interface"]))

    def _update(self, dirty: set) -> None:
        for uuid in dirty:
            entry = self._entry(uuid)
            before = self._entries.get(uuid)
            if entry is None:
                self._entries.pop(uuid, None)
            else:
                self._entries[uuid] = entry
            # Not a guest before or after: a patch port, say, whose ofport
            # the provider flows use.
            if entry is None and before is None or \
                    _wiring(entry) != _wiring(before):
                self._wiring += 1
        if dirty:
            self._sorted = None

    def wiring_version(self, context: dict) -> int:
        """See HostDb.wiring_version; ``context``: the networks' and
        groups' records (refresh first)."""
        if context != self._context:
            self._context = context
            self._wiring += 1
        return self._wiring

    def _entry(self, uuid):
        guest = self._guest(uuid)
        if guest is None:
            return None
        port_uuid = self._iface_port.get(uuid)
        bridge = self._port_bridge.get(port_uuid)
        port = self.rows["Port"].get(port_uuid)
        if bridge is None or port is None:
            return None, self._join(uuid, guest, None, None)
        return port_uuid, self._join(uuid, guest, bridge, port.tag)

    def _forget(self, uuid) -> None:
        self._guests.pop(uuid, None)
        self._joined.pop(uuid, None)

    def _guest(self, uuid) -> GuestPort | None:
        port = self._guests.get(uuid)
        if port is None:
            iface = self.rows["Interface"].get(uuid)
            if iface is None or not is_guest(iface.external_ids):
                return None
            port = guest_port(iface, self.is_tap(iface.name))
            self._guests[uuid] = port
        return port

    def guest_ports(self) -> list[tuple[object, GuestPort]]:
        """(Port uuid, GuestPort) of every guest port, by port id. Ports
        in no bridge are listed with bridge None (and Port uuid None)."""
        if self._sorted is None:
            self._sorted = sorted(self._entries.values(),
                                  key=lambda item: item[1].port_id)
        return list(self._sorted)

    def _join(self, uuid, guest: GuestPort, bridge: str | None,
              tag: int | None) -> GuestPort:
        key = (id(guest), bridge, tag)
        entry = self._joined.get(uuid)
        if entry is None or entry[0] != key:
            entry = (key, dataclasses.replace(guest, bridge=bridge, tag=tag))
            self._joined[uuid] = entry
        return entry[1]

    def ofports(self, names: set[str]) -> dict[str, int]:
        """Valid ofports of the Interfaces named in ``names``."""
        result: dict[str, int] = {}
        if not names:
            return result
        for iface in self.rows["Interface"].values():
            if iface.name in names and valid_ofport(iface.ofport):
                result[iface.name] = iface.ofport
        return result

