"""OpenFlow flows as a pure function of the host's state. No I/O.

br-int pipeline (every flow carries the agent's cookie):

  table 0  CLASSIFY   from a bound guest port: its network in REG6 -> 10;
                      from a provider patch with the network's provider VID
                      (or untagged, flat): untagged, its network in REG6 ->
                      60; anything else: drop
  table 10 SPOOF      guest-sent DHCP server replies, DHCPv6 server replies,
                      router advertisements and redirects: drop; then per
                      port, untagged frames from attached-mac with an allowed
                      source IP (ARP spa, IPv4 src, IPv6 src incl. the
                      port's link-local) -> 60; anything else: drop
              A port gated for a live migration's arrival (core/migration.py)
              also sends each frame to the agent (its first opens the
              gate), and its guest's RARP (QEMU's announcement) passes.
  table 23 CANARY     one drop flow; its absence means flows were lost
  table 60 SWITCH     per network (REG6), explicit forwarding, as OVN's
                      logical switch does it: a bound port's MAC -> that
                      port (a filtered one through the ingress stage, 70);
                      broadcast and multicast -> 61; any other destination
                      -> the provider patch with the network's local VLAN
                      (no provider: drop)
  table 61 FLOOD      every port of the network, in chunks of ofports
                      chained by REG7, then the provider patch

No NORMAL and no Port.tag: a port that someone else plugged needs nothing
from ovs-vswitchd but its OpenFlow number (a Port.tag write would cost it
one more reconfiguration of every bridge), and nothing reaches a port
before its own flows name it.

provider bridge (br-ex, ...):

  table 0  from the patch with a local VLAN of a network on this physnet ->
           provider VID (vlan) or untagged (flat), NORMAL; other traffic
           from the patch: drop; anything else: NORMAL
"""
from __future__ import annotations

import dataclasses
import ipaddress
from typing import Iterable, Mapping, Sequence

from virtio_ovs.core.networks import Network
from virtio_ovs.core.port import GuestPort
from virtio_ovs.core.secgroups import SecurityGroup
from virtio_ovs.network.sg_flows import security_group_flows
from virtio_ovs.network.tables import (  # noqa: F401 (Flow: the API's type)
    REG_CHUNK, REG_CHUNK_FIELD, REG_NET, REG_NET_FIELD, REG_PORT_FIELD,
    T_CANARY, T_CLASSIFY, T_EGRESS, T_FLOOD, T_INGRESS, T_SPOOF, T_SWITCH,
    UNTAGGED, Flow)

# Guest-originated traffic that only servers and routers may send.
# A packet-in to the agent (OpenFlow output to the controller port).
TO_AGENT = "CONTROLLER:65535"
SERVER_ONLY = ("udp,tp_src=67", "udp6,tp_src=547", "icmp6,icmp_type=134",
               "icmp6,icmp_type=137")
MULTICAST = "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00"
# Ports per flood flow: an output action is 16 bytes and an OpenFlow
# message at most 64 KiB. By OpenFlow number (ofport >> 8), so that a plug
# rewrites one chunk, not every chunk after it.
CHUNK_BITS = 8


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
    # Port names that get no flows yet: expected by a migration, not
    # gated yet (backend/arrival.py).
    held: frozenset[str] = frozenset()


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
        # Each network's forwarding flows, by local VLAN, as last computed.
        self.switching: dict[int, set[Flow]] = {}

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
             Flow(T_CANARY, 0, "", "drop")}
    flows |= {Flow(T_SPOOF, 300, match, "drop") for match in SERVER_ONLY}
    bound = bound_ports(state)
    for port in bound:
        net = state.networks[port.bound_network]
        flows.update(cache.flows(port, net.local_vlan,
                                 bool(port.security_groups),
                                 port.name in state.gated))
    cache.keep_only({port.name for port in bound})
    cache.switching = switching_flows(state, bound)
    for switching in cache.switching.values():
        flows |= switching
    for net in state.networks.values():
        patch = state.patches.get(net.physnet or "")
        if patch is None:
            continue
        if net.type == "vlan":
            vlan, untag = f"dl_vlan={net.segment}", "strip_vlan,"
        else:
            vlan, untag = UNTAGGED, ""
        flows.add(Flow(T_CLASSIFY, 300, f"in_port={patch.int_ofport},{vlan}",
                       f"{untag}load:{net.local_vlan}->{REG_NET_FIELD}[],"
                       f"goto_table:{T_SWITCH}"))
    flows |= security_group_flows(state, bound)
    return flows


