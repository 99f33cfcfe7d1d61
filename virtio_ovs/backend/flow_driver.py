"""The standalone agent's driver: bridges and flows as a pure function of
this host's OVSDB, written as a diff over the OpenFlow connections it keeps
open (``FlowDriver``). The CLI's face of the same backend is
``standalone.StandaloneBackend``."""
from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from typing import Callable, Protocol

from virtio_ovs.backend.arrival import ArrivalGates
from virtio_ovs.backend.base import AgentDriver, Reconciled
from virtio_ovs.core.records import Invalid
from virtio_ovs.core.errors import UserError, VirtioOvsError
from virtio_ovs.core.networks import int_patch_name, phy_patch_name
from virtio_ovs.core.roles import (AgentRecords, BridgeSpec, GroupStore,
                                   NetworkStore, PortStore, SwitchSetup)
from virtio_ovs.core.port import GuestPort
from virtio_ovs.network.flows import (Flow, FlowDiff, FlowPlanner, HostState,
                                      PatchPorts, diff_flows)
from virtio_ovs.openflow import wire as ofwire
from virtio_ovs.openflow.switch import OpenFlowBridge

LOG = logging.getLogger(__name__)


def new_cookie() -> int:
    """A random per-run cookie (never 0, never all ones)."""
    return secrets.randbelow(2**63 - 2) + 1


class WiringDb(PortStore, NetworkStore, GroupStore, SwitchSetup,
               AgentRecords, Protocol):
    """What the flows are computed from, the switch set-up they need, and
    the records of arriving migrations."""


