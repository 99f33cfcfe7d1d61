"""Does a port's data plane bypass QEMU? Verdicts from evidence. Pure.

vhost-net TAP: QEMU holds one /dev/net/tun fd per queue. With vhost-net it
also holds one /dev/vhost-net fd per queue pair and the kernel runs a
``vhost-<qemu pid>`` worker that moves the packets; without, QEMU's own
threads read and write every packet (one syscall per packet or more).
vhost-user: OVS-DPDK's PMD threads read the guest's rings; QEMU has no
packet path at all once the socket is connected and the vrings enabled.
"""
from __future__ import annotations

import dataclasses
import re

BYPASS = "bypass"
THROUGH_QEMU = "through-qemu"
NOT_RUNNING = "not-running"
UNKNOWN = "unknown"
QUEUES_MISMATCH = "queues-mismatch"

MIN_PACKETS = 20  # fewer packets than this prove nothing either way


@dataclasses.dataclass
class QueueReport:
    index: int
    verdict: str
    reason: str
    details: dict = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"index": self.index, "verdict": self.verdict,
                "reason": self.reason, **self.details}


@dataclasses.dataclass
class PortReport:
    port_id: str
    name: str
    kind: str
    verdict: str
    reason: str
    queues_expected: int | None
    queues_configured: int | None
    queues_enabled: int | None
    queues: list[QueueReport]
    evidence: list[str]
    advisories: list[str] = dataclasses.field(default_factory=list)

    @property
    def queues_mismatch(self) -> bool:
        """Fewer queues enabled than expected; never claimed when the
        enabled count is unknown."""
        return (self.queues_expected is not None and self.verdict != NOT_RUNNING
                and self.queues_enabled is not None
                and self.queues_enabled < self.queues_expected)

    @property
    def ok(self) -> bool:
        return self.verdict == BYPASS and not self.queues_mismatch

    def as_dict(self) -> dict:
        return {"port_id": self.port_id, "name": self.name, "kind": self.kind,
                "verdict": self.verdict, "reason": self.reason,
                "queues_expected": self.queues_expected,
                "queues_configured": self.queues_configured,
                "queues_enabled": self.queues_enabled,
                "queues_mismatch": self.queues_mismatch,
                "flags": ([QUEUES_MISMATCH] if self.queues_mismatch else [])
                + self.advisories,
                "queues": [q.as_dict() for q in self.queues],
                "evidence": self.evidence}


# ------------------------------------------------------------------- TAP

@dataclasses.dataclass
class TrafficDelta:
    """Counter deltas over the traffic window."""
    seconds: float
    packets: int  # TAP rx + tx
    qemu_syscalls: int  # syscr + syscw of QEMU's non-vhost threads
    vhost_cpu_ticks: int


@dataclasses.dataclass
class TapEvidence:
    port_id: str
    name: str
    queues_expected: int | None
    holders: dict[int, list[int]]  # pid -> queue fds
    holder_comm: dict[int, str]
    enabled: int | None  # IFLA_TUN_NUM_QUEUES
    disabled: int | None  # IFLA_TUN_NUM_DISABLED_QUEUES
    vhost_fds: dict[int, list[int]]
    vhost_workers: dict[int, list[int]]
    qmp_status: dict | None = None
    qmp_note: str | None = None  # why QMP was not consulted
    traffic: TrafficDelta | None = None
    proc_error: str | None = None  # /proc could not be read
    netlink_error: str | None = None  # the TAP queue counts could not be read
    qmp_error: str | None = None  # QMP was asked for and failed


def main_holder(holders: dict[int, list[int]]) -> int:
    """The process holding most of a TAP's queues (QEMU, normally alone)."""
    return max(holders, key=lambda pid: len(holders[pid]))


def _traffic_says(traffic: TrafficDelta) -> tuple[str | None, str]:
    if traffic.packets < MIN_PACKETS:
        return None, (f"traffic: only {traffic.packets} packets in "
                      f"{traffic.seconds:g} s, too few to judge")
    ratio = traffic.qemu_syscalls / traffic.packets
    text = (f"traffic: {traffic.packets} TAP packets, {traffic.qemu_syscalls}"
            f" QEMU syscalls ({ratio:.2f} per packet), vhost workers "
            f"+{traffic.vhost_cpu_ticks} CPU ticks in {traffic.seconds:g} s")
    return (THROUGH_QEMU if ratio >= 0.5 else BYPASS), text


