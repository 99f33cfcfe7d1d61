"""The host's state as the agent needs it, read from the IDL replica."""
from __future__ import annotations

from typing import Mapping

from virtio_ovs import model
from virtio_ovs.errors import UserError
from virtio_ovs.flows import GuestPort, HostState, PatchPorts
from virtio_ovs.networks import parse_networks
from virtio_ovs.ovsdb.views import DbView, optional


def int_patch_name(bridge: str) -> str:
    return f"int-{bridge}"


def phy_patch_name(bridge: str) -> str:
    return f"phy-{bridge}"


def _ofport(iface) -> int | None:
    ofport = optional(iface.ofport) if iface is not None else None
    return ofport if ofport is not None and ofport > 0 else None


def guest_ports(view: DbView, bridge_name: str) -> tuple[GuestPort, ...]:
    """Ports on the bridge whose Interface has iface-id and attached-mac,
    whoever plugged them."""
    bridge = view.bridges_by_name.get(bridge_name)
    if bridge is None:
        return ()
    ports = []
    for port in bridge.ports:
        for iface in port.interfaces:
            ids = iface.external_ids
            if model.EXT_IFACE_ID not in ids or model.EXT_ATTACHED_MAC not in ids:
                continue
            ports.append(_guest_port(port.name, _ofport(iface), ids))
    return tuple(sorted(ports, key=lambda p: p.name))


def _guest_port(name: str, ofport: int | None, ids: Mapping[str, str]
                ) -> GuestPort:
    """A port whose ids do not validate (someone else wrote them) stays
    isolated: no network, so no flows that could let it through."""
    ips = ids.get(model.EXT_IPS)
    try:
        mac = model.validate_mac(ids[model.EXT_ATTACHED_MAC])
        allowed = model.validate_ips(ips.split(",") if ips else [])
        network = model.validate_network(ids.get(model.EXT_NETWORK))
    except UserError:
        return GuestPort(name, ofport, ids[model.EXT_ATTACHED_MAC], (), None)
    return GuestPort(name, ofport, mac, allowed, network)


def read_host_state(view: DbView, integration_bridge: str,
                    mappings: Mapping[str, str]) -> HostState:
    patches = {}
    for physnet, bridge in mappings.items():
        int_ofport = _ofport(view.ifaces_by_name.get(int_patch_name(bridge)))
        phy_ofport = _ofport(view.ifaces_by_name.get(phy_patch_name(bridge)))
        if int_ofport and phy_ofport:
            patches[physnet] = PatchPorts(physnet, bridge, int_ofport, phy_ofport)
    return HostState(
        integration_bridge=integration_bridge,
        ports=guest_ports(view, integration_bridge),
        networks=parse_networks(view.conn.the_open_vswitch().external_ids),
        patches=patches)
