"""The agent's event loop.

It sleeps in one poll on: the OVSDB connection (IDL change notifications),
the connections the backend's driver keeps (the standalone backend's
OpenFlow connection per bridge, whose end means ovs-vswitchd went away
with every flow), a signal wake-up pipe, and a timer for the next
heartbeat (or retry). Any wake-up that changed the replica triggers a
reconcile through the driver.

``build_agent(conf)`` assembles it; ``Agent`` takes its parts ready-made,
so that a test drives its loop (``turn``) with stand-ins.
"""
from __future__ import annotations

import ctypes
import gc
import logging
import os
import select
import signal
import threading
import time
from typing import Callable

import ovs.poller

from virtio_ovs import conf as conf_mod
from virtio_ovs.agent.checker import DataPlaneChecker
from virtio_ovs.agent.parts import (LOCK_NAME, Heartbeat, LockFollower,
                                    Reconciler)
from virtio_ovs.agent.systemd import Notifier
from virtio_ovs.backend import factory
from virtio_ovs.backend.base import AgentDriver
from virtio_ovs.backend.flow_driver import new_cookie
from virtio_ovs.core.errors import EnvironmentFailure, VirtioOvsError
from virtio_ovs.core.networks import parse_bridge_mappings
from virtio_ovs.core.validate import validate_bind
from virtio_ovs.metrics import AgentMetrics, reports_by_port
from virtio_ovs.ovsdb.connection import json_parser, set_ssl_files
from virtio_ovs.ovsdb.host.api import HostDb

LOG = logging.getLogger(__name__)
HEALTH_GRACE = 5.0  # seconds a loop turn may take before /healthz says 503