def decide_tap(ev: TapEvidence) -> PortReport:
    """Missing evidence (``proc_error``, ``netlink_error``, ``qmp_error``)
    makes ``unknown`` every verdict it could have changed."""
    evidence: list[str] = []
    if ev.proc_error:
        evidence.append(f"/proc: unavailable ({ev.proc_error})")
    if ev.netlink_error:
        evidence.append(f"netlink: unavailable ({ev.netlink_error})")
    if not ev.holders:
        evidence.append(f"/proc: no /dev/net/tun fd with iff: {ev.name}")
        if ev.proc_error:
            return _report(ev, UNKNOWN, f"no readable process holds a queue "
                           f"of TAP {ev.name}, and {ev.proc_error}", None, [],
                           evidence)
        return _report(ev, NOT_RUNNING, f"no process holds a queue of TAP "
                       f"{ev.name}", None, [], evidence)
    pid = main_holder(ev.holders)
    name = f"{ev.holder_comm.get(pid, '?')}[{pid}]"
    configured = sum(len(fds) for fds in ev.holders.values())
    vhost = len(ev.vhost_fds.get(pid, []))
    workers = len(ev.vhost_workers.get(pid, []))
    evidence.append(f"/proc: {name} holds {configured} queue fd(s) of "
                    f"{ev.name} (fds {ev.holders[pid]})")
    evidence.append(f"/proc: {name} holds {vhost} /dev/vhost-net fd(s)")
    evidence.append(f"/proc: {workers} vhost-{pid} worker thread(s)")
    if ev.enabled is not None:
        evidence.append(f"netlink: {ev.name} numqueues {ev.enabled} "
                        f"numdisabled {ev.disabled}")
    if ev.proc_error:
        return _report(ev, UNKNOWN, f"{name} holds {configured} queue(s), "
                       f"but its vhost-net devices and workers are unknown: "
                       f"{ev.proc_error}", configured, [], evidence)
    verdict, reason = _tap_verdict(ev, name, vhost, workers, evidence)
    queues = []
    # The kernel reports queue counts for multiqueue TAPs only; a
    # single-queue TAP's one queue is enabled while it is attached.
    enabled = ev.enabled if ev.enabled is not None else configured
    enabled_unknown = bool(ev.netlink_error) and ev.enabled is None
    for index in range(configured):
        if enabled_unknown:
            queues.append(QueueReport(index, UNKNOWN, "enabled or not is "
                                      f"unknown: {ev.netlink_error}"))
        elif index >= enabled:
            queues.append(QueueReport(index, NOT_RUNNING, "queue disabled by "
                                      "the guest (numdisabled)"))
        elif verdict == BYPASS and index >= vhost:
            queues.append(QueueReport(index, THROUGH_QEMU, "no vhost-net "
                                      "device for this queue pair"))
        else:
            queues.append(QueueReport(index, verdict, reason))
    if verdict == BYPASS and vhost < min(enabled, configured):
        verdict = THROUGH_QEMU
        reason = (f"only {vhost} of {enabled} enabled queues have a "
                  "vhost-net device")
    return _report(ev, verdict, reason, configured, queues, evidence,
                   enabled=None if enabled_unknown else enabled)


def _tap_verdict(ev: TapEvidence, name: str, vhost: int, workers: int,
                 evidence: list[str]) -> tuple[str, str]:
    qmp_started = None
    if ev.qmp_status is not None:
        qmp_started = bool(ev.qmp_status.get("vhost-started"))
        evidence.append(f"qmp: x-query-virtio-status vhost-started="
                        f"{str(qmp_started).lower()}")
    elif ev.qmp_error:
        evidence.append(f"qmp: unavailable ({ev.qmp_error})")
    elif ev.qmp_note:
        evidence.append(f"qmp: {ev.qmp_note}")
    traffic_verdict = None
    if ev.traffic is not None:
        traffic_verdict, text = _traffic_says(ev.traffic)
        evidence.append(text)
    if vhost == 0 or workers == 0:
        what = ("no /dev/vhost-net fd" if vhost == 0
                else "vhost-net fds but no vhost worker thread")
        return THROUGH_QEMU, (f"{name} has {what}: userspace virtio-net "
                              "moves every packet")
    if qmp_started is False:
        return THROUGH_QEMU, ("vhost-net is open but vhost-started=false: "
                              "QEMU fell back to userspace virtio")
    if traffic_verdict == THROUGH_QEMU:
        return THROUGH_QEMU, ("QEMU's syscalls track the TAP's packets "
                              "although vhost-net is open")
    if ev.qmp_error:
        # vhost-started=false would have meant a fallback to userspace.
        return UNKNOWN, (f"{vhost} vhost-net device(s) open, but whether "
                         f"QEMU started them is unknown: {ev.qmp_error}")
    return BYPASS, (f"{vhost} vhost-net device(s) and {workers} vhost "
                    f"worker(s) serve {name}'s queues")


def _report(ev, verdict: str, reason: str, configured: int | None,
            queues: list[QueueReport], evidence: list[str],
            enabled: int | None = None, kind: str = "tap") -> PortReport:
    return PortReport(ev.port_id, ev.name, kind, verdict, reason,
                      ev.queues_expected, configured, enabled, queues, evidence)


