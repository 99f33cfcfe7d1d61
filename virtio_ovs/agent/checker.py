"""The agent's periodic data-plane check: every port's bypass verdict into
OVSDB, and a log line when a port goes through QEMU or loses queues.

It runs off the reaction path: the reconcile never waits for it.
"""
from __future__ import annotations

import logging

from virtio_ovs.check.gather import check_ports
from virtio_ovs.check.verdicts import THROUGH_QEMU, PortReport
from virtio_ovs.core.errors import VirtioOvsError
from virtio_ovs.core.port import GuestPort
from virtio_ovs.ovsdb.host.api import HostDb

LOG = logging.getLogger("virtio-ovs-agent")


class DataPlaneChecker:
    def __init__(self, db: HostDb):
        self.db = db
        self.verdicts: dict[str, str] = {}  # port id -> last label

    def run(self, qmp_socket_template: str | None) -> None:
        """Check every port (per VM, with its QMP socket when the template
        gives one) and record the verdicts; failures are logged."""
        try:
            reports = []
            for vm, group in _by_vm(self.db.list_ports()).items():
                qmp = (qmp_socket_template.format(vm=vm)
                       if qmp_socket_template and vm else None)
                reports += check_ports(group, self.db, qmp=qmp)
            verdicts = {}
            for report in reports:
                label = report.verdict + (",queues-mismatch"
                                          if report.queues_mismatch else "")
                verdicts[report.port_id] = (label, report.queues_enabled)
                self._log_change(report, label)
            self.db.record_verdicts(verdicts)
        except VirtioOvsError as exc:
            LOG.warning("data-plane check failed: %s", exc)

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
