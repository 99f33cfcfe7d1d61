"""Security groups with neutron's semantics. Pure: no I/O.

A group is a set of allow rules; a port in one or more groups gets only
what some rule allows, statefully (return traffic of an allowed connection
always passes). A port in no group is unfiltered. A new group allows all
egress, and ingress from members of the same group only (neutron's
``default`` group).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import ipaddress
import json
import re
from typing import Any, Iterable, Mapping

from virtio_ovs.core import records
from virtio_ovs.core.errors import UserError
from virtio_ovs.core.records import Invalid, InvalidRecord
from virtio_ovs.core.validate import int_in_range, is_digits

SG_KEY_PREFIX = "virtio-ovs:sg:"
EXT_SECURITY_GROUPS = "virtio-ovs:security-groups"  # on the Interface
DIRECTIONS = ("ingress", "egress")
ETHERTYPES = ("IPv4", "IPv6")
PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}
PORT_PROTOCOLS = ("tcp", "udp")
ICMP_PROTOCOLS = ("icmp", "icmpv6")
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


@dataclasses.dataclass(frozen=True)
class Rule:
    direction: str
    ethertype: str = "IPv4"
    protocol: str | None = None  # a name of PROTOCOLS or a number 0..255
    port_min: int | None = None
    port_max: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    remote_ip: str | None = None  # CIDR
    remote_group: str | None = None

    @property
    def id(self) -> str:
        """Stable: the same rule always has the same id."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    def to_dict(self) -> dict:
        return {"id": self.id, **dataclasses.asdict(self)}


RULE_FIELDS = {f.name for f in dataclasses.fields(Rule)}


def sort_rules(rules: Iterable[Rule]) -> tuple[Rule, ...]:
    """Rules in a stable order (direction, ethertype, then the rest)."""
    return tuple(sorted(set(rules), key=lambda r: json.dumps(
        dataclasses.asdict(r), sort_keys=True, default=str)))


@dataclasses.dataclass(frozen=True)
class SecurityGroup:
    name: str
    rules: tuple[Rule, ...]

    def to_json(self) -> str:
        return json.dumps({"rules": [dataclasses.asdict(r)
                                     for r in self.rules]}, sort_keys=True)

    def as_dict(self) -> dict:
        return {"name": self.name, "rules": [r.to_dict() for r in self.rules]}


def validate_sg_name(value: Any, field: str = "name") -> str:
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise UserError(field, f"{value!r} must be a letter then up to 63 "
                        "letters, digits or '_'")
    return value


def default_rules(name: str) -> tuple[Rule, ...]:
    return sort_rules(
        [Rule("egress", e) for e in ETHERTYPES] +
        [Rule("ingress", e, remote_group=name) for e in ETHERTYPES])


def sg_key(name: str) -> str:
    return SG_KEY_PREFIX + name


def parse_groups(external_ids: Mapping[str, str]) -> dict[str, SecurityGroup]:
    """The valid groups stored in Open_vSwitch:external_ids."""
    return read_groups(external_ids)[0]


def read_groups(external_ids: Mapping[str, str]
                ) -> tuple[dict[str, SecurityGroup], list[Invalid]]:
    """The groups stored in Open_vSwitch:external_ids, and the records
    that are not valid groups (a group is used whole or not at all)."""
    groups: dict[str, SecurityGroup] = {}
    invalid: list[Invalid] = []
    for key in sorted(k for k in external_ids if k.startswith(SG_KEY_PREFIX)):
        group = _group_from_record(key[len(SG_KEY_PREFIX):],
                                   external_ids[key])
        if isinstance(group, InvalidRecord):
            invalid.append(Invalid("security group", key, str(group)))
        else:
            groups[group.name] = group
    return groups, invalid


@functools.lru_cache(maxsize=1024)
def _group_from_record(name: str, text: str) -> SecurityGroup | InvalidRecord:
    """One stored group, checked whole (remembered by its text: the agent
    reads the records at every reconcile, and they rarely change)."""
    try:
        _record_name(name)
        data = records.mapping(records.load(text), {"rules"})
        if not isinstance(data.get("rules"), list):
            raise InvalidRecord("rules must be a list")
        return SecurityGroup(name, sort_rules(rule_from_data(r)
                                              for r in data["rules"]))
    except InvalidRecord as exc:
        return exc


def _record_name(name: str) -> None:
    try:
        validate_sg_name(name)
    except UserError as exc:
        raise InvalidRecord(f"name: {exc.rule}") from None


def rule_from_data(data: Any) -> Rule:
    """One stored rule (a JSON object), checked like a new one."""
    fields = records.mapping(data, RULE_FIELDS, "a rule")
    try:
        return make_rule(**fields, known=None)
    except TypeError:  # no direction
        raise InvalidRecord("a rule needs a direction") from None
    except UserError as exc:
        raise InvalidRecord(f"rule {exc.field}: {exc.rule}") from None


def rule_from_record(text: Any) -> Rule:
    """A rule stored as JSON on its own (an OVN ACL's)."""
    return rule_from_data(records.load(text, 4096))