class FlowDriver(AgentDriver):
    """The standalone agent's reconcile: bridges and flows as a pure
    function of the OVSDB state, written as a diff; and the watch on
    ovs-vswitchd through the OpenFlow connection kept open per bridge.

    A port's OpenFlow number is taken from ovs-vswitchd's port-status
    message on the integration bridge's connection, which it sends while it
    is still reconfiguring for the new port: the flows go in before it
    writes the number to OVSDB (a port that someone else plugged has no
    ``ofport_request``), instead of a whole reconfiguration later."""

    def __init__(self, db: WiringDb, bridges: BridgeSpec, timeout: float,
                 on_first_sync: Callable[[], None] = lambda: None,
                 cookie: int | None = None, metrics=None):
        self.db = db
        self.bridges = bridges
        self.integration_bridge = bridges.integration_bridge
        self.mappings = dict(bridges.mappings)
        self.timeout = timeout
        self.on_first_sync = on_first_sync
        self.cookie = new_cookie() if cookie is None else cookie
        self.applied: dict[str, set[Flow]] = {}
        self.planner = FlowPlanner()
        self.warned: dict[tuple[str, str], str] = {}  # what -> line logged
        self.switches: dict[str, OpenFlowBridge] = {}  # connections kept
        self.watched = False  # since the last setup: their ends count
        self.silent: set[str] = set()  # bridges whose echo is unanswered
        self.need_setup = True
        self.first_sync_done = False
        self.wired_version = -1
        # physnet -> why its provider bridge is left out (logged once)
        self.unwired: dict[str, str] = {}
        self.arrivals = ArrivalGates(
            db, lambda: self._switch(self.integration_bridge), self.cookie,
            metrics)
        # name -> (ofport, hw_addr) announced by port-status and not in
        # OVSDB yet; ``announcements`` counts the changes.
        self.announced: dict[str, tuple[int, str]] = {}
        self.announcements = 0
        self.changes_seen = 0  # changes() at the last reconcile

    # ------------------------------------------------------ the contract
    @property
    def synced(self) -> bool:
        return self.first_sync_done

    def up_to_date(self, wiring_version: int) -> bool:
        return (self.first_sync_done and not self.need_setup
                and wiring_version == self.wired_version
                and self.changes() == self.changes_seen)

    def changes(self) -> int:
        return self.arrivals.version + self.announcements

    def resync(self) -> None:
        """Program every bridge again from scratch: set-up, then a first
        sync (each port's flows in one bundle, over several connections,
        then the other cookies' flows deleted), as at start."""
        self.first_sync_done = False
        self.planner.invalidate()
        self.arrivals.reset()
        self.announced.clear()
        for switch in self.switches.values():
            switch.close()
        self.watched = False
        self.applied.clear()
        self.need_setup = True

    def wakeup_fds(self) -> list[int]:
        return [fd for switch in self.switches.values()
                if (fd := switch.conn.fileno()) is not None]

    def service(self) -> bool:
        """Serve the OpenFlow connections (echo replies keep them); one
        that ended means ovs-vswitchd restarted: program it again."""
        for switch in self.switches.values():
            switch.conn.service()
        integration = self.switches.get(self.integration_bridge)
        if integration is not None:
            self.arrivals.packet_ins(integration.conn.take_packet_ins())
            self._take_announcements(integration.conn.take_port_statuses())
        lost = [name for name, switch in self.switches.items()
                if switch.conn.ended]
        if lost and self.watched and self.integration_bridge not in lost:
            # A provider bridge deleted (ovs-vsctl del-br): only its
            # physnet goes; the reconcile sees the bridge gone.
            for name in lost:
                self.switches.pop(name).close()
                self.applied.pop(name, None)
            self.planner.invalidate()
            self.need_setup = True
            return False
        if lost and self.watched:
            LOG.warning("lost the OpenFlow connection to %s (ovs-vswitchd "
                        "restarted?): re-programming", ", ".join(lost))
            self.resync()
            return True
        return False

    def _take_announcements(self, statuses) -> None:
        for reason, ofport, name, hw_addr in statuses:
            if reason == ofwire.OFPPR_DELETE:
                if self.announced.pop(name, None) is not None:
                    self.announcements += 1
            elif self.announced.get(name) != (ofport, hw_addr):
                LOG.debug("%s: port %s numbered %d (port-status)",
                          self.integration_bridge, name, ofport)
                self.announced[name] = (ofport, hw_addr)
                self.announcements += 1

    def heartbeat(self, interval: float) -> None:
        self._probe_switches(interval)
        if not (self.watched and self.first_sync_done):
            return
        try:
            if not self._switch(self.integration_bridge).has_canary(
                    self.cookie):
                LOG.warning("canary flow gone from %s: re-programming",
                            self.integration_bridge)
                self.resync()
        except VirtioOvsError as exc:
            # A busy ovs-vswitchd (seconds per new port at 10,000 TAPs)
            # says nothing of the flows: re-programming 90,000 of them
            # would make it busier. A restart ends the connections.
            LOG.warning("canary check failed (%s): trying again at the "
                        "next heartbeat", exc)

    def status(self) -> dict:
        return {"integration_bridge": self.integration_bridge,
                "datapath_type": self.bridges.datapath_type,
                "bridge_mappings": self.mappings,
                "cookie": f"{self.cookie:#x}"}

    def close(self) -> None:
        for switch in self.switches.values():
            switch.close()

    def reconcile(self, wiring_version: int) -> Reconciled:
        changes = self.changes()
        try:
            result = self._reconcile()
        except BaseException:
            self.planner.invalidate()  # what was applied is unknown
            raise
        self.wired_version = wiring_version
        self.changes_seen = changes
        return result

    # ---------------------------------------------------------- reconcile
    def _reconcile(self) -> Reconciled:
        seen_at = time.monotonic()
        self._check_providers()
        if self.need_setup:
            self._refuse_foreign_bridge()
            self.db.ensure_bridges(self._wired_spec(), connect=False)
        state = self._host_state()
        # A port arriving by live migration is gated before it gets its
        # flows (the network's floods would reach its TAP).
        gated = self.arrivals.update(state.ports)
        state = dataclasses.replace(state, gated=gated,
                                    held=self.arrivals.waiting)
        hints = self.planner.plan(state)
        desired = self.planner.desired
        if self.first_sync_done:
            for bridge, flows in desired.items():
                self._apply_flows(bridge, flows,
                                  None if hints is None else hints.get(bridge))
        else:
            self._first_sync(desired, seen_at)
        self.arrivals.after_flows()
        if self.need_setup:
            if self.db.ensure_bridges(self._wired_spec(), connect=True):
                LOG.info("patch pairs joined to %s", self.integration_bridge)
            self._watch_switches(desired)
            self.need_setup = False
        bound = {p.port_id: p for p in state.ports
                 if p.valid and p.bound_network in state.networks}
        return Reconciled(
            counts={"ports": len(state.ports), "bound_ports": len(bound),
                    "networks": len(state.networks),
                    "flows": sum(map(len, desired.values()))},
            ports=state.ports, wanted=frozenset(bound),
            wired=frozenset(i for i, p in bound.items() if p.ofport),
            flows={bridge: len(flows) for bridge, flows
                   in self.applied.items()})

    def _check_providers(self) -> None:
        """Leave out the provider bridges that cannot be wired (deleted,
        not created yet): only their physnets go unwired, until they are
        back; a change sets the bridges up again."""
        problems = self.db.provider_problems(self.bridges)
        if problems == self.unwired:
            return
        for physnet, why in sorted(problems.items()):
            if self.unwired.get(physnet) != why:
                LOG.warning("physnet %s is not wired: %s", physnet, why)
        for physnet in sorted(self.unwired.keys() - problems.keys()):
            LOG.info("physnet %s: bridge %s is back: wiring it", physnet,
                     self.mappings[physnet])
        self.unwired = problems
        self.need_setup = True

    def _wired_spec(self) -> BridgeSpec:
        return dataclasses.replace(self.bridges, mappings={
            p: b for p, b in self.mappings.items() if p not in self.unwired})

    def _first_sync(self, desired: dict[str, set[Flow]],
                    seen_at: float) -> None:
        """One bundle per bridge makes its table exactly these flows, with
        this run's cookie: the previous run's flows are replaced
        atomically, so a restart loses no packet."""
        sending = time.monotonic()
        for bridge, flows in desired.items():
            self._switch(bridge).replace_all(self._chunks(bridge, flows),
                                             self.cookie)
            self.applied[bridge] = set(flows)
        self.first_sync_done = True
        self.on_first_sync()
        LOG.info("first full sync done: %d flows (%.0f ms to compute, "
                 "%.0f ms for ovs-vswitchd to take them)",
                 sum(map(len, desired.values())), (sending - seen_at) * 1000,
                 (time.monotonic() - sending) * 1000)

    def _chunks(self, bridge: str, flows: set[Flow]) -> list[list[Flow]]:
        """The first sync's atomic units: each port's own flows together
        (the planner's memo has them), and the rest."""
        if bridge != self.integration_bridge:
            return [sorted(flows)]
        return self.planner.cache.chunks(flows)

    def _host_state(self) -> HostState:
        """The state flows are computed from: this bridge's guest ports,
        the networks and the provider patch ports."""
        ports = tuple(self._numbered(p) for p in self.db.list_ports()
                      if p.bridge == self.integration_bridge)
        self._warn_invalid(ports, self.db.invalid_records())
        names = {n for b in self.mappings.values()
                 for n in (int_patch_name(b), phy_patch_name(b))}
        ofports = self.db.ofports(names)
        patches = {}
        for physnet, bridge in self._wired_spec().mappings.items():
            int_ofport = ofports.get(int_patch_name(bridge))
            phy_ofport = ofports.get(phy_patch_name(bridge))
            if int_ofport and phy_ofport:
                patches[physnet] = PatchPorts(physnet, bridge, int_ofport,
                                              phy_ofport)
        return HostState(self.integration_bridge, ports, self.db.networks(),
                         patches, self.db.groups())

    def _numbered(self, port: GuestPort) -> GuestPort:
        """``port`` with the number (and device MAC) ovs-vswitchd announced,
        while OVSDB has none yet; once OVSDB has it, it is the truth."""
        if port.name not in self.announced:
            return port
        if port.ofport:
            del self.announced[port.name]
            return port
        ofport, hw_addr = self.announced[port.name]
        return dataclasses.replace(port, ofport=ofport,
                                   hw_addr=port.hw_addr or hw_addr)

    def _warn_invalid(self, ports, records: list[Invalid]) -> None:
        """One warning per port whose external_ids do not validate, and
        per invalid network or group record, when it appears or changes
        (what is invalid gets no flows; the rest is not held up)."""
        problems = {("port", p.port_id): f"port {p.port_id!r} skipped: "
                    f"{p.problem}" for p in ports if p.problem}
        problems.update({("record", r.key): f"{r.line()}: skipped"
                         for r in records})
        for key, line in problems.items():
            if self.warned.get(key) != line:
                LOG.warning("%s", line)
        self.warned = problems

    def preflight(self) -> None:
        self._refuse_foreign_bridge()

    def _refuse_foreign_bridge(self) -> None:
        owner = self.db.controller_of(self.integration_bridge)
        if owner is not None:
            raise UserError("integration_bridge", f"{self.integration_bridge}"
                            f" is programmed by {owner}; the standalone "
                            "backend would replace its flows (set [agent] "
                            "backend = ovn to run beside OVN)")

    def _switch(self, bridge: str) -> OpenFlowBridge:
        """The bridge's OpenFlow side, whose connection stays open."""
        if bridge not in self.switches:
            self.switches[bridge] = OpenFlowBridge(bridge, self.timeout)
            if bridge == self.integration_bridge:
                self.switches[bridge].conn.listen()  # arrivals' packet-ins
        return self.switches[bridge]

    def _apply_flows(self, bridge: str, flows: set[Flow],
                     diff: FlowDiff | None = None) -> None:
        """Send what differs from the applied flows: ``diff`` when the
        planner computed it incrementally, else a diff of the sets."""
        if diff is None or bridge not in self.applied:
            diff = diff_flows(self.applied.get(bridge, set()), flows)
        if diff:
            self._switch(bridge).apply(diff.add, diff.delete, self.cookie)
            LOG.debug("%s: +%d -%d flows", bridge, len(diff.add),
                      len(diff.delete))
        self.applied[bridge] = set(flows)  # the planner's set changes

    def _watch_switches(self, desired: dict[str, set[Flow]]) -> None:
        """From the first sync on, each bridge's connection stays open:
        its end is the sign that ovs-vswitchd restarted."""
        for bridge in desired:
            self._switch(bridge).conn.open()
        self.watched = True

    def _probe_switches(self, interval: float) -> None:
        """OpenFlow echo as liveness: an echo request unanswered for a
        whole heartbeat interval (and at least 10 s) is logged once; the
        reply is logged when it comes. (A busy ovs-vswitchd answers late,
        a hung one never; the flows stay either way.)"""
        for name, switch in self.switches.items():
            silent = switch.conn.silent_for()
            if silent > max(interval, 10.0) and name not in self.silent:
                self.silent.add(name)
                LOG.warning("%s has not answered an OpenFlow echo for %.0f "
                            "s: ovs-vswitchd is busy or hung", name, silent)
            elif silent == 0.0 and name in self.silent:
                self.silent.discard(name)
                LOG.info("%s answers OpenFlow echoes again", name)
            switch.conn.probe()
