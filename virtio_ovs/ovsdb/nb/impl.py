"""NorthboundDb on the python-ovs IDL: thin glue over the commands."""
from __future__ import annotations

from typing import Iterable

from virtio_ovs.core.records import Invalid
from virtio_ovs.core.migration import Placement
from virtio_ovs.core.networks import Network
from virtio_ovs.ovsdb.connection import Connection, Deadline, LoopServed
from virtio_ovs.core.secgroups import Rule, SecurityGroup
from virtio_ovs.core.ovn_acls import DROP_GROUP
from virtio_ovs.ovsdb.nb import commands as nbc
from virtio_ovs.ovsdb.nb import sg_commands as sgc
from virtio_ovs.ovsdb.nb.api import (NEUTRON_NETWORK_NAME, OURS, LspSpec,
                                     LspState, NorthboundDb, owner_of)
from virtio_ovs.ovsdb.transaction import ADDED, UNCHANGED, TxnContext, transact

DB_NAME = "OVN_Northbound"


class IdlNorthboundDb(LoopServed, NorthboundDb):
    def __init__(self, remote: str, timeout: float,
                 connect_timeout: float | None = None):
        """``connect_timeout``: the bound on the first connection (default
        ``timeout``): an agent's event loop must not wait long for an NB
        that is not there."""
        self.remote = remote
        self.timeout = timeout
        self.connect_timeout = connect_timeout or timeout
        self.conn = Connection(remote, timeout, nbc.NB_TABLES, DB_NAME)

    def _view(self) -> nbc.NbView:
        self.conn.start(Deadline(self.connect_timeout))
        self.conn.run()
        return nbc.NbView(self.conn)

    def commit(self, *cmds) -> list[str]:
        return self._transact(list(cmds))

    def _transact(self, cmds: list) -> list[str]:
        deadline = Deadline(self.timeout)
        self.conn.start(deadline)
        return transact(self.conn, cmds, deadline,
                        lambda txn: TxnContext(txn, nbc.NbView(self.conn))
                        ).outcomes

    def create_network(self, name, net_type, physnet, segment) -> Network:
        command = nbc.CreateNetwork(name, net_type, physnet, segment)
        self._transact([command])
        assert command.network is not None
        return command.network

    def delete_network(self, name: str) -> None:
        self._transact([nbc.DeleteNetwork(name)])

    def list_networks(self) -> list[Network]:
        nets = self._view().networks
        return [nets[name] for name in sorted(nets)]

    def validate_ports(self, specs: Iterable[LspSpec]) -> None:
        view = self._view()
        for spec in specs:
            nbc.validate_port(view, spec)

    def validate_not_foreign(self, port_ids: Iterable[str]) -> None:
        view = self._view()
        for port_id in port_ids:
            nbc.validate_foreign_port(view, port_id)

    def ensure_ports(self, specs: Iterable[LspSpec]) -> list[str]:
        specs = list(specs)
        outcomes = self._transact([nbc.EnsurePort(s) for s in specs])
        return [s.port_id for s, o in zip(specs, outcomes) if o == ADDED]

    def delete_ports(self, port_ids: Iterable[str]) -> list[str]:
        port_ids = list(port_ids)
        outcomes = self._transact([nbc.DeletePort(p) for p in port_ids])
        return [p for p, o in zip(port_ids, outcomes) if o != UNCHANGED]

    def port_states(self, port_ids: Iterable[str] | None = None
                    ) -> dict[str, LspState]:
        view = self._view()
        if port_ids is None:
            lsps = [lsp for name in view.networks
                    for lsp in view.switches[name].ports
                    if lsp.type != "localnet"]
        else:
            lsps = [lsp for p in port_ids if (lsp := view.lsps.get(p))]
        states = {}
        for lsp in lsps:
            switch = view.switch_of_lsp.get(lsp.uuid)
            states[lsp.name] = LspState(
                lsp.name, switch.name if switch is not None else None,
                lsp.up == [True], owner_of(lsp.external_ids),
                switch.external_ids.get(NEUTRON_NETWORK_NAME)
                if switch is not None else None)
        return states

    def placements(self, port_ids: Iterable[str] | None = None
                   ) -> dict[str, Placement]:
        view = self._view()
        names = view.lsps if port_ids is None else port_ids
        return {p: nbc.placement_of(lsp) for p in names
                if (lsp := view.lsps.get(p)) is not None
                and owner_of(lsp.external_ids) == OURS}

    def create_group(self, name: str) -> SecurityGroup:
        command = sgc.CreateGroup(name)
        self._transact([command])
        assert command.group is not None
        return command.group

    def delete_group(self, name: str) -> None:
        self._transact([sgc.DeleteGroup(name)])

    def list_groups(self) -> list[SecurityGroup]:
        groups = sgc.port_groups(self._view())
        return [sgc.group_of(groups[name]) for name in sorted(groups)
                if name != DROP_GROUP]

    def invalid_rules(self) -> list[Invalid]:
        return sgc.invalid_rules(self._view())

    def add_rule(self, group: str, rule: Rule) -> bool:
        return self._transact([sgc.AddRule(group, rule)])[0] != UNCHANGED

    def delete_rule(self, group: str, rule_id: str) -> None:
        self._transact([sgc.DeleteRule(group, rule_id)])

    def set_port_groups(self, port_id: str, names: tuple[str, ...]) -> bool:
        return self._transact([sgc.SetPortGroups(port_id, names)])[0] != \
            UNCHANGED

    def start(self) -> None:
        self.conn.start()
