"""The standalone backend: networks and groups in this host's OVSDB, local
VLANs; the agent's own OpenFlow flows are ``flow_driver.FlowDriver``'s."""
from __future__ import annotations

import logging
from typing import Mapping, Sequence

from virtio_ovs.backend.base import Backend
from virtio_ovs.backend.plugger import Plugger
from virtio_ovs.core.records import Invalid
from virtio_ovs.core.plug_request import Vif
from virtio_ovs.core.networks import Network
from virtio_ovs.core.outcomes import PlugOutcome, UnplugOutcome
from virtio_ovs.core.secgroups import Rule, SecurityGroup
from virtio_ovs.ovsdb.host.api import BindPort, HostDb, SetPortGroups

LOG = logging.getLogger(__name__)
UNCHANGED = "unchanged"


class StandaloneBackend(Backend):
    name = "standalone"
    record_columns = ("migrating",)

    def __init__(self, db: HostDb, plugger: Plugger,
                 mappings: Mapping[str, str], integration_bridge: str):
        self.db = db
        self.plugger = plugger
        self.mappings = dict(mappings)
        self.integration_bridge = integration_bridge

    def create_network(self, name, net_type, physnet, segment) -> Network:
        return self.db.create_network(name, net_type, physnet, segment,
                                      self.mappings)

    def delete_network(self, name: str) -> None:
        self.db.delete_network(name)

    def list_networks(self) -> list[Network]:
        return self.db.list_networks()

    def invalid_records(self) -> list[Invalid]:
        return self.db.invalid_records()

    def plug(self, vifs: list[Vif], wait: bool) -> PlugOutcome:
        """With ``wait``, a live migration's destination (``migrating_from``)
        returns once the agent has gated and wired it."""
        outcome = self.plugger.plug(vifs, wait)
        arriving = [vif.port_id for vif in vifs if vif.migrating_from]
        if wait and arriving:
            self.db.wait_gated(arriving)
        return outcome

    def unplug(self, port_ids: Sequence[str], if_exists: bool, wait: bool
               ) -> UnplugOutcome:
        return self.plugger.unplug(port_ids, if_exists, wait)

    def bind(self, port_id: str, network: str, ips, wait: bool,
             groups: tuple[str, ...] | None = None) -> bool:
        """The groups and the binding in one transaction: the port is
        filtered from the moment it is bound, and a refused binding
        leaves the groups as they were."""
        commands: list = [BindPort(port_id, network, ips)]
        if groups is not None:
            commands.insert(0, SetPortGroups(port_id, groups))
        return any(o != UNCHANGED for o in self.db.commit(*commands))

    def unbind(self, port_id: str) -> None:
        self.db.bind_port(port_id, None, None)

    def expect_migration(self, port_id: str, source: str | None) -> bool:
        if self.db.incoming().get(port_id) == source:
            return False
        self.db.set_incoming({port_id: source})
        return True

    def port_records(self) -> list[dict]:
        return [_record(port) for port in self.db.list_ports()]

    def port_record(self, port_id: str) -> dict | None:
        port = self.db.get_port(port_id)
        return _record(port) if port is not None else None

    def create_group(self, name: str) -> SecurityGroup:
        return self.db.create_group(name)

    def delete_group(self, name: str) -> None:
        self.db.delete_group(name)

    def list_groups(self) -> list[SecurityGroup]:
        return self.db.list_groups()

    def add_rule(self, group: str, rule: Rule) -> bool:
        return self.db.add_rule(group, rule)

    def delete_rule(self, group: str, rule_id: str) -> None:
        self.db.delete_rule(group, rule_id)

    def set_port_groups(self, port_id: str, names: tuple[str, ...]) -> bool:
        return self.db.set_port_groups(port_id, names)

    def flow_bridges(self) -> set[str]:
        ours = {self.integration_bridge, *self.mappings.values()}
        return ours & self.db.bridge_names()


def _record(port) -> dict:
    """A port's record; ``migrating``: "SRC -> HERE" while it is gated for
    a live migration's arrival (backend/arrival.py)."""
    return {**port.as_dict(), "migrating": port.migrating}
