"""The OVN backend: networks are logical switches in the northbound
database, shared by every host; a bound port is a Logical_Switch_Port
(name = the port id) with port security, and ovn-controller installs it.

Every verb is one transaction per database. A verb that writes both goes
through ``across``, the one place that orders them and undoes: the NB
first (what OVN enforces exists before the port can carry traffic), then
the host; when the host's transaction did not commit, the NB change is
put back as it was. Removals go the other way (host first, then the NB),
and need no undo: a re-run finishes them.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable, Iterable, Sequence, TypeVar

from virtio_ovs.core.records import Invalid
from virtio_ovs.backend.base import (Backend, CountingDriver,
                                     NetworkOwnedElsewhere, Reconciled)
from virtio_ovs.backend.plugger import Plugger
from virtio_ovs.core.errors import OvsdbTimeout, UserError, VirtioOvsError
from virtio_ovs.core.migration import (MULTICHASSIS, Placement, left_behind,
                                       migration_text, strategy_for, wanted)
from virtio_ovs.core.plug_request import Vif
from virtio_ovs.core.networks import Network
from virtio_ovs.core.outcomes import Committed, PlugOutcome, UnplugOutcome
from virtio_ovs.core.port import GuestPort
from virtio_ovs.core.secgroups import Rule, SecurityGroup
from virtio_ovs.ovsdb.host.api import BindPort, HostDb, SetPortGroups
from virtio_ovs.ovsdb.nb.commands import DeletePort, EnsurePort, SetPlacement
from virtio_ovs.ovsdb.nb.sg_commands import SetPortGroups as SetLspGroups
from virtio_ovs.ovsdb.nb.api import LspSpec, NorthboundDb

LOG = logging.getLogger(__name__)
T = TypeVar("T")
NB_RETRY = 30.0  # seconds before the agent tries an unreachable NB again
# How long a port migrating here may be missing from this host's database
# before its migration counts as aborted (unless it was here already).
ARRIVAL_GRACE = 10.0
UNCHANGED = "unchanged"


@dataclasses.dataclass
class HostProgress:
    """How far the host's side of a two-database write got."""

    committed: Committed = Committed.NO


def across(nb: NorthboundDb, nb_commands: list,
           host_step: Callable[[HostProgress], T]) -> tuple[list[str], T]:
    """Commit ``nb_commands`` in one NB transaction, then run
    ``host_step`` (one host transaction), which records in its
    ``HostProgress`` whether it committed. If the host step raises and did
    not commit, the NB change is undone (each command's ``undo``), in one
    transaction; if the host's commit is unknown (its answer was lost),
    the NB change stays, since the host may hold the port. Returns the NB
    commands' outcomes and what ``host_step`` returned."""
    outcomes = nb.commit(*nb_commands) if nb_commands else []
    undo = [u for command, outcome in zip(nb_commands, outcomes)
            for u in command.undo(outcome)]
    LOG.debug("NB committed %s; %d undo commands ready", outcomes, len(undo))
    progress = HostProgress()
    try:
        return outcomes, host_step(progress)
    except BaseException as exc:
        if progress.committed is Committed.NO and undo:
            LOG.info("the host's transaction did not commit (%s): undoing "
                     "the NB change", type(exc).__name__)
            nb.commit(*undo)
        elif undo:
            LOG.warning("the host's transaction is %s: the NB change stays",
                        "committed" if progress.committed else "unknown")
        raise


def commit_tracked(db: HostDb, progress: HostProgress, *commands) -> list:
    """``db.commit`` that records in ``progress`` whether it committed: a
    lost answer (OvsdbTimeout) is UNKNOWN, any other error is NO."""
    try:
        outcomes = db.commit(*commands)
    except OvsdbTimeout:
        progress.committed = Committed.UNKNOWN
        raise
    progress.committed = Committed.YES
    return outcomes