def settle_memory() -> None:
    """After the first sync and after each data-plane check, at a time
    the agent chose: collect the cyclic garbage, and freeze what
    survives (the replica, the flow memo: long-lived) out of the cyclic
    collector's sight; then give the C heap's free pages back to the
    kernel (glibc's malloc_trim).

    Unfrozen, a full collection scanned every object of the replica
    whenever the young ones had grown enough: 38 ms at 1,000 ports, at a
    random moment, which a new port's flows then waited for
    (bench/side_by_side.py's p99). The first sync and a check of
    thousands of ports also allocate in bulk and free it all; without
    malloc_trim the process keeps that high-water mark as RSS."""
    gc.collect()
    gc.freeze()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class Agent:
    """The loop over its parts: the lock follower, the reconciler (the
    backend's driver inside), the heartbeat, the data-plane checker and
    the orphan-TAP collector."""

    def __init__(self, conf, db: HostDb, driver: AgentDriver,
                 metrics: AgentMetrics, cookie: int = 0,
                 notifier: Notifier | None = None,
                 reopen_logs: Callable[[object], None] = lambda conf: None):
        """``reopen_logs(conf)``: set logging up again (on SIGHUP: the
        levels of a reloaded config, a log file logrotate moved away)."""
        self.conf = conf
        self.reopen_logs = reopen_logs
        self.systemd = notifier or Notifier({})
        self.ready = False  # READY=1 sent
        self.status_text = ""  # the last STATUS= sent
        self.cookie = cookie  # this run's; the flows it programs carry it
        self.db = db
        self.driver = driver
        self.metrics = metrics
        self.reconciler = Reconciler(db, driver, metrics,
                                     lambda: conf.agent.retry_interval)
        self.lock = LockFollower(db, db, self._on_role)
        self.heartbeat = Heartbeat(db)
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        self.checker = DataPlaneChecker(
            db, self._wake_loop,
            lambda reports: metrics.update(reports=reports_by_port(reports)),
            settle_memory)
        self.next_check = time.monotonic() + 1.0
        self.next_gc = time.monotonic() + conf.agent.gc_grace
        self._gc_thread: threading.Thread | None = None
        self.stopping = False
        self.reload_requested = False
        self._pinned: list[tuple[str | None, str]] = []  # refused reload

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

    def wake(self) -> None:
        """Make the loop turn now (from any thread)."""
        self._wake_loop()

    def _wake_loop(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:  # the pipe is full: the loop wakes anyway
            pass

    def _on_hup(self, signum, frame) -> None:
        self.reload_requested = True

    def _reload(self) -> None:
        """Re-read the files; a refused reload keeps the running values by
        overriding them, until the next reload, which reads the files
        without those overrides."""
        self.reload_requested = False
        before = [(group, opt.dest, value) for group, opt, value
                  in conf_mod.option_values(self.conf) if opt.mutable]
        for group, name in self._pinned:
            self.conf.clear_override(name, group)
        self._pinned = []
        try:
            self.conf.mutate_config_files()
            conf_mod.validate_conf(self.conf)
        except Exception as exc:  # oslo's errors, or ours (UserError)
            LOG.error("configuration reload refused, the running values "
                      "stay: %s", str(exc).splitlines()[0])
            for group, name, value in before:
                self.conf.set_override(name, value, group)
                self._pinned.append((group, name))
            return
        self.reopen_logs(self.conf)
        self.heartbeat.now()
        LOG.info("configuration reloaded (report_interval=%s)",
                 self.conf.agent.report_interval)

    def _on_role(self, role: str) -> None:
        """Taking over or standing by: program everything again when
        active (closing the driver's connections meanwhile)."""
        self.reconciler.resync()
        self.metrics.update(active=role == "active")
        self.heartbeat.now()

    # ---------------------------------------------------------------- loop
    def serve_metrics(self) -> None:
        """Listen on [agent] metrics_bind (read once, at start)."""
        if not self.conf.agent.metrics_bind:
            return
        host, port = validate_bind(self.conf.agent.metrics_bind)
        try:
            self.metrics.serve(host, port, self.healthy)
        except OSError as exc:
            raise EnvironmentFailure(f"[agent] metrics_bind {host}:{port}: "
                                     f"{exc.strerror or exc}") from None
        LOG.info("serving Prometheus metrics on http://%s:%d/metrics "
                 "(and /healthz)", *self.metrics.address)

    def healthy(self) -> bool:
        """The loop turned within the last heartbeat interval (it wakes at
        least once an interval; a few seconds of grace for the turn
        itself). A standby that follows the lock is healthy too. Any
        thread."""
        window = self.conf.agent.report_interval + HEALTH_GRACE
        return time.monotonic() - self.metrics.loop_turned <= window

    def run(self) -> int:
        """Until stopped: 0. A configuration that cannot work here (the
        integration bridge programmed by someone else) raises UserError."""
        LOG.info("starting: OVSDB %s, backend %s, integration bridge %s, "
                 "cookie %#x", self.db.remote, self.conf.agent.backend,
                 self.conf.ovs.integration_bridge, self.cookie)
        if json_parser() != "C":
            LOG.warning("python-ovs parses OVSDB's JSON in pure Python (no "
                        "ovs._json C extension): updates of thousands of "
                        "rows take about 20x longer")
        self.serve_metrics()
        try:
            self._connect()
            if not self.stopping:
                self.driver.preflight()
            while not self.stopping:
                self.turn()
        finally:
            LOG.info("stopping (flows stay in place)")
            self.systemd.notify(STOPPING="1")
            self.driver.close()
            self.metrics.close()
            self.db.close()
        return 0

    def turn(self) -> None:
        """One turn of the loop: take in what changed, act, then sleep
        until something happens (unless work is pending)."""
        self.metrics.turned()
        self.systemd.watchdog()
        if self.reload_requested:
            self._reload()
        self.db.run()
        if not self.lock.follow():
            self.lock.report_standby(self.conf.agent.report_interval)
            self._tell_systemd("standby: another agent holds the OVSDB lock")
            self._block()
            return
        self.reconciler.note_changes()
        if self.driver.service():
            self.reconciler.resync()
        now = time.monotonic()
        if self.reconciler.due(now):
            self.reconciler.run()
            if self.driver.synced:
                counts = self.reconciler.counts
                self._tell_systemd(f"active: {counts.get('ports', 0)} ports,"
                                   f" {counts.get('bound_ports', 0)} wired")
        if self.heartbeat.due(now):
            self._report()
        self.checker.collect()
        self._schedule(now)
        # The heartbeat's and the verdicts' commits may have consumed
        # updates: sleeping on them would wait for the next message.
        self.reconciler.note_changes()
        if self.reconciler.waiting and not self.checker.writing:
            self._block()

    def _tell_systemd(self, status: str) -> None:
        """READY=1 with the first status (the first full sync, or
        standing by), STATUS= whenever it changes."""
        if not self.ready:
            self.ready = True
            self.systemd.notify(READY="1", STATUS=status)
            self.status_text = status
        elif status != self.status_text:
            self.status_text = status
            self.systemd.notify(STATUS=status)

    def _schedule(self, now: float) -> None:
        agent = self.conf.agent
        if agent.gc_interval and now >= self.next_gc:
            self.next_gc = now + agent.gc_interval
            self._start_gc()
        if agent.check_interval and now >= self.next_check:
            self.next_check = now + agent.check_interval
            self.checker.start(agent.qmp_socket_template)

    def _connect(self) -> None:
        """Until the first replica is in, or a stop is asked: SIGTERM ends
        the waits at once (within 200 ms), not after ovsdb_timeout."""
        connecting = time.monotonic()
        while not self.stopping:
            try:
                self.db.start(lambda: self.stopping)
                LOG.info("OVSDB replica loaded in %.0f ms",
                         (time.monotonic() - connecting) * 1000)
                return
            except VirtioOvsError as exc:
                if self.stopping:
                    return
                LOG.warning("OVSDB not available yet: %s", exc)
                # The signal wake-up pipe ends this sleep too.
                select.select([self._wake_r], [], [],
                              self.conf.agent.retry_interval)

    def _block(self) -> None:
        """Sleep until a connection has something, a signal, or the next
        timer of this role (a standby writes no heartbeat: its own record
        has its own time)."""
        active = self.lock.role == "active"
        wake = [self.heartbeat.next_at if active
                else self.lock.next_standby_report]
        if self.systemd.watchdog_interval is not None:
            wake.append(self.systemd.next_ping)
        if self.conf.agent.check_interval and active:
            wake.append(self.next_check)
        if active and self.reconciler.dirty and \
                self.reconciler.retry_at is not None:
            wake.append(self.reconciler.retry_at)
        timeout_ms = max(0, int((min(wake) - time.monotonic()) * 1000))
        poller = ovs.poller.Poller()
        self.db.register_wakeup(poller)
        poller.fd_wait(self._wake_r, select.POLLIN)
        self.driver.register_wakeup(poller)
        poller.timer_wait(timeout_ms)
        poller.block()
        try:
            os.read(self._wake_r, 4096)
        except BlockingIOError:
            pass

    def _start_gc(self) -> None:
        """Remove orphan TAPs in a worker thread: it lists links and reads
        OVSDB on its own connection, off the reaction path."""
        if self._gc_thread is not None and self._gc_thread.is_alive():
            return
        self._gc_thread = threading.Thread(target=self._gc, name="tap-gc",
                                           daemon=True)
        self._gc_thread.start()

    def _gc(self) -> None:
        from virtio_ovs.backend.gc import collect
        from virtio_ovs.kernel.taps import TapLockBusy, TapManager
        taps = TapManager(self.db.remote)
        try:
            result = collect(self.db, taps, self.conf.agent.gc_grace)
        except TapLockBusy:
            LOG.debug("orphan TAP removal: plugs are running; next time")
            return
        except VirtioOvsError as exc:
            LOG.warning("orphan TAP removal failed: %s", exc)
            return
        finally:
            taps.close()
        if result.removed:
            LOG.info("removed %d orphan TAP(s): %s", len(result.removed),
                     " ".join(result.removed))

    def _report(self) -> None:
        interval = self.conf.agent.report_interval
        self.heartbeat.schedule(interval)
        self.driver.heartbeat(interval)
        rec = self.reconciler
        written = self.heartbeat.write(interval, {
            "backend": self.conf.agent.backend,
            "integration_bridge": self.conf.ovs.integration_bridge,
            "datapath_type": self.conf.ovs.datapath_type,
            "bridge_mappings": parse_bridge_mappings(
                self.conf.ovs.bridge_mappings), "cookie": f"{self.cookie:#x}",
            **self.driver.status(),
            "synced": self.driver.synced and not rec.dirty,
            "last_reconcile": rec.last_reconcile,
            "last_reconcile_ms": rec.last_reconcile_ms,
            "role": self.lock.role, **rec.counts})
        if written:
            self.metrics.heartbeat.set(time.time())


def build_agent(conf, reopen_logs: Callable[[object], None] = lambda c: None
                ) -> Agent:
    """The agent for ``conf``: the host database (with the lock), the
    backend's driver, the metrics."""
    set_ssl_files(conf.ovs.ssl_key_file, conf.ovs.ssl_cert_file,
                  conf.ovs.ssl_ca_cert_file)
    db = factory.open_host_db(conf_mod.ovsdb_remote(conf),
                              conf.ovs.ovsdb_timeout, lock_name=LOCK_NAME)
    cookie, metrics = new_cookie(), AgentMetrics()
    driver = factory.build_driver(conf, db, settle_memory, cookie,
                                  metrics)
    return Agent(conf, db, driver, metrics, cookie, Notifier(), reopen_logs)
