"""Northbound commands as small objects (see ovsdb/transaction.py).

Retries: a transaction is built again when its answer was lost (in a
clustered NB, the leader went away: python-ovs reconnects to the new
leader and reports TRY_AGAIN), although the first attempt may have been
applied. A command that creates or deletes a named record remembers what
it staged, and when the fresh replica shows exactly that, it reports what
it did instead of "exists" or "no such": each write is done, and said,
once. (Ports, bindings and groups memberships are idempotent anyway.)
"""
from __future__ import annotations

import functools
import ipaddress

from virtio_ovs.core.errors import UserError
from virtio_ovs.core.migration import Placement, wanted
from virtio_ovs.core.networks import Network, validate_ovn_network
from virtio_ovs.core.validate import is_digits
from virtio_ovs.ovsdb.connection import Connection
from virtio_ovs.ovsdb.nb.api import (LSP_MARK, MARK, OURS, LspSpec, not_ours,
                                     owner_of)
from virtio_ovs.ovsdb.nb.sg_commands import memberships, set_memberships
from virtio_ovs.ovsdb.transaction import (ADDED, UNCHANGED, UPDATED,
                                          TxnContext, update_map)

# The columns virtio-ovs reads or writes.
NB_TABLES = {
    "Logical_Switch": ("name", "ports", "external_ids"),
    "Logical_Switch_Port": ("name", "type", "addresses", "port_security",
                            "options", "tag_request", "up", "external_ids"),
    "Port_Group": ("name", "ports", "acls", "external_ids"),
    "ACL": ("direction", "priority", "match", "action", "external_ids"),
}
K_TYPE, K_PHYSNET, K_SEGMENT = ("virtio-ovs:type", "virtio-ovs:physnet",
                                "virtio-ovs:segment")
K_VM = "virtio-ovs:vm"  # on a Logical_Switch_Port
REQUESTED_CHASSIS = "requested-chassis"  # LSP options, read by ovn-northd
ACTIVATION_STRATEGY = "activation-strategy"


def localnet_name(network: str) -> str:
    return f"ln-{network}"


class NbView:
    """Indexes over the NB replica, each built on first use."""

    def __init__(self, conn: Connection):
        self.conn = conn

    @functools.cached_property
    def switches(self) -> dict:
        """Every Logical_Switch by name (first one wins)."""
        result: dict = {}
        for ls in self.conn.rows("Logical_Switch").values():
            result.setdefault(ls.name, ls)
        return result

    @functools.cached_property
    def networks(self) -> dict[str, Network]:
        return {name: network_of(ls) for name, ls in self.switches.items()
                if ls.external_ids.get(MARK) == name}

    @functools.cached_property
    def lsps(self) -> dict:
        return {lsp.name: lsp for lsp in
                self.conn.rows("Logical_Switch_Port").values()}

    @functools.cached_property
    def switch_of_lsp(self) -> dict:
        return {lsp.uuid: ls for ls in self.conn.rows("Logical_Switch")
                .values() for lsp in ls.ports}


def network_of(ls) -> Network:
    ids = ls.external_ids
    segment = ids.get(K_SEGMENT)
    return Network(ls.name, ids.get(K_TYPE, "geneve"), ids.get(K_PHYSNET),
                   int(segment) if segment and is_digits(segment) and len(segment) <= 4
                   else None,
                   None)


