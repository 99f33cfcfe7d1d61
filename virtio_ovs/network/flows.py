"""OpenFlow flows as a pure function of the host's state. No I/O.

br-int pipeline (every flow carries the agent's cookie):

  table 0  CLASSIFY   from a bound guest port -> 10; from a provider patch
                      with the network's provider VID (or untagged, flat) ->
                      set the local VLAN, -> 60; anything else: drop
  table 10 SPOOF      guest-sent DHCP server replies, DHCPv6 server replies,
                      router advertisements and redirects: drop; then per
                      port, untagged frames from attached-mac with an allowed
                      source IP (ARP spa, IPv4 src, IPv6 src incl. the
                      port's link-local) -> 60; anything else: drop
              A port gated for a live migration's arrival (core/migration.py)
              also sends each frame to the agent (its first opens the
              gate), and its guest's RARP (QEMU's announcement) passes.
  table 23 CANARY     one drop flow; its absence means flows were lost
  table 60 SWITCH     NORMAL: MAC learning within the port's local VLAN
                      (Port.tag), which isolates networks

provider bridge (br-ex, ...):

  table 0  from the patch with a local VLAN of a network on this physnet ->
           provider VID (vlan) or untagged (flat), NORMAL; other traffic
           from the patch: drop; anything else: NORMAL
"""
from __future__ import annotations

import dataclasses
import ipaddress
from typing import Iterable, Mapping

from virtio_ovs.core.plug_request import DEAD_VLAN
from virtio_ovs.core.networks import Network
from virtio_ovs.core.port import GuestPort
from virtio_ovs.core.secgroups import SecurityGroup
from virtio_ovs.network.sg_flows import security_group_flows
from virtio_ovs.network.tables import (  # noqa: F401 (Flow: the API's type)
    REG_NET_FIELD, T_CANARY, T_CLASSIFY, T_EGRESS, T_SPOOF, T_SWITCH, UNTAGGED,
    Flow)

# Guest-originated traffic that only servers and routers may send.
# A packet-in to the agent (OpenFlow output to the controller port).
TO_AGENT = "CONTROLLER:65535"
SERVER_ONLY = ("udp,tp_src=67", "udp6,tp_src=547", "icmp6,icmp_type=134",
               "icmp6,icmp_type=137")


@dataclasses.dataclass(frozen=True)
class PatchPorts:
    physnet: str
    bridge: str
    int_ofport: int  # on br-int
    phy_ofport: int  # on the provider bridge


@dataclasses.dataclass(frozen=True)
class HostState:
    integration_bridge: str
    ports: tuple[GuestPort, ...]
    networks: Mapping[str, Network]
    patches: Mapping[str, PatchPorts]  # by physnet
    groups: Mapping[str, SecurityGroup] = dataclasses.field(
        default_factory=dict)
    gated: frozenset[str] = frozenset()  # port names (core.migration.Gates)


def link_local(mac: str) -> str:
    """The EUI-64 IPv6 link-local address of ``mac``."""
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    eui = octets[:3] + [0xff, 0xfe] + octets[3:]
    words = [f"{eui[i] << 8 | eui[i + 1]:x}" for i in range(0, 8, 2)]
    return str(ipaddress.IPv6Address("fe80::" + ":".join(words)))


def port_flows(port: GuestPort, local_vlan: int = 0,
               filtered: bool = False, gated: bool = False
               ) -> tuple[Flow, ...]:
    """Anti-spoofing for one bound port: untagged, from its MAC, from its
    IPs. Its frames carry ``local_vlan`` in REG6 (the network, and the
    conntrack zone); a ``filtered`` port's allowed frames go on to its
    security groups' egress stage instead of straight to the switch. A
    ``gated`` port's frames also go to the agent, and its RARPs pass."""
    assert port.ofport is not None
    return _port_flows(port.ofport, port.mac, port.ips, local_vlan, filtered,
                       gated)


