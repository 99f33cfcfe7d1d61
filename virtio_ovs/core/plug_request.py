"""A plug request (one VIF), validated, and the OVSDB names it is written
with (external_ids keys, interface kinds, VLAN columns). Pure: no I/O.

A VIF is one guest NIC as the host sees it: a TAP device served by
vhost-net (``kind="tap"``) or a vhost-user socket served by OVS-DPDK's PMD
threads (``kind="vhost-user"``). Everything a plug request carries is
checked here before anything touches OVSDB or the kernel.
"""
from __future__ import annotations

import dataclasses
import json
import posixpath
from typing import Any, Iterable, Iterator

from virtio_ovs.core.errors import UserError
from virtio_ovs.core.secgroups import EXT_SECURITY_GROUPS, validate_sg_name
from virtio_ovs.core.validate import (
    validate_bridge_name, validate_id_number, validate_ifname, validate_ips,
    validate_mac, validate_mtu, validate_name, validate_network,
    validate_pmd_rxq_affinity,
    validate_port_id, validate_queues, validate_socket_path,
    validate_vhost_mode, validate_vm)

KIND_TAP = "tap"
KIND_VHOST_USER = "vhost-user"
KIND_SYSTEM = "system"  # another kind of device (veth, physical NIC, ...)
# The vhost-user mode names QEMU's role, as libvirt (<source mode=...>) and
# os-vif (vif.mode) do. QEMU as the server (OVS type dpdkvhostuserclient)
# is the default: QEMU keeps the socket, so OVS reconnects after a restart.
VHOST_IFACE_TYPES = {"server": "dpdkvhostuserclient", "client": "dpdkvhostuser"}
DEFAULT_VHOST_MODE = "server"

DEAD_VLAN = 4095


def vlan_columns(tag: int) -> tuple[list, list, list]:
    """Port (tag, vlan_mode, trunks): an access port of ``tag``, or for the
    dead VLAN a trunk of 4095 only, so that untagged frames go nowhere even
    under NORMAL switching."""
    if tag == DEAD_VLAN:
        return [tag], ["trunk"], [tag]
    return [tag], [], []


# external_ids written on the Interface. The first four are the keys
# libvirt, os-vif and neutron use; the rest are ours, namespaced.
EXT_IFACE_ID = "iface-id"
EXT_ATTACHED_MAC = "attached-mac"
EXT_VM_ID = "vm-id"  # libvirt's key
EXT_VM_UUID = "vm-uuid"  # os-vif's key, read as a fallback
EXT_IFACE_STATUS = "iface-status"
EXT_NETWORK = "virtio-ovs:network"
EXT_IPS = "virtio-ovs:ips"
EXT_QUEUES = "virtio-ovs:queues"
EXT_TAP_CREATED = "virtio-ovs:tap-created"
EXT_TAP_OWNER = "virtio-ovs:tap-owner"
EXT_TAP_GROUP = "virtio-ovs:tap-group"
EXT_VERDICT = "virtio-ovs:verdict"  # written by the agent's periodic check
EXT_QUEUES_ENABLED = "virtio-ovs:queues-enabled"
# The agent's record of the port's live migration: "SRC -> DST" while both
# hold it (on the standalone backend's destination: while the port is
# gated), then "done: SRC -> DST" or "aborted: ...".
EXT_MIGRATION = "virtio-ovs:migration"

JSON_KEYS = ("port_id", "mac", "tap", "vhost_user", "vhost_mode", "bridge",
             "vm", "network", "ips", "queues", "mtu", "owner", "group",
             "pmd_rxq_affinity", "security_groups", "migrating_from")


@dataclasses.dataclass(frozen=True)
class Vif:
    port_id: str
    mac: str
    kind: str
    name: str
    bridge: str
    socket: str | None = None
    vhost_mode: str = DEFAULT_VHOST_MODE
    vm: str | None = None
    network: str | None = None
    ips: tuple[str, ...] = ()
    queues: int = 1
    mtu: int | None = None
    owner: int | None = None
    group: int | None = None
    pmd_rxq_affinity: str | None = None  # "queue:core,..." (vhost-user)
    security_groups: tuple[str, ...] = ()
    # The destination of a live migration from this host (standalone):
    # gated until the guest speaks here (core.migration.Gates).
    migrating_from: str | None = None

    @property
    def iface_other_config(self) -> dict[str, str]:
        if self.pmd_rxq_affinity:
            return {"pmd-rxq-affinity": self.pmd_rxq_affinity}
        return {}

    @property
    def iface_type(self) -> str:
        """The OVSDB Interface.type: TAPs are plain system ports ("")."""
        if self.kind == KIND_VHOST_USER:
            return VHOST_IFACE_TYPES[self.vhost_mode]
        return ""

    @property
    def iface_options(self) -> dict[str, str]:
        if self.kind == KIND_VHOST_USER and self.vhost_mode == "server":
            return {"vhost-server-path": self.socket or ""}
        return {}

    def external_ids(self) -> dict[str, str]:
        ids = {
            EXT_IFACE_ID: self.port_id,
            EXT_ATTACHED_MAC: self.mac,
            EXT_IFACE_STATUS: "active",
            EXT_QUEUES: str(self.queues),
        }
        if self.vm:
            ids[EXT_VM_ID] = self.vm
        if self.network:
            ids[EXT_NETWORK] = self.network
        if self.ips:
            ids[EXT_IPS] = ",".join(self.ips)
        if self.owner is not None:
            ids[EXT_TAP_OWNER] = str(self.owner)
        if self.group is not None:
            ids[EXT_TAP_GROUP] = str(self.group)
        if self.security_groups:
            ids[EXT_SECURITY_GROUPS] = ",".join(self.security_groups)
        return ids


