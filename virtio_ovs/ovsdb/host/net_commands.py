"""Commands on networks, bindings, bridges and the agent's status record."""
from __future__ import annotations

from typing import Mapping

from virtio_ovs.core import plug_request
from virtio_ovs.core.errors import EnvironmentFailure, UserError
from virtio_ovs.core.migration import incoming_key
from virtio_ovs.core.networks import (NONEXISTENT_PEER, Network,
                                      int_patch_name, network_key,
                                      phy_patch_name, validate_new_network)
from virtio_ovs.ovsdb.host.commands import HostTxnContext as TxnContext
from virtio_ovs.ovsdb.host.views import DbView, optional
from virtio_ovs.ovsdb.transaction import ADDED, UNCHANGED, UPDATED, update_map

AGENT_KEY = "virtio-ovs:agent"
STANDBY_KEY = "virtio-ovs:agent-standby"  # an agent waiting for the lock


def update_external_ids(row, wanted: Mapping[str, str | None]) -> bool:
    """Set (or, for None, remove) external_ids keys that differ."""
    return update_map(row, "external_ids", wanted)


def bound_ports(view: DbView, network: str) -> list[str]:
    return sorted(i.external_ids[plug_request.EXT_IFACE_ID] for i in view.guest_ifaces()
                  if i.external_ids.get(plug_request.EXT_NETWORK) == network)


class CreateNetwork:
    def __init__(self, name: str, net_type: str, physnet: str | None,
                 segment: int | None, mappings: Mapping[str, str]):
        self.args = (name, net_type, physnet, segment)
        self.mappings = mappings
        self.network: Network | None = None

    def run_idl(self, ctx: TxnContext) -> str:
        row = ctx.view.open_vswitch
        row.verify("external_ids")  # concurrent creates retry (TRY_AGAIN)
        self.network = validate_new_network(*self.args, ctx.view.networks,
                                            self.mappings)
        row.setkey("external_ids", network_key(self.network.name),
                   self.network.to_json())
        return ADDED


class DeleteNetwork:
    def __init__(self, name: str):
        self.name = name

    def run_idl(self, ctx: TxnContext) -> str:
        row = ctx.view.open_vswitch
        if network_key(self.name) not in row.external_ids:
            raise UserError("name", f"no network named {self.name!r}")
        ports = bound_ports(ctx.view, self.name)
        if ports:
            raise UserError("name", f"network {self.name!r} has bound ports: "
                            f"{', '.join(ports[:5])}"
                            f"{' ...' if len(ports) > 5 else ''}")
        row.verify("external_ids")
        row.delkey("external_ids", network_key(self.name))
        return UPDATED


class BindPort:
    """Set (or with network None, clear) a port's network and allowed IPs.
    ``ips`` None keeps the recorded IPs."""

    def __init__(self, port_id: str, network: str | None,
                 ips: tuple[str, ...] | None, local_vlans: bool = True):
        self.port_id = port_id
        self.network = network
        self.ips = ips
        self.local_vlans = local_vlans

    def run_idl(self, ctx: TxnContext) -> str:
        iface = ctx.view.ifaces_by_id.get(self.port_id)
        if iface is None or plug_request.EXT_ATTACHED_MAC not in iface.external_ids:
            raise UserError("port_id", f"no guest port with iface-id "
                            f"{self.port_id!r} (it needs iface-id and "
                            "attached-mac)")
        if self.local_vlans and self.network is not None \
                and self.network not in ctx.view.networks:
            raise UserError("network", f"no network named {self.network!r}")
        wanted = {plug_request.EXT_NETWORK: self.network}
        if self.ips is not None:
            wanted[plug_request.EXT_IPS] = ",".join(self.ips) or None
        return UPDATED if update_external_ids(iface, wanted) else UNCHANGED


class WriteAgentStatus:
    """Set (None: remove) an agent's status key, as a mutation."""

    def __init__(self, status_json: str | None, key: str = AGENT_KEY):
        self.status_json = status_json
        self.key = key

    def run_idl(self, ctx: TxnContext) -> str:
        changed = update_external_ids(ctx.view.open_vswitch,
                                      {self.key: self.status_json})
        return UPDATED if changed else UNCHANGED


class EnsureBridge:
    """The integration bridge: created if missing; fail_mode=secure, the
    configured datapath_type and OpenFlow 1.4 (bundles) in any case."""

    def __init__(self, name: str, datapath_type: str, protocols: list[str]):
        self.name = name
        self.datapath_type = datapath_type
        self.protocols = protocols

    def run_idl(self, ctx: TxnContext) -> str:
        bridge = ctx.view.bridges_by_name.get(self.name)
        if bridge is None:
            iface = ctx.insert("Interface")
            iface.name = self.name
            iface.type = "internal"
            port = ctx.insert("Port")
            port.name = self.name
            port.interfaces = [iface]
            bridge = ctx.insert("Bridge")
            bridge.name = self.name
            bridge.ports = [port]
            bridge.fail_mode = ["secure"]
            bridge.datapath_type = self.datapath_type
            bridge.protocols = sorted(self.protocols)
            ctx.view.open_vswitch.addvalue("bridges", bridge)
            ctx.new_bridges[self.name] = bridge
            return ADDED
        changed = configure_bridge(bridge, self.datapath_type, self.protocols)
        return UPDATED if changed else UNCHANGED