class OvnBackend(Backend):
    name = "ovn"
    record_columns = ("ovn_switch", "ovn_up", "ovn_installed", "ovn_owner",
                      "migrating")

    def __init__(self, db: HostDb, nb: NorthboundDb, plugger: Plugger,
                 ovn: tuple[int, int] | None = None):
        """``ovn``: the local OVN's version; with multi-chassis binding
        (22.09 and later) each LSP is placed on the chassis that plugged it
        (``requested-chassis``), and a plug on a second chassis starts a
        live migration towards it (core/migration.py)."""
        self.db = db
        self.nb = nb
        self.plugger = plugger
        self.ovn = ovn

    def _placing(self, kind: str) -> dict:
        """The LspSpec fields that place a port of ``kind`` here."""
        if self.ovn is None or self.ovn < MULTICHASSIS:
            return {}
        chassis = self.db.chassis_name()
        if chassis is None:
            return {}
        return {"chassis": chassis, "strategy": strategy_for(kind, self.ovn)}

    def create_network(self, name, net_type, physnet, segment) -> Network:
        return self.nb.create_network(name, net_type, physnet, segment)

    def delete_network(self, name: str) -> None:
        self.nb.delete_network(name)

    def list_networks(self) -> list[Network]:
        return self.nb.list_networks()

    def plug(self, vifs: list[Vif], wait: bool) -> PlugOutcome:
        """LSPs first, then the OVS ports; with ``wait``, returns once
        ovn-controller has installed every bound port."""
        if any(vif.migrating_from for vif in vifs):
            raise UserError("migrating_from", "applies to the standalone "
                            "backend: OVN sees the port on a second chassis "
                            "and gates it there itself")
        specs = [_spec(vif.port_id, vif.network, vif.mac, vif.ips, vif.vm,
                       vif.security_groups, **self._placing(vif.kind))
                 for vif in vifs if vif.network]
        plan = self.plugger.validate(vifs, local_vlans=False)
        self.nb.validate_ports(specs)
        outcome = PlugOutcome()  # filled by the plugger, also when it raises

        def host_step(progress: HostProgress) -> PlugOutcome:
            try:
                return self.plugger.plug(vifs, wait, local_vlans=False,
                                         outcome=outcome, plan=plan)
            finally:
                # Rows ovs-vswitchd refused were rolled back: not in use.
                progress.committed = (Committed.NO if outcome.refused
                                      else outcome.committed)

        across(self.nb, [EnsurePort(s) for s in specs], host_step)
        if wait and specs:
            self.db.wait_ovn_installed(s.port_id for s in specs)
        return outcome

    def unplug(self, port_ids: Sequence[str], if_exists: bool, wait: bool
               ) -> UnplugOutcome:
        """Refused whole for a port whose LSP is someone else's (nova and
        os-vif unplug neutron's ports)."""
        self.nb.validate_not_foreign(port_ids)
        outcome = self.plugger.unplug(port_ids, if_exists, wait)
        self.nb.commit(*self._leave_or_delete(port_ids))
        return outcome

    def _leave_or_delete(self, port_ids: Sequence[str]) -> list:
        """The NB side of an unplug: a port that a live migration also
        holds on another chassis keeps its LSP, and this chassis leaves its
        requested-chassis (the source after the move, or the destination of
        an aborted one: core.migration.wanted); any other LSP of ours goes.
        """
        here = self._placing("tap").get("chassis")
        placements = self.nb.placements(port_ids) if here else {}
        commands: list = []
        for port_id in port_ids:
            current = placements.get(port_id)
            others = set(current.chassis) - {here} if current else set()
            if not others:
                commands.append(DeletePort(port_id))
            elif here in current.chassis:
                commands.append(SetPlacement(port_id, wanted(
                    current, here, False, None, None), current))
            # else: this host's agent already left it to the others
        return commands

    def bind(self, port_id: str, network: str, ips, wait: bool,
             groups: tuple[str, ...] | None = None) -> bool:
        port = self._guest_port(port_id)
        spec = _spec(port_id, network, port.mac,
                     port.ips if ips is None else ips, port.vm, groups,
                     **self._placing(port.kind))
        self.nb.validate_ports([spec])
        host = [BindPort(port_id, network, ips, local_vlans=False)]
        if groups is not None:
            host.append(SetPortGroups(port_id, groups, check=False))
        nb_outcomes, host_outcomes = across(
            self.nb, [EnsurePort(spec)],
            lambda progress: commit_tracked(self.db, progress, *host))
        if wait:
            self.db.wait_ovn_installed([port_id])
        return any(o != UNCHANGED for o in nb_outcomes + host_outcomes)

    def _guest_port(self, port_id: str) -> GuestPort:
        port = self.db.get_port(port_id)
        if port is None:
            raise UserError("port_id", f"no guest port with iface-id "
                            f"{port_id!r} (it needs iface-id and attached-mac)")
        if not port.valid:
            raise UserError("port_id", f"port {port_id!r} has an attached-mac"
                            " or addresses that do not validate")
        return port

    def unbind(self, port_id: str) -> None:
        self.nb.validate_not_foreign([port_id])
        self.db.bind_port(port_id, None, None, local_vlans=False)
        self.nb.delete_ports([port_id])

    def port_records(self) -> list[dict]:
        """Each guest port with its OVN state: ``ovn_switch``, ``ovn_up``
        and ``ovn_owner`` from the NB (whoever created the LSP: neutron's
        ports are listed as they are), ``ovn_installed`` from this host."""
        ports = self.db.list_ports()
        states = self.nb.port_states(p.port_id for p in ports)
        return [_with_state(port, states) for port in ports]

    def port_record(self, port_id: str) -> dict | None:
        port = self.db.get_port(port_id)
        return (_with_state(port, self.nb.port_states([port_id]))
                if port is not None else None)

    # ------------------------------------------------- security groups
    def create_group(self, name: str) -> SecurityGroup:
        return self.nb.create_group(name)

    def delete_group(self, name: str) -> None:
        self.nb.delete_group(name)

    def list_groups(self) -> list[SecurityGroup]:
        return self.nb.list_groups()

    def invalid_records(self) -> list[Invalid]:
        return self.nb.invalid_rules()

    def add_rule(self, group: str, rule: Rule) -> bool:
        return self.nb.add_rule(group, rule)

    def delete_rule(self, group: str, rule_id: str) -> None:
        self.nb.delete_rule(group, rule_id)

    def set_port_groups(self, port_id: str, names: tuple[str, ...]) -> bool:
        """The NB (what OVN enforces) first; then, if the port is on this
        host, the label on its OVS Interface that list and show display.
        It works from any host, as the networks do."""
        on_this_host = self.db.get_port(port_id) is not None

        def host_step(progress: HostProgress) -> None:
            if on_this_host:
                commit_tracked(self.db, progress,
                               SetPortGroups(port_id, names, check=False))

        nb_outcomes, _ = across(self.nb, [SetLspGroups(port_id, names)],
                                host_step)
        return nb_outcomes != [UNCHANGED]

    def flow_bridges(self) -> set[str]:
        return set()  # ovn-controller programs br-int

    def close(self) -> None:
        self.nb.close()


