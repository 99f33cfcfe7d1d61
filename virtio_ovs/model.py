"""The VIF model and its validation. Pure: no I/O.

A VIF is one guest NIC as the host sees it: a TAP device served by
vhost-net (``kind="tap"``) or a vhost-user socket served by OVS-DPDK's PMD
threads (``kind="vhost-user"``). Everything a plug request carries is
checked here before anything touches OVSDB or the kernel.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
from typing import Any, Iterable, Iterator

from virtio_ovs.errors import UserError

KIND_TAP = "tap"
KIND_VHOST_USER = "vhost-user"
VHOST_MODES = ("client", "server")
# QEMU's role is the opposite of OVS's: with OVS as the client
# (dpdkvhostuserclient) QEMU serves the socket and reconnects survive an
# OVS restart, which is why "client" is the default.
VHOST_IFACE_TYPES = {"client": "dpdkvhostuserclient", "server": "dpdkvhostuser"}

MAX_QUEUES = 256  # MAX_TAP_QUEUES in drivers/net/tun.c
MIN_MTU, MAX_MTU = 68, 65535
IFNAMSIZ = 16  # including the terminating NUL: 15 usable bytes

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

_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_NET_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_BAD_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")

JSON_KEYS = ("port_id", "mac", "tap", "vhost_user", "vhost_mode", "bridge",
             "vm", "network", "ips", "queues", "mtu", "owner", "group",
             "pmd_rxq_affinity")


@dataclasses.dataclass(frozen=True)
class Vif:
    port_id: str
    mac: str
    kind: str
    name: str
    bridge: str
    socket: str | None = None
    vhost_mode: str = "client"
    vm: str | None = None
    network: str | None = None
    ips: tuple[str, ...] = ()
    queues: int = 1
    mtu: int | None = None
    owner: int | None = None
    group: int | None = None
    pmd_rxq_affinity: str | None = None  # "queue:core,..." (vhost-user)

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
        if self.kind == KIND_VHOST_USER and self.vhost_mode == "client":
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
        return ids


# ---------------------------------------------------------------- fields

def validate_port_id(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise UserError("port_id", "must be a non-empty string")
    if len(value) > 255 or _BAD_CHARS.search(value):
        raise UserError("port_id", "must be at most 255 characters without "
                        "whitespace or control characters")
    return value


def validate_mac(value: Any) -> str:
    if not isinstance(value, str) or not _MAC_RE.match(value):
        raise UserError("mac", f"{value!r} is not a MAC address "
                        "(six hex octets separated by ':')")
    mac = value.lower()
    if int(mac[:2], 16) & 1:
        raise UserError("mac", f"{mac} is a multicast address; a NIC needs "
                        "a unicast MAC")
    if mac == "00:00:00:00:00:00":
        raise UserError("mac", "00:00:00:00:00:00 is not a usable address")
    return mac


def validate_ifname(value: Any, field: str = "tap") -> str:
    """A Linux interface name, as dev_valid_name() in the kernel accepts."""
    if not isinstance(value, str) or not value:
        raise UserError(field, "must be a non-empty interface name")
    if len(value.encode()) >= IFNAMSIZ:
        raise UserError(field, f"{value!r} is longer than {IFNAMSIZ - 1} "
                        "bytes (Linux IFNAMSIZ)")
    if value in (".", "..") or "/" in value or ":" in value \
            or _BAD_CHARS.search(value):
        raise UserError(field, f"{value!r} may not contain '/', ':', "
                        "whitespace or control characters")
    return value


def validate_bridge_name(value: Any) -> str:
    return validate_ifname(value, "bridge")


def _int_in_range(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) \
            or not low <= value <= high:
        raise UserError(field, f"must be an integer in {low}..{high}, "
                        f"got {value!r}")
    return value


def validate_queues(value: Any) -> int:
    return _int_in_range(value, "queues", 1, MAX_QUEUES)


def validate_mtu(value: Any) -> int | None:
    return None if value is None else _int_in_range(value, "mtu", MIN_MTU,
                                                    MAX_MTU)


def validate_network(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _NET_RE.match(value):
        raise UserError("network", f"{value!r} must be 1-64 characters of "
                        "letters, digits, '_', '.', '-'")
    return value


def validate_vm(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 255 \
            or _BAD_CHARS.search(value):
        raise UserError("vm", "must be 1-255 characters without whitespace "
                        "or control characters")
    return value


def validate_ips(values: Any) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, str) or not isinstance(values, (list, tuple)):
        raise UserError("ips", "must be a list of addresses in CIDR form")
    result = []
    for value in values:
        if not isinstance(value, str):
            raise UserError("ips", f"{value!r} is not an address in CIDR form")
        try:
            iface = ipaddress.ip_interface(value)
        except ValueError:
            raise UserError("ips", f"{value!r} is not an address in CIDR "
                            "form (e.g. 10.0.0.5/24 or fd00::5/64)") from None
        if iface.ip.is_multicast or iface.ip.is_unspecified:
            raise UserError("ips", f"{value!r} is not a unicast host address")
        result.append(str(iface))
    if len(set(result)) != len(result):
        raise UserError("ips", "lists the same address twice")
    return tuple(result)


def validate_socket_path(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise UserError("vhost_user", "must be a socket path")
    if not os.path.isabs(value):
        raise UserError("vhost_user", f"{value!r} is not an absolute path")
    if _BAD_CHARS.search(value) or value.endswith("/"):
        raise UserError("vhost_user", f"{value!r} must not contain "
                        "whitespace or control characters or end in '/'")
    directory = os.path.dirname(value)
    if not os.path.isdir(directory):
        raise UserError("vhost_user", f"directory {directory} does not exist")
    return value


def validate_pmd_rxq_affinity(value: Any, queues: int) -> str | None:
    """"0:3,1:7": rx queue 0 on the PMD of core 3, queue 1 on core 7."""
    if value is None:
        return None
    rule = "must be queue:core pairs separated by ',' (e.g. 0:1,1:2)"
    if not isinstance(value, str) or not value:
        raise UserError("pmd_rxq_affinity", rule)
    seen = set()
    for pair in value.split(","):
        queue, sep, core = pair.partition(":")
        if not sep or not queue.isdigit() or not core.isdigit():
            raise UserError("pmd_rxq_affinity", rule)
        if int(queue) >= queues:
            raise UserError("pmd_rxq_affinity", f"queue {queue} does not "
                            f"exist with queues={queues}")
        if queue in seen:
            raise UserError("pmd_rxq_affinity", f"queue {queue} appears twice")
        seen.add(queue)
    return value


def validate_vhost_mode(value: Any) -> str:
    if value not in VHOST_MODES:
        raise UserError("vhost_mode", f"must be one of {', '.join(VHOST_MODES)}"
                        f", got {value!r}")
    return value


def validate_id_number(value: Any, field: str) -> int | None:
    """Owner/group as a numeric id (names are resolved by the caller)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) \
            or not 0 <= value < 2**32 - 1:
        raise UserError(field, f"must be a numeric id or an existing name, "
                        f"got {value!r}")
    return value


