"""Read-only indexes over the live IDL replica, for commands that write.

(Readers that do not write use the plain-value cache in ``cache.py``.)
"""
from __future__ import annotations

import functools

import ovs.db.data

from virtio_ovs.core import model
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
    # ofport, error and link_state are written by ovs-vswitchd.
    "Interface": ("name", "type", "options", "external_ids", "mtu_request",
                  "other_config", "ofport", "ofport_request", "error",
                  "link_state"),
}


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
        return {b.name: b for b in self.conn.rows("Bridge").values()}

    @functools.cached_property
    def _iface_indexes(self) -> tuple[dict, dict]:
        by_name, by_id = {}, {}
        for iface in self.conn.rows("Interface").values():
            by_name[iface.name] = iface
            # Rows inserted by the transaction being built lack unset columns.
            port_id = getattr(iface, "external_ids", {}).get(model.EXT_IFACE_ID)
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
            by_name[port.name] = port
            for iface in getattr(port, "interfaces", []):
                port_of_iface[iface.uuid] = port
        return port_of_iface, by_name

    @property
    def port_of_iface(self) -> dict:
        return self._port_indexes[0]

    @property
    def ports_by_name(self) -> dict:
        return self._port_indexes[1]

    @functools.cached_property
    def bridge_of_port(self) -> dict:
        return {port.uuid: bridge for bridge in self.bridges_by_name.values()
                for port in getattr(bridge, "ports", [])}

    def bridge_of_iface(self, iface):
        port = self.port_of_iface.get(iface.uuid)
        return self.bridge_of_port.get(port.uuid) if port is not None else None

    def guest_ifaces(self) -> list:
        """Interfaces that carry both iface-id and attached-mac."""
        return [i for i in self.ifaces_by_name.values()
                if is_guest(i.external_ids)]
