"""The agent's loop, driven turn by turn without OVS: its parts (lock
follower, reconciler, heartbeat) over a stand-in replica and driver."""
from __future__ import annotations

import pytest

from virtio_ovs import conf as conf_mod
from virtio_ovs.agent.agent import Agent
from virtio_ovs.backend.base import AgentDriver, Reconciled
from virtio_ovs.core.errors import EnvironmentFailure, UserError
from virtio_ovs.metrics import AgentMetrics


class Replica:
    """The parts of the host database the loop itself uses."""

    remote, timeout = "fake:", 1.0

    def __init__(self):
        self.seqno = 1
        self.version = 1
        self.lock_state = "held"
        self.status: dict | None = None
        self.standby: dict | None = None

    def start(self, cancelled=None): pass
    def run(self): pass
    def close(self): pass
    def register_wakeup(self, poller): pass
    def wiring_version(self): return self.version
    def agent_status(self): return self.status
    def write_agent_status(self, status): self.status = status
    def standby_status(self): return self.standby
    def write_standby_status(self, status): self.standby = status


class Driver(AgentDriver):
    def __init__(self):
        self.calls: list[int] = []
        self.fail: Exception | None = None
        self.resyncs = 0
        self.done_version = -1

    @property
    def synced(self):
        return self.done_version != -1 or self.ever_synced

    ever_synced = False

    def up_to_date(self, wiring_version):
        return wiring_version == self.done_version

    def reconcile(self, wiring_version):
        self.calls.append(wiring_version)
        if self.fail is not None:
            raise self.fail
        self.done_version = wiring_version
        self.ever_synced = True
        return Reconciled({"ports": 2, "bound_ports": 1},
                          wanted=frozenset({"p1"}), wired=frozenset({"p1"}))

    def resync(self):
        self.resyncs += 1
        self.done_version = -1


@pytest.fixture
def loop(tmp_path):
    path = tmp_path / "agent.conf"
    path.write_text("[agent]\ncheck_interval = 0\ngc_interval = 0\n"
                    "retry_interval = 0.2\n")
    conf = conf_mod.load([str(path)], prog="virtio-ovs-agent")
    replica, driver = Replica(), Driver()
    agent = Agent(conf, replica, driver, AgentMetrics())

    def turn():
        agent.wake()  # the poll at the end of the turn returns at once
        agent.turn()
    yield agent, replica, driver, turn
    agent.metrics.close()


def test_the_first_turn_takes_the_lock_reconciles_and_reports(loop):
    agent, replica, driver, turn = loop
    turn()
    assert agent.lock.role == "active" and driver.resyncs == 1
    assert driver.calls == [1]
    assert replica.status["role"] == "active"
    assert (replica.status["ports"], replica.status["bound_ports"]) == (2, 1)
    assert replica.status["synced"] is True


def test_only_a_change_of_the_replica_reconciles_again(loop):
    agent, replica, driver, turn = loop
    turn()
    turn()
    assert driver.calls == [1]
    replica.seqno += 1  # a heartbeat's echo: wiring unchanged
    turn()
    assert driver.calls == [1] and not agent.reconciler.dirty
    replica.seqno += 1
    replica.version += 1
    turn()
    assert driver.calls == [1, 2]


def test_a_failed_reconcile_is_retried_after_the_interval(loop):
    agent, replica, driver, turn = loop
    driver.fail = EnvironmentFailure("ovs-vswitchd went away")
    turn()
    assert driver.calls == [1] and agent.reconciler.retry_at is not None
    turn()
    assert driver.calls == [1]  # not before the retry time
    driver.fail = None
    agent.reconciler.retry_at = 0.0  # the retry time has come
    turn()
    assert driver.calls == [1, 1] and agent.reconciler.retry_at is None


def test_a_configuration_that_cannot_work_ends_the_loop_with_user_error(loop):
    agent, replica, driver, turn = loop
    driver.fail = UserError("integration_bridge", "br-int is programmed by "
                            "ovn-controller")
    with pytest.raises(UserError, match="integration_bridge"):
        turn()


@pytest.mark.parametrize("error", [
    UserError("network", "a value someone wrote"), RecursionError("deep"),
    OverflowError("1e400"), KeyError("type"), TypeError("list")])
