"""The agent's event loop.

It sleeps in one poll on: the OVSDB connection (IDL change notifications),
the OpenFlow connection kept open to each bridge (its end: ovs-vswitchd
went away, with every flow), a signal wake-up pipe, and a timer for the
next heartbeat (or retry). Any
wake-up that changed the replica triggers a reconcile: compute the state's
flows and tags (a pure function), write what differs.
"""
from __future__ import annotations

import ctypes
import logging
import os
import secrets
import select
import signal
import socket
import threading
import time

import ovs.poller

from virtio_ovs import conf as conf_mod
from virtio_ovs.agent.checker import DataPlaneChecker
from virtio_ovs.core.errors import (EnvironmentFailure, UserError,
                                    VirtioOvsError)
from virtio_ovs.core.networks import (int_patch_name, parse_bridge_mappings,
                                      phy_patch_name)
from virtio_ovs.core.validate import validate_bind
from virtio_ovs.metrics import AgentMetrics, WiringClock, reports_by_port
from virtio_ovs.network.flows import (Flow, FlowDiff, FlowPlanner,
                                      HostState, PatchPorts, diff_flows,
                                      port_tag)
from virtio_ovs.network.openflow import PROTOCOLS, OpenFlowBridge
from virtio_ovs.ovsdb.connection import json_parser, set_ssl_files
from virtio_ovs.ovsdb.host.api import BridgeSpec, HostDb
from virtio_ovs.ovsdb.host.impl import connect

LOG = logging.getLogger("virtio-ovs-agent")
# One active agent per OVSDB: the holder of this OVSDB lock. Others wait
# as hot standbys (their replica is current) and take over when the
# server frees the lock, i.e. when the active agent's connection closes.
LOCK_NAME = "virtio_ovs_agent"


