"""The OVN southbound database, read for one fact: which chassis OVN's
activation strategy activated for a port in a live migration
(``Port_Binding options:additional-chassis-activated``).

Only the rows of the ports asked about are replicated (conditional
monitoring), with two columns: a cloud's SB holds a binding per port.
"""
from __future__ import annotations

import logging
from typing import Iterable

from virtio_ovs.ovsdb.connection import Connection, Deadline, LoopServed
from virtio_ovs.ovsdb.host.views import map_of, string_of

LOG = logging.getLogger(__name__)
DB_NAME = "OVN_Southbound"
TABLES = {"Port_Binding": ("logical_port", "options")}
ACTIVATED = "additional-chassis-activated"


class SouthboundActivations(LoopServed):
    """Owned by the OVN agent's driver; its connection is its own."""

    def __init__(self, remote: str, timeout: float, connect_timeout: float):
        self.remote = remote
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.conn = Connection(remote, timeout, TABLES, DB_NAME,
                               conditions={"Port_Binding": [False]})
        self.watched: frozenset[str] = frozenset()

    def watch(self, port_ids: Iterable[str]) -> None:
        """Replicate the bindings of these ports only (none: nothing)."""
        port_ids = frozenset(port_ids)
        if port_ids == self.watched and self.conn.started:
            return
        self.conn.start(Deadline(self.connect_timeout))
        self.conn.idl.cond_change("Port_Binding", [
            ["logical_port", "==", p] for p in sorted(port_ids)] or [False])
        self.watched = port_ids

    def activated(self) -> dict[str, str]:
        """Port -> the chassis OVN activated it on, of the watched ports
        whose binding says so."""
        if not self.conn.started:
            return {}
        found = {}
        for row in self.conn.rows("Port_Binding").values():
            chassis = map_of(row, "options").get(ACTIVATED)
            port = string_of(row, "logical_port")
            if chassis and port in self.watched:
                found[port] = chassis
        return found
