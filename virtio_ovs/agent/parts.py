"""The agent's parts, each with one job and its collaborators passed in:

- ``LockFollower``: active while this agent holds OVSDB's lock, standby
  while another does (and the standby's record);
- ``Heartbeat``: the agent's record in OVSDB, every ``report_interval``;
- ``Reconciler``: level-triggered reconcile through the backend's driver,
  with retries, the wiring clock and the reconcile metrics.

The switch watch (the OpenFlow connections kept open) belongs to the
standalone backend's driver (``backend.flow_driver.FlowDriver``).
"""
from __future__ import annotations

import logging
import os
import socket
import time
from typing import Callable

from virtio_ovs.backend.base import AgentDriver, Reconciled
from virtio_ovs.core.errors import UserError, VirtioOvsError
from virtio_ovs.core.roles import AgentRecords, Replica
from virtio_ovs.metrics import AgentMetrics, WiringClock

LOG = logging.getLogger(__name__)
# One active agent per OVSDB: the holder of this OVSDB lock. Others wait
# as hot standbys (their replica is current) and take over when the
# server frees the lock, i.e. when the active agent's connection closes.
LOCK_NAME = "virtio_ovs_agent"


class LockFollower:
    """Follows the OVSDB lock. ``on_role(role)`` is called on each change
    (to "active" or "standby"), after the role is set."""

    def __init__(self, replica: Replica, records: AgentRecords,
                 on_role: Callable[[str], None]):
        self.replica = replica
        self.records = records
        self.on_role = on_role
        self.role = "pending"  # "active" | "standby" | "pending"
        self.standby_since: float | None = None
        self.next_standby_report = 0.0

    def follow(self) -> bool:
        """Take over when the lock comes, stand by when another agent
        holds it; True while active."""
        state = self.replica.lock_state
        if state == "held" and self.role != "active":
            LOG.info("active: holding the OVSDB lock %s%s", LOCK_NAME,
                     "; taking over" if self.role == "standby" else "")
            if self.role == "standby":
                self._clear_standby_record()
            self.role = "active"
            self.on_role(self.role)
        elif state == "contended" and self.role != "standby":
            LOG.warning("standby: another agent holds the OVSDB lock %s "
                        "(see 'virtio-ovs-ctl status'); taking over when it "
                        "goes", LOCK_NAME)
            self.role = "standby"
            self.standby_since = time.time()
            self.next_standby_report = 0.0
            self.on_role(self.role)
        return self.role == "active"

    def report_standby(self, interval: float) -> None:
        """The standby's record, once per ``interval``."""
        if self.role != "standby" or time.monotonic() < self.next_standby_report:
            return
        self.next_standby_report = time.monotonic() + interval
        try:
            self.records.write_standby_status({
                "host": socket.gethostname(), "pid": os.getpid(),
                "since": round(self.standby_since or time.time(), 3),
                "heartbeat": round(time.time(), 3),
                "report_interval": interval})
        except VirtioOvsError as exc:
            LOG.warning("could not write the standby record: %s", exc)

    def _clear_standby_record(self) -> None:
        try:
            record = self.records.standby_status() or {}
            if record.get("pid") == os.getpid() and \
                    record.get("host") == socket.gethostname():
                self.records.write_standby_status(None)
        except VirtioOvsError as exc:
            LOG.warning("could not clear the standby record: %s", exc)


class Heartbeat:
    """The active agent's record (``virtio-ovs:agent``), written every
    interval; ``due`` tells the loop when."""

    def __init__(self, records: AgentRecords):
        self.records = records
        self.started_at = time.time()
        self.next_at = 0.0  # monotonic

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def now(self) -> None:
        """Make the next turn of the loop write it."""
        self.next_at = 0.0

    def schedule(self, interval: float) -> None:
        """The next one is due in ``interval`` seconds (set before this
        one's work: a slow canary check must not make it due again)."""
        self.next_at = time.monotonic() + interval

    def write(self, interval: float, facts: dict) -> bool:
        """True once written."""
        status = {"host": socket.gethostname(), "pid": os.getpid(),
                  "started_at": round(self.started_at, 3),
                  "heartbeat": round(time.time(), 3),
                  "report_interval": interval, **facts}
        try:
            self.records.write_agent_status(status)
        except VirtioOvsError as exc:
            LOG.warning("could not write the heartbeat: %s", exc)
            return False
        return True