class PortFlowCache:
    """A memo of each port's flows, keyed on what they depend on only (a
    changed verdict or status does not recompute them). It holds the ports
    of the last computation and no others: its size is the live port
    count, whatever the plug/unplug churn."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[tuple, tuple[Flow, ...]]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def flows(self, port: GuestPort, local_vlan: int, filtered: bool,
              gated: bool = False) -> tuple[Flow, ...]:
        assert port.ofport is not None
        key = (port.ofport, port.mac, port.ips, local_vlan, filtered, gated)
        entry = self._entries.get(port.name)
        if entry is None or entry[0] != key:
            entry = (key, _port_flows(*key))
            self._entries[port.name] = entry
        return entry[1]

    def forget(self, name: str) -> None:
        self._entries.pop(name, None)

    def chunks(self, flows: set[Flow]) -> list[list[Flow]]:
        """``flows`` (a bridge's whole table, as last computed) in atomic
        units for the first sync: each port's own flows together, then
        the rest."""
        ports = [list(entry[1]) for entry in self._entries.values()
                 if entry[1]]
        theirs = {f for chunk in ports for f in chunk}
        return ports + [sorted(flows - theirs)]

    def port_flows_of(self, name: str) -> tuple[Flow, ...]:
        """The flows last computed for ``name`` (none if unknown)."""
        entry = self._entries.get(name)
        return entry[1] if entry is not None else ()

    def keep_only(self, names: set[str]) -> None:
        for name in set(self._entries) - names:
            del self._entries[name]


def _port_flows(ofport: int, mac: str, ips: tuple[str, ...], local_vlan: int,
                filtered: bool, gated: bool = False) -> tuple[Flow, ...]:
    base = f"in_port={ofport},{UNTAGGED},dl_src={mac}"
    allow = f"goto_table:{T_EGRESS if filtered else T_SWITCH}"
    classify = f"load:{local_vlan}->{REG_NET_FIELD}[],goto_table:{T_SPOOF}"
    flows = [Flow(T_CLASSIFY, 100, f"in_port={ofport}", classify)]
    if gated:
        flows.append(Flow(T_CLASSIFY, 110, f"in_port={ofport}",
                          f"{TO_AGENT},{classify}"))
        flows.append(Flow(T_SPOOF, 200, f"{base},rarp", allow))
    addrs = [ipaddress.ip_interface(ip).ip for ip in ips]
    v4 = [str(a) for a in addrs if a.version == 4]
    v6 = [str(a) for a in addrs if a.version == 6]
    if not addrs:  # no allowed IPs recorded: any address from this MAC
        for proto in ("arp,arp_sha=" + mac, "ip", "ipv6"):
            flows.append(Flow(T_SPOOF, 200, f"{base},{proto}", allow))
        return tuple(flows)
    for ip in v4:
        flows.append(Flow(T_SPOOF, 200, f"{base},arp,arp_sha={mac},"
                          f"arp_spa={ip}", allow))
        flows.append(Flow(T_SPOOF, 200, f"{base},ip,nw_src={ip}", allow))
    flows.append(Flow(T_SPOOF, 200, f"{base},udp,nw_src=0.0.0.0,"
                      "nw_dst=255.255.255.255,tp_src=68,tp_dst=67", allow))
    for ip in v6 + [link_local(mac)]:
        flows.append(Flow(T_SPOOF, 200, f"{base},ipv6,ipv6_src={ip}", allow))
        flows.append(Flow(T_SPOOF, 210, f"{base},icmp6,icmp_type=136,"
                          f"nd_target={ip}", allow))
    # A neighbour advertisement for anyone else's address is a spoof.
    flows.append(Flow(T_SPOOF, 205, f"{base},icmp6,icmp_type=136", "drop"))
    for icmp_type in (135, 143):  # DAD probes and MLD reports come from ::
        flows.append(Flow(T_SPOOF, 200, f"{base},icmp6,ipv6_src=::,"
                          f"icmp_type={icmp_type}", allow))
    return tuple(flows)


def integration_flows(state: HostState, cache: PortFlowCache | None = None
                      ) -> set[Flow]:
    cache = PortFlowCache() if cache is None else cache
    flows = {Flow(T_CLASSIFY, 0, "", "drop"), Flow(T_SPOOF, 0, "", "drop"),
             Flow(T_CANARY, 0, "", "drop"), Flow(T_SWITCH, 0, "", "NORMAL")}
    flows |= {Flow(T_SPOOF, 300, match, "drop") for match in SERVER_ONLY}
    bound = bound_ports(state)
    for port in bound:
        net = state.networks[port.bound_network]
        flows.update(cache.flows(port, net.local_vlan,
                                 bool(port.security_groups),
                                 port.name in state.gated))
    cache.keep_only({port.name for port in bound})
    for net in state.networks.values():
        patch = state.patches.get(net.physnet or "")
        if patch is None:
            continue
        vlan = (f"dl_vlan={net.segment}" if net.type == "vlan" else UNTAGGED)
        flows.add(Flow(T_CLASSIFY, 300, f"in_port={patch.int_ofport},{vlan}",
                       f"mod_vlan_vid:{net.local_vlan},load:{net.local_vlan}"
                       f"->{REG_NET_FIELD}[],goto_table:{T_SWITCH}"))
    flows |= security_group_flows(state, bound_ports(state))
    return flows


def bound_ports(state: HostState) -> list[GuestPort]:
    """Ports bound to a known network and numbered: by ovs-vswitchd, or by
    the plug's request while ovs-vswitchd has not reported the port yet.
    A number two ports claim (a request that lost a race, until
    ovs-vswitchd reports the real numbers) gives neither of them flows:
    a switch holds one flow per match, so either port would get the
    other's."""
    shared = shared_ofports(state.ports)
    return [p for p in state.ports if p.bound_network in state.networks
            and p.ofport and p.ofport not in shared]


def shared_ofports(ports: Iterable[GuestPort]) -> set[int]:
    """OpenFlow port numbers that more than one port claims."""
    seen: set[int] = set()
    shared: set[int] = set()
    for port in ports:
        if port.ofport:
            (shared if port.ofport in seen else seen).add(port.ofport)
    return shared


def provider_flows(state: HostState, patch: PatchPorts) -> set[Flow]:
    flows = {Flow(0, 0, "", "NORMAL"),
             Flow(0, 200, f"in_port={patch.phy_ofport}", "drop")}
    for net in state.networks.values():
        if net.physnet != patch.physnet:
            continue
        rewrite = (f"mod_vlan_vid:{net.segment}" if net.type == "vlan"
                   else "strip_vlan")
        flows.add(Flow(0, 300, f"in_port={patch.phy_ofport},"
                       f"dl_vlan={net.local_vlan}", f"{rewrite},NORMAL"))
    return flows


def compute_flows(state: HostState, cache: PortFlowCache | None = None
                  ) -> dict[str, set[Flow]]:
    """Every flow of every bridge the agent owns, by bridge name.
    ``cache``: a memo kept between calls (the agent's)."""
    result = {state.integration_bridge: integration_flows(state, cache)}
    for patch in state.patches.values():
        result[patch.bridge] = provider_flows(state, patch)
    return result


@dataclasses.dataclass
class FlowDiff:
    add: list[Flow]
    delete: list[Flow]

    def __bool__(self) -> bool:
        return bool(self.add or self.delete)


def diff_flows(current: Iterable[Flow], desired: Iterable[Flow]) -> FlowDiff:
    """Adds (new or changed actions) and strict deletes (keys now unused)."""
    current = set(current)
    desired = set(desired)
    desired_keys = {f.key for f in desired}
    return FlowDiff(add=sorted(desired - current),
                    delete=sorted(f for f in current - desired
                                  if f.key not in desired_keys))


def port_tag(port: GuestPort, networks: Mapping[str, Network]) -> int:
    """Port.tag: the network's local VLAN, or the dead VLAN if unbound."""
    net = networks.get(port.bound_network or "")
    return net.local_vlan if net is not None else DEAD_VLAN


def port_key(port: GuestPort, networks: Mapping[str, Network],
             gated: frozenset[str] = frozenset()) -> tuple | None:
    """What a port's own flows depend on; None when it has none (unbound,
    or not numbered yet)."""
    net = networks.get(port.bound_network or "")
    if net is None or not port.ofport:
        return None
    return (port.ofport, port.mac, port.ips, net.local_vlan,
            bool(port.security_groups), port.name in gated)


class FlowPlanner:
    """The desired flows, kept between reconciles.

    A change that touches only ports outside every security group (plug,
    unplug, bind, renumber) recomputes those ports' flows and nothing else:
    O(changed ports), not O(ports). A change to networks, patches, groups
    or a filtered port recomputes everything (``compute_flows``). The
    result is the same either way; ``invalidate`` forces the full path
    (after a failed apply, or when the switch lost its flows)."""

    def __init__(self) -> None:
        self.cache = PortFlowCache()
        self.desired: dict[str, set[Flow]] = {}
        self._context: tuple | None = None
        self._keys: dict[str, tuple] = {}

    def invalidate(self) -> None:
        self._context = None

    def plan(self, state: HostState) -> dict[str, FlowDiff] | None:
        """Update ``desired`` to ``state``; returns each bridge's change
        when it was computed incrementally, None after a full
        recomputation (the caller diffs against what it applied)."""
        context = (state.integration_bridge, dict(state.networks),
                   dict(state.patches), dict(state.groups))
        shared = shared_ofports(state.ports)
        keys = {p.name: k for p in state.ports if p.ofport not in shared
                and (k := port_key(p, state.networks, state.gated))
                is not None}
        changed = {n for n in keys.keys() | self._keys.keys()
                   if keys.get(n) != self._keys.get(n)}
        incremental = context == self._context and not any(
            key[4] for n in changed
            for key in (keys.get(n), self._keys.get(n)) if key)
        self._keys = keys
        if not incremental:
            self.desired = compute_flows(state, self.cache)
            self._context = context
            return None
        old = {f for n in changed for f in self.cache.port_flows_of(n)}
        ports = {p.name: p for p in state.ports if p.name in changed}
        new = set()
        for name in changed:
            if name in keys:
                key = keys[name]
                new.update(self.cache.flows(ports[name], *key[3:]))
            else:
                self.cache.forget(name)
        flows = self.desired[state.integration_bridge]
        flows -= old
        flows |= new
        return {state.integration_bridge: diff_flows(old, new)}
