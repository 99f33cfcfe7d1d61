"""The agent's periodic check writes its verdicts in slices, so that the
first check of many ports never holds the event loop in one transaction,
and writes only what changed."""
from __future__ import annotations

import threading

import pytest

from virtio_ovs.agent import checker as checker_mod
from virtio_ovs.agent.checker import VERDICT_SLICE, DataPlaneChecker
from virtio_ovs.core.verdicts import PortReport
from virtio_ovs.core.port import GuestPort


class RecordingDb:
    """The two HostDb calls the checker makes, on plain data."""

    def __init__(self, ports: list[GuestPort]):
        self.ports = ports
        self.writes: list[dict] = []

    def list_ports(self) -> list[GuestPort]:
        return self.ports

    def record_verdicts(self, verdicts) -> None:
        self.writes.append(dict(verdicts))


def port(i: int, verdict: str | None = None) -> GuestPort:
    return GuestPort(port_id=f"p{i}", name=f"t{i}", kind="tap",
                     mac="52:54:00:00:00:01", verdict=verdict,
                     queues_enabled=None)


def report(i: int) -> PortReport:
    return PortReport(port_id=f"p{i}", name=f"t{i}", kind="tap",
                      verdict="not-running", reason="no process",
                      queues_expected=1, queues_configured=1,
                      queues_enabled=None, queues=[], evidence=[])


@pytest.fixture
def finished_check(monkeypatch):
    """Run one check whose evidence gathering returns a report per port."""
    def run(db: RecordingDb) -> DataPlaneChecker:
        monkeypatch.setattr(checker_mod, "check_ports", lambda group, db, qmp:
                            [report(int(p.port_id[1:])) for p in group])
        done = threading.Event()
        checker = DataPlaneChecker(db, done.set, lambda reports: None)
        checker.start(None)
        assert done.wait(5)
        return checker
    return run


def test_verdicts_are_written_in_slices_between_loop_turns(finished_check):
    count = 2 * VERDICT_SLICE + 7
    db = RecordingDb([port(i) for i in range(count)])
    checker = finished_check(db)
    turns = 0
    checker.collect()
    while checker.writing:
        turns += 1
        checker.collect()
    assert [len(w) for w in db.writes] == [VERDICT_SLICE, VERDICT_SLICE, 7]
    assert turns == 2
    written = {k: v for w in db.writes for k, v in w.items()}
    assert written == {f"p{i}": ("not-running", None) for i in range(count)}


def test_unchanged_verdicts_are_not_written(finished_check):
    db = RecordingDb([port(0, "not-running"), port(1)])
    checker = finished_check(db)
    checker.collect()
    assert db.writes == [{"p1": ("not-running", None)}]
    assert not checker.writing


def test_no_new_check_starts_while_verdicts_are_being_written(finished_check):
    db = RecordingDb([port(i) for i in range(VERDICT_SLICE + 1)])
    checker = finished_check(db)
    checker.collect()
    assert checker.writing
    checker.start(None)
    assert not checker.busy  # refused: the slices come first