# ------------------------------------------------------------------ VIFs

def make_vif(*, port_id: Any, mac: Any, bridge: Any, tap: Any = None,
             vhost_user: Any = None, vhost_mode: Any = None, vm: Any = None,
             network: Any = None, ips: Any = None, queues: Any = None,
             mtu: Any = None, owner: Any = None, group: Any = None,
             pmd_rxq_affinity: Any = None,
             security_groups: Any = None, migrating_from: Any = None) -> Vif:
    """Validate every field and build a Vif. Raises UserError."""
    port_id = validate_port_id(port_id)
    mac = validate_mac(mac)
    if (tap is None) == (vhost_user is None):
        raise UserError("tap", "give exactly one of tap or vhost_user")
    if tap is not None:
        if vhost_mode is not None or pmd_rxq_affinity is not None:
            raise UserError("vhost_mode" if vhost_mode is not None
                            else "pmd_rxq_affinity",
                            "applies to vhost_user ports only")
        kind, name, socket = KIND_TAP, validate_ifname(tap), None
        mode = DEFAULT_VHOST_MODE
    else:
        if owner is not None or group is not None:
            raise UserError("owner", "applies to TAP ports only")
        socket = validate_socket_path(vhost_user)
        mode = validate_vhost_mode(vhost_mode or DEFAULT_VHOST_MODE)
        kind = KIND_VHOST_USER
        name = validate_ifname(posixpath.basename(socket), "vhost_user")
    queues = validate_queues(1 if queues is None else queues)
    return Vif(port_id=port_id, mac=mac, kind=kind, name=name,
               bridge=validate_bridge_name(bridge), socket=socket,
               vhost_mode=mode, vm=validate_vm(vm),
               network=validate_network(network), ips=validate_ips(ips),
               queues=queues, mtu=validate_mtu(mtu),
               owner=validate_id_number(owner, "owner"),
               group=validate_id_number(group, "group"),
               pmd_rxq_affinity=validate_pmd_rxq_affinity(pmd_rxq_affinity,
                                                          queues),
               security_groups=validate_group_names(security_groups),
               migrating_from=None if migrating_from is None else
               validate_name(migrating_from, "migrating_from"))


def validate_group_names(values: Any) -> tuple[str, ...]:
    """Security group names of a port (sorted, each once)."""
    if values is None:
        return ()
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise UserError("security_groups", "must be a list of group names")
    return tuple(sorted({validate_sg_name(v, "security_groups")
                         for v in values}))


def validate_unique(vifs: list[Vif], linenos: list[int] | None = None) -> None:
    """A bulk request may name each port id and each device once."""
    port_ids: set[str] = set()
    names: set[str] = set()
    for i, vif in enumerate(vifs):
        line = linenos[i] if linenos else None
        if vif.port_id in port_ids:
            raise UserError("port_id", f"{vif.port_id!r} appears twice", line)
        if vif.name in names:
            field = "tap" if vif.kind == KIND_TAP else "vhost_user"
            raise UserError(field, f"device {vif.name!r} appears twice", line)
        port_ids.add(vif.port_id)
        names.add(vif.name)


def parse_vif_lines(lines: Iterable[str], default_bridge: str,
                    resolve_ids=None) -> list[Vif]:
    """Parse JSON Lines (one VIF object per line; blank lines ignored).

    ``resolve_ids(owner, group)`` turns user/group names into numbers.
    Errors carry the 1-based line number.
    """
    vifs, linenos = [], []
    for lineno, fields in _json_objects(lines):
        try:
            if resolve_ids is not None:
                fields["owner"], fields["group"] = resolve_ids(
                    fields.get("owner"), fields.get("group"))
            if fields.get("bridge") is None:
                fields["bridge"] = default_bridge
            vifs.append(make_vif(**fields))
        except UserError as exc:
            raise exc.at_line(lineno) from None
        linenos.append(lineno)
    if not vifs:
        raise UserError("from_file", "no VIF found in the file")
    validate_unique(vifs, linenos)
    return vifs


def _json_objects(lines: Iterable[str]) -> Iterator[tuple[int, dict]]:
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError("from_file", f"invalid JSON ({exc.msg})",
                            lineno) from None
        except (ValueError, RecursionError) as exc:  # huge ints, deep nesting
            raise UserError("from_file", "invalid JSON "
                            f"({str(exc).splitlines()[0][:80]})",
                            lineno) from None
        if not isinstance(obj, dict):
            raise UserError("from_file", "each line must be a JSON object",
                            lineno)
        unknown = sorted(set(obj) - set(JSON_KEYS))
        if unknown:
            raise UserError(ascii(unknown[0])[1:-1][:64], "unknown key (known "
                            f"keys: {', '.join(JSON_KEYS)})", lineno)
        for required in ("port_id", "mac"):
            if required not in obj:
                raise UserError(required, "is required", lineno)
        yield lineno, dict(obj)
