"""``virtio-ovs-ctl watch``: one line per event, from OVSDB change
notifications, until interrupted.

The loop sleeps in one poll on the IDL connection, plus a timer for the
moment the agent's heartbeat would be three intervals old (the absence
of a notification is the only sign of a dead agent).
"""
from __future__ import annotations

import datetime
import json
import os
import sys
import time
from typing import Callable, Protocol, TextIO

import ovs.poller

from virtio_ovs.cli.output import clean
from virtio_ovs.core import events as ev
from virtio_ovs.core.roles import AgentRecords, PortStore, Replica


def format_event(event: dict, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(event, sort_keys=True)
    stamp = datetime.datetime.fromtimestamp(
        event["time"], datetime.timezone.utc).isoformat(timespec="milliseconds")
    details = " ".join(f"{k}={'-' if v is None else v}"
                       for k, v in event.items()
                       if k not in ("time", "event", "port_id"))
    subject = f" {event['port_id']}" if "port_id" in event else ""
    return clean(f"{stamp} {event['event']}{subject} {details}".rstrip())


class WatchedDb(Replica, PortStore, AgentRecords, Protocol):
    """The replica's changes, the ports and the agent's record."""


class Watcher:
    """Diffs successive views of the replica into events."""

    def __init__(self, db: WatchedDb, emit: Callable[[dict], None],
                 clock: Callable[[], float] = time.time):
        self.db = db
        self.emit = emit
        self.clock = clock
        self.ports: dict = {}
        self.agent: dict | None = None
        self.agent_up = False
        self.seqno = -1

    def start(self) -> None:
        self.db.start()
        self.seqno = self.db.seqno
        self.ports = {p.port_id: p for p in self.db.list_ports()}
        self.agent = self.db.agent_status()
        now = self.clock()
        self.agent_up = ev.agent_alive(self.agent, now)
        self._emit([{"event": ev.WATCHING, "ports": len(self.ports),
                     "agent": "up" if self.agent_up else "down"}], now)

    def step(self) -> None:
        """Process what arrived; emit the events it makes."""
        self.db.run()
        now = self.clock()
        found = []
        if self.db.seqno != self.seqno:
            self.seqno = self.db.seqno
            ports = {p.port_id: p for p in self.db.list_ports()}
            found += ev.port_events(self.ports, ports)
            self.ports = ports
        status = self.db.agent_status()
        agent_found, self.agent_up = ev.agent_events(
            self.agent, self.agent_up, status, now)
        self.agent = status
        self._emit(found + agent_found, now)

    def _emit(self, found: list[dict], now: float) -> None:
        for event in found:
            self.emit({"time": round(now, 3), **event})

    @property
    def pending(self) -> bool:
        """Updates processed by the facade's own reads (they run the IDL)
        but not yet diffed: blocking now would wait for the next message."""
        return self.db.seqno != self.seqno

    def block(self) -> None:
        if self.pending:
            return
        poller = ovs.poller.Poller()
        self.db.register_wakeup(poller)
        if self.agent_up and self.agent is not None:
            wait = ev.agent_deadline(self.agent) - self.clock()
            poller.timer_wait(max(0, int(wait * 1000) + 1))
        poller.block()


def run(db: WatchedDb, fmt: str, out: TextIO = sys.stdout) -> int:
    def emit(event: dict) -> None:
        out.write(format_event(event, fmt) + "\n")
        out.flush()
    watcher = Watcher(db, emit)
    watcher.start()
    try:
        while True:
            watcher.block()
            watcher.step()
    except BrokenPipeError:  # the reader (head, jq) went away
        # Python flushes stdout again at exit: point it at /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return 0
