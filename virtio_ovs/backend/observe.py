"""The observe backend: another agent owns br-int and the network (neutron's
OVS agent on an ML2/OVS node, or any other controller). virtio-ovs writes
no flow, tag, network, group or binding: it plugs into OVS only (as os-vif
does), lists, shows, checks and watches every guest port, and the agent
counts them (``ObserveDriver``) for its heartbeat and metrics."""
from __future__ import annotations

import logging
from typing import Sequence

from virtio_ovs.backend.base import (Backend, CountingDriver,
                                     NetworkOwnedElsewhere)
from virtio_ovs.backend.plugger import Plugger
from virtio_ovs.core.outcomes import UnplugOutcome
from virtio_ovs.core.port import GuestPort
from virtio_ovs.core.roles import PortStore

LOG = logging.getLogger(__name__)
NOT_OURS = ("[agent] backend = observe: another agent owns the networks and "
            "br-int's flows (neutron's); networks, groups and bindings are "
            "made through it, and virtio-ovs writes none of them")


class ObserveBackend(NetworkOwnedElsewhere, Backend):
    name = "observe"
    refusal, refusal_field = NOT_OURS, "backend"

    def __init__(self, db: PortStore, plugger: Plugger):
        self.db = db
        self.plugger = plugger

    def unplug(self, port_ids: Sequence[str], if_exists: bool, wait: bool
               ) -> UnplugOutcome:
        return self.plugger.unplug(port_ids, if_exists, wait)

    def port_records(self) -> list[dict]:
        return [port.as_dict() for port in self.db.list_ports()]

    def port_record(self, port_id: str) -> dict | None:
        port = self.db.get_port(port_id)
        return port.as_dict() if port is not None else None

    def flow_bridges(self) -> set[str]:
        return set()  # the other agent's flows are not counted as ours


class ObserveDriver(CountingDriver):
    """A port is wired once ovs-vswitchd gave it an OpenFlow number (what
    the other agent's flows match on)."""

    def wired(self, port: GuestPort) -> bool:
        return bool(port.ofport)