class CreateNetwork:
    def __init__(self, name: str, net_type: str, physnet: str | None,
                 segment: int | None):
        self.args = (name, net_type, physnet, segment)
        self.network: Network | None = None

    def run_idl(self, ctx: TxnContext) -> str:
        view: NbView = ctx.view
        if self.network is not None and \
                view.networks.get(self.network.name) == self.network:
            return ADDED  # a retry (see the module docstring)
        net = validate_ovn_network(*self.args, view.networks)
        if net.name in view.switches:
            raise UserError("name", f"a logical switch named {net.name!r} "
                            "exists (not created by virtio-ovs)")
        ls = ctx.insert("Logical_Switch")
        ls.name = net.name
        ids = {MARK: net.name, K_TYPE: net.type}
        if net.physnet:
            ids[K_PHYSNET] = net.physnet
            ls.ports = [self._localnet(ctx, net)]
        if net.segment is not None:
            ids[K_SEGMENT] = str(net.segment)
        ls.external_ids = ids
        self.network = net
        return ADDED

    @staticmethod
    def _localnet(ctx: TxnContext, net: Network):
        lsp = ctx.insert("Logical_Switch_Port")
        lsp.name = localnet_name(net.name)
        lsp.type = "localnet"
        lsp.addresses = ["unknown"]
        lsp.options = {"network_name": net.physnet}
        lsp.external_ids = {LSP_MARK: "true"}
        if net.segment is not None:
            lsp.tag_request = [net.segment]
        return lsp


class DeleteNetwork:
    def __init__(self, name: str):
        self.name = name
        self.staged = False

    def run_idl(self, ctx: TxnContext) -> str:
        view: NbView = ctx.view
        if self.staged and self.name not in view.switches:
            return UPDATED  # a retry (see the module docstring)
        if self.name not in view.networks:
            switch = view.switches.get(self.name)
            if switch is not None:
                raise UserError("name", not_ours(
                    "logical switch", self.name,
                    owner_of(switch.external_ids, MARK)))
            raise UserError("name", f"no network named {self.name!r}")
        ls = view.switches[self.name]
        guests = sorted(p.name for p in ls.ports if p.type != "localnet")
        if guests:
            raise UserError("name", f"network {self.name!r} has bound ports: "
                            f"{', '.join(guests[:5])}"
                            f"{' ...' if len(guests) > 5 else ''}")
        for lsp in ls.ports:
            lsp.delete()
        ls.delete()
        self.staged = True
        return UPDATED


def lsp_addresses(spec: LspSpec) -> list[str]:
    """"MAC IP IP...": OVN's addresses and port_security entry."""
    ips = [str(ipaddress.ip_interface(ip).ip) for ip in spec.ips]
    return [" ".join([spec.mac, *ips])]


def validate_port(view: NbView, spec: LspSpec):
    """The port's existing LSP (ours) or None; UserError if the network is
    unknown or someone else's, or the port is someone else's."""
    if spec.network not in view.networks:
        switch = view.switches.get(spec.network)
        if switch is not None:
            raise UserError("network", not_ours(
                "logical switch", spec.network,
                owner_of(switch.external_ids, MARK)))
        raise UserError("network", f"no network named {spec.network!r} in "
                        "the OVN northbound database (net-create it)")
    validate_foreign_port(view, spec.port_id)
    return view.lsps.get(spec.port_id)


def validate_foreign_port(view: NbView, port_id: str) -> None:
    """UserError when ``port_id`` names an LSP that virtio-ovs did not
    create (neutron's, an operator's): virtio-ovs writes nothing of it."""
    lsp = view.lsps.get(port_id)
    if lsp is not None and owner_of(lsp.external_ids) != OURS:
        raise UserError("port_id", not_ours("logical switch port", port_id,
                                            owner_of(lsp.external_ids)))


def spec_of(view: NbView, lsp) -> LspSpec | None:
    """One of our LSPs as the spec that would make it again (None when it
    is on no switch of ours)."""
    switch = view.switch_of_lsp.get(lsp.uuid)
    if switch is None or switch.name not in view.networks:
        return None
    parts = (lsp.addresses[0] if lsp.addresses else "").split()
    return LspSpec(lsp.name, switch.name, parts[0] if parts else "",
                   tuple(parts[1:]), lsp.external_ids.get(K_VM),
                   memberships(view, lsp), placement=placement_of(lsp))


def placement_of(lsp) -> Placement:
    return Placement.parse(lsp.options.get(REQUESTED_CHASSIS),
                           lsp.options.get(ACTIVATION_STRATEGY))


def set_placement(lsp, placement: Placement) -> bool:
    """Write ``placement`` into the LSP's options; True if it changed."""
    return update_map(lsp, "options", {
        REQUESTED_CHASSIS: placement.requested,
        ACTIVATION_STRATEGY: placement.strategy})


