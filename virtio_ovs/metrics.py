"""Prometheus metrics (prometheus_client): the agent serves them on
``[agent] metrics_bind``; ``virtio-ovs-ctl metrics`` prints the same
families once, for node_exporter's textfile collector.

The per-port families are built at scrape time from an immutable
``Snapshot`` that the agent's loop swaps in after each reconcile and
check, so a port that goes away leaves the output with it (bounded label
sets), and the scrape thread never touches the IDL.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Iterable, Iterator, Mapping

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry,
                               Counter, Gauge, Histogram, ProcessCollector,
                               generate_latest)
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    Metric)
from prometheus_client.registry import Collector

from virtio_ovs import version
from virtio_ovs.endpoint import Endpoint, Reply
from virtio_ovs.core import verdicts
from virtio_ovs.core.verdicts import PortReport
from virtio_ovs.core.port import GuestPort

PREFIX = "virtio_ovs"
VERDICTS = (verdicts.BYPASS, verdicts.THROUGH_QEMU, verdicts.NOT_RUNNING,
            verdicts.UNKNOWN)
WIRING_BUCKETS = (.005, .01, .02, .03, .05, .1, .25, .5, 1, 2.5, 5, 10)
RECONCILE_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5)
MIGRATION_BUCKETS = (.25, .5, 1, 2, 5, 10, 30, 60, 120, 300, 600)
DEFAULT_PORT = 9477  # documented default for metrics_bind
REQUEST_TIMEOUT = 5.0  # seconds a metrics client may stay connected
MAX_CLIENTS = 16  # connections served at once (the rest wait unaccepted)
TEXT = "text/plain; charset=utf-8"


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What the per-port families are built from."""
    ports: tuple[GuestPort, ...] = ()
    reports: Mapping[str, PortReport] = dataclasses.field(
        default_factory=dict)  # port id -> the last check's report
    flows: Mapping[str, int] = dataclasses.field(
        default_factory=dict)  # bridge -> flows installed
    last_sync: float | None = None  # unix time of the last full reconcile
    active: bool | None = None  # holds the OVSDB lock (agent only)


def families(snap: Snapshot) -> list[Metric]:
    """Every family derived from ``snap`` (pure)."""
    info = GaugeMetricFamily(
        f"{PREFIX}_port_info", "A guest port (value 1), with its VM, kind "
        "and network", labels=["port_id", "vm", "kind", "network"])
    verdict = GaugeMetricFamily(
        f"{PREFIX}_port_verdict", "1 for the port's current data-plane "
        "verdict, 0 for the others", labels=["port_id", "verdict"])
    queues = GaugeMetricFamily(
        f"{PREFIX}_port_queues", "Queue pairs: expected (recorded at plug), "
        "configured (held or offered), enabled (running in the guest)",
        labels=["port_id", "state"])
    mismatch = GaugeMetricFamily(
        f"{PREFIX}_port_queues_mismatch", "1 when fewer queues are enabled "
        "than expected", labels=["port_id"])
    packets = CounterMetricFamily(
        f"{PREFIX}_port_queue_packets", "Packets per vhost-user queue, as "
        "OVS counts them (rx: from the guest)",
        labels=["port_id", "queue", "direction"])
    for port in snap.ports:
        info.add_metric([port.port_id, port.vm or "", port.kind,
                         port.network or ""], 1)
        report = snap.reports.get(port.port_id)
        if report is None:
            continue
        for name in VERDICTS:
            verdict.add_metric([port.port_id, name],
                               int(report.verdict == name))
        for state, value in (("expected", report.queues_expected),
                             ("configured", report.queues_configured),
                             ("enabled", report.queues_enabled)):
            if value is not None:
                queues.add_metric([port.port_id, state], value)
        mismatch.add_metric([port.port_id], int(report.queues_mismatch))
        for queue in report.queues:
            for direction in ("rx", "tx"):
                total = queue.details.get(f"{direction}_packets")
                if total is not None:
                    packets.add_metric([port.port_id, str(queue.index),
                                        direction], total)
    flows = GaugeMetricFamily(f"{PREFIX}_flows", "OpenFlow flows installed "
                              "per bridge", labels=["bridge"])
    for bridge, count in sorted(snap.flows.items()):
        flows.add_metric([bridge], count)
    result = [info, verdict, queues, mismatch, packets, flows]
    if snap.last_sync is not None:
        result.append(GaugeMetricFamily(
            f"{PREFIX}_agent_last_sync_timestamp_seconds", "When the agent "
            "last finished a reconcile (unix time)", value=snap.last_sync))
    if snap.active is not None:
        result.append(GaugeMetricFamily(
            f"{PREFIX}_agent_active", "1 while this agent holds the OVSDB "
            "lock, 0 as a standby", value=int(snap.active)))
    return result


class SnapshotCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot]):
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        yield from families(self.snapshot())