def test_after_the_first_sync_nothing_a_reconcile_raises_ends_the_loop(
        loop, caplog, error):
    """Data is not configuration: whatever a later reconcile raises, the
    loop retries (the unexpected ones logged with their traceback once)."""
    caplog.set_level("INFO", logger="virtio_ovs.agent.parts")
    agent, replica, driver, turn = loop
    turn()
    driver.fail = error
    for _ in range(3):
        replica.seqno += 1
        replica.version += 1
        agent.reconciler.retry_at = 0.0
        turn()
    assert len(driver.calls) == 4 and agent.reconciler.retry_at is not None
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == (0 if isinstance(error, UserError) else 1)
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1  # the repeats are at debug level
    driver.fail = None
    agent.reconciler.retry_at = 0.0
    turn()
    assert agent.reconciler.retry_at is None and not agent.reconciler.dirty
    assert "reconcile works again (after 3 failed tries)" in caplog.text


def test_a_standby_touches_nothing_and_takes_over_when_the_lock_comes(loop):
    agent, replica, driver, turn = loop
    replica.lock_state = "contended"
    turn()
    assert agent.lock.role == "standby" and driver.calls == []
    assert replica.standby["pid"] and replica.status is None
    replica.lock_state = "held"
    turn()
    assert agent.lock.role == "active" and driver.calls == [1]
    assert replica.standby is None  # its own record is cleared


@pytest.fixture
def systemd(tmp_path):
    """A datagram socket standing for systemd's $NOTIFY_SOCKET."""
    import socket
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)

    def received() -> list[dict]:
        messages = []
        while True:
            try:
                data = sock.recv(4096).decode()
            except BlockingIOError:
                return messages
            messages.append(dict(line.split("=", 1)
                                 for line in data.splitlines()))
    yield path, received
    sock.close()


def test_systemd_hears_ready_after_the_first_sync_and_the_watchdog(
        loop, systemd):
    from virtio_ovs.agent.systemd import Notifier
    agent, replica, driver, turn = loop
    path, received = systemd
    agent.systemd = Notifier({"NOTIFY_SOCKET": path,
                              "WATCHDOG_USEC": "2000000"})
    turn()
    messages = received()
    assert {"WATCHDOG": "1"} in messages
    ready = [m for m in messages if "READY" in m]
    assert ready == [{"READY": "1", "STATUS": "active: 2 ports, 1 wired"}]
    turn()  # nothing new: no second READY, no ping before 1 s
    assert received() == []
    agent.systemd.next_ping = 0.0
    turn()
    assert received() == [{"WATCHDOG": "1"}]


def test_a_standby_is_ready_and_says_so(loop, systemd):
    from virtio_ovs.agent.systemd import Notifier
    agent, replica, driver, turn = loop
    path, received = systemd
    agent.systemd = Notifier({"NOTIFY_SOCKET": path})
    replica.lock_state = "contended"
    turn()
    assert received() == [{"READY": "1", "STATUS": "standby: another "
                           "agent holds the OVSDB lock"}]
    replica.lock_state = "held"
    turn()
    assert received() == [{"STATUS": "active: 2 ports, 1 wired"}]


def test_without_systemd_nothing_is_sent():
    from virtio_ovs.agent.systemd import Notifier
    quiet = Notifier({})
    assert not quiet.enabled and quiet.watchdog_interval is None
    quiet.notify(READY="1")  # no socket, no error


def test_a_standby_sleeps_until_its_own_record_is_due(loop, monkeypatch):
    """A standby writes no heartbeat: it must not wake for one (it spun at
    100 % CPU with the active agent's timer at 0)."""
    import ovs.poller
    agent, replica, driver, turn = loop
    waits = []
    monkeypatch.setattr(ovs.poller.Poller, "timer_wait",
                        lambda self, ms: waits.append(ms))
    monkeypatch.setattr(ovs.poller.Poller, "block", lambda self: None)
    replica.lock_state = "contended"
    agent.turn()  # the first turn writes the standby record at once
    agent.turn()
    assert waits[-1] >= 0.5 * agent.conf.agent.report_interval * 1000, waits


def test_a_refused_reload_pins_nothing_for_the_next(loop, tmp_path):
    """A bad value keeps the running ones; the next good file applies,
    and what the log says is what is in force."""
    agent, replica, driver, turn = loop
    path = tmp_path / "agent.conf"
    path.write_text("[agent]\ncheck_interval = 0\ngc_interval = 0\n"
                    "retry_interval = 0.2\nreport_interval = 5\n")
    agent.reload_requested = True
    turn()
    assert agent.conf.agent.report_interval == 5
    path.write_text("[agent]\ncheck_interval = nan\nreport_interval = 7\n")
    agent.reload_requested = True
    turn()
    assert agent.conf.agent.report_interval == 5
    assert agent.conf.agent.check_interval == 0
    path.write_text("[agent]\ncheck_interval = 0\nreport_interval = 9\n")
    agent.reload_requested = True
    turn()
    assert agent.conf.agent.report_interval == 9
