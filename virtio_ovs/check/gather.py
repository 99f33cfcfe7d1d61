"""Collect the evidence for each port and ask ``bypass`` for verdicts.

Sources: /proc (procfs), netlink (TAP queues), QMP (vhost-started),
OVSDB (vhost-user status and per-queue statistics) and ovs-appctl
(dpif-netdev/pmd-rxq-show).
"""
from __future__ import annotations

import struct
import subprocess
import time
from typing import Any, Callable

from virtio_ovs import paths
from virtio_ovs.check import procfs, queues as kernel_queues
from virtio_ovs.core import verdicts
from virtio_ovs.check.qmp import QmpClient, virtio_net_status
from virtio_ovs.core.verdicts import PortReport
from virtio_ovs.core import plug_request
from virtio_ovs.core.errors import VirtioOvsError
from virtio_ovs.core.port import GuestPort
from virtio_ovs.core.roles import Evidence

STATS_INTERVAL = 5  # ovs-vswitchd's default stats-update-interval, seconds
QmpSource = str | Callable[[], Any]  # a socket path, or a client factory


def pmd_rxq_show() -> tuple[dict[str, dict[int, dict]], str | None]:
    """ovs-vswitchd's PMD queue placement, or ({}, why it could not be
    read): a missing source must make verdicts unknown, not negative."""
    target = paths.vswitchd_ctl()
    if target is None:
        return {}, (f"no ovs-vswitchd control socket in {paths.ovs_rundir()}"
                    " (ovs-vswitchd.pid or ovs-vswitchd-dpdk.pid)")
    try:
        proc = subprocess.run(["ovs-appctl", "-t", target,
                               "dpif-netdev/pmd-rxq-show"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {}, f"ovs-appctl -t {target}: {exc}"
    if proc.returncode != 0:
        return {}, (f"ovs-appctl -t {target} dpif-netdev/pmd-rxq-show: "
                    f"{' '.join(proc.stderr.split()) or 'failed'}")
    return verdicts.parse_pmd_rxq_show(proc.stdout), None


class _TapProbe:
    """Evidence for one TAP port, with before/after traffic samples.

    A /proc entry that cannot be read leaves ``proc_error`` set: the
    verdicts it would have decided become unknown."""

    def __init__(self, record: GuestPort, scan: procfs.HolderScan,
                 proc: str):
        self.record = record
        self.holders = scan.index.get(record.name, {})
        self.proc = proc
        self.proc_error = None if self.holders else scan.error()
        self.pid = verdicts.main_holder(self.holders) if self.holders else None
        self.workers: list[int] = []
        self.vhost_fds: dict[int, list[int]] = {}
        self._before = None
        if self.pid is None:
            return
        try:
            self.workers = procfs.vhost_workers(self.pid, proc)
            self.vhost_fds = {p: procfs.vhost_net_fds(p, proc)
                              for p in self.holders}
            self._before = self._sample()
        except procfs.ProcUnreadable as exc:
            self.proc_error = str(exc)

    def _sample(self):
        threads = procfs.thread_samples(self.pid, self.proc)
        counters = kernel_queues.link_counters(self.record.name)
        return time.monotonic(), threads, counters

    def traffic(self) -> verdicts.TrafficDelta | None:
        if self._before is None or not procfs.process_alive(self.pid, self.proc):
            return None
        t0, threads0, counters0 = self._before
        try:
            t1, threads1, counters1 = self._sample()
        except procfs.ProcUnreadable:
            return None
        packets = sum(counters1[k] - counters0[k] for k in counters0)
        syscalls = vhost_cpu = 0
        for tid, after in threads1.items():
            before = threads0.get(tid)
            if before is None:
                continue
            if tid in self.workers:
                vhost_cpu += after.cpu_ticks - before.cpu_ticks
            else:
                syscalls += (after.syscr - before.syscr) + \
                    (after.syscw - before.syscw)
        return verdicts.TrafficDelta(round(t1 - t0, 2), packets, syscalls,
                                   vhost_cpu)

    def evidence(self, traffic: bool, qmp: QmpSource | None,
                 tap_queues: TapQueueState) -> verdicts.TapEvidence:
        states, netlink_error = tap_queues
        queues = states.get(self.record.name)
        ev = verdicts.TapEvidence(
            port_id=self.record.port_id, name=self.record.name,
            queues_expected=self.record.queues, holders=self.holders,
            holder_comm={p: procfs.comm(self.proc, p) for p in self.holders},
            enabled=queues.enabled if queues else None,
            disabled=queues.disabled if queues else None,
            vhost_fds=self.vhost_fds,
            vhost_workers={self.pid: self.workers} if self.pid else {},
            traffic=self.traffic() if traffic else None,
            proc_error=self.proc_error, netlink_error=netlink_error)
        if qmp is None:
            ev.qmp_note = "no QMP socket given (--qmp): vhost-started not checked"
        elif self.holders:
            _qmp_evidence(ev, qmp, self.record.mac)
        return ev


TapQueueState = tuple[dict[str, kernel_queues.TapQueues], "str | None"]


def tap_queue_state() -> TapQueueState:
    """Every TAP's queue counts from netlink, or ({}, why not)."""
    try:
        return kernel_queues.all_tap_queues(), None
    except (OSError, struct.error) as exc:  # socket errors, a bad answer
        return {}, f"netlink link dump failed: {exc}"


def _qmp_evidence(ev, qmp: QmpSource, mac: str) -> None:
    opener = (lambda: QmpClient(qmp)) if isinstance(qmp, str) else qmp
    try:
        with opener() as client:
            status = virtio_net_status(client, mac)
    except VirtioOvsError as exc:
        ev.qmp_error = str(exc)
        return
    if status is None:
        ev.qmp_note = ("x-query-virtio-status absent or no virtio-net NIC "
                       f"with MAC {mac}")
    ev.qmp_status = status


def _queue_counters(stats: dict[str, int]) -> dict[int, dict[str, int]]:
    queues: dict[int, dict[str, int]] = {}
    for key, value in stats.items():
        for direction in ("rx", "tx"):
            prefix = f"{direction}_q"
            if key.startswith(prefix) and key.endswith("_good_packets"):
                index = key[len(prefix):-len("_good_packets")]
                if index.isdigit():
                    queues.setdefault(int(index), {})[direction] = value
    return queues


def _delta(before: dict, after: dict) -> dict[int, dict[str, int]]:
    return {q: {d: after[q].get(d, 0) - before.get(q, {}).get(d, 0)
                for d in after[q]} for q in after}


def check_ports(records: list[GuestPort], db: Evidence,
                traffic_seconds: float = 0.0, qmp: QmpSource | None = None,
                proc: str = "/proc",
                rxq_show: Callable[[], tuple[dict, str | None]] =
                pmd_rxq_show,
                tap_queues: Callable[[], TapQueueState] = tap_queue_state
                ) -> list[PortReport]:
    """One report per record; traffic mode samples counters around a wait.

    ``proc``, ``rxq_show`` and ``tap_queues`` are the /proc root and the
    sources of ``pmd-rxq-show`` and of the TAP queue counts, so that
    recorded evidence replays a live host."""
    taps = [r for r in records if r.kind != plug_request.KIND_VHOST_USER]
    vhost_users = [r for r in records if r.kind == plug_request.KIND_VHOST_USER]
    scan = procfs.scan_holders(proc, procfs.own_netns(proc)) if taps \
        else procfs.HolderScan({}, {})
    probes = [_TapProbe(r, scan, proc) for r in taps]
    stats0 = db.vhost_user_counters() if vhost_users else {}
    if traffic_seconds > 0:
        time.sleep(traffic_seconds)
    queue_state = tap_queues() if taps else ({}, None)
    reports = [verdicts.decide_tap(p.evidence(traffic_seconds > 0, qmp,
                                            queue_state)) for p in probes]
    stale_note = (traffic_seconds > 0 and traffic_seconds < STATS_INTERVAL)
    if vhost_users:
        stats1 = db.vhost_user_counters() if traffic_seconds > 0 else stats0
        rxqs, rxq_error = rxq_show()
        for record in vhost_users:
            status, stats = stats1.get(record.name, ({}, {}))
            before = _queue_counters(stats0.get(record.name, ({}, {}))[1])
            after = _queue_counters(stats)
            ev = verdicts.VhostUserEvidence(
                record.port_id, record.name, record.queues, status,
                rxqs.get(record.name, {}),
                _delta(before, after) if traffic_seconds > 0 else None,
                rxq_error=rxq_error, counters_total=after)
            report = verdicts.decide_vhost_user(ev)
            if stale_note:
                report.evidence.append(
                    f"statistics: OVS refreshes them every {STATS_INTERVAL} s "
                    f"(stats-update-interval); a {traffic_seconds:g} s window "
                    "may show no change")
            reports.append(report)
    order = {r.port_id: i for i, r in enumerate(records)}
    return sorted(reports, key=lambda rep: order[rep.port_id])

