"""Where a port of ours should be bound, during a live migration and
after: a pure function of what the databases say. No I/O.

OVN's multi-chassis binding moves a running guest's port without the two
hypervisors fighting over it: ``requested-chassis`` lists the source, then
the destination, and ``activation-strategy=rarp`` keeps the destination
blocked until the resumed guest's first RARP (QEMU sends it), so that
nothing queued in the destination TAP meanwhile is replayed to the guest.

Each host decides for itself, from its own view (level-triggered: no
event is needed, an agent that was down reaches the same end when it
comes back):

- a port plugged here that the LSP does not name: here is its new
  location. With no chassis requested yet, here alone; with one other
  chassis, ``source,here`` and the strategy (the migration starts);
- two chassis requested and none of it here any more: this host leaves
  the list (the source after the move, or the destination of an aborted
  migration);
- two chassis requested, here the second, and the SB says here is
  activated (``additional-chassis-activated``): here alone, the move is
  done (the source's Interface, still there until the orchestrator
  removes it, is left behind: its record says it was the source of this
  move, and it claims nothing).
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

from virtio_ovs.core.validate import is_name

RARP = "rarp"  # QEMU announces a TAP guest with RARPs (OVN >= 22.09)
GARP_NA = "garp,na"  # a vhost-user guest's virtio announce (OVN >= 25.09)
MULTICHASSIS = (22, 9)  # requested-chassis as a list, activation-strategy
GARP_NA_SINCE = (25, 9)


def strategy_for(kind: str, ovn: tuple[int, int]) -> str | None:
    """The activation strategy for a port of ``kind`` on OVN ``ovn``: QEMU
    sends RARPs for a TAP guest; a vhost-user guest announces itself with
    GARP/NA (QEMU asks its virtio driver to), which OVN takes as a strategy
    since 25.09 only; before, none (the destination is active at once)."""
    if kind == "vhost-user":
        return GARP_NA if ovn >= GARP_NA_SINCE else None
    return RARP if ovn >= MULTICHASSIS else None


@dataclasses.dataclass(frozen=True)
class Placement:
    """An LSP's requested chassis (main first) and activation strategy."""

    chassis: tuple[str, ...] = ()
    strategy: str | None = None

    @classmethod
    def parse(cls, requested: str | None, strategy: str | None
              ) -> "Placement":
        names = tuple(c for c in (requested or "").split(",") if c)
        return cls(names, strategy or None)

    @property
    def requested(self) -> str | None:
        return ",".join(self.chassis) or None

    @property
    def migrating(self) -> bool:
        return len(self.chassis) == 2


def wanted(current: Placement, here: str, local: bool,
           activated: str | None, strategy: str | None,
           left_behind: bool = False) -> Placement:
    """The placement this host wants for a port of ours. ``local``: an
    Interface plugged here carries the port; ``activated``: the chassis
    the SB says was activated by the strategy; ``strategy``: the one this
    port's kind and this OVN support (None: immediate); ``left_behind``:
    the local Interface is the source of a move to the chassis now
    requested (its record says so: ``left_behind``), which it must not
    claim back while the orchestrator has not removed it."""
    chassis = current.chassis
    if local and here not in chassis:
        if left_behind:
            return current
        if not chassis:
            return Placement((here,))
        if len(chassis) == 1:
            return Placement((chassis[0], here), strategy)
        return current  # a third location: not ours to arbitrate
    if len(chassis) == 2 and here in chassis:
        if not local:
            return Placement(tuple(c for c in chassis if c != here))
        if chassis[1] == here and activated == here:
            return Placement((here,))
    return current


def left_behind(record: str | None, here: str, current: Placement) -> bool:
    """Does the agent's record on the local Interface (``SRC -> DST`` or
    ``done: SRC -> DST``) say that this host was the source of a move to
    the chassis now requested alone?"""
    if not record or len(current.chassis) != 1:
        return False
    path = record.removeprefix("done: ")
    return path == f"{here} -> {current.chassis[0]}"


def migration_text(current: Placement) -> str | None:
    """``src -> dst`` while two chassis hold the port, for list/show."""
    if not current.migrating:
        return None
    return f"{current.chassis[0]} -> {current.chassis[1]}"


# ------------------------------------------------------------ standalone
# Without a shared database, the destination host learns that a port is a
# live migration's from whoever prepares it there: ``plug
# --migrating-from`` (in the plug's transaction) or ``migration-expect``
# (before libvirt or os-vif plug it). The record is this host's OVSDB
# ``Open_vSwitch external_ids:virtio-ovs:incoming:<port id>=<source>``,
# the source a name as ``validate.validate_name`` has it.
INCOMING_PREFIX = "virtio-ovs:incoming:"
UNKNOWN_SOURCE = "?"


def incoming_key(port_id: str) -> str:
    return INCOMING_PREFIX + port_id


def parse_incoming(external_ids: Mapping[str, str]) -> dict[str, str]:
    """Port id -> the source host's name, of every incoming record (a
    value that is not a valid host name reads as unknown: the record
    still gates the port, which is what it is for)."""
    found = {}
    for key, value in external_ids.items():
        if key.startswith(INCOMING_PREFIX) and len(key) > len(INCOMING_PREFIX):
            found[key[len(INCOMING_PREFIX):]] = (
                value if is_name(value) else UNKNOWN_SOURCE)
    return found


@dataclasses.dataclass(frozen=True)
class Gates:
    """The standalone destination's gates (a pure decision per reconcile).

    A gated port is wired (tag, flows, anti-spoofing, groups) but ovs-vswitchd
    forwards nothing to it (OpenFlow port config ``no-forward``), so that
    nothing queues in the TAP while the incoming QEMU does not read it:
    the resumed guest would answer all of it (OVN's ``rarp`` strategy,
    for the same reason). Every frame from a gated port goes to the agent
    too (packet-in): the first one (QEMU's RARP, sent at resume) opens
    the gate. A TAP that received frames from its QEMU already (the
    agent was down at resume) is open at once.

    ``close``: ports to set no-forward; ``open``: ports to forward again
    (their guest spoke, or their record went); ``aborted``: port ids whose
    gated port went away before its guest spoke."""

    close: frozenset[str] = frozenset()
    open: frozenset[str] = frozenset()
    aborted: frozenset[str] = frozenset()


def plan_gates(incoming: Mapping[str, str], gateable: frozenset[str],
               present: frozenset[str], closed: frozenset[str],
               spoke: frozenset[str]) -> Gates:
    """``incoming``: port id -> source (the records); ``gateable``: the TAP
    ports here that can be gated now (ovs-vswitchd numbered them and read
    their device's MAC); ``present``: every guest port here; ``closed``:
    those this agent has set no-forward; ``spoke``: port ids whose guest
    sent a frame here."""
    want = {p for p in incoming.keys() & (gateable | closed)
            if p not in spoke}
    return Gates(close=frozenset(want - closed),
                 open=frozenset(p for p in closed - want if p in present),
                 aborted=frozenset(closed - present))
