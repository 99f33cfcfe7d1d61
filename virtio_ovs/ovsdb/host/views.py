"""Read-only indexes over the live IDL replica, for commands that write.

(Readers that do not write use the plain-value cache in ``cache.py``.)
"""
from __future__ import annotations

import functools

import ovs.db.data
import ovs.db.types

from virtio_ovs.core import plug_request
from virtio_ovs.core.errors import EnvironmentFailure
from virtio_ovs.core.networks import parse_networks
from virtio_ovs.core.port import is_guest
from virtio_ovs.core.secgroups import parse_groups
from virtio_ovs.ovsdb.connection import Connection

# The columns virtio-ovs reads or writes; nothing else is replicated (the
# python-ovs JSON parser is pure Python: every column costs time).
TABLES = {
    "Open_vSwitch": ("bridges", "next_cfg", "cur_cfg", "external_ids",
                     "other_config", "iface_types"),
    "Bridge": ("name", "ports", "datapath_type", "fail_mode", "protocols",
               "controller"),
    "Port": ("name", "interfaces", "tag", "vlan_mode", "trunks"),
    "Controller": ("target",),
    # ofport, error, link_state and mac_in_use are written by ovs-vswitchd.
    "Interface": ("name", "type", "options", "external_ids", "mtu_request",
                  "other_config", "ofport", "ofport_request", "error",
                  "link_state", "mac_in_use"),
}
# What ovs-vswitchd writes for each port it adds, besides its ofport;
# read only to show a port (its status, its hw_addr) and by the agent. A
# plug that does not replicate them parses one column instead of three
# of the update in which ovs-vswitchd reports the ports it added (1000
# ports: 0.03-0.06 s -> 0.02-0.04 s, timed around python-ovs's run in a
# scratch wrapper). Where not replicated, the readers return None.
LINK_STATUS = {"Interface": ("link_state", "mac_in_use")}


def tables(link_status: bool = True) -> dict[str, tuple[str, ...]]:
    """TABLES, without LINK_STATUS unless ``link_status``."""
    if link_status:
        return TABLES
    return {table: tuple(c for c in columns
                         if c not in LINK_STATUS.get(table, ()))
            for table, columns in TABLES.items()}


def the_open_vswitch(conn: Connection):
    """The single Open_vSwitch row."""
    rows = list(conn.rows("Open_vSwitch").values())
    if not rows:
        raise EnvironmentFailure(f"{conn.remote}: the Open_vSwitch table "
                                 "is empty (run 'ovs-vsctl init')")
    return rows[0]


def scalar(value):
    """A column's value; python-ovs may hand out a default as a raw Atom."""
    return value.value if isinstance(value, ovs.db.data.Atom) else value


def optional(value):
    """python-ovs gives optional columns as lists of 0 or 1 element."""
    return value[0] if value else None


# python-ovs converts a whole column on every attribute access (about
# 30 µs for a map): an index over 1000 rows cost 70 ms, on every
# transaction. A replica row's datum (``_data``, no pending change or
# mutation) gives the same values directly; rows the transaction being
# built has changed, mutated or inserted are read through the attributes.
def _datum(row, column: str):
    data = row._data
    if data is not None and not row._changes and \
            not getattr(row, "_mutations", None) and column in data:
        return data[column]
    return None


def ref_uuids(row, column: str) -> tuple:
    """The uuids a reference-set column holds, unsorted (the attribute
    also sorts them, with Python UUID comparisons)."""
    datum = _datum(row, column)
    if datum is not None:
        return tuple(atom.value for atom in datum.values)
    return tuple(r.uuid for r in getattr(row, column, []))


def string_of(row, column: str) -> str:
    """A string column's value."""
    datum = _datum(row, column)
    if datum is not None:
        return next(iter(datum.values)).value
    return getattr(row, column)


def map_of(row, column: str) -> dict:
    """A map column as a dict."""
    datum = _datum(row, column)
    if datum is not None:
        return {k.value: v.value for k, v in datum.values.items()}
    return dict(getattr(row, column, {}))


def optional_of(row, column: str):
    """An optional (0 or 1 element) column's value, or None."""
    datum = _datum(row, column)
    if datum is not None:
        return next((atom.value for atom in datum.values), None)
    return optional(getattr(row, column, []))


def set_of(row, column: str) -> list:
    """A set column's values, sorted."""
    datum = _datum(row, column)
    if datum is not None:
        return sorted(atom.value for atom in datum.values)
    return list(getattr(row, column, []))


def map_value(row, column: str, key: str) -> str | None:
    """``row.column.get(key)`` for a string-to-string map column."""
    datum = _datum(row, column)
    if datum is not None:
        atom = datum.values.get(ovs.db.data.Atom(ovs.db.types.StringType,
                                                 key))
        return None if atom is None else atom.value
    return getattr(row, column, {}).get(key)


class DbView:
    """Lookups by name and iface-id over the replica, each index built on
    first use (python-ovs row access is slow: build only what is needed)."""

    def __init__(self, conn: Connection):
        self.conn = conn

    @functools.cached_property
    def open_vswitch(self):
        return the_open_vswitch(self.conn)

    @functools.cached_property
    def networks(self) -> dict:
        """The networks stored in Open_vSwitch:external_ids."""
        return parse_networks(self.open_vswitch.external_ids)

    @functools.cached_property
    def groups(self) -> dict:
        """The security groups stored in Open_vSwitch:external_ids."""
        return parse_groups(self.open_vswitch.external_ids)

    @functools.cached_property
    def bridges_by_name(self) -> dict:
        return {string_of(b, "name"): b
                for b in self.conn.rows("Bridge").values()}

    @functools.cached_property
    def _iface_indexes(self) -> tuple[dict, dict]:
        by_name, by_id = {}, {}
        for iface in self.conn.rows("Interface").values():
            by_name[string_of(iface, "name")] = iface
            port_id = map_value(iface, "external_ids", plug_request.EXT_IFACE_ID)
            if port_id is not None:
                by_id.setdefault(port_id, iface)
        return by_name, by_id

    @property
    def ifaces_by_name(self) -> dict:
        return self._iface_indexes[0]

    @property
    def ifaces_by_id(self) -> dict:
        return self._iface_indexes[1]

    @functools.cached_property
    def _port_indexes(self) -> tuple[dict, dict]:
        port_of_iface, by_name = {}, {}
        for port in self.conn.rows("Port").values():
            by_name[string_of(port, "name")] = port
            for uuid in ref_uuids(port, "interfaces"):
                port_of_iface[uuid] = port
        return port_of_iface, by_name

    @property
    def port_of_iface(self) -> dict:
        return self._port_indexes[0]

    @property
    def ports_by_name(self) -> dict:
        return self._port_indexes[1]

    @functools.cached_property
    def bridge_of_port(self) -> dict:
        return {uuid: bridge for bridge in self.bridges_by_name.values()
                for uuid in ref_uuids(bridge, "ports")}

    def bridge_of_iface(self, iface):
        port = self.port_of_iface.get(iface.uuid)
        return self.bridge_of_port.get(port.uuid) if port is not None else None

    def guest_ifaces(self) -> list:
        """Interfaces that carry both iface-id and attached-mac."""
        return [i for i in self.ifaces_by_name.values()
                if is_guest(i.external_ids)]