class Reconciler:
    """Reconciles whenever the replica changed (level-triggered: what is
    computed depends on the state only, never on which event came). A
    failed reconcile is retried after ``retry_interval()`` seconds, whatever
    failed; only a UserError before the first sync (this host's
    configuration cannot work) is raised."""

    def __init__(self, replica: Replica, driver: AgentDriver,
                 metrics: AgentMetrics,
                 retry_interval: Callable[[], float]):
        self.replica = replica
        self.driver = driver
        self.metrics = metrics
        self.retry_interval = retry_interval
        self.wiring = WiringClock()
        self.dirty = True
        self.reconciled_seqno: tuple = ()  # the versions last reconciled
        self.retry_at: float | None = None
        self.last_reconcile: float | None = None
        self.last_reconcile_ms: float | None = None
        self.counts: dict[str, int] = {"ports": 0, "bound_ports": 0}
        self.unexpected: str | None = None  # the last one logged in full
        self.failing: str | None = None  # the failure warned about
        self.failures = 0  # tries since it started

    def note_changes(self) -> None:
        """The seqno, not run()'s result: updates that arrive while a
        transaction commits are processed inside the commit loop."""
        if self._seen() != self.reconciled_seqno:
            self.dirty = True

    def _seen(self) -> tuple[int, int]:
        """The versions a reconcile reads: the host's, the driver's own."""
        return self.replica.seqno, self.driver.changes()

    def resync(self) -> None:
        """Program everything again, as at start."""
        self.driver.resync()
        self.wiring.reset()
        self.dirty = True

    def due(self, now: float) -> bool:
        return self.dirty and (self.retry_at is None or now >= self.retry_at)

    @property
    def waiting(self) -> bool:
        """Nothing to do before a change or the retry time."""
        return not self.dirty or self.retry_at is not None

    def run(self) -> None:
        start = time.monotonic()
        seqno = self._seen()
        try:
            version = self.replica.wiring_version()
            if self.driver.up_to_date(version):
                # A verdict, a status or a heartbeat: nothing to compute.
                # (At 10,000 ports a full pass costs ~300 ms; each slice
                # of a check's verdicts would pay it.)
                self._done(seqno)
                return
            result = self.driver.reconcile(version)
        except UserError as exc:
            if self.last_reconcile is None:
                raise  # this host's configuration, at start: exit 1
            self._retry_later(exc)
            return
        except VirtioOvsError as exc:
            self._retry_later(exc)
            return
        except Exception as exc:  # noqa: BLE001 - data must not end it
            # A value no check foresaw (anyone may write OVSDB): the
            # traceback once, then the same retry as for a failure.
            if self.unexpected != repr(exc):
                LOG.exception("reconcile failed unexpectedly")
                self.unexpected = repr(exc)
            self._retry_later(exc)
            return
        self.unexpected = None
        if self.failing is not None:
            LOG.info("reconcile works again (after %d failed tries)",
                     self.failures)
            self.failing, self.failures = None, 0
        self._done(seqno)
        self._observe(result, start)

    def _retry_later(self, exc: Exception) -> None:
        """A warning when a failure starts or changes; its repeats, every
        retry_interval while it lasts, at debug level."""
        interval = self.retry_interval()
        why = str(exc).splitlines()[0] if str(exc) else repr(exc)
        level = logging.DEBUG if why == self.failing else logging.WARNING
        LOG.log(level, "reconcile failed, retrying in %ss: %s", interval, why)
        self.failing = why
        self.failures += 1
        self.retry_at = time.monotonic() + interval

    def _done(self, seqno: int) -> None:
        self.reconciled_seqno = seqno
        self.dirty = self._seen() != seqno
        self.retry_at = None

    def _observe(self, result: Reconciled, start: float) -> None:
        now = time.monotonic()
        self.counts = result.counts
        self.last_reconcile = time.time()
        self.last_reconcile_ms = round((now - start) * 1000, 2)
        for seconds in self.wiring.update(set(result.wanted),
                                          set(result.wired), start, now):
            self.metrics.wiring.observe(seconds)
        self.metrics.reconcile.observe(now - start)
        self.metrics.update(ports=tuple(result.ports), flows=result.flows,
                            last_sync=self.last_reconcile)
        LOG.debug("reconciled in %.1f ms", self.last_reconcile_ms)
