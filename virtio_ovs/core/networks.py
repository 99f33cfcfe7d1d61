"""Networks: model, validation, local VLAN allocation. Pure: no I/O.

A network is stored in OVSDB, in ``Open_vSwitch:external_ids`` under
``virtio-ovs:net:<name>``, as JSON. Its host-local VLAN is allocated when
it is created and stored with it, so a restart renumbers nothing.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from typing import Iterable, Mapping

from virtio_ovs.core import records
from virtio_ovs.core.errors import UserError
from virtio_ovs.core.records import Invalid, InvalidRecord
from virtio_ovs.core.validate import (is_name, validate_bridge_name,
                                      validate_name, validate_network)

NET_KEY_PREFIX = "virtio-ovs:net:"
TYPES = ("local", "flat", "vlan")  # the standalone backend's
OVN_TYPES = ("geneve", "flat", "vlan")  # the OVN backend's
MIN_VLAN, MAX_VLAN = 1, 4094


@dataclasses.dataclass(frozen=True)
class Network:
    name: str
    type: str
    physnet: str | None
    segment: int | None
    local_vlan: int | None  # standalone only: the host-local VLAN

    def to_json(self) -> str:
        return json.dumps({"type": self.type, "physnet": self.physnet,
                           "segment": self.segment,
                           "local_vlan": self.local_vlan}, sort_keys=True)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# The peer of a patch port that must carry nothing yet.
NONEXISTENT_PEER = "nonexistent-peer"


def int_patch_name(bridge: str) -> str:
    """The patch port on br-int towards provider bridge ``bridge``."""
    return f"int-{bridge}"


def phy_patch_name(bridge: str) -> str:
    """The patch port on provider bridge ``bridge`` towards br-int."""
    return f"phy-{bridge}"


def network_key(name: str) -> str:
    return NET_KEY_PREFIX + name


def parse_networks(external_ids: Mapping[str, str]) -> dict[str, Network]:
    """The valid networks stored in Open_vSwitch:external_ids."""
    return read_networks(external_ids)[0]


def read_networks(external_ids: Mapping[str, str]
                  ) -> tuple[dict[str, Network], list[Invalid]]:
    """The networks stored in Open_vSwitch:external_ids, and the records
    that are not valid networks. Each record is checked whole, then
    against the others: a local VLAN, or a physnet and segment, that an
    earlier network (by name) has makes the later one invalid, so that no
    record merges two networks."""
    nets: dict[str, Network] = {}
    invalid: list[Invalid] = []
    by_vlan: dict[int | None, Network] = {}
    by_segment: dict[tuple, Network] = {}
    for key in sorted(k for k in external_ids if k.startswith(NET_KEY_PREFIX)):
        try:
            net = network_from_record(key[len(NET_KEY_PREFIX):],
                                      external_ids[key])
            _check_unique(net, by_vlan, by_segment)
        except InvalidRecord as exc:
            invalid.append(Invalid("network", key, str(exc)))
            continue
        nets[net.name] = by_vlan[net.local_vlan] = net
        if net.type != "local":
            by_segment.setdefault(_segment_key(net), net)
    return nets, invalid


def network_from_record(name: str, text: str) -> Network:
    """One stored network, checked whole; InvalidRecord says why not.
    (Remembered by its text: the agent reads the records at every
    reconcile, and they rarely change.)"""
    result = _network_from_record(name, text)
    if isinstance(result, InvalidRecord):
        raise InvalidRecord(str(result))  # a new one: no traceback grows
    return result


@functools.lru_cache(maxsize=1024)
def _network_from_record(name: str, text: str) -> Network | InvalidRecord:
    try:
        return _parse_network(name, text)
    except InvalidRecord as exc:
        return exc


def _parse_network(name: str, text: str) -> Network:
    try:
        validate_network(name)
    except UserError as exc:
        raise InvalidRecord(f"name: {exc.rule}") from None
    data = records.mapping(records.load(text, 1024),
                           {"type", "physnet", "segment", "local_vlan"})
    net_type = data.get("type")
    if net_type not in TYPES:
        raise InvalidRecord(f"type must be one of {', '.join(TYPES)}, got "
                            f"{records.short(net_type)}")
    physnet, segment = data.get("physnet"), data.get("segment")
    if net_type == "local":
        if physnet is not None or segment is not None:
            raise InvalidRecord("a local network has no physnet or segment")
    elif not is_name(physnet):
        raise InvalidRecord(f"physnet must be 1-64 letters, digits, '_', "
                            f"'.', '-', got {records.short(physnet)}")
    if net_type == "flat" and segment is not None:
        raise InvalidRecord("a flat network has no segment")
    if net_type == "vlan":
        segment = records.int_field(data, "segment", MIN_VLAN, MAX_VLAN)
    local_vlan = records.int_field(data, "local_vlan", MIN_VLAN, MAX_VLAN)
    return Network(name, net_type, physnet, segment, local_vlan)


def _segment_key(net: Network) -> tuple:
    return net.type, net.physnet, net.segment


def _check_unique(net: Network, by_vlan: Mapping[int | None, Network],
                  by_segment: Mapping[tuple, Network]) -> None:
    """InvalidRecord when an earlier network (by name) has ``net``'s local
    VLAN or, for a provider network, its physnet and segment; the
    earliest such network is named (its local VLAN first)."""
    vlan = by_vlan.get(net.local_vlan)
    segment = (by_segment.get(_segment_key(net)) if net.type != "local"
               else None)
    if vlan is not None and (segment is None or vlan.name <= segment.name):
        raise InvalidRecord(f"local_vlan {net.local_vlan} is taken by "
                            f"network {vlan.name!r}")
    if segment is not None:
        raise InvalidRecord(f"{net.physnet} {net.segment or 'flat'} is "
                            f"taken by network {segment.name!r}")


def parse_bridge_mappings(items: Iterable[str]) -> dict[str, str]:
    """["physnet:bridge", ...] -> {physnet: bridge}; raises UserError."""
    mappings: dict[str, str] = {}
    for item in items:
        physnet, sep, bridge = item.strip().partition(":")
        if not sep or not is_name(physnet):
            raise UserError("bridge_mappings", f"{item!r} is not "
                            "physnet:bridge")
        if physnet in mappings:
            raise UserError("bridge_mappings", f"physnet {physnet!r} is "
                            "mapped twice")
        try:
            validate_bridge_name(bridge)
        except UserError as exc:
            raise UserError("bridge_mappings", exc.rule) from None
        if len(bridge) > 11:
            raise UserError("bridge_mappings", f"bridge {bridge!r} is longer "
                            "than 11 characters (its patch port names need "
                            "4 more)")
        mappings[physnet] = bridge
    if len(set(mappings.values())) != len(mappings):
        raise UserError("bridge_mappings", "two physnets share a bridge")
    return mappings


def validate_new_network(name: str, net_type: str, physnet: str | None,
                         segment: int | None, existing: Mapping[str, Network],
                         mappings: Mapping[str, str]) -> Network:
    """Check a net-create request and allocate its local VLAN."""
    validate_network(name)
    if name in existing:
        raise UserError("name", f"network {name!r} exists")
    if net_type not in TYPES:
        raise UserError("type", f"must be one of {', '.join(TYPES)}")
    if net_type == "local":
        if physnet is not None or segment is not None:
            raise UserError("physnet" if physnet is not None else "segment",
                            "a local network takes no physnet or segment")
    else:
        if physnet is None:
            raise UserError("physnet", f"a {net_type} network needs --physnet")
        if physnet not in mappings:
            known = ", ".join(sorted(mappings)) or "none"
            raise UserError("physnet", f"{physnet!r} is not in bridge_mappings"
                            f" (known: {known})")
    if net_type == "flat" and segment is not None:
        raise UserError("segment", "a flat network takes no segment")
    if net_type == "vlan":
        if isinstance(segment, bool) or not isinstance(segment, int) \
                or not MIN_VLAN <= segment <= MAX_VLAN:
            raise UserError("segment", f"a vlan network needs a segment in "
                            f"{MIN_VLAN}..{MAX_VLAN}")
    for other in existing.values():
        if other.type == net_type and other.physnet == physnet \
                and net_type != "local" and other.segment == segment:
            what = f"segment {segment}" if segment is not None else "flat"
            raise UserError("segment" if segment is not None else "physnet",
                            f"{physnet} {what} is already network "
                            f"{other.name!r}")
    return Network(name, net_type, physnet, segment,
                   allocate_local_vlan(existing.values()))


def allocate_local_vlan(networks: Iterable[Network]) -> int:
    used = {n.local_vlan for n in networks}
    for vlan in range(MIN_VLAN, MAX_VLAN + 1):
        if vlan not in used:
            return vlan
    raise UserError("name", f"all {MAX_VLAN} local VLANs are in use")


def _check_provider_fields(net_type: str, physnet: str | None,
                           segment: int | None) -> None:
    """flat: a physnet and no segment; vlan: a physnet and a segment in
    1..4094."""
    if physnet is None:
        raise UserError("physnet", f"a {net_type} network needs --physnet")
    validate_name(physnet, "physnet")
    if net_type == "flat" and segment is not None:
        raise UserError("segment", "a flat network takes no segment")
    if net_type == "vlan" and (isinstance(segment, bool) or
                               not isinstance(segment, int) or
                               not MIN_VLAN <= segment <= MAX_VLAN):
        raise UserError("segment", f"a vlan network needs a segment in "
                        f"{MIN_VLAN}..{MAX_VLAN}")


def validate_ovn_network(name: str, net_type: str, physnet: str | None,
                         segment: int | None,
                         existing: Mapping[str, Network]) -> Network:
    """Check a net-create request for the OVN backend. A geneve network is
    an overlay and takes neither physnet nor segment; flat and vlan
    networks reach a physnet through a localnet port, which each host maps
    to a bridge (its ovn-bridge-mappings)."""
    validate_network(name)
    if name in existing:
        raise UserError("name", f"network {name!r} exists")
    if net_type not in OVN_TYPES:
        raise UserError("type", f"with the OVN backend, must be one of "
                        f"{', '.join(OVN_TYPES)}")
    if net_type == "geneve":
        if physnet is not None or segment is not None:
            raise UserError("physnet" if physnet is not None else "segment",
                            "a geneve network takes no physnet or segment")
    else:
        _check_provider_fields(net_type, physnet, segment)
        for other in existing.values():
            if (other.type, other.physnet, other.segment) == \
                    (net_type, physnet, segment):
                what = f"segment {segment}" if segment is not None else "flat"
                raise UserError("segment" if segment is not None else
                                "physnet", f"{physnet} {what} is already "
                                f"network {other.name!r}")
    return Network(name, net_type, physnet, segment, None)
