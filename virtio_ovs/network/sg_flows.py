"""Stateful security groups on br-int, as a pure function of the state.

Only ports in at least one group are filtered; the others keep the plain
pipeline. Conntrack runs in one zone per network (its local VLAN, carried
in REG6 from table 0):

  from a filtered guest (after anti-spoofing, table 10 -> 40):
    40  ND (RS/NS/NA) -> 60; IPv4/IPv6 -> ct(zone) -> 41; other (ARP) -> 60
    41  established/related -> 60; invalid: drop; new + an egress rule ->
        ct(commit) -> 60; else drop
  to a filtered guest (table 60, by network and destination MAC, sets
  REG5 to its port: flows.forwarding_flows):
    70  ND -> out; IPv4/IPv6 -> ct(zone) -> 71; other (ARP) -> out
    71  established/related -> out; invalid: drop; new + an ingress rule
        -> ct(commit) -> out; else drop

A rule with a remote group becomes a conjunction: the group's ports in one
dimension, its members' addresses in the other, so that N ports in a group
that admits itself cost O(N) flows, not O(N^2). Broadcast and multicast
frames reach filtered ports through the flood stage without the ingress
stage, as ARP must.
"""
from __future__ import annotations

import ipaddress
import zlib
from typing import Iterable

from virtio_ovs.core.port import GuestPort
from virtio_ovs.core.secgroups import PROTOCOLS, Rule, SecurityGroup
from virtio_ovs.network.tables import (REG_NET_FIELD, REG_PORT,
                                       REG_PORT_FIELD, T_EGRESS,
                                       T_EGRESS_RULES, T_INGRESS,
                                       T_INGRESS_RULES, T_SWITCH, Flow)

ZONE = f"zone={REG_NET_FIELD}[0..15]"
OUT = f"output:{REG_PORT_FIELD}[0..15]"
NEW = "ct_state=+new-est+trk"
P_ALLOW, P_INVALID, P_RULE, P_CONJ = 90, 80, 70, 72
ND_TYPES = (133, 134, 135, 136)


def security_group_flows(state, ports: Iterable[GuestPort]) -> set[Flow]:
    """Every flow of the security-group stages, for the bound ``ports``
    (those in no group are left alone)."""
    filtered = [p for p in ports if p.security_groups]
    if not filtered:
        return set()
    flows = _fixed_flows()
    conj: dict[tuple[int, int, str], list[str]] = {}
    for port in filtered:
        for group in port.security_groups:
            for rule in state.groups.get(group, SecurityGroup(group, ())
                                         ).rules:
                flows |= _rule_flows(port, group, rule, conj)
    for members in _members(state.groups, ports).items():
        _member_flows(state.groups, filtered, *members, conj)
    flows |= {Flow(t, p, m, ",".join(sorted(a)))
              for (t, p, m), a in conj.items()}
    return flows


def _fixed_flows() -> set[Flow]:
    to_switch = f"goto_table:{T_SWITCH}"
    flows = set()
    for table, rules, out in ((T_EGRESS, T_EGRESS_RULES, to_switch),
                              (T_INGRESS, T_INGRESS_RULES, OUT)):
        flows |= {Flow(table, 90, f"icmp6,icmp_type={t}", out)
                  for t in ND_TYPES}
        flows |= {Flow(table, 50, proto, f"ct(table={rules},{ZONE})")
                  for proto in ("ip", "ipv6")}
        flows.add(Flow(table, 10, "", out))
        flows |= {Flow(rules, P_ALLOW, "ct_state=+est-rel-inv+trk", out),
                  Flow(rules, P_ALLOW, "ct_state=+rel-inv+trk", out),
                  Flow(rules, P_INVALID, "ct_state=+inv+trk", "drop"),
                  Flow(rules, 0, "", "drop")}
    return flows


