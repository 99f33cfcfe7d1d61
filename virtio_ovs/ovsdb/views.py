"""Read-only indexes over the IDL replica, and OVSDB rows as VifRecords."""
from __future__ import annotations

import functools
import os

import ovs.db.data

from virtio_ovs import model
from virtio_ovs.networks import parse_networks
from virtio_ovs.ovsdb.api import VifRecord
from virtio_ovs.ovsdb.connection import Connection

# The columns virtio-ovs reads or writes; nothing else is replicated.
TABLES = {
    "Open_vSwitch": ("bridges", "next_cfg", "cur_cfg", "external_ids",
                     "other_config", "iface_types", "datapath_types",
                     "dpdk_initialized"),
    "Bridge": ("name", "ports", "datapath_type", "fail_mode", "external_ids",
               "protocols", "other_config"),
    "Port": ("name", "interfaces", "tag", "vlan_mode", "trunks",
             "external_ids", "other_config"),
    # ofport, error, link_state and status are written by ovs-vswitchd.
    "Interface": ("name", "type", "options", "external_ids", "mtu_request",
                  "other_config", "ofport", "error", "link_state", "status"),
}


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
        return self.conn.the_open_vswitch()

    @functools.cached_property
    def networks(self) -> dict:
        """The networks stored in Open_vSwitch:external_ids."""
        return parse_networks(self.open_vswitch.external_ids)

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
                if model.EXT_IFACE_ID in i.external_ids
                and model.EXT_ATTACHED_MAC in i.external_ids]


def iface_kind(iface) -> str:
    if iface.type.startswith("dpdkvhostuser"):
        return model.KIND_VHOST_USER
    if iface.type in ("", "system", "tap"):
        # A TAP shows tun_flags in sysfs (visible in our network namespace).
        if os.path.exists(f"/sys/class/net/{iface.name}/tun_flags") \
                or iface.external_ids.get(model.EXT_TAP_CREATED) == "true":
            return model.KIND_TAP
    return "system"


def iface_status(iface) -> str:
    if iface.error:
        return "error"
    ofport = optional(iface.ofport)
    if ofport is None or ofport < 0:
        return "no-ofport"
    return optional(iface.link_state) or "down"


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def record_from_iface(iface, view: DbView) -> VifRecord:
    ids = iface.external_ids
    bridge = view.bridge_of_iface(iface)
    port = view.port_of_iface.get(iface.uuid)
    ofport = optional(iface.ofport)
    kind = iface_kind(iface)
    socket = None
    if kind == model.KIND_VHOST_USER:
        socket = iface.options.get("vhost-server-path")
    ips = ids.get(model.EXT_IPS)
    return VifRecord(
        port_id=ids[model.EXT_IFACE_ID],
        name=iface.name,
        kind=kind,
        mac=ids.get(model.EXT_ATTACHED_MAC, ""),
        bridge=bridge.name if bridge is not None else None,
        vm=ids.get(model.EXT_VM_ID) or ids.get(model.EXT_VM_UUID),
        network=ids.get(model.EXT_NETWORK),
        ips=ips.split(",") if ips else [],
        ofport=ofport if ofport is not None and ofport >= 0 else None,
        queues=_int_or_none(ids.get(model.EXT_QUEUES)),
        mtu=optional(iface.mtu_request),
        status=iface_status(iface),
        error=optional(iface.error),
        iface_status=ids.get(model.EXT_IFACE_STATUS),
        vhost_mode=({v: k for k, v in model.VHOST_IFACE_TYPES.items()}
                    .get(iface.type)),
        socket=socket,
        tag=optional(port.tag) if port is not None else None,
        plugged_by_us=model.EXT_QUEUES in ids,
        tap_created=ids.get(model.EXT_TAP_CREATED) == "true",
        verdict=ids.get(model.EXT_VERDICT),
        queues_enabled=_int_or_none(ids.get(model.EXT_QUEUES_ENABLED)),
    )
