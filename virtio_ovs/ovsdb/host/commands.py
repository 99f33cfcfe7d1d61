"""OVSDB commands as small objects: ``check`` reads, ``run_idl`` writes.

``check`` raises UserError on anything the database rules out; ``run_idl``
calls it again (the replica may have changed since) and then stages its
writes in the transaction. Both return without side effects outside the
transaction.
"""
from __future__ import annotations

import os

from virtio_ovs import paths
from virtio_ovs.core import plug_request
from virtio_ovs.core.errors import UserError
from virtio_ovs.core.migration import incoming_key
from virtio_ovs.core.plug_request import Vif
from virtio_ovs.core.secgroups import EXT_SECURITY_GROUPS
from virtio_ovs.ovsdb.host.views import DbView, optional, optional_of
from virtio_ovs.ovsdb.transaction import ADDED, UNCHANGED, UPDATED, TxnContext

# Keys a re-plug may update; anything else on the Interface is left alone.
_REPLUG_KEYS = (plug_request.EXT_VM_ID, plug_request.EXT_NETWORK, plug_request.EXT_IPS,
                plug_request.EXT_QUEUES, plug_request.EXT_IFACE_STATUS,
                plug_request.EXT_TAP_OWNER, plug_request.EXT_TAP_GROUP,
                EXT_SECURITY_GROUPS)

MAX_OFPORT = 0xfeff  # OFPP_MAX (0xff00) is the first reserved number


class HostTxnContext(TxnContext):
    """A transaction on the host database; bridges it inserted by name."""

    def __init__(self, txn, view: DbView):
        super().__init__(txn, view)
        self.new_bridges: dict[str, object] = {}
        self._serialised = False
        self._ofports: set | None = None
        self._next_ofport = 1
        self._secure: dict[str, bool] = {}

    def is_secure(self, bridge_name: str) -> bool:
        """Is the replica's bridge ``bridge_name`` fail_mode secure? Read
        once per transaction: once a plug has added a port to it, the row
        has a pending mutation and each attribute read converts again."""
        if bridge_name not in self._secure:
            bridge = self.view.bridges_by_name.get(bridge_name)
            self._secure[bridge_name] = bridge is not None and \
                optional_of(bridge, "fail_mode") == "secure"
        return self._secure[bridge_name]

    def free_ofport(self) -> int | None:
        """An OpenFlow port number no Interface has or has requested (on
        any bridge, which is stricter than needed), for ``ofport_request``;
        None when none is left. Concurrent plugs cannot pick the same one:
        they are serialised (``serialise_ports``)."""
        if self._ofports is None:
            self._ofports = set()
            for iface in self.view.conn.rows("Interface").values():
                self._ofports.add(optional_of(iface, "ofport"))
                self._ofports.add(optional_of(iface, "ofport_request"))
        while self._next_ofport in self._ofports:
            self._next_ofport += 1
        if self._next_ofport > MAX_OFPORT:
            return None
        self._ofports.add(self._next_ofport)
        return self._next_ofport

    def serialise_ports(self) -> None:
        """Verify every bridge's ``ports``, as ovs-vsctl does: a concurrent
        plug or unplug that commits first makes this transaction TRY_AGAIN,
        and it is rebuilt (and re-checked) on the new contents. Without
        it, two plugs of one port id would both insert an Interface."""
        if not self._serialised:
            for bridge in self.view.bridges_by_name.values():
                bridge.verify("ports")
            self._serialised = True

    def add_port(self, bridge_name: str, port) -> None:
        """Attach ``port`` to a bridge, existing (a mutation, which does not
        conflict with other writers) or inserted in this transaction."""
        new_bridge = self.new_bridges.get(bridge_name)
        if new_bridge is not None:
            new_bridge.ports = list(new_bridge.ports) + [port]
        else:
            self.view.bridges_by_name[bridge_name].addvalue("ports", port)


def vhost_sock_dir(view: DbView) -> str:
    """OVS's vhost-sock-dir (other_config), relative to its run dir."""
    configured = view.open_vswitch.other_config.get("vhost-sock-dir", "")
    return os.path.normpath(os.path.join(paths.ovs_rundir(), configured))


def validate_groups_exist(view: DbView, names) -> None:
    for name in names:
        if name not in view.groups:
            raise UserError("security_groups", f"no security group named "
                            f"{name!r} (create it with sg-create)")


def remove_port(ctx: HostTxnContext, port) -> None:
    """Detach ``port`` from its bridge and delete it with its interfaces."""
    bridge = ctx.view.bridge_of_port.get(port.uuid)
    if bridge is not None:
        bridge.delvalue("ports", port)
    for iface in port.interfaces:
        iface.delete()
    port.delete()