def configure_bridge(bridge, datapath_type: str, protocols: list[str]) -> bool:
    """fail_mode=secure, ``datapath_type``, ``protocols`` enabled."""
    changed = False
    if optional(bridge.fail_mode) != "secure":
        bridge.fail_mode = ["secure"]
        changed = True
    if (bridge.datapath_type or "system") != datapath_type:
        bridge.datapath_type = datapath_type
        changed = True
    if not set(protocols) <= set(bridge.protocols):
        bridge.protocols = sorted(set(bridge.protocols) | set(protocols))
        changed = True
    return changed


class CheckProviderBridge(EnsureBridge):
    """A mapped provider bridge must exist with br-int's datapath type; it
    is set to fail_mode=secure (the agent installs its NORMAL default).
    (The caller leaves out the bridges it knows it cannot wire: one that
    went away since is a failure to retry, not the user's error.)"""

    def __init__(self, physnet: str, name: str, datapath_type: str,
                 protocols: list[str]):
        super().__init__(name, datapath_type, protocols)
        self.physnet = physnet

    def run_idl(self, ctx: TxnContext) -> str:
        bridge = ctx.view.bridges_by_name.get(self.name)
        problem = provider_problem(bridge, self.name, self.datapath_type)
        if problem is not None:  # it changed since the caller looked
            raise EnvironmentFailure(f"physnet {self.physnet!r}: {problem}")
        changed = configure_bridge(bridge, self.datapath_type, self.protocols)
        return UPDATED if changed else UNCHANGED


def provider_problem(bridge, name: str, datapath_type: str) -> str | None:
    """Why the Bridge row ``bridge`` (None: there is none) named ``name``
    cannot be a provider bridge beside an integration bridge of
    ``datapath_type``; None when it can."""
    if bridge is None:
        return (f"bridge {name!r} does not exist; create it (ovs-vsctl "
                "add-br) and add its uplink")
    if (bridge.datapath_type or "system") != datapath_type:
        return (f"bridge {name!r} has datapath_type "
                f"{bridge.datapath_type or 'system'}, the integration bridge "
                f"{datapath_type}")
    return None


class EnsurePatchPort:
    """A patch port; ``connect`` False gives it a peer that does not exist
    (so it carries nothing until flows are in place)."""

    def __init__(self, bridge: str, name: str, peer: str, connect: bool):
        self.bridge = bridge
        self.name = name
        self.peer = peer if connect else NONEXISTENT_PEER
        self.connect = connect

    def run_idl(self, ctx: TxnContext) -> str:
        iface = ctx.view.ifaces_by_name.get(self.name)
        if iface is not None:
            current = iface.options.get("peer")
            if current == self.peer or (not self.connect and current):
                return UNCHANGED  # never disconnect a working pair
            iface.setkey("options", "peer", self.peer)
            return UPDATED
        iface = ctx.insert("Interface")
        iface.name = self.name
        iface.type = "patch"
        iface.options = {"peer": self.peer}
        port = ctx.insert("Port")
        port.name = self.name
        port.interfaces = [iface]
        ctx.add_port(self.bridge, port)
        return ADDED


class RecordVerdicts:
    """The agent's check results on each Interface: verdict (with
    ",queues-mismatch" when flagged) and enabled queue count."""

    def __init__(self, verdicts: Mapping[str, tuple[str, int | None]]):
        self.verdicts = verdicts

    def run_idl(self, ctx: TxnContext) -> str:
        outcome = UNCHANGED
        for port_id, (verdict, enabled) in self.verdicts.items():
            iface = ctx.view.ifaces_by_id.get(port_id)
            if iface is None:
                continue
            wanted = {plug_request.EXT_VERDICT: verdict,
                      plug_request.EXT_QUEUES_ENABLED:
                          None if enabled is None else str(enabled)}
            if update_external_ids(iface, wanted):
                outcome = UPDATED
        return outcome


class RecordMigrations:
    """The agent's record of each port's live migration."""

    def __init__(self, records: Mapping[str, str | None]):
        self.records = records

    def run_idl(self, ctx: TxnContext) -> str:
        outcome = UNCHANGED
        for port_id, record in self.records.items():
            iface = ctx.view.ifaces_by_id.get(port_id)
            if iface is not None and update_external_ids(
                    iface, {plug_request.EXT_MIGRATION: record}):
                outcome = UPDATED
        return outcome


class SetIncoming:
    """Port id -> the source host of a live migration expected here, or
    None to forget the expectation (standalone; core.migration)."""

    def __init__(self, records: Mapping[str, str | None]):
        self.records = records

    def run_idl(self, ctx: TxnContext) -> str:
        changed = update_external_ids(ctx.view.open_vswitch, {
            incoming_key(port_id): source
            for port_id, source in self.records.items()})
        return UPDATED if changed else UNCHANGED


def provider_commands(spec, physnet: str, bridge: str, connect: bool) -> list:
    """Check a provider bridge and make its patch pair with br-int."""
    protocols = list(spec.protocols)
    return [CheckProviderBridge(physnet, bridge, spec.datapath_type, protocols),
            EnsurePatchPort(spec.integration_bridge, int_patch_name(bridge),
                            phy_patch_name(bridge), connect),
            EnsurePatchPort(bridge, phy_patch_name(bridge),
                            int_patch_name(bridge), connect)]
