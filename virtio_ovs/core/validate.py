"""Validation of single fields. Pure: no I/O.

Every validator returns the normalised value or raises UserError naming the
field and the rule. Patterns are matched against the whole string
(``fullmatch``): ``$`` would accept a trailing newline.
"""
from __future__ import annotations

import ipaddress
import math
import posixpath
import re
from typing import Any

from virtio_ovs.core.errors import UserError

MAX_QUEUES = 256  # MAX_TAP_QUEUES in drivers/net/tun.c
MIN_MTU, MAX_MTU = 68, 65535
IFNAMSIZ = 16  # including the terminating NUL: 15 usable bytes
VHOST_MODES = ("server", "client")

_MAC_RE = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")
_NET_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_BAD_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")
MAX_SECONDS = 86400.0
_DIGITS_RE = re.compile(r"[0-9]+")


def is_digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` accepts other scripts' digits
    ("٣") and superscripts ("²"), which ``int`` reads or refuses."""
    return _DIGITS_RE.fullmatch(text) is not None


def is_utf8(value: str) -> bool:
    """False for the lone surrogates that undecodable argv bytes
    (surrogateescape) and JSON "\\ud800" escapes produce: OVSDB refuses
    them, and they must be refused before anything is written."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_text(value: Any, field: str) -> str:
    """A non-empty UTF-8 string of at most 255 characters, without
    whitespace or control characters."""
    if not isinstance(value, str) or not value:
        raise UserError(field, "must be a non-empty string")
    if len(value) > 255 or _BAD_CHARS.search(value) or not is_utf8(value):
        raise UserError(field, "must be at most 255 characters of UTF-8 "
                        "without whitespace or control characters")
    return value


def validate_port_id(value: Any) -> str:
    return validate_text(value, "port_id")


def validate_mac(value: Any) -> str:
    if not isinstance(value, str) or not _MAC_RE.fullmatch(value):
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
    if not is_utf8(value):
        raise UserError(field, f"{value!r} is not UTF-8 text")
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


def int_in_range(value: Any, field: str, low: int, high: int) -> int:
    """An int (not a bool, not a float) in low..high."""
    if isinstance(value, bool) or not isinstance(value, int) \
            or not low <= value <= high:
        raise UserError(field, f"must be an integer in {low}..{high}, "
                        f"got {value!r}")
    return value


def validate_queues(value: Any) -> int:
    return int_in_range(value, "queues", 1, MAX_QUEUES)


def validate_mtu(value: Any) -> int | None:
    return None if value is None else int_in_range(value, "mtu", MIN_MTU,
                                                    MAX_MTU)


def is_name(value: Any) -> bool:
    """A name of networks, physnets and hosts: 1-64 letters, digits, '_',
    '.', '-'."""
    return isinstance(value, str) and _NET_RE.fullmatch(value) is not None


def validate_name(value: Any, field: str) -> str:
    if not is_name(value):
        raise UserError(field, f"{value!r} must be 1-64 characters of "
                        "letters, digits, '_', '.', '-'")
    return value


def validate_network(value: Any) -> str | None:
    return None if value is None else validate_name(value, "network")


def validate_vm(value: Any) -> str | None:
    """A VM id (libvirt's domain UUID or name). It names files (the QMP
    socket template), so it may not contain '/' or '..'."""
    if value is None:
        return None
    validate_text(value, "vm")
    if "/" in value or ".." in value:
        raise UserError("vm", f"{value!r} may not contain '/' or '..'")
    return value


def validate_seconds(value: Any, field: str, low: float = 0.0,
                     high: float = MAX_SECONDS, allow_low: bool = False
                     ) -> float:
    """A finite number of seconds in (low, high] (or [low, high] with
    ``allow_low``): NaN and infinity are refused, as is anything a timer
    cannot hold."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value > high \
            or value < low or (value == low and not allow_low):
        bound = "[" if allow_low else "("
        raise UserError(field, f"must be a number of seconds in {bound}"
                        f"{low:g}, {high:g}], got {value!r}")
    return float(value)


_HOST_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})")
_REMOTE_RE = re.compile(r"(?P<kind>tcp|ssl|ptcp|pssl):(?P<rest>.+)")


def split_remotes(remote: str) -> list[str]:
    """"unix:/a,tcp:1.2.3.4:6640" -> both members, as ovsdb(7), ovs-vsctl
    and python-ovs's IDL read a list (a part without ":" belongs to the
    previous member's path)."""
    remotes: list[str] = []
    for part in remote.split(","):
        if remotes and ":" not in part:
            remotes[-1] += "," + part
        else:
            remotes.append(part)
    return remotes


def validate_remote(value: Any, field: str = "db") -> str:
    """An OVSDB remote as ovs-vsctl takes it: unix:PATH, tcp:IP:PORT or
    ssl:IP:PORT (IPv6 in brackets; a port must be 1..65535), or a
    comma-separated list of them, the members of a clustered database."""
    if not isinstance(value, str) or not is_utf8(value) \
            or _BAD_CHARS.search(value):
        raise UserError(field, "must be unix:PATH, tcp:IP:PORT or ssl:IP:PORT")
    members = split_remotes(value)
    if len(members) > 1:
        if len(set(members)) != len(members):
            raise UserError(field, f"{value!r} names a member twice")
        for member in members:
            validate_remote(member, field)
        return value
    if value.startswith("unix:") and len(value) > len("unix:"):
        return value
    match = _REMOTE_RE.fullmatch(value)
    if match is None or match["kind"] not in ("tcp", "ssl"):
        raise UserError(field, f"{value!r} is not unix:PATH, tcp:IP:PORT or "
                        "ssl:IP:PORT")
    host, sep, port = match["rest"].rpartition(":")
    if not _HOST_RE.fullmatch(host):
        try:
            ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            raise UserError(field, f"{host!r} is not an IP address or host "
                            "name") from None
    if not sep or not is_digits(port) or not 1 <= int(port) <= 65535:
        raise UserError(field, f"{value!r}: the port must be 1..65535")
    return value


def validate_bind(value: Any, field: str = "metrics_bind") -> tuple[str, int]:
    """HOST:PORT to listen on ([::1]:PORT for IPv6); port 1..65535."""
    if not isinstance(value, str) or not is_utf8(value) \
            or _BAD_CHARS.search(value):
        raise UserError(field, "must be HOST:PORT")
    host, sep, port = value.rpartition(":")
    if not sep or not is_digits(port) \
            or len(port) > 5 or not 1 <= int(port) <= 65535:
        raise UserError(field, f"{value!r}: must be HOST:PORT with a port "
                        "1..65535")
    host = host.removeprefix("[").removesuffix("]") if host.startswith("[") \
        else host
    if not _HOST_RE.fullmatch(host):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise UserError(field, f"{host!r} is not an IP address or host "
                            "name") from None
    return host, int(port)


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
    """An absolute, normalised socket path (whether its directory exists
    is the plug adapter's business)."""
    if not isinstance(value, str) or not value:
        raise UserError("vhost_user", "must be a socket path")
    if not posixpath.isabs(value):
        raise UserError("vhost_user", f"{value!r} is not an absolute path")
    if _BAD_CHARS.search(value) or value.endswith("/") or not is_utf8(value):
        raise UserError("vhost_user", f"{value!r} must be UTF-8, not contain "
                        "whitespace or control characters or end in '/'")
    if posixpath.normpath(value) != value:
        raise UserError("vhost_user", f"{value!r} is not a normalised path "
                        f"(use {posixpath.normpath(value)})")
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
        if not sep or not is_digits(queue) or not is_digits(core):
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




def validate_qmp_template(value: Any) -> str:
    """An absolute path with one ``{vm}`` in its last component."""
    if not isinstance(value, str) or not posixpath.isabs(value) \
            or not is_utf8(value) or value.count("{vm}") != 1 \
            or "{vm}" in posixpath.dirname(value) \
            or "{" in value.replace("{vm}", "") \
            or "}" in value.replace("{vm}", ""):
        raise UserError("qmp_socket_template", "must be an absolute path "
                        "with {vm} once in its file name, e.g. "
                        "/var/run/virtio-ovs/{vm}.qmp")
    return value


def qmp_socket_path(template: str, vm: str) -> str | None:
    """The QMP socket of ``vm``, or None if the result would leave the
    template's directory (a vm id read from OVSDB is not trusted)."""
    path = posixpath.normpath(template.replace("{vm}", vm))
    if posixpath.dirname(path) != posixpath.normpath(
            posixpath.dirname(template)):
        return None
    return path
