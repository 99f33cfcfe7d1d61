"""What changed between two views of the host: the events of
``virtio-ovs-ctl watch``. Pure: the caller supplies the views and the
time."""
from __future__ import annotations

from typing import Mapping

from virtio_ovs.core.port import GuestPort

PLUGGED = "port-plugged"
UNPLUGGED = "port-unplugged"
BOUND = "port-bound"
UNBOUND = "port-unbound"
OVN_INSTALLED = "port-ovn-installed"
VERDICT = "verdict-changed"
QUEUES = "queues-changed"
MIGRATION_START = "migration-start"
MIGRATION_DONE = "migration-done"
MIGRATION_ABORTED = "migration-aborted"
AGENT_UP = "agent-up"
AGENT_DOWN = "agent-down"
WATCHING = "watch-started"

MISSED_HEARTBEATS = 3  # as `virtio-ovs-ctl status` counts an agent down


def _port_fields(port: GuestPort) -> dict:
    return {"port_id": port.port_id, "name": port.name, "vm": port.vm}


def port_events(before: Mapping[str, GuestPort],
                after: Mapping[str, GuestPort]) -> list[dict]:
    """Events for ports (by port id) that appeared, went or changed."""
    events = []
    for port_id in sorted(after.keys() - before.keys()):
        port = after[port_id]
        events.append({"event": PLUGGED, **_port_fields(port),
                       "kind": port.kind, "bridge": port.bridge,
                       "network": port.network, "queues": port.queues})
    for port_id in sorted(before.keys() - after.keys()):
        events.append({"event": UNPLUGGED, **_port_fields(before[port_id])})
    for port_id in sorted(before.keys() & after.keys()):
        events += _changes(before[port_id], after[port_id])
    return events


def _changes(old: GuestPort, new: GuestPort) -> list[dict]:
    base = _port_fields(new)
    events = []
    if old.network != new.network:
        events.append({"event": BOUND if new.network else UNBOUND, **base,
                       "network": new.network, "previous": old.network})
    if old.ovn_installed != new.ovn_installed:
        events.append({"event": OVN_INSTALLED, **base,
                       "ovn_installed": new.ovn_installed})
    if old.verdict != new.verdict:
        events.append({"event": VERDICT, **base, "verdict": new.verdict,
                       "previous": old.verdict})
    if old.migration != new.migration and new.migration:
        events.append(_migration_event(new.migration, base))
    if (old.queues, old.queues_enabled) != (new.queues, new.queues_enabled):
        events.append({"event": QUEUES, **base, "expected": new.queues,
                       "enabled": new.queues_enabled,
                       "previous_expected": old.queues,
                       "previous_enabled": old.queues_enabled})
    return events


def _migration_event(record: str, base: dict) -> dict:
    """The agent's record ("SRC -> DST", "done: SRC -> DST", "aborted:
    SRC -> DST") as an event."""
    outcome, _, path = record.rpartition(": ")
    source, _, destination = path.partition(" -> ")
    kind = {"done": MIGRATION_DONE, "aborted": MIGRATION_ABORTED}.get(
        outcome, MIGRATION_START)
    return {"event": kind, **base, "source": source,
            "destination": destination}


def agent_alive(status: Mapping | None, now: float) -> bool:
    """Up while its heartbeat is younger than three report intervals."""
    return status is not None and now <= agent_deadline(status)


def agent_deadline(status: Mapping) -> float:
    """When the agent of ``status`` counts as down without a heartbeat."""
    interval = float(status.get("report_interval") or 30)
    return float(status.get("heartbeat") or 0) + MISSED_HEARTBEATS * interval


def agent_events(before: Mapping | None, before_up: bool,
                 after: Mapping | None, now: float) -> tuple[list[dict], bool]:
    """Events when the agent came up, went down or was replaced (a new
    pid); returns them and whether it is up now."""
    up = agent_alive(after, now)
    who = {"host": (after or {}).get("host"), "pid": (after or {}).get("pid")}
    if up and (not before_up or (before or {}).get("pid") != who["pid"]
               or (before or {}).get("host") != who["host"]):
        return [{"event": AGENT_UP, **who,
                 "role": (after or {}).get("role")}], True
    if before_up and not up:
        last = (after or before or {}).get("heartbeat")
        return [{"event": AGENT_DOWN, **who, "last_heartbeat": last}], False
    return [], up
