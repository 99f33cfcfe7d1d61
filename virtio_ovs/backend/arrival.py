"""A live migration's arrival on a standalone host: the destination port
is wired before the guest resumes, and ovs-vswitchd forwards nothing to it
until the guest speaks here (core.migration.Gates says why).

The gate is OpenFlow port config (``no-forward``), set and cleared over the
agent's own connection to the integration bridge: clearing it is one
message, sent from the packet-in of the guest's first frame (QEMU's RARP at
resume), not after a database round trip.
"""
from __future__ import annotations

import dataclasses
import logging
import socket
import time
from typing import Callable, Iterable

from virtio_ovs.core.errors import VirtioOvsError
from virtio_ovs.core.migration import plan_gates
from virtio_ovs.core.plug_request import KIND_TAP
from virtio_ovs.core.port import GuestPort
from virtio_ovs.kernel.taps import frames_from_guest
from virtio_ovs.network.tables import T_CLASSIFY

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Closed:
    """A port this agent has gated: what it takes to open it again."""

    port_id: str
    name: str
    ofport: int
    hw_addr: str
    source: str
    since: float  # monotonic


class ArrivalGates:
    """The gates of the ports arriving here, one decision per reconcile
    (``update``), opened at once by the guest's first frame
    (``packet_ins``). ``version`` moves when a gate opened between
    reconciles (the agent then reconciles: the record goes, the flows
    change back)."""

    def __init__(self, db, switch: Callable[[], object], cookie: int,
                 metrics=None,
                 frames: Callable[[str], int | None] = frames_from_guest):
        """``db``: the host database (incoming records, migration records,
        the chassis name); ``switch()``: the integration bridge's
        OpenFlowBridge; ``frames(name)``: frames a TAP's QEMU wrote."""
        self.db = db
        self.switch = switch
        self.cookie = cookie
        self.metrics = metrics
        self.frames = frames
        self.closed: dict[str, Closed] = {}
        self.spoke: set[str] = set()  # port ids whose guest spoke here
        self.fresh: set[str] = set()  # closed by the last update
        self.waiting: frozenset[str] = frozenset()  # port names, see update
        self.records: dict[str, str | None] = {}  # written by after_flows
        self.version = 0

    # ------------------------------------------------------------ reconcile
    def update(self, ports: Iterable[GuestPort]) -> frozenset[str]:
        """Close, open and forget gates as the records and ports say;
        the names of the gated ports (their flows send frames to the
        agent). Ports expected here that cannot be gated yet (no ofport
        or device MAC reported) are in ``waiting``: they get no flows
        until they can."""
        incoming = self.db.incoming()
        self.spoke &= incoming.keys()
        if not incoming and not self.closed:
            # No migration here (the usual case): nothing per port to do
            # on the reconcile path.
            self.waiting, self.records = frozenset(), {}
            return frozenset()
        ports = list(ports)
        taps = {p.port_id: p for p in ports if p.kind == KIND_TAP
                and p.ofport and p.hw_addr}
        plan = plan_gates(incoming, frozenset(taps),
                          frozenset(p.port_id for p in ports),
                          frozenset(self.closed), frozenset(self.spoke))
        records: dict[str, str | None] = {}
        if plan.close or plan.open:
            here = self.db.chassis_name() or socket.gethostname()
            self._close(plan.close, taps, incoming, here, records)
            self._open(plan.open, here, records)
        forget = self._aborted(plan.aborted) | (self.spoke & incoming.keys())
        if forget:
            self.db.set_incoming({p: None for p in forget})
        present = {p.port_id: p for p in ports}
        self.records = {p: r for p, r in records.items()
                        if p in present and present[p].migration != r}
        self.waiting = frozenset(
            p.name for p in ports if p.port_id in incoming
            and p.port_id not in self.spoke and p.port_id not in self.closed)
        return frozenset(c.name for c in self.closed.values())

    def _close(self, port_ids, taps, incoming, here, records) -> None:
        if not port_ids:
            return
        now = time.monotonic()
        new = {p: Closed(p, taps[p].name, taps[p].ofport, taps[p].hw_addr,
                         incoming[p], now) for p in port_ids}
        self.switch().set_forwarding(
            {c.ofport: c.hw_addr for c in new.values()}, False)
        self.closed.update(new)
        self.fresh |= set(new)
        for c in new.values():
            LOG.info("port %s: arriving from %s: wired, and gated until its "
                     "guest speaks here", c.port_id, c.source)
            records[c.port_id] = f"{c.source} -> {here}"

    def _open(self, port_ids, here, records) -> None:
        if not port_ids:
            return
        opened = {p: self.closed[p] for p in port_ids}
        self.switch().set_forwarding(
            {c.ofport: c.hw_addr for c in opened.values()}, True)
        for p, c in opened.items():
            del self.closed[p]
            if p not in self.spoke:
                LOG.info("port %s: no longer expected from %s: forwarding to "
                         "it", p, c.source)
                records[p] = None
                continue
            seconds = time.monotonic() - c.since
            LOG.info("port %s: migration from %s done (its guest spoke here "
                     "%.3f s after the port was gated)", p, c.source, seconds)
            records[p] = f"done: {c.source} -> {here}"
            if self.metrics is not None:
                self.metrics.migrations.labels("done", "in").inc()
                self.metrics.migration.observe(seconds)

    def _aborted(self, port_ids) -> set[str]:
        for p in port_ids:
            c = self.closed.pop(p)
            LOG.info("port %s: migration from %s aborted (the port went "
                     "before its guest spoke here)", p, c.source)
            if self.metrics is not None:
                self.metrics.migrations.labels("aborted", "in").inc()
        return set(port_ids)

    def after_flows(self) -> None:
        """Once the gated ports' flows are in: their records ("SRC ->
        HERE": gated and wired; ``plug --migrating-from`` waits for it);
        a TAP whose QEMU wrote frames already (its guest resumed while no
        agent listened) is opened by the next reconcile."""
        if self.records:
            self.db.record_migrations(self.records)
            self.records = {}
        for p in sorted(self.fresh):
            closed = self.closed.get(p)
            count = self.frames(closed.name) if closed is not None else None
            if count:
                LOG.info("port %s: its guest spoke here already (%d frames)",
                         p, count)
                self.spoke.add(p)
                self.version += 1
        self.fresh.clear()

    def reset(self) -> None:
        """ovs-vswitchd lost the ports' config (restart): gate again."""
        self.closed.clear()
        self.fresh.clear()

    # ------------------------------------------------------------ packet-in
    def packet_ins(self, received) -> None:
        """(cookie, table, in_port, frame) from the integration bridge: the
        first frame from a gated port opens its gate at once."""
        by_ofport = {c.ofport: c for c in self.closed.values()
                     if c.port_id not in self.spoke}
        for cookie, table, in_port, frame in received:
            closed = by_ofport.pop(in_port, None) \
                if (cookie, table) == (self.cookie, T_CLASSIFY) else None
            if closed is None:
                continue
            self.spoke.add(closed.port_id)
            self.version += 1
            kind = frame[12:14].hex() if len(frame) >= 14 else "?"
            try:
                self.switch().set_forwarding({closed.ofport: closed.hw_addr},
                                             True)
            except VirtioOvsError as exc:
                LOG.warning("port %s: could not open its gate now (%s): "
                            "the reconcile will", closed.port_id, exc)
                continue
            LOG.info("port %s: its guest spoke here (ethertype 0x%s): "
                     "forwarding to it", closed.port_id, kind)