class PlugVif:
    def __init__(self, vif: Vif, tap_created: bool = False,
                 local_vlans: bool = True):
        """``local_vlans`` False: the network lives elsewhere (OVN's NB) and
        the port gets no VLAN columns (ovn-controller owns br-int)."""
        self.vif = vif
        self.tap_created = tap_created
        self.local_vlans = local_vlans

    def _device_field(self) -> str:
        return "tap" if self.vif.kind == plug_request.KIND_TAP else "vhost_user"

    def validate(self, view: DbView) -> str:
        """ADDED when the port is new, else UPDATED/UNCHANGED."""
        vif = self.vif
        bridge = view.bridges_by_name.get(vif.bridge)
        if bridge is None:
            raise UserError("bridge", f"no bridge named {vif.bridge!r}")
        existing = view.ifaces_by_id.get(vif.port_id)
        if existing is not None:
            self._check_same_port(existing, view)
            self._check_network(view)
            return UPDATED if self._replug_changes(existing) else UNCHANGED
        other = view.ifaces_by_name.get(vif.name)
        if other is not None or vif.name in view.ports_by_name:
            owner = other.external_ids.get(plug_request.EXT_IFACE_ID) if other else None
            what = f"port id {owner!r}" if owner else "another port"
            raise UserError(self._device_field(),
                            f"{vif.name!r} is already in OVSDB as {what}")
        if vif.kind == plug_request.KIND_VHOST_USER:
            self._check_vhost_user(bridge, view)
        self._check_network(view)
        return ADDED

    def _check_network(self, view: DbView) -> None:
        if not self.local_vlans:
            return
        validate_groups_exist(view, self.vif.security_groups)
        if self.vif.network is not None and self._local_vlan(view) is None:
            raise UserError("network", f"no network named {self.vif.network!r}"
                            " (create it with net-create)")

    def _local_vlan(self, view: DbView) -> int | None:
        net = view.networks.get(self.vif.network or "")
        return net.local_vlan if net is not None else None

    def _check_same_port(self, iface, view: DbView) -> None:
        vif = self.vif
        mac = iface.external_ids.get(plug_request.EXT_ATTACHED_MAC)
        if mac != vif.mac:
            raise UserError("mac", f"port id {vif.port_id!r} is plugged with "
                            f"MAC {mac}, not {vif.mac}")
        if iface.name != vif.name or iface.type != vif.iface_type \
                or iface.options.get("vhost-server-path") != \
                vif.iface_options.get("vhost-server-path"):
            raise UserError(self._device_field(),
                            f"port id {vif.port_id!r} is plugged on device "
                            f"{iface.name!r} (type {iface.type or 'system'})")
        bridge = view.bridge_of_iface(iface)
        if bridge is not None and bridge.name != vif.bridge:
            raise UserError("bridge", f"port id {vif.port_id!r} is plugged "
                            f"on bridge {bridge.name!r}")

    def _check_vhost_user(self, bridge, view: DbView) -> None:
        if bridge.datapath_type != "netdev":
            raise UserError("bridge", f"vhost-user needs a bridge with "
                            f"datapath_type=netdev; {bridge.name!r} has "
                            f"{bridge.datapath_type or 'system'!r}")
        if self.vif.iface_type not in view.open_vswitch.iface_types:
            raise UserError("vhost_user", f"this OVS does not support "
                            f"interface type {self.vif.iface_type} (is it "
                            "OVS-DPDK with dpdk-init=true?)")
        if self.vif.iface_type == plug_request.VHOST_IFACE_TYPES["client"]:
            directory = vhost_sock_dir(view)
            if os.path.dirname(self.vif.socket or "") != directory:
                raise UserError("vhost_user", "with QEMU as the client OVS "
                                "serves the socket in its vhost-sock-dir; "
                                f"use {directory}/{self.vif.name}")

    def _wanted_ids(self) -> dict[str, str]:
        ids = self.vif.external_ids()
        if self.tap_created:
            ids[plug_request.EXT_TAP_CREATED] = "true"
        return ids

    def _replug_changes(self, iface) -> dict[str, str | None]:
        """external_ids (and "mtu") a re-plug would change."""
        wanted = self._wanted_ids()
        changes: dict[str, str | None] = {
            key: wanted.get(key) for key in _REPLUG_KEYS
            if iface.external_ids.get(key) != wanted.get(key)}
        # Set, never cleared: a racing plug may have committed the row of
        # a TAP this plug created (it then saw the TAP as pre-existing).
        if self.tap_created and \
                iface.external_ids.get(plug_request.EXT_TAP_CREATED) != "true":
            changes[plug_request.EXT_TAP_CREATED] = "true"
        if self.vif.mtu is not None and optional(iface.mtu_request) != self.vif.mtu:
            changes["mtu"] = str(self.vif.mtu)
        affinity = iface.other_config.get("pmd-rxq-affinity")
        if self.vif.pmd_rxq_affinity is not None and \
                affinity != self.vif.pmd_rxq_affinity:
            changes["pmd-rxq-affinity"] = self.vif.pmd_rxq_affinity
        return changes

    def run_idl(self, ctx: HostTxnContext) -> str:
        outcome = self.validate(ctx.view)
        if outcome == ADDED:
            ctx.serialise_ports()
            self._insert(ctx)
        elif outcome == UPDATED:
            self._update(ctx.view.ifaces_by_id[self.vif.port_id])
        if self.vif.migrating_from is not None:
            key = incoming_key(self.vif.port_id)
            if ctx.view.open_vswitch.external_ids.get(key) != \
                    self.vif.migrating_from:
                ctx.view.open_vswitch.setkey("external_ids", key,
                                             self.vif.migrating_from)
                outcome = UPDATED if outcome == UNCHANGED else outcome
        return outcome

    def _update(self, iface) -> None:
        for key, value in self._replug_changes(iface).items():
            if key == "mtu":
                iface.mtu_request = [self.vif.mtu]
            elif key == "pmd-rxq-affinity":
                iface.setkey("other_config", key, value)
            elif value is None:
                iface.delkey("external_ids", key)
            else:
                iface.setkey("external_ids", key, value)

    def _insert(self, ctx: HostTxnContext) -> None:
        vif = self.vif
        # Numbered now, so that the agent can install the port's flows as
        # soon as the row appears, not once ovs-vswitchd has numbered it.
        # (Chosen before inserting: python-ovs lists a row being inserted
        # among the table's rows, without its columns.)
        ofport = ctx.free_ofport()
        iface = ctx.insert("Interface")
        iface.name = vif.name
        iface.external_ids = self._wanted_ids()
        # A new row has the defaults already ("" and {}); each column set
        # costs python-ovs a conversion (~10 us: 1000 VIFs, 30 ms).
        for column, value in (("type", vif.iface_type),
                              ("options", vif.iface_options),
                              ("other_config", vif.iface_other_config)):
            if value:
                setattr(iface, column, value)
        if vif.mtu is not None:
            iface.mtu_request = [vif.mtu]
        if ofport is not None:
            iface.ofport_request = [ofport]
        port = ctx.insert("Port")
        port.name = vif.name
        port.interfaces = [iface]
        secure = ctx.is_secure(vif.bridge)
        # On the agent's secure bridge, flows alone forward (explicit,
        # per network: network/flows.py), so the Port's VLAN columns stay
        # empty: ovs-vswitchd reconfigures nothing more for them. On a
        # bridge without flows (fail_mode standalone: NORMAL switches),
        # the dead VLAN isolates the port (neutron's way).
        if self.local_vlans and not secure:
            port.tag, port.vlan_mode, port.trunks = plug_request.vlan_columns(
                plug_request.DEAD_VLAN)
        ctx.add_port(vif.bridge, port)