# ------------------------------------------------------------------ VIFs

def make_vif(*, port_id: Any, mac: Any, bridge: Any, tap: Any = None,
             vhost_user: Any = None, vhost_mode: Any = None, vm: Any = None,
             network: Any = None, ips: Any = None, queues: Any = None,
             mtu: Any = None, owner: Any = None, group: Any = None,
             pmd_rxq_affinity: Any = None) -> Vif:
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
        kind, name, socket, mode = KIND_TAP, validate_ifname(tap), None, "client"
    else:
        if owner is not None or group is not None:
            raise UserError("owner", "applies to TAP ports only")
        socket = validate_socket_path(vhost_user)
        mode = validate_vhost_mode(vhost_mode or "client")
        kind = KIND_VHOST_USER
        name = validate_ifname(os.path.basename(socket), "vhost_user")
    queues = validate_queues(1 if queues is None else queues)
    return Vif(port_id=port_id, mac=mac, kind=kind, name=name,
               bridge=validate_bridge_name(bridge), socket=socket,
               vhost_mode=mode, vm=validate_vm(vm),
               network=validate_network(network), ips=validate_ips(ips),
               queues=queues, mtu=validate_mtu(mtu),
               owner=validate_id_number(owner, "owner"),
               group=validate_id_number(group, "group"),
               pmd_rxq_affinity=validate_pmd_rxq_affinity(pmd_rxq_affinity,
                                                          queues))


def check_unique(vifs: list[Vif], linenos: list[int] | None = None) -> None:
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
    check_unique(vifs, linenos)
    return vifs


def _json_objects(lines: Iterable[str]) -> Iterator[tuple[int, dict]]:
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise UserError("from_file", f"invalid JSON ({exc.msg})",
                            lineno) from None
        if not isinstance(obj, dict):
            raise UserError("from_file", "each line must be a JSON object",
                            lineno)
        unknown = sorted(set(obj) - set(JSON_KEYS))
        if unknown:
            raise UserError(unknown[0], "unknown key (known keys: "
                            f"{', '.join(JSON_KEYS)})", lineno)
        yield lineno, dict(obj)