class SetPlacement:
    """Move one of our ports' placement from ``expected`` to ``wanted``
    (an agent's decision, core.migration.wanted). Verified: if another
    host changed it meanwhile, the transaction is built again and this
    command leaves it (the agent decides again from the new state)."""

    def __init__(self, port_id: str, wanted: Placement, expected: Placement):
        self.port_id = port_id
        self.wanted = wanted
        self.expected = expected

    def run_idl(self, ctx: TxnContext) -> str:
        lsp = ctx.view.lsps.get(self.port_id)
        if lsp is None or owner_of(lsp.external_ids) != OURS or \
                placement_of(lsp) != self.expected:
            return UNCHANGED
        lsp.verify("options")
        return UPDATED if set_placement(lsp, self.wanted) else UNCHANGED


class EnsurePort:
    def __init__(self, spec: LspSpec):
        self.spec = spec
        self.prior: LspSpec | None = None  # the LSP before, if ours

    def undo(self, outcome: str) -> list:
        """The commands that put back what this one changed: delete the
        LSP it added, or make the one it changed as it was."""
        if outcome == ADDED:
            return [DeletePort(self.spec.port_id)]
        if outcome == UPDATED and self.prior is not None:
            return [EnsurePort(self.prior)]
        return []

    def run_idl(self, ctx: TxnContext) -> str:
        view: NbView = ctx.view
        lsp = validate_port(view, self.spec)
        self.prior = spec_of(view, lsp) if lsp is not None else None
        switch = view.switches[self.spec.network]
        addresses = lsp_addresses(self.spec)
        ids = {LSP_MARK: "true"}
        if self.spec.vm:
            ids[K_VM] = self.spec.vm
        if lsp is not None and view.switch_of_lsp.get(lsp.uuid) is switch:
            groups_changed = self._groups(ctx, lsp)
            placed = set_placement(lsp, self._placement(placement_of(lsp)))
            if (list(lsp.addresses), list(lsp.port_security),
                    dict(lsp.external_ids)) == (addresses, addresses, ids):
                return UPDATED if groups_changed or placed else UNCHANGED
            lsp.addresses = lsp.port_security = addresses
            lsp.external_ids = ids
            return UPDATED
        outcome = ADDED
        if lsp is not None:  # on another of our networks: move it
            view.switch_of_lsp[lsp.uuid].delvalue("ports", lsp)
            lsp.delete()
            outcome = UPDATED
        new = ctx.insert("Logical_Switch_Port")
        new.name = self.spec.port_id
        new.addresses = new.port_security = addresses
        new.external_ids = ids
        placement = self._placement(Placement())
        if placement.requested:
            new.options = {k: v for k, v in (
                (REQUESTED_CHASSIS, placement.requested),
                (ACTIVATION_STRATEGY, placement.strategy)) if v}
        switch.addvalue("ports", new)
        self._groups(ctx, new)
        return outcome

    def _placement(self, current: Placement) -> Placement:
        """The spec's exact placement, or where a plug on the spec's
        chassis puts the port (core.migration.wanted: claim it, or start a
        migration towards it); without a chassis, as it is."""
        if self.spec.placement is not None:
            return self.spec.placement
        if self.spec.chassis is None:
            return current
        return wanted(current, self.spec.chassis, True, None,
                      self.spec.strategy)

    def _groups(self, ctx: TxnContext, lsp) -> bool:
        """The port's security groups (None: keep them as they are)."""
        if self.spec.security_groups is None:
            return False
        return set_memberships(ctx, lsp, self.spec.security_groups)


class DeletePort:
    def __init__(self, port_id: str):
        self.port_id = port_id

    def run_idl(self, ctx: TxnContext) -> str:
        view: NbView = ctx.view
        lsp = view.lsps.get(self.port_id)
        if lsp is None or lsp.external_ids.get(LSP_MARK) != "true":
            return UNCHANGED
        switch = view.switch_of_lsp.get(lsp.uuid)
        if switch is not None:
            switch.delvalue("ports", lsp)
        lsp.delete()
        return UPDATED