def parse_port_groups(text: str | None) -> tuple[str, ...]:
    """The Interface's ``virtio-ovs:security-groups`` ("a,b")."""
    names = []
    for name in (text or "").split(","):
        if name and _NAME_RE.fullmatch(name):
            names.append(name)
    return tuple(sorted(set(names)))


def _protocol(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and value.lower() in PROTOCOLS:
        return value.lower()
    text = value if isinstance(value, str) else str(value) \
        if isinstance(value, int) and not isinstance(value, bool) else ""
    if is_digits(text) and len(text) <= 3 and 0 <= int(text) <= 255:
        number = int(text)
        names = {n: p for p, n in PROTOCOLS.items()}
        return names.get(number, str(number))
    raise UserError("protocol", f"{value!r} is not tcp, udp, icmp, icmpv6 "
                    "or a protocol number 0..255")


def _int_field(value: Any, field: str, low: int, high: int) -> int | None:
    return None if value is None else int_in_range(value, field, low, high)


def make_rule(*, direction: Any, ethertype: Any = "IPv4",
              protocol: Any = None, port_min: Any = None,
              port_max: Any = None, icmp_type: Any = None,
              icmp_code: Any = None, remote_ip: Any = None,
              remote_group: Any = None,
              known: Iterable[str] | None = ()) -> Rule:
    """Validate every field of a rule. ``known``: the group names a remote
    group must be one of (None: do not check)."""
    if direction not in DIRECTIONS:
        raise UserError("direction", "must be ingress or egress")
    if ethertype not in ETHERTYPES:
        raise UserError("ethertype", "must be IPv4 or IPv6")
    proto = _protocol(protocol)
    port_min = _int_field(port_min, "port_min", 1, 65535)
    port_max = _int_field(port_max, "port_max", 1, 65535)
    if (port_min is None) != (port_max is None):
        raise UserError("port_min" if port_min is None else "port_max",
                        "give both --port-min and --port-max")
    if port_min is not None:
        if proto not in PORT_PROTOCOLS:
            raise UserError("port_min", "a port range needs --protocol tcp "
                            "or udp")
        if port_min > port_max:
            raise UserError("port_min", f"{port_min} is above port_max "
                            f"{port_max}")
    icmp_type = _int_field(icmp_type, "icmp_type", 0, 255)
    icmp_code = _int_field(icmp_code, "icmp_code", 0, 255)
    if (icmp_type is not None or icmp_code is not None):
        if proto not in ICMP_PROTOCOLS:
            raise UserError("icmp_type", "--icmp-type and --icmp-code need "
                            "--protocol icmp or icmpv6")
        if icmp_type is None:
            raise UserError("icmp_code", "--icmp-code needs --icmp-type")
    if proto == "icmp" and ethertype != "IPv4" or \
            proto == "icmpv6" and ethertype != "IPv6":
        raise UserError("protocol", f"{proto} does not go with {ethertype}")
    if remote_ip is not None and remote_group is not None:
        raise UserError("remote_ip", "give --remote-ip or --remote-group, "
                        "not both")
    if remote_ip is not None:
        remote_ip = _cidr(remote_ip, ethertype)
    if remote_group is not None:
        validate_sg_name(remote_group, "remote_group")
        if known is not None and remote_group not in known:
            raise UserError("remote_group", f"no security group named "
                            f"{remote_group!r}")
    return Rule(direction, ethertype, proto, port_min, port_max, icmp_type,
                icmp_code, remote_ip, remote_group)


def _cidr(value: Any, ethertype: str) -> str:
    try:
        net = ipaddress.ip_network(value, strict=False)
    except (ValueError, TypeError):
        raise UserError("remote_ip", f"{value!r} is not a CIDR (e.g. "
                        "10.0.0.0/24)") from None
    if (net.version == 4) != (ethertype == "IPv4"):
        raise UserError("remote_ip", f"{value} is not an {ethertype} CIDR")
    return str(net)


def referenced_by(groups: Mapping[str, SecurityGroup], name: str
                  ) -> list[str]:
    """Groups (other than ``name``) with a rule whose remote group is it."""
    return sorted(g.name for g in groups.values() if g.name != name and
                  any(r.remote_group == name for r in g.rules))


def validate_deletable(name: str, ports: list[str],
                    groups: Mapping[str, SecurityGroup]) -> None:
    """A group goes only when no port uses it (``ports``) and no other
    group's rule names it; UserError otherwise. The same on both backends."""
    if ports:
        raise UserError("name", f"security group {name!r} is used by ports: "
                        f"{', '.join(sorted(ports)[:5])}"
                        f"{' ...' if len(ports) > 5 else ''}")
    others = referenced_by(groups, name)
    if others:
        raise UserError("name", f"security group {name!r} is the remote "
                        f"group of rules in {', '.join(others)}")


def validate_new_group(name: str, known: Iterable[str]) -> str:
    """``name`` is a valid name that no group has yet."""
    validate_sg_name(name)
    if name in known:
        raise UserError("name", f"security group {name!r} exists")
    return name


def unknown_group(name: str) -> UserError:
    return UserError("security_group", f"no security group named {name!r}")


def validate_remote_group(rule: Rule, known: Iterable[str]) -> None:
    if rule.remote_group is not None and rule.remote_group not in known:
        raise UserError("remote_group", f"no security group named "
                        f"{rule.remote_group!r}")
