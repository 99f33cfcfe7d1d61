"""API implemented on the python-ovs IDL: thin glue over the commands."""
from __future__ import annotations

import json
from typing import Iterable

from virtio_ovs.model import Vif
from virtio_ovs.networks import Network
from virtio_ovs.ovsdb import commands, net_commands
from virtio_ovs.ovsdb.api import API, PlugResult, VifRecord
from virtio_ovs.ovsdb.connection import Connection, Deadline
from virtio_ovs.ovsdb.transaction import raise_vswitchd_errors, run_commands
from virtio_ovs.ovsdb.views import TABLES, DbView, record_from_iface


def connect(remote: str, timeout: float) -> "OvsdbApi":
    return OvsdbApi(Connection(remote, timeout, TABLES))


class OvsdbApi(API):
    def __init__(self, conn: Connection):
        self.conn = conn

    def _deadline(self) -> Deadline:
        return Deadline(self.conn.timeout)

    def check_plug(self, vifs: Iterable[Vif]) -> list[str]:
        self.conn.start()
        view = DbView(self.conn)
        return [vif.port_id for vif in vifs
                if commands.PlugVif(vif).check(view) == commands.ADDED]

    def plug(self, vifs: Iterable[Vif], wait: bool = True,
             created_taps: frozenset[str] = frozenset()) -> PlugResult:
        deadline = self._deadline()
        self.conn.start(deadline)
        vifs = list(vifs)
        cmds = [commands.PlugVif(vif, vif.name in created_taps) for vif in vifs]
        result = run_commands(self.conn, cmds, deadline, wait)
        if result.failed_interfaces:
            run_commands(self.conn, [commands.DeletePorts(result.new_port_uuids)],
                         self._deadline(), wait=False)
            raise_vswitchd_errors(result.failed_interfaces)
        by_outcome: dict[str, list[str]] = {
            commands.ADDED: [], commands.UPDATED: [], commands.UNCHANGED: []}
        for vif, outcome in zip(vifs, result.outcomes):
            by_outcome[outcome].append(vif.port_id)
        return PlugResult(plugged=by_outcome[commands.ADDED],
                          updated=by_outcome[commands.UPDATED],
                          unchanged=by_outcome[commands.UNCHANGED])

    def unplug(self, port_id: str, if_exists: bool = False,
               wait: bool = True) -> VifRecord | None:
        deadline = self._deadline()
        self.conn.start(deadline)
        record = self.get_vif(port_id)
        run_commands(self.conn, [commands.UnplugVif(port_id, if_exists)],
                     deadline, wait)
        return record

    def list_vifs(self) -> list[VifRecord]:
        self.conn.start()
        view = DbView(self.conn)
        records = [record_from_iface(i, view) for i in view.guest_ifaces()]
        return sorted(records, key=lambda r: r.port_id)

    def get_vif(self, port_id: str) -> VifRecord | None:
        self.conn.start()
        view = DbView(self.conn)
        iface = view.ifaces_by_id.get(port_id)
        return record_from_iface(iface, view) if iface is not None else None

    def _run(self, command) -> str:
        deadline = self._deadline()
        self.conn.start(deadline)
        return run_commands(self.conn, [command], deadline,
                            wait=False).outcomes[0]

    def create_network(self, name, net_type, physnet, segment, mappings):
        command = net_commands.CreateNetwork(name, net_type, physnet, segment,
                                             mappings)
        self._run(command)
        assert command.network is not None
        return command.network

    def delete_network(self, name: str) -> None:
        self._run(net_commands.DeleteNetwork(name))

    def list_networks(self) -> list[Network]:
        self.conn.start()
        nets = DbView(self.conn).networks
        return [nets[name] for name in sorted(nets)]

    def bind_port(self, port_id, network, ips) -> bool:
        outcome = self._run(net_commands.BindPort(port_id, network, ips))
        return outcome != commands.UNCHANGED

    def agent_status(self) -> dict | None:
        self.conn.start()
        text = self.conn.the_open_vswitch().external_ids.get(
            net_commands.AGENT_KEY)
        try:
            return json.loads(text) if text else None
        except ValueError:
            return None
