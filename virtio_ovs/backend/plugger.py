"""Plugging VIFs: validate everything, create missing TAPs, write once.

Order matters for "nothing half-written": the request is checked against
the request's own rules, then against the host and OVSDB, and only then are TAPs created
and the single transaction committed. ``_rollback`` is the one routine
that undoes a failed plug, rows first, TAPs last: a TAP is deleted only
when no committed row uses it.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, ContextManager, Protocol, Sequence

import logging

from virtio_ovs.core import plug_request
from virtio_ovs.core.errors import VirtioOvsError
from virtio_ovs.core.plug_request import Vif
from virtio_ovs.core.outcomes import Committed, PlugOutcome, UnplugOutcome
from virtio_ovs.core.port import GuestPort
from virtio_ovs.core.roles import PortStore
from virtio_ovs.kernel.taps import ABSENT, OURS

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class HostPlan:
    """What ``Plugger.validate`` found on the host: the VIFs whose TAP must be
    created, and the existing TAPs virtio-ovs created (a killed run's),
    which keep ``tap-created``."""

    missing: list[Vif]
    ours: frozenset[str] = frozenset()


class Taps(Protocol):
    def create(self, taps: Sequence[Vif], created: list[str]) -> None:
        """Create the VIFs' TAPs; each name goes to ``created`` once its
        TAP exists, also when this raises (kernel/taps.py's TapManager)."""

    def bring_up(self, name: str) -> None:
        """An existing TAP up and promiscuous, as ``create`` leaves one
        (kernel/taps.py's TapManager)."""

    def delete(self, name: str) -> None: ...

    def delete_many(self, names: list[str]) -> None: ...

    def is_marked(self, name: str) -> bool:
        """Does ``name`` carry virtio-ovs's mark (it created the TAP)?"""

    def guard(self, exclusive: bool, timeout: float
              ) -> ContextManager[None]:
        """The lock between plugs (shared) and gc (exclusive) on the
        marked TAPs (kernel/taps.py's TapLock)."""


class Plugger:
    def __init__(self, db: PortStore, taps: Taps,
                 validate_host: Callable[[Vif], str], dry_run: bool = False,
                 lock_timeout: float = 30.0):
        """``dry_run``: validate everything, create no TAP (the database
        is opened for a dry run too, and writes nothing).
        ``lock_timeout``: how long to wait for a running gc."""
        self.db = db
        self.taps = taps
        self.validate_host = validate_host
        self.dry_run = dry_run
        self.lock_timeout = lock_timeout

    def plug(self, vifs: list[Vif], wait: bool = True,
             local_vlans: bool = True, outcome: PlugOutcome | None = None,
             plan: HostPlan | None = None) -> PlugOutcome:
        """Plug ``vifs`` all or nothing; see ``HostDb.plug``. ``outcome``
        is filled as the plug goes, also when it raises. ``plan``: what
        ``validate`` returned, when the caller ran it already."""
        outcome = PlugOutcome() if outcome is None else outcome
        if plan is None:
            plan = self.validate(vifs, local_vlans)
        if self.dry_run or not (plan.missing or plan.ours):
            return self._plug(vifs, wait, local_vlans, outcome, plan)
        with self.taps.guard(exclusive=False, timeout=self.lock_timeout):
            return self._plug(vifs, wait, local_vlans, outcome,
                              self._recheck(vifs, plan))

    def _recheck(self, vifs: list[Vif], plan: HostPlan) -> HostPlan:
        """Under the lock: a marked TAP this plug would adopt that gc
        deleted since ``validate`` is created again."""
        ours = frozenset(n for n in plan.ours if self.taps.is_marked(n))
        if ours == plan.ours:
            return plan
        gone = plan.ours - ours
        LOG.info("plug: TAPs removed meanwhile (gc), creating them again: "
                 "%s", " ".join(sorted(gone)))
        return HostPlan(plan.missing + [v for v in vifs if v.name in gone],
                        ours)

    def _plug(self, vifs: list[Vif], wait: bool, local_vlans: bool,
              outcome: PlugOutcome, plan: HostPlan) -> PlugOutcome:
        created: list[str] = []
        try:
            for name in [] if self.dry_run else sorted(plan.ours):
                self.taps.bring_up(name)  # a killed plug's may be down
            if not self.dry_run:
                self.taps.create(plan.missing, created)
            LOG.debug("plug: %d VIFs, %d TAPs created", len(vifs),
                      len(created))
            self.db.plug(vifs, outcome, wait, plan.ours | frozenset(created),
                         local_vlans)
        except BaseException:
            self._rollback(outcome, created)
            raise
        return outcome

    def validate(self, vifs: list[Vif], local_vlans: bool = True) -> HostPlan:
        """Everything a plug checks before it writes (the request, the host, OVSDB)."""
        plug_request.validate_unique(vifs)
        found = {vif.name: self.validate_host(vif) for vif in vifs}
        self.db.validate_plug(vifs, local_vlans)
        return HostPlan([vif for vif in vifs if found[vif.name] == ABSENT],
                        frozenset(n for n, f in found.items() if f == OURS))

    def _rollback(self, outcome: PlugOutcome, created: list[str]) -> None:
        """Undo a failed plug.

        - Not committed: delete the TAPs this plug created.
        - Committed, and ovs-vswitchd refused an interface: delete the rows
          it inserted, then its TAPs. If deleting the rows fails (or is
          interrupted), the TAPs stay: rows may still use them.
        - Committed, and the wait for ovs-vswitchd was cut short (timeout,
          Ctrl-C): keep everything; the database has the change.

        A TAP is deleted only when the database, asked afterwards, has no
        row that uses it (a concurrent plug's row, or this plug's when the
        outcome of its commit was lost with the connection). When the
        database cannot answer, the TAPs stay: they are marked, and gc
        removes them once no row uses them.
        """
        LOG.debug("plug rollback: committed %s, refused %s, TAPs created %s",
                  outcome.committed.value, sorted(outcome.refused), created)
        if outcome.committed:
            if not outcome.refused:
                return
            LOG.info("rolling back: removing the %d ports ovs-vswitchd "
                     "refused an interface of", len(outcome.new_ports))
            self.db.remove_ports(outcome)
        if not created:
            return
        try:
            in_use = self.db.devices_in_use(created)
        except VirtioOvsError as exc:
            LOG.warning("rollback keeps the TAPs it created (marked, for "
                        "gc): OVSDB cannot say which are in use: %s", exc)
            return
        unused = [n for n in reversed(created) if n not in in_use]
        LOG.debug("rollback: deleting TAPs %s", unused)
        self.taps.delete_many(unused)

    def unplug(self, port_ids: Sequence[str], if_exists: bool = False,
               wait: bool = True) -> UnplugOutcome:
        """Remove the ports (one transaction); delete each TAP virtio-ovs
        created once their rows are gone: also when the wait for
        ovs-vswitchd timed out after the commit, or the commit's answer was
        lost and read back as committed."""
        outcome = UnplugOutcome()
        try:
            self.db.unplug(port_ids, if_exists, wait, outcome)
        finally:
            if outcome.committed is Committed.YES:
                self._delete_created(outcome.ports)
        return outcome

    def _delete_created(self, ports: list[GuestPort]) -> None:
        """The TAPs virtio-ovs created: recorded on the row, or marked on
        the device. (Two plugs racing for one new TAP: the one that found
        it created but not yet marked plugged it as someone else's, and its
        row may be the one that won.)"""
        self.taps.delete_many([p.name for p in ports if p.tap_created
                               or self.taps.is_marked(p.name)])