# ------------------------------------------------------------ vhost-user

_RXQ_RE = re.compile(r"port:\s+(\S+)\s+queue-id:\s+(\d+)\s+\((\w+)\)")
_PMD_RE = re.compile(r"pmd thread numa_id (\d+) core_id (\d+):")


def parse_pmd_rxq_show(text: str) -> dict[str, dict[int, dict]]:
    """``ovs-appctl dpif-netdev/pmd-rxq-show`` -> port -> queue -> info."""
    ports: dict[str, dict[int, dict]] = {}
    core = None
    for line in text.splitlines():
        pmd = _PMD_RE.search(line)
        if pmd:
            core = int(pmd.group(2))
            continue
        rxq = _RXQ_RE.search(line)
        if rxq:
            ports.setdefault(rxq.group(1), {})[int(rxq.group(2))] = {
                "enabled": rxq.group(3) == "enabled", "pmd_core": core}
    return ports


@dataclasses.dataclass
class VhostUserEvidence:
    port_id: str
    name: str
    queues_expected: int | None
    status: dict[str, str]  # Interface.status
    rxqs: dict[int, dict]  # from pmd-rxq-show
    counters_delta: dict[int, dict[str, int]] | None = None  # queue -> rx/tx
    qmp_status: dict | None = None
    rxq_error: str | None = None  # why pmd-rxq-show could not be read
    counters_total: dict[int, dict[str, int]] | None = None  # OVS's counts


def decide_vhost_user(ev: VhostUserEvidence) -> PortReport:
    evidence = [f"ovsdb: status={ev.status.get('status', '-')} mode="
                f"{ev.status.get('mode', '-')} num_of_vrings="
                f"{ev.status.get('num_of_vrings', '-')}"]
    if ev.status.get("status") != "connected":
        return _report(ev, NOT_RUNNING, f"vhost-user socket "
                       f"{ev.status.get('socket', ev.name)} is not connected",
                       None, [], evidence, kind="vhost-user")
    try:
        configured = int(ev.status.get("num_of_vrings", "0")) // 2
    except ValueError:
        configured = 0
    if ev.rxq_error is not None:
        evidence.append(f"pmd-rxq-show: unavailable ({ev.rxq_error})")
    for index, info in sorted(ev.rxqs.items()):
        evidence.append(f"pmd-rxq-show: queue-id {index} "
                        f"{'enabled' if info['enabled'] else 'disabled'} on "
                        f"pmd core {info['pmd_core']}")
    if ev.qmp_status is not None:
        evidence.append("qmp: vhost-started="
                        f"{str(bool(ev.qmp_status.get('vhost-started'))).lower()}")
    queues = []
    for index in range(configured):
        info = ev.rxqs.get(index)
        details: dict = {"pmd_core": info["pmd_core"] if info else None}
        for direction, total in (ev.counters_total or {}).get(index,
                                                             {}).items():
            details[f"{direction}_packets"] = total
        if ev.counters_delta is not None:
            details.update(ev.counters_delta.get(index, {}))
            evidence.append(f"statistics: queue {index} +{details.get('rx', 0)}"
                            f" rx, +{details.get('tx', 0)} tx packets")
        if info is None:
            queues.append(QueueReport(index, UNKNOWN, "pmd-rxq-show "
                                      "unavailable" if ev.rxq_error else
                                      "not in pmd-rxq-show", details))
        elif not info["enabled"]:
            queues.append(QueueReport(index, NOT_RUNNING, "vring not enabled "
                                      "by the guest", details))
        else:
            queues.append(QueueReport(index, BYPASS, f"PMD on core "
                                      f"{info['pmd_core']} polls the guest's "
                                      "vring", details))
    enabled = sum(1 for q in queues if q.verdict == BYPASS)
    unknown = sum(1 for q in queues if q.verdict == UNKNOWN)
    if enabled == 0 and unknown:
        # Missing evidence decides nothing: no confident "not-running".
        why = (f"pmd-rxq-show unavailable ({ev.rxq_error})" if ev.rxq_error
               else f"{unknown} queue(s) missing from pmd-rxq-show")
        return _report(ev, UNKNOWN, f"connected; whether its vrings are "
                       f"enabled is unknown: {why}", configured, queues,
                       evidence, None, "vhost-user")
    if enabled == 0:
        return _report(ev, NOT_RUNNING, "connected, but no vring is enabled",
                       configured, queues, evidence, enabled, "vhost-user")
    return _report(ev, BYPASS, f"OVS-DPDK PMD threads serve {enabled} "
                   f"queue(s) directly; QEMU has no packet path", configured,
                   queues, evidence, enabled, "vhost-user")
