"""The agent's periodic data-plane check: every port's bypass verdict into
OVSDB, and a log line when a port goes through QEMU or loses queues.

It runs off the reaction path: the reconcile never waits for it.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable, Protocol

from virtio_ovs.check.gather import check_ports
from virtio_ovs.core.verdicts import THROUGH_QEMU, PortReport
from virtio_ovs.core.errors import VirtioOvsError
from virtio_ovs.core.port import GuestPort
from virtio_ovs.core.validate import qmp_socket_path
from virtio_ovs.core.roles import AgentRecords, Evidence, PortStore

LOG = logging.getLogger(__name__)
# Verdicts written per transaction. Each written row comes back to every
# IDL client, the agent's included, which converts it again: the first
# check of 1000 ports wrote 1000 rows at once, and a plug arriving then
# waited about 400 ms (bench/agent_scale.py). The loop reacts to changes
# between slices, and a change that arrives during one waits for its
# commit: 100 rows took ~30 ms at 1,000 ports, 25 take ~8 ms.
VERDICT_SLICE = 25


class CheckedDb(PortStore, AgentRecords, Evidence, Protocol):
    """What the checker reads (ports, counters) and writes (verdicts)."""


class DataPlaneChecker:
    """The evidence is gathered in a worker thread (/proc, netlink, QMP and
    a short-lived OVSDB connection for statistics: seconds with thousands
    of TAPs); the event loop only snapshots the ports before and records
    the verdicts after, so it keeps reacting meanwhile. ``wake()`` tells
    the loop that a result is ready."""

    def __init__(self, db: CheckedDb, wake,
                 publish: Callable[[list[PortReport]], None],
                 trim: Callable[[], None] = lambda: None):
        self.db = db
        self.trim = trim  # after each check: memory its evidence held
        self.wake = wake
        self.publish = publish  # every finished check's reports
        self.verdicts: dict[str, str] = {}  # port id -> last label
        self._thread: threading.Thread | None = None
        self._result: list[PortReport] | VirtioOvsError | None = None
        self._recorded: dict[str, tuple] = {}
        self._unwritten: list[tuple[str, tuple]] = []

    @property
    def busy(self) -> bool:
        return self._thread is not None

    @property
    def writing(self) -> bool:
        """Verdicts of a finished check are still to be written."""
        return bool(self._unwritten)

    def start(self, qmp_socket_template: str | None) -> None:
        """Snapshot the ports (main thread) and gather their evidence in
        the background; a check still running is not started twice."""
        if self.busy or self.writing:
            return
        ports = self.db.list_ports()
        # What OVSDB holds now: only verdicts that differ are written, so
        # a check that changes nothing costs no transaction.
        self._recorded = {p.port_id: (p.verdict, p.queues_enabled)
                          for p in ports}
        groups = _by_vm(ports)
        self._thread = threading.Thread(
            target=self._gather, args=(groups, qmp_socket_template),
            name="data-plane-check", daemon=True)
        self._thread.start()

    def _gather(self, groups, template: str | None) -> None:
        try:
            reports = []
            for vm, group in groups.items():
                qmp = qmp_socket_path(template, vm) if template and vm \
                    else None
                reports += check_ports(group, self.db, qmp=qmp)
            self._result = reports
        except VirtioOvsError as exc:
            self._result = exc
        self.wake()

    def collect(self) -> None:
        """Take a finished check's results and write the next slice of its
        verdicts (main thread: the IDL). Call again while ``writing``."""
        if self._unwritten:
            self._write_slice()
            return
        if self._thread is None or self._thread.is_alive():
            return
        self._thread.join()
        self._thread, result, self._result = None, self._result, None
        if isinstance(result, VirtioOvsError) or result is None:
            LOG.warning("data-plane check failed: %s", result)
            return
        self.publish(result)
        self.trim()
        verdicts = {}
        live = {report.port_id for report in result}
        for gone in set(self.verdicts) - live:  # bounded by the live ports
            del self.verdicts[gone]
        for report in result:
            label = report.verdict + (",queues-mismatch"
                                      if report.queues_mismatch else "")
            if self._recorded.get(report.port_id) != \
                    (label, report.queues_enabled):
                verdicts[report.port_id] = (label, report.queues_enabled)
            self._log_change(report, label)
        self._unwritten = sorted(verdicts.items())
        if self._unwritten:
            self._write_slice()

    def _write_slice(self) -> None:
        batch = dict(self._unwritten[:VERDICT_SLICE])
        del self._unwritten[:VERDICT_SLICE]
        try:
            self.db.record_verdicts(batch)
        except VirtioOvsError as exc:
            LOG.warning("could not record the verdicts: %s", exc)
            self._unwritten.clear()  # the next check writes them

    def _log_change(self, report: PortReport, label: str) -> None:
        previous = self.verdicts.get(report.port_id)
        self.verdicts[report.port_id] = label
        if label == previous:
            return
        if report.verdict == THROUGH_QEMU or report.queues_mismatch:
            LOG.warning("port %s (%s): %s: %s; queues expected %s, enabled %s",
                        report.port_id, report.name, label, report.reason,
                        report.queues_expected, report.queues_enabled)
        else:
            LOG.info("port %s (%s): %s", report.port_id, report.name, label)


def _by_vm(ports: list[GuestPort]) -> dict[str | None, list[GuestPort]]:
    groups: dict = {}
    for port in ports:
        groups.setdefault(port.vm, []).append(port)
    return groups