def render(snap: Snapshot) -> bytes:
    """The text exposition of ``snap``'s families (for the CLI)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snap))
    return generate_latest(registry)


def reports_by_port(reports: Iterable[PortReport]) -> dict[str, PortReport]:
    return {r.port_id: r for r in reports}


class AgentMetrics:
    """The agent's own registry (not the process-wide default): the
    snapshot's families plus two histograms the loop observes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.snapshot = Snapshot()
        self.registry.register(SnapshotCollector(lambda: self.snapshot))
        self.wiring = Histogram(
            f"{PREFIX}_port_wiring_seconds", "From the agent seeing a port "
            "that should be wired (a new or newly bound row) to its flows "
            "installed (standalone) or ovn-installed (ovn)",
            buckets=WIRING_BUCKETS, registry=self.registry)
        self.migrations = Counter(
            f"{PREFIX}_migrations", "Live migrations of this host's ports "
            "that ended, by result (done or aborted) and direction (in: to "
            "this host, out: from it; the standalone backend sees arrivals "
            "only)",
            ["result", "direction"], registry=self.registry)
        self.migration = Histogram(
            f"{PREFIX}_migration_seconds", "From a port's second location "
            "being requested (OVN), or the arriving port being gated "
            "(standalone), to the move done, as this host saw it",
            buckets=MIGRATION_BUCKETS, registry=self.registry)
        self.reconcile = Histogram(
            f"{PREFIX}_reconcile_seconds", "Duration of one reconcile of "
            "OVSDB state into flows", buckets=RECONCILE_BUCKETS,
            registry=self.registry)
        self.heartbeat = Gauge(
            f"{PREFIX}_agent_heartbeat_timestamp_seconds", "When the agent "
            "last wrote its heartbeat (every report_interval, busy or "
            "idle)", registry=self.registry)
        build = Gauge(f"{PREFIX}_build_info", "The running virtio-ovs "
                      "(value 1), its version and python-ovs's",
                      ["version", "python_ovs"], registry=self.registry)
        build.labels(version(), _python_ovs_version()).set(1)
        ProcessCollector(registry=self.registry)  # process_* (RSS, CPU)
        self.loop_turned = time.monotonic()
        self._server: Endpoint | None = None

    def update(self, **changes) -> None:
        """Swap in a new snapshot (the loop's thread; scrapes read the old
        or the new one whole)."""
        self.snapshot = dataclasses.replace(self.snapshot, **changes)

    def turned(self) -> None:
        """The agent's loop turned (for /healthz)."""
        self.loop_turned = time.monotonic()

    def serve(self, host: str, port: int,
              healthy: Callable[[], bool] = lambda: True) -> None:
        """Serve /metrics and /healthz (200 while ``healthy()``, else 503);
        any other path is 404. At most MAX_CLIENTS connections at once,
        each closed REQUEST_TIMEOUT seconds after it opened (see
        ``endpoint``: no client can hold the agent's descriptors)."""
        registry = self.registry

        def route(path: str) -> Reply:
            if path == "/metrics":
                return 200, generate_latest(registry), CONTENT_TYPE_LATEST
            if path == "/healthz":
                ok = healthy()
                return (200 if ok else 503, b"ok\n" if ok else b"stalled\n",
                        TEXT)
            return 404, b"not found: /metrics or /healthz\n", TEXT

        self._server = Endpoint(host, port, route, MAX_CLIENTS,
                                REQUEST_TIMEOUT)
        self._server.start()

    @property
    def address(self) -> tuple[str, int] | None:
        return None if self._server is None else self._server.address

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None


def _python_ovs_version() -> str:
    try:
        import ovs.version
        return ovs.version.VERSION
    except ImportError:  # pragma: no cover - a dependency
        return "unknown"


class WiringClock:
    """Times each port from the moment it should be wired to the moment
    it is. Ports wired at the first sync are not timed (that is the
    cold start, not a reaction)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next update is a first sync again."""
        self.since: dict[str, float] = {}  # waiting ports -> seen at
        self.wired: set[str] = set()
        self.primed = False

    def update(self, wanted: set[str], wired: set[str], seen_at: float,
               now: float) -> list[float]:
        """``wanted``: ports that should be wired; ``wired``: those that
        are, after this reconcile. Returns the new wiring durations."""
        if not self.primed:
            self.primed = True
            self.wired = wanted & wired
            self.since = {p: seen_at for p in wanted - wired}
            return []
        self.wired &= wanted  # unbound or gone: timed again when back
        self.since = {p: t for p, t in self.since.items() if p in wanted}
        durations = []
        for port_id in wanted - self.wired:
            start = self.since.setdefault(port_id, seen_at)
            if port_id in wired:
                durations.append(now - start)
                del self.since[port_id]
                self.wired.add(port_id)
        return durations