class UnplugVif:
    def __init__(self, port_id: str, if_exists: bool):
        self.port_id = port_id
        self.if_exists = if_exists

    def validate(self, view: DbView):
        iface = view.ifaces_by_id.get(self.port_id)
        if iface is None:
            if self.if_exists:
                return None
            raise UserError("port_id", f"no port with iface-id {self.port_id!r}")
        port = view.port_of_iface.get(iface.uuid)
        if port is not None and len(port.interfaces) > 1:
            raise UserError("port_id", f"port {port.name!r} has several "
                            "interfaces; remove it with ovs-vsctl")
        return iface

    def run_idl(self, ctx: HostTxnContext) -> str:
        iface = self.validate(ctx.view)
        if iface is None:
            return UNCHANGED
        ctx.serialise_ports()
        port = ctx.view.port_of_iface.get(iface.uuid)
        if port is not None:
            remove_port(ctx, port)  # its only interface is ``iface``
        else:
            iface.delete()
        return UPDATED


class DeletePorts:
    """Roll back a plug: remove the ports it inserted (by Port uuid)."""

    def __init__(self, port_uuids: list):
        self.port_uuids = port_uuids

    def run_idl(self, ctx: HostTxnContext) -> str:
        ports = ctx.view.conn.rows("Port")
        outcome = UNCHANGED
        for uuid in self.port_uuids:
            port = ports.get(uuid)
            if port is not None:
                remove_port(ctx, port)
                outcome = UPDATED
        return outcome