def _rule_flows(port: GuestPort, group: str, rule: Rule, conj: dict
                ) -> set[Flow]:
    egress = rule.direction == "egress"
    table = T_EGRESS_RULES if egress else T_INGRESS_RULES
    who = f"in_port={port.ofport}" if egress else f"{REG_PORT}={port.ofport}"
    if rule.remote_group is not None:
        cid = conj_id(group, rule)
        for l3l4 in match_l3l4(rule):
            key = (table, P_CONJ, f"{NEW},{who},{l3l4}")
            conj.setdefault(key, []).append(f"conjunction({cid},1/2)")
        return {Flow(table, P_CONJ, f"conj_id={cid},{_l3(rule)}",
                     _commit(egress))}
    remote = ""
    if rule.remote_ip is not None:
        remote = f",{_addr_field(rule, egress)}={rule.remote_ip}"
    return {Flow(table, P_RULE, f"{NEW},{who},{l3l4}{remote}",
                 _commit(egress)) for l3l4 in match_l3l4(rule)}


def _members(groups: dict[str, SecurityGroup], ports: Iterable[GuestPort]
             ) -> dict[str, list[str]]:
    """Group name -> the addresses of the bound ports in it."""
    members: dict[str, list[str]] = {}
    for port in ports:
        for group in port.security_groups:
            members.setdefault(group, []).extend(
                str(ipaddress.ip_interface(ip).ip) for ip in port.ips)
    return members


def _member_flows(groups, filtered, remote: str, addresses: list[str],
                  conj: dict) -> None:
    """The second dimension of every rule whose remote group is
    ``remote``, in a group some filtered port is in."""
    in_use = {g for p in filtered for g in p.security_groups}
    for name in sorted(in_use):
        group = groups.get(name)
        for rule in group.rules if group else ():
            if rule.remote_group != remote:
                continue
            egress = rule.direction == "egress"
            table = T_EGRESS_RULES if egress else T_INGRESS_RULES
            version = 4 if rule.ethertype == "IPv4" else 6
            for address in addresses:
                if ipaddress.ip_address(address).version != version:
                    continue
                key = (table, P_CONJ, f"{NEW},{_l3(rule)},"
                       f"{_addr_field(rule, egress)}={address}")
                conj.setdefault(key, []).append(
                    f"conjunction({conj_id(name, rule)},2/2)")


def conj_id(group: str, rule: Rule) -> int:
    """A stable conjunction id per (group, rule)."""
    return zlib.crc32(f"{group}/{rule.id}".encode()) or 1


def _commit(egress: bool) -> str:
    out = f"goto_table:{T_SWITCH}" if egress else OUT
    return f"ct(commit,{ZONE}),{out}"


def _l3(rule: Rule) -> str:
    return "ip" if rule.ethertype == "IPv4" else "ipv6"


def _addr_field(rule: Rule, egress: bool) -> str:
    end = "dst" if egress else "src"
    return f"nw_{end}" if rule.ethertype == "IPv4" else f"ipv6_{end}"


def match_l3l4(rule: Rule) -> list[str]:
    """The protocol part of a rule's match (several for a port range)."""
    v6 = rule.ethertype == "IPv6"
    proto = rule.protocol
    if proto is None:
        return [_l3(rule)]
    if proto in ("tcp", "udp"):
        name = proto + ("6" if v6 else "")
        if rule.port_min is None:
            return [name]
        return [f"{name},tp_dst={m}" for m in
                port_masks(rule.port_min, rule.port_max)]
    if proto in ("icmp", "icmpv6"):
        text = "icmp6" if proto == "icmpv6" else "icmp"
        if rule.icmp_type is not None:
            text += f",icmp_type={rule.icmp_type}"
        if rule.icmp_code is not None:
            text += f",icmp_code={rule.icmp_code}"
        return [text]
    number = PROTOCOLS.get(proto, proto)
    return [f"{_l3(rule)},nw_proto={number}"]


def port_masks(low: int, high: int) -> list[str]:
    """The fewest value/mask pairs that cover ``low..high`` exactly."""
    if low == high:
        return [str(low)]
    masks = []
    while low <= high:
        size = low & -low if low else 1 << 16
        while size > high - low + 1:
            size >>= 1
        mask = 0xffff & ~(size - 1)
        masks.append(str(low) if size == 1 else f"{low:#06x}/{mask:#06x}")
        low += size
    return masks