NEUTRON_OWNS_NB = ("neutron owns the OVN northbound database ([ovn] nb_owner "
                   "= neutron): networks, groups and bindings are made "
                   "through neutron's API, and virtio-ovs writes nothing there")


class NeutronOwnedBackend(NetworkOwnedElsewhere, OvnBackend):
    """``[ovn] nb_owner = neutron``: neutron's ML2/OVN owns the NB, and
    nova/os-vif (or libvirt) plug the ports. virtio-ovs reads the NB (to
    report each port's switch, state and owner) and never writes it: every
    verb that would is refused before anything is written."""

    refusal, refusal_field = NEUTRON_OWNS_NB, "nb_owner"

    def unplug(self, port_ids: Sequence[str], if_exists: bool, wait: bool
               ) -> UnplugOutcome:
        """Only ports that no LSP of neutron's (or anyone's) describes."""
        self.nb.validate_not_foreign(port_ids)
        return self.plugger.unplug(port_ids, if_exists, wait)




class OvnDriver(CountingDriver):
    """On OVN, ovn-controller programs br-int: a port is wired once it
    wrote ``ovn-installed`` on the Interface. With an NB (not neutron's)
    and multi-chassis binding, the agent also places this host's ports of
    ours (core/migration.py): it claims a port plugged here by someone
    else (libvirt, on a migration's destination), ends the move when the
    SB says the destination was activated or the source's port is gone,
    returns an aborted one to its source; it records each migration on
    the port's Interface (list, show, watch) and in the metrics.

    ``open_sb(remote)``: the SB reader (ovsdb/sb.py) for ovn-controller's
    ``ovn-remote``, opened when a port migrates here."""

    def __init__(self, db: HostDb, nb: NorthboundDb | None = None,
                 ovn: tuple[int, int] | None = None, metrics=None,
                 open_sb: Callable | None = None):
        super().__init__(db)
        self.nb = nb if ovn is not None and ovn >= MULTICHASSIS else None
        self.ovn = ovn
        self.metrics = metrics
        self.open_sb = open_sb
        self.sb = None
        self.seen: dict[str, tuple[Placement, float]] = {}  # migrating
        # Ports migrating here: seen plugged here this run, or awaited
        # since (monotonic) while their plug has not written the host's
        # row yet (it writes the NB first).
        self.arrived: set[str] = set()
        self.awaited: dict[str, float] = {}
        self.nb_retry_at = 0.0

    def wired(self, port: GuestPort) -> bool:
        return bool(port.ovn_installed)

    def changes(self) -> int:
        return (self.nb.seqno if self.nb is not None else 0) + \
            (self.sb.seqno if self.sb is not None else 0)

    def register_wakeup(self, poller) -> None:
        for db in (self.nb, self.sb):
            if db is not None:
                db.register_wakeup(poller)

    def service(self) -> bool:
        for db in (self.nb, self.sb):
            if db is not None:
                db.run()
        return False

    def reconcile(self, wiring_version: int) -> Reconciled:
        """Counting does not depend on the NB: when the NB cannot be reached
        or refuses, the placement is tried again NB_RETRY seconds later
        (or at the next change), and the rest goes on."""
        result = super().reconcile(wiring_version)
        if self.nb is not None and time.monotonic() >= self.nb_retry_at:
            try:
                self._place({p.port_id: p for p in result.ports})
            except VirtioOvsError as exc:
                self.nb_retry_at = time.monotonic() + NB_RETRY
                LOG.warning("placing this host's ports in the NB failed, "
                            "trying again in %d s: %s", NB_RETRY, exc)
        return result

    def _place(self, local: dict[str, GuestPort]) -> None:
        here = self.db.chassis_name()
        if here is None:
            return
        commands, now = [], {}
        placements = self.nb.placements()
        activated = self._activations(here, placements)
        for port_id, current in placements.items():
            if port_id not in local and here not in current.chassis:
                continue
            if self._not_plugged_yet(port_id, here, current, local):
                now[port_id] = current
                continue
            kind = local[port_id].kind if port_id in local else "tap"
            record = local[port_id].migration if port_id in local else None
            want = wanted(current, here, port_id in local,
                          activated.get(port_id),
                          strategy_for(kind, self.ovn),
                          left_behind(record, here, current))
            if want != current:
                LOG.info("port %s: requested-chassis %s -> %s", port_id,
                         current.requested, want.requested)
                commands.append(SetPlacement(port_id, want, current))
            now[port_id] = want
        self.arrived &= placements.keys()
        for port_id in self.awaited.keys() - placements.keys():
            del self.awaited[port_id]
        if commands:
            self.nb.commit(*commands)
        self._record(here, local, now)

    def _not_plugged_yet(self, port_id: str, here: str, current: Placement,
                         local: dict[str, GuestPort]) -> bool:
        """A port migrating here whose Interface this agent has not seen
        yet, for less than ARRIVAL_GRACE: its plug writes the NB, then the
        host's row, and an agent between the two would take it for an
        aborted migration (measured: 2 of 10 runs of bench/migration.py
        flipped the placement back and forth within 10 ms)."""
        if not (current.migrating and current.chassis[1] == here):
            self.arrived.discard(port_id)
            self.awaited.pop(port_id, None)
            return False
        if port_id in local:
            self.arrived.add(port_id)
            self.awaited.pop(port_id, None)
            return False
        if port_id in self.arrived:
            return False  # it was here and went: aborted
        since = self.awaited.setdefault(port_id, time.monotonic())
        return time.monotonic() - since < ARRIVAL_GRACE

    def _activations(self, here: str, placements: dict[str, Placement]
                     ) -> dict[str, str]:
        """Port -> activated chassis (SB), for the ports migrating here
        with an activation strategy; the SB is watched for those only."""
        arriving = {p for p, c in placements.items() if c.migrating
                    and c.chassis[1] == here and c.strategy}
        if self.sb is None:
            if not arriving or self.open_sb is None:
                return {}
            remote = self.db.ovn_remote()
            if remote is None:
                return {}
            self.sb = self.open_sb(remote)
        self.sb.watch(arriving)
        return self.sb.activated()

    def _record(self, here: str, local: dict[str, GuestPort],
                now: dict[str, Placement]) -> None:
        """A migration's start and end, on the Interface and in the
        metrics, as this host sees them."""
        records: dict[str, str | None] = {}
        for port_id, placement in now.items():
            text = migration_text(placement)
            if text:
                self.seen.setdefault(port_id, (placement, time.monotonic()))
                records[port_id] = text
                continue
            started = self.seen.pop(port_id, None)
            if started is None:
                continue
            (source, destination), since = started[0].chassis, started[1]
            result = "done" if placement.chassis == (destination,) \
                else "aborted"
            records[port_id] = f"{result}: {source} -> {destination}"
            LOG.info("port %s: migration %s -> %s %s", port_id, source,
                     destination, result)
            if self.metrics is not None:
                self.metrics.migrations.labels(
                    result, "in" if destination == here else "out").inc()
                if result == "done":
                    self.metrics.migration.observe(time.monotonic() - since)
        for port_id in set(self.seen) - set(now):
            del self.seen[port_id]  # the LSP went
        changed = {p: r for p, r in records.items()
                   if p in local and local[p].migration != r}
        if changed:
            self.db.record_migrations(changed)

    def close(self) -> None:
        for db in (self.nb, self.sb):
            if db is not None:
                db.close()


def _with_state(port: GuestPort, states: dict) -> dict:
    record = port.as_dict()
    state = states.get(port.port_id)
    record["ovn_switch"] = state.network if state else None
    record["ovn_up"] = state.up if state else False
    record["ovn_owner"] = state.owner if state else None
    record["migrating"] = port.migrating  # "SRC -> DST", from the agent
    if state and state.network_name and not record.get("network"):
        record["network"] = state.network_name  # neutron's name for it
    return record


def _spec(port_id: str, network: str | None, mac: str,
          ips: Iterable[str], vm: str | None,
          groups: tuple[str, ...] | None, chassis: str | None = None,
          strategy: str | None = None) -> LspSpec:
    assert network is not None
    return LspSpec(port_id, network, mac, tuple(ips), vm, groups,
                   chassis=chassis, strategy=strategy)

