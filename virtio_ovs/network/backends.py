"""Networks and bindings, on either backend. The CLI talks to these.

- ``StandaloneBackend``: networks in this host's OVSDB, local VLANs, and
  the agent's own OpenFlow flows.
- ``OvnBackend``: networks are logical switches in the OVN northbound
  database, shared by every host; a bound port is a Logical_Switch_Port
  (name = port id) with port security, and ovn-controller installs it.

Writes to the NB and to the host's OVSDB are ordered so that a failure
never leaves a half state: the LSP is written first, then the OVS side;
if the OVS side fails before it committed (or its rows were rolled back),
the LSPs this call created are deleted again. Unplug and unbind go the
other way round: OVS side first, then the LSP.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from virtio_ovs.core.errors import UserError
from virtio_ovs.core.model import Vif
from virtio_ovs.core.networks import Network
from virtio_ovs.core.port import GuestPort
from virtio_ovs.core.secgroups import Rule, SecurityGroup
from virtio_ovs.ovsdb.host.api import HostDb, PlugOutcome
from virtio_ovs.ovsdb.nb.api import LspSpec, NorthboundDb
from virtio_ovs.plug.plugger import Plugger


class StandaloneBackend:
    name = "standalone"

    def __init__(self, db: HostDb, plugger: Plugger,
                 mappings: dict[str, str]):
        self.db = db
        self.plugger = plugger
        self.mappings = mappings

    def create_network(self, name, net_type, physnet, segment) -> Network:
        return self.db.create_network(name, net_type, physnet, segment,
                                      self.mappings)

    def delete_network(self, name: str) -> None:
        self.db.delete_network(name)

    def list_networks(self) -> list[Network]:
        return self.db.list_networks()

    def plug(self, vifs: list[Vif], wait: bool) -> PlugOutcome:
        return self.plugger.plug(vifs, wait)

    def unplug(self, port_ids: Sequence[str], if_exists: bool, wait: bool
               ) -> list[GuestPort]:
        return self.plugger.unplug(port_ids, if_exists, wait)

    def bind(self, port_id: str, network: str, ips, wait: bool,
             groups: tuple[str, ...] | None = None) -> bool:
        """Groups first: the port is filtered from the moment it is bound."""
        changed = False
        if groups is not None:
            changed = self.db.set_port_groups(port_id, groups)
        return self.db.bind_port(port_id, network, ips) or changed

    def unbind(self, port_id: str) -> None:
        self.db.bind_port(port_id, None, None)

    def port_records(self) -> list[dict]:
        return [port.to_json() for port in self.db.list_ports()]

    def port_record(self, port_id: str) -> dict | None:
        port = self.db.get_port(port_id)
        return port.to_json() if port is not None else None

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


class OvnBackend:
    name = "ovn"

    def __init__(self, db: HostDb, nb: NorthboundDb, plugger: Plugger):
        self.db = db
        self.nb = nb
        self.plugger = plugger

    def create_network(self, name, net_type, physnet, segment) -> Network:
        return self.nb.create_network(name, net_type, physnet, segment)

    def delete_network(self, name: str) -> None:
        self.nb.delete_network(name)

    def list_networks(self) -> list[Network]:
        return self.nb.list_networks()

    def plug(self, vifs: list[Vif], wait: bool) -> PlugOutcome:
        """LSPs first (one NB transaction), then the OVS ports (one
        transaction); with ``wait``, returns once ovn-controller has
        installed every bound port."""
        specs = [_spec(vif.port_id, vif.network, vif.mac, vif.ips, vif.vm,
                       vif.security_groups) for vif in vifs if vif.network]
        plan = self.plugger.check(vifs, local_vlans=False)
        self.nb.check_ports(specs)
        created = self.nb.ensure_ports(specs) if specs else []
        outcome = PlugOutcome()
        try:
            self.plugger.plug(vifs, wait, local_vlans=False, outcome=outcome,
                              plan=plan)
        except BaseException:
            if not outcome.committed or outcome.refused:
                self.nb.delete_ports(created)
            raise
        if wait and specs:
            self.db.wait_ovn_installed(s.port_id for s in specs)
        return outcome

    def unplug(self, port_ids: Sequence[str], if_exists: bool, wait: bool
               ) -> list[GuestPort]:
        ports = self.plugger.unplug(port_ids, if_exists, wait)
        self.nb.delete_ports(port_ids)
        return ports

    def bind(self, port_id: str, network: str, ips, wait: bool,
             groups: tuple[str, ...] | None = None) -> bool:
        port = self.db.get_port(port_id)
        if port is None:
            raise UserError("port_id", f"no guest port with iface-id "
                            f"{port_id!r} (it needs iface-id and attached-mac)")
        if not port.valid:
            raise UserError("port_id", f"port {port_id!r} has an attached-mac"
                            " or addresses that do not validate")
        spec = _spec(port_id, network, port.mac,
                     port.ips if ips is None else ips, port.vm, groups)
        self.nb.check_ports([spec])
        created = self.nb.ensure_ports([spec])
        try:
            changed = self.db.bind_port(port_id, network, ips,
                                        local_vlans=False)
            if groups is not None:
                self.db.set_port_groups(port_id, groups, check=False)
        except BaseException:
            self.nb.delete_ports(created)
            raise
        if wait:
            self.db.wait_ovn_installed([port_id])
        return changed or bool(created)

    def unbind(self, port_id: str) -> None:
        self.db.bind_port(port_id, None, None, local_vlans=False)
        self.nb.delete_ports([port_id])

    def port_records(self) -> list[dict]:
        """Each guest port with its OVN state: ``ovn_switch`` and
        ``ovn_up`` from the NB, ``ovn_installed`` from this host."""
        states = self.nb.port_states()
        return [_with_state(port, states) for port in self.db.list_ports()]

    def port_record(self, port_id: str) -> dict | None:
        port = self.db.get_port(port_id)
        return (_with_state(port, self.nb.port_states())
                if port is not None else None)

    # ------------------------------------------------- security groups
    def create_group(self, name: str) -> SecurityGroup:
        return self.nb.create_group(name)

    def delete_group(self, name: str) -> None:
        self.nb.delete_group(name)

    def list_groups(self) -> list[SecurityGroup]:
        return self.nb.list_groups()

    def add_rule(self, group: str, rule: Rule) -> bool:
        return self.nb.add_rule(group, rule)

    def delete_rule(self, group: str, rule_id: str) -> None:
        self.nb.delete_rule(group, rule_id)

    def set_port_groups(self, port_id: str, names: tuple[str, ...]) -> bool:
        """The NB (what OVN enforces) first; then, if the port is on this
        host, the label on its OVS Interface that list and show display.
        It works from any host, as the networks do."""
        changed = self.nb.set_port_groups(port_id, names)
        if self.db.get_port(port_id) is not None:
            self.db.set_port_groups(port_id, names, check=False)
        return changed


def _with_state(port: GuestPort, states: dict) -> dict:
    record = port.to_json()
    state = states.get(port.port_id)
    record["ovn_switch"] = state.network if state else None
    record["ovn_up"] = state.up if state else False
    return record


def _spec(port_id: str, network: str | None, mac: str,
          ips: Iterable[str], vm: str | None,
          groups: tuple[str, ...] | None) -> LspSpec:
    assert network is not None
    return LspSpec(port_id, network, mac, tuple(ips), vm, groups)