def release_free_memory() -> None:
    """Give the C heap's free pages back to the kernel (glibc's
    malloc_trim). The first sync and a check of thousands of ports
    allocate in bulk and free it all; without this the process keeps that
    high-water mark as RSS."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def new_cookie() -> int:
    """A random per-run cookie (never 0, never all ones)."""
    return secrets.randbelow(2**63 - 2) + 1


class Agent:
    def __init__(self, conf):
        self.conf = conf
        self.integration_bridge = conf.ovs.integration_bridge
        # With OVN, ovn-controller owns br-int: no bridges, tags or flows.
        self.owns_flows = conf.agent.backend == "standalone"
        self.mappings = parse_bridge_mappings(conf.ovs.bridge_mappings)
        set_ssl_files(conf.ovs.ssl_key_file, conf.ovs.ssl_cert_file,
                      conf.ovs.ssl_ca_cert_file)
        self.db: HostDb = connect(conf_mod.ovsdb_remote(conf),
                                  conf.ovs.ovsdb_timeout, lock_name=LOCK_NAME)
        self.role = "pending"  # "active" | "standby" | "pending"
        self.standby_since: float | None = None
        self.bridges = BridgeSpec(self.integration_bridge,
                                  conf.ovs.datapath_type, tuple(PROTOCOLS),
                                  self.mappings)
        self.cookie = new_cookie()
        self.started_at = time.time()
        self.applied: dict[str, set[Flow]] = {}
        self.planner = FlowPlanner()
        self.warned: dict[str, str] = {}  # port id -> problem logged
        self.switches: dict[str, OpenFlowBridge] = {}  # connections kept
        self.watched = False  # since the last setup: their ends count
        self.silent: set[str] = set()  # bridges whose echo is unanswered
        self.need_setup = True
        self.first_sync_done = False
        self.dirty = True
        self.reconciled_seqno = -1  # the replica version last reconciled
        self.wired_version = -1  # db.wiring_version() of the last reconcile
        self.retry_at: float | None = None
        self.next_report = 0.0
        self.next_check = time.monotonic() + 1.0
        self.next_gc = time.monotonic() + conf.agent.gc_grace
        self._gc_thread: threading.Thread | None = None
        self.stopping = False
        self.reload_requested = False
        self.last_reconcile: float | None = None
        self.last_reconcile_ms: float | None = None
        self.counts = {"ports": 0, "bound_ports": 0, "networks": 0, "flows": 0}
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        self.metrics = AgentMetrics()
        self.wiring = WiringClock()
        self.checker = DataPlaneChecker(
            self.db, self._wake_loop,
            lambda reports: self.metrics.update(
                reports=reports_by_port(reports)), release_free_memory)

    # ------------------------------------------------------------- control
    def install_signal_handlers(self) -> None:
        signal.set_wakeup_fd(self._wake_w)
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _on_stop(self, signum=None, frame=None) -> None:
        self.stopping = True

    def stop(self) -> None:
        """Ask the loop to end (from another thread or a signal handler)."""
        self.stopping = True
        self._wake_loop()

    def _wake_loop(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:  # the pipe is full: the loop wakes anyway
            pass

    def _on_hup(self, signum, frame) -> None:
        self.reload_requested = True

    def _reload(self) -> None:
        self.reload_requested = False
        before = [(group, opt.dest, value) for group, opt, value
                  in conf_mod.option_values(self.conf) if opt.mutable]
        try:
            self.conf.mutate_config_files()
            conf_mod.check(self.conf)
        except Exception as exc:  # oslo's errors, or ours (UserError)
            LOG.error("configuration reload refused, the running values "
                      "stay: %s", str(exc).splitlines()[0])
            for group, name, value in before:
                self.conf.set_override(name, value, group)
            return
        logging.getLogger().setLevel(logging.DEBUG if self.conf.debug
                                     else logging.INFO)
        self.next_report = 0.0
        LOG.info("configuration reloaded (report_interval=%s)",
                 self.conf.agent.report_interval)

    # ---------------------------------------------------------------- loop
    def serve_metrics(self) -> None:
        """Listen on [agent] metrics_bind (read once, at start)."""
        if not self.conf.agent.metrics_bind:
            return
        host, port = validate_bind(self.conf.agent.metrics_bind)
        try:
            self.metrics.serve(host, port)
        except OSError as exc:
            raise EnvironmentFailure(f"[agent] metrics_bind {host}:{port}: "
                                     f"{exc.strerror or exc}") from None
        LOG.info("serving Prometheus metrics on http://%s:%d/metrics",
                 *self.metrics.address)

    def run(self) -> int:
        LOG.info("starting: OVSDB %s, integration bridge %s, cookie %#x",
                 self.db.remote, self.integration_bridge, self.cookie)
        if json_parser() != "C":
            LOG.warning("python-ovs parses OVSDB's JSON in pure Python (no "
                        "ovs._json C extension): updates of thousands of "
                        "rows take about 20x longer")
        self.serve_metrics()
        connecting = time.monotonic()
        self._connect()
        LOG.info("OVSDB replica loaded in %.0f ms",
                 (time.monotonic() - connecting) * 1000)
        while not self.stopping:
            if self.reload_requested:
                self._reload()
            self.db.run()
            if not self._is_active():
                self._standby_report()
                self._block()
                continue
            # The seqno, not run()'s result: updates that arrive while a
            # transaction commits are processed inside the commit loop.
            if self.db.seqno != self.reconciled_seqno:
                self.dirty = True
            self._check_switches()
            now = time.monotonic()
            if self.dirty and (self.retry_at is None or now >= self.retry_at):
                self._reconcile()
            if now >= self.next_report:
                self._report()
            self.checker.collect()
            if self.conf.agent.gc_interval and now >= self.next_gc:
                self.next_gc = now + self.conf.agent.gc_interval
                self._start_gc()
            if self.conf.agent.check_interval and now >= self.next_check:
                self.next_check = now + self.conf.agent.check_interval
                self.checker.start(self.conf.agent.qmp_socket_template)
            # The heartbeat's and the verdicts' commits may have consumed
            # updates: sleeping on them would wait for the next message.
            if self.db.seqno != self.reconciled_seqno:
                self.dirty = True
            if (not self.dirty or self.retry_at is not None) and \
                    not self.checker.writing:
                self._block()
        LOG.info("stopping (flows stay in place)")
        for switch in self.switches.values():
            switch.close()
        self.metrics.close()
        self.db.close()
        return 0

    def _is_active(self) -> bool:
        """Follow the lock: take over when it comes, stand by when
        another agent holds it."""
        state = self.db.lock_state
        if state == "held" and self.role != "active":
            LOG.info("active: holding the OVSDB lock %s%s", LOCK_NAME,
                     "; taking over" if self.role == "standby" else "")
            if self.role == "standby":
                self._clear_standby_record()
            self.role = "active"
            self.metrics.update(active=True)
            self._resync()
            self.next_report = 0.0
        elif state == "contended" and self.role != "standby":
            LOG.warning("standby: another agent holds the OVSDB lock %s "
                        "(see 'virtio-ovs-ctl status'); taking over when it "
                        "goes", LOCK_NAME)
            self._resync()  # closes the OpenFlow connections too
            self.role = "standby"
            self.metrics.update(active=False)
            self.standby_since = time.time()
            self.next_report = 0.0
        return self.role == "active"

    def _standby_report(self) -> None:
        if self.role != "standby" or time.monotonic() < self.next_report:
            return
        interval = self.conf.agent.report_interval
        self.next_report = time.monotonic() + interval
        try:
            self.db.write_standby_status({
                "host": socket.gethostname(), "pid": os.getpid(),
                "since": round(self.standby_since or time.time(), 3),
                "heartbeat": round(time.time(), 3),
                "report_interval": interval})
        except VirtioOvsError as exc:
            LOG.warning("could not write the standby record: %s", exc)

    def _clear_standby_record(self) -> None:
        try:
            record = self.db.standby_status() or {}
            if record.get("pid") == os.getpid() and \
                    record.get("host") == socket.gethostname():
                self.db.write_standby_status(None)
        except VirtioOvsError as exc:
            LOG.warning("could not clear the standby record: %s", exc)

    def _start_gc(self) -> None:
        """Remove orphan TAPs in a worker thread: it lists links and reads
        OVSDB on its own connection, off the reaction path."""
        if self._gc_thread is not None and self._gc_thread.is_alive():
            return
        self._gc_thread = threading.Thread(target=self._gc, name="tap-gc",
                                           daemon=True)
        self._gc_thread.start()

    def _gc(self) -> None:
        from virtio_ovs.plug.gc import collect
        from virtio_ovs.plug.taps import TapManager
        taps = TapManager()
        try:
            result = collect(self.db, taps, self.conf.agent.gc_grace)
        except VirtioOvsError as exc:
            LOG.warning("orphan TAP removal failed: %s", exc)
            return
        finally:
            taps.close()
        if result.removed:
            LOG.info("removed %d orphan TAP(s): %s", len(result.removed),
                     " ".join(result.removed))

    def _connect(self) -> None:
        while not self.stopping:
            try:
                self.db.start()
                return
            except VirtioOvsError as exc:
                LOG.warning("OVSDB not available yet: %s", exc)
                time.sleep(self.conf.agent.retry_interval)

    def _block(self) -> None:
        wake = [self.next_report]
        if self.conf.agent.check_interval and self.role == "active":
            wake.append(self.next_check)
        if self.dirty and self.retry_at is not None:
            wake.append(self.retry_at)
        timeout_ms = max(0, int((min(wake) - time.monotonic()) * 1000))
        poller = ovs.poller.Poller()
        self.db.wait(poller)
        poller.fd_wait(self._wake_r, select.POLLIN)
        for switch in self.switches.values():
            if switch.conn.fileno() is not None:
                poller.fd_wait(switch.conn.fileno(), select.POLLIN)
        poller.timer_wait(timeout_ms)
        poller.block()
        try:
            os.read(self._wake_r, 4096)
        except BlockingIOError:
            pass

    def _check_switches(self) -> None:
        """Serve the OpenFlow connections (echo replies keep them); one
        that ended means ovs-vswitchd restarted: program it again."""
        for switch in self.switches.values():
            switch.conn.service()
        lost = [name for name, switch in self.switches.items()
                if switch.conn.ended]
        if lost and self.watched:
            LOG.warning("lost the OpenFlow connection to %s (ovs-vswitchd "
                        "restarted?): re-programming", ", ".join(lost))
            self._resync()

    def _switch(self, bridge: str) -> OpenFlowBridge:
        """The bridge's OpenFlow side, whose connection stays open."""
        if bridge not in self.switches:
            self.switches[bridge] = OpenFlowBridge(bridge, self.db.timeout)
        return self.switches[bridge]

    def _resync(self) -> None:
        """Program every bridge again from scratch: set-up, then a first
        sync that replaces each table atomically (ovs-ofctl, whose limit
        grows with the flows), as at start."""
        self.first_sync_done = False
        self.planner.invalidate()
        self.wiring.reset()
        for switch in self.switches.values():
            switch.close()
        self.watched = False
        self.applied.clear()
        self.need_setup = True
        self.dirty = True

    # ----------------------------------------------------------- reconcile
    def _reconcile(self) -> None:
        start = time.monotonic()
        seqno = self.db.seqno
        try:
            version = self.db.wiring_version()
            if self._wired(version):
                # A verdict, a status or a heartbeat: nothing to compute.
                # (At 10,000 ports a full pass costs ~300 ms; each slice
                # of a check's verdicts would pay it.)
                self.reconciled_seqno = seqno
                self.dirty = self.db.seqno != seqno
                self.retry_at = None
                return
            self._reconcile_once()
        except UserError as exc:  # configuration that cannot work
            raise SystemExit(f"virtio-ovs-agent: {exc}") from None
        except VirtioOvsError as exc:
            self.planner.invalidate()  # what was applied is unknown
            LOG.warning("reconcile failed, retrying in %ss: %s",
                        self.conf.agent.retry_interval, exc)
            self.retry_at = time.monotonic() + self.conf.agent.retry_interval
            return
        self.reconciled_seqno = seqno
        self.wired_version = version
        self.dirty = self.db.seqno != seqno
        self.retry_at = None
        self.last_reconcile = time.time()
        elapsed = time.monotonic() - start
        self.last_reconcile_ms = round(elapsed * 1000, 2)
        self.metrics.reconcile.observe(elapsed)
        self.metrics.update(last_sync=self.last_reconcile)
        LOG.debug("reconciled in %.1f ms", self.last_reconcile_ms)

    def _wired(self, version: int) -> bool:
        """Everything the flows and tags depend on is as last reconciled."""
        return (self.owns_flows and self.first_sync_done
                and not self.need_setup and version == self.wired_version)

    def _host_state(self) -> HostState:
        """The state flows are computed from: this bridge's guest ports,
        the networks and the provider patch ports."""
        ports = tuple(p for p in self.db.list_ports()
                      if p.bridge == self.integration_bridge)
        self._warn_invalid(ports)
        names = {n for b in self.mappings.values()
                 for n in (int_patch_name(b), phy_patch_name(b))}
        ofports = self.db.ofports(names)
        patches = {}
        for physnet, bridge in self.mappings.items():
            int_ofport = ofports.get(int_patch_name(bridge))
            phy_ofport = ofports.get(phy_patch_name(bridge))
            if int_ofport and phy_ofport:
                patches[physnet] = PatchPorts(physnet, bridge, int_ofport,
                                              phy_ofport)
        return HostState(self.integration_bridge, ports, self.db.networks(),
                         patches, self.db.groups())

    def _warn_invalid(self, ports) -> None:
        """One warning per port whose external_ids do not validate (such
        a port gets no flows; the others are not held up)."""
        problems = {p.port_id: p.problem for p in ports if p.problem}
        for port_id, problem in problems.items():
            if self.warned.get(port_id) != problem:
                LOG.warning("port %r skipped: %s", port_id, problem)
        self.warned = problems

    def _time_wiring(self, ports, wanted: set[str], wired: set[str],
                     seen_at: float) -> None:
        for seconds in self.wiring.update(wanted, wired, seen_at,
                                          time.monotonic()):
            self.metrics.wiring.observe(seconds)
        self.metrics.update(ports=tuple(ports), flows={
            bridge: len(flows) for bridge, flows in self.applied.items()})

    def _reconcile_once(self) -> None:
        seen_at = time.monotonic()
        if not self.owns_flows:
            ports = self.db.list_ports()
            self.counts = {"ports": len(ports), "bound_ports": sum(
                1 for p in ports if p.ovn_installed)}
            self.first_sync_done = True
            self._time_wiring(ports, {p.port_id for p in ports},
                              {p.port_id for p in ports if p.ovn_installed},
                              seen_at)
            return
        if self.need_setup:
            self._refuse_foreign_bridge()
            self.db.ensure_bridges(self.bridges, connect=False)
        state = self._host_state()
        wanted = {p.name: port_tag(p, state.networks) for p in state.ports}
        tags = {p.name: wanted[p.name] for p in state.ports
                if p.tag != wanted[p.name]}
        if tags:
            self.db.set_port_tags(tags)
        hints = self.planner.plan(state)
        desired = self.planner.desired
        LOG.debug("state: %d ports, %d without ofport, %d tag changes",
                  len(state.ports), sum(1 for p in state.ports if not p.ofport),
                  len(tags))
        if self.first_sync_done:
            for bridge, flows in desired.items():
                self._apply_flows(bridge, flows,
                                  None if hints is None else hints.get(bridge))
        else:
            # One bundle per bridge makes its table exactly these flows,
            # with this run's cookie: the previous run's flows are replaced
            # atomically, so a restart loses no packet.
            sending = time.monotonic()
            for bridge, flows in desired.items():
                self._switch(bridge).replace_all(flows, self.cookie)
                self.applied[bridge] = set(flows)
            self.first_sync_done = True
            release_free_memory()
            LOG.info("first full sync done: %d flows (%.0f ms to compute, "
                     "%.0f ms for ovs-vswitchd to take them)",
                     sum(map(len, desired.values())),
                     (sending - seen_at) * 1000,
                     (time.monotonic() - sending) * 1000)
        if self.need_setup:
            if self.db.ensure_bridges(self.bridges, connect=True):
                LOG.info("patch pairs joined to %s", self.integration_bridge)
            self._watch_switches(desired)
            self.need_setup = False
        bound = {p.port_id: p for p in state.ports
                 if p.valid and p.bound_network in state.networks}
        self.counts = {
            "ports": len(state.ports), "bound_ports": len(bound),
            "networks": len(state.networks),
            "flows": sum(map(len, desired.values()))}
        self._time_wiring(state.ports, set(bound),
                          {i for i, p in bound.items() if p.ofport}, seen_at)

    def _refuse_foreign_bridge(self) -> None:
        owner = self.db.controller_of(self.integration_bridge)
        if owner is not None:
            raise UserError("integration_bridge", f"{self.integration_bridge}"
                            f" is programmed by {owner}; the standalone "
                            "backend would replace its flows (set [agent] "
                            "backend = ovn to run beside OVN)")

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

    # -------------------------------------------------------------- status
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

    def _report(self) -> None:
        interval = self.conf.agent.report_interval
        self.next_report = time.monotonic() + interval
        self._probe_switches(interval)
        if self.owns_flows and self.watched and self.first_sync_done:
            try:
                if not self._switch(self.integration_bridge).has_canary(
                        self.cookie):
                    LOG.warning("canary flow gone from %s: re-programming",
                                self.integration_bridge)
                    self._resync()
            except VirtioOvsError as exc:
                # A busy ovs-vswitchd (seconds per new port at 10,000 TAPs)
                # says nothing of the flows: re-programming 90,000 of them
                # would make it busier. A restart ends the connections.
                LOG.warning("canary check failed (%s): trying again at the "
                            "next heartbeat", exc)
        status = {
            "host": socket.gethostname(), "pid": os.getpid(),
            "started_at": round(self.started_at, 3),
            "heartbeat": round(time.time(), 3), "report_interval": interval,
            "integration_bridge": self.integration_bridge,
            "backend": self.conf.agent.backend,
            "datapath_type": self.conf.ovs.datapath_type,
            "bridge_mappings": self.mappings, "cookie": f"{self.cookie:#x}",
            "synced": self.first_sync_done and not self.dirty,
            "last_reconcile": self.last_reconcile,
            "last_reconcile_ms": self.last_reconcile_ms, "role": self.role,
            **self.counts}
        try:
            self.db.write_agent_status(status)
        except VirtioOvsError as exc:
            LOG.warning("could not write the heartbeat: %s", exc)
