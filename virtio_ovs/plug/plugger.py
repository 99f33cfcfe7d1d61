"""Plugging VIFs: validate everything, create missing TAPs, write once.

Order matters for "nothing half-written": the request is checked against
the model, then against the host and OVSDB, and only then are TAPs created
and the single transaction committed. ``_rollback`` is the one routine
that undoes a failed plug, rows first, TAPs last: a TAP is deleted only
when no committed row uses it.
"""
from __future__ import annotations

from typing import Protocol

from virtio_ovs.core import model
from virtio_ovs.core.model import Vif
from virtio_ovs.core.port import GuestPort
from virtio_ovs.ovsdb.host.api import HostDb, PlugOutcome
from virtio_ovs.plug.taps import check_host


class Taps(Protocol):
    def create(self, name: str, queues: int, owner: int | None = None,
               group: int | None = None) -> None: ...

    def delete(self, name: str) -> None: ...


class Plugger:
    def __init__(self, db: HostDb, taps: Taps, check_host=check_host):
        self.db = db
        self.taps = taps
        self.check_host = check_host

    def plug(self, vifs: list[Vif], wait: bool = True,
             local_vlans: bool = True, outcome: PlugOutcome | None = None,
             missing: list[Vif] | None = None) -> PlugOutcome:
        """Plug ``vifs`` all or nothing; see ``HostDb.plug``. ``outcome``
        is filled as the plug goes, also when it raises. ``missing``: what
        ``check`` returned, when the caller ran it already."""
        outcome = PlugOutcome() if outcome is None else outcome
        if missing is None:
            missing = self.check(vifs, local_vlans)
        created: list[str] = []
        try:
            for vif in missing:
                self.taps.create(vif.name, vif.queues, vif.owner, vif.group)
                created.append(vif.name)
            self.db.plug(vifs, outcome, wait, frozenset(created), local_vlans)
        except BaseException:
            self._rollback(outcome, created)
            raise
        return outcome

    def check(self, vifs: list[Vif], local_vlans: bool = True) -> list[Vif]:
        """Everything a plug checks before it writes (model, host, OVSDB);
        returns the VIFs whose TAP does not exist yet."""
        model.check_unique(vifs)
        missing = [vif for vif in vifs if not self.check_host(vif)]
        self.db.check_plug(vifs, local_vlans)
        return missing

    def _rollback(self, outcome: PlugOutcome, created: list[str]) -> None:
        """Undo a failed plug.

        - Not committed: delete the TAPs this plug created.
        - Committed, and ovs-vswitchd refused an interface: delete the rows
          it inserted, then its TAPs. If deleting the rows fails (or is
          interrupted), the TAPs stay: rows may still use them.
        - Committed, and the wait for ovs-vswitchd was cut short (timeout,
          Ctrl-C): keep everything; the database has the change.
        """
        if outcome.committed:
            if not outcome.refused:
                return
            self.db.remove_ports(outcome)
        for name in reversed(created):
            self.taps.delete(name)

    def unplug(self, port_id: str, if_exists: bool = False,
               wait: bool = True) -> GuestPort | None:
        """Remove the port; delete its TAP only if virtio-ovs created it."""
        port = self.db.unplug(port_id, if_exists, wait)
        if port is not None and port.tap_created:
            self.taps.delete(port.name)
        return port
