"""Security group rules as OVN ACLs, a pure function. No I/O.

A group is a Port_Group ``vovs_<name>``; OVN derives the address sets
``$vovs_<name>_ip4`` and ``_ip6`` from its ports' addresses, which remote
group rules use. Every port in some group is also in ``vovs_drop``, whose
ACLs drop its IP traffic below the groups' ``allow-related`` ACLs (as
neutron's ``neutron_pg_drop``): stateful, and the replies of an allowed
connection always pass.
"""
from __future__ import annotations

from virtio_ovs.core.secgroups import PROTOCOLS, Rule

PG_PREFIX = "vovs_"
DROP_GROUP = "vovs_drop"
P_DROP, P_ALLOW = 1001, 1002


def pg_name(group: str) -> str:
    return PG_PREFIX + group


def drop_acls() -> list[tuple[str, int, str, str]]:
    """(direction, priority, match, action) of the drop group."""
    return [("from-lport", P_DROP, f"inport == @{DROP_GROUP} && ip", "drop"),
            ("to-lport", P_DROP, f"outport == @{DROP_GROUP} && ip", "drop")]


def acl(group: str, rule: Rule) -> tuple[str, int, str, str]:
    """(direction, priority, match, action) of one rule."""
    ingress = rule.direction == "ingress"
    l3 = "ip4" if rule.ethertype == "IPv4" else "ip6"
    parts = [f"outport == @{pg_name(group)}" if ingress
             else f"inport == @{pg_name(group)}", l3]
    end = "src" if ingress else "dst"
    if rule.remote_ip is not None:
        parts.append(f"{l3}.{end} == {rule.remote_ip}")
    if rule.remote_group is not None:
        parts.append(f"{l3}.{end} == ${pg_name(rule.remote_group)}_{l3}")
    parts += _l4(rule, l3)
    return ("to-lport" if ingress else "from-lport", P_ALLOW,
            " && ".join(parts), "allow-related")


def _l4(rule: Rule, l3: str) -> list[str]:
    proto = rule.protocol
    if proto is None:
        return []
    if proto in ("tcp", "udp"):
        if rule.port_min is None:
            return [proto]
        if rule.port_min == rule.port_max:
            return [proto, f"{proto}.dst == {rule.port_min}"]
        return [proto, f"{proto}.dst >= {rule.port_min}",
                f"{proto}.dst <= {rule.port_max}"]
    if proto in ("icmp", "icmpv6"):
        name = "icmp4" if proto == "icmp" else "icmp6"
        parts = [name]
        if rule.icmp_type is not None:
            parts.append(f"{name}.type == {rule.icmp_type}")
        if rule.icmp_code is not None:
            parts.append(f"{name}.code == {rule.icmp_code}")
        return parts
    return [f"ip.proto == {PROTOCOLS.get(proto, proto)}"]