def switching_flows(state: HostState, bound: list[GuestPort],
                    vlans: set[int] | None = None) -> dict[int, set[Flow]]:
    """Local VLAN -> the forwarding flows of that network, for every
    network or those whose local VLAN is in ``vlans``."""
    nets = {name: net for name, net in state.networks.items()
            if vlans is None or net.local_vlan in vlans}
    members: dict[str, list[GuestPort]] = {}
    for port in bound:
        if port.bound_network in nets:
            members.setdefault(port.bound_network, []).append(port)
    return {net.local_vlan: forwarding_flows(
                net, members.get(name, ()),
                state.patches.get(net.physnet or ""))
            for name, net in nets.items()}


def forwarding_flows(net: Network, ports: Sequence[GuestPort],
                     patch: PatchPorts | None) -> set[Flow]:
    """The switching of one network (its bound, numbered ``ports``):
    each port's MAC to that port, broadcast and multicast to all of them
    and the provider patch, any other destination to the patch."""
    vlan = net.local_vlan
    to_patch = (f"push_vlan:0x8100,mod_vlan_vid:{vlan},"
                f"output:{patch.int_ofport}" if patch is not None else "")
    ordered = sorted(ports, key=lambda p: p.ofport)
    flows = _unicast_flows(vlan, ordered) | _flood_flows(vlan, ordered,
                                                         to_patch)
    if to_patch:
        flows.add(Flow(T_SWITCH, 10, f"{REG_NET}={vlan}", to_patch))
    return flows


def _unicast_flows(vlan: int, ordered: list[GuestPort]) -> set[Flow]:
    """Each port's MAC to that port. Two ports of a network with one MAC:
    the lower OpenFlow number gets its frames (a switch holds one flow per
    match)."""
    flows: dict[str, Flow] = {}
    for port in ordered:
        match = f"{REG_NET}={vlan},dl_dst={port.mac}"
        if match not in flows:
            deliver = (f"load:{port.ofport}->{REG_PORT_FIELD}[],"
                       f"goto_table:{T_INGRESS}" if port.security_groups
                       else f"output:{port.ofport}")
            flows[match] = Flow(T_SWITCH, 100, match, deliver)
    return set(flows.values())


def _flood_flows(vlan: int, ordered: list[GuestPort], to_patch: str
                 ) -> set[Flow]:
    """Broadcast and multicast: every port, chunk after chunk (REG7 says
    which), then the provider patch."""
    chunks: dict[int, list[int]] = {}
    for port in ordered:
        chunks.setdefault(port.ofport >> CHUNK_BITS, []).append(port.ofport)
    order = sorted(chunks)
    start = f"{REG_NET}={vlan},{MULTICAST}"
    if not order:
        return {Flow(T_SWITCH, 50, start, to_patch)} if to_patch else set()
    flows = {Flow(T_SWITCH, 50, start, f"load:{order[0]}->"
                  f"{REG_CHUNK_FIELD}[],goto_table:{T_FLOOD}")}
    for i, chunk in enumerate(order):
        actions = [f"output:{ofport}" for ofport in chunks[chunk]]
        if i + 1 < len(order):
            actions += [f"load:{order[i + 1]}->{REG_CHUNK_FIELD}[]",
                        f"resubmit(,{T_FLOOD})"]
        elif to_patch:
            actions.append(to_patch)
        flows.add(Flow(T_FLOOD, 100, f"{REG_NET}={vlan},{REG_CHUNK}={chunk}",
                       ",".join(actions)))
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
            and p.ofport and p.ofport not in shared
            and p.name not in state.held]


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
        bound = bound_ports(state)
        keys = {p.name: port_key(p, state.networks, state.gated)
                for p in bound}
        changed = {n for n in keys.keys() | self._keys.keys()
                   if keys.get(n) != self._keys.get(n)}
        incremental = context == self._context and not any(
            key[4] for n in changed
            for key in (keys.get(n), self._keys.get(n)) if key)
        vlans = {key[3] for n in changed
                 for key in (keys.get(n), self._keys.get(n)) if key}
        self._keys = keys
        if not incremental:
            self.desired = compute_flows(state, self.cache)
            self._context = context
            return None
        old = {f for n in changed for f in self.cache.port_flows_of(n)}
        ports = {p.name: p for p in bound if p.name in changed}
        new = set()
        for name in changed:
            if name in keys:
                key = keys[name]
                new.update(self.cache.flows(ports[name], *key[3:]))
            else:
                self.cache.forget(name)
        for vlan, switching in switching_flows(state, bound, vlans).items():
            old |= self.cache.switching.get(vlan, set())
            new |= switching
            self.cache.switching[vlan] = switching
        flows = self.desired[state.integration_bridge]
        flows -= old
        flows |= new
        return {state.integration_bridge: diff_flows(old, new)}
