"""The plugger's one rollback routine, interrupted at every step: a TAP is
never deleted while a committed row uses it, and a plug that did not
commit leaves no TAP it created."""
from __future__ import annotations

import pytest

from virtio_ovs.core import plug_request
from virtio_ovs.core.errors import OvsdbTimeout, VswitchdError
from virtio_ovs.backend.plugger import Plugger
from virtio_ovs.kernel.taps import ABSENT, OURS, PRESENT
from tests.fakes import FakeHostDb, FakeTaps, Interrupt, Steps

VIFS = [plug_request.make_vif(port_id=f"p{i}", mac=f"52:54:00:00:00:0{i}",
                       tap=f"tap{i}", bridge="br-int") for i in (1, 2)]


def plugger(fail_at=None, refuse=frozenset()):
    steps = Steps(fail_at)
    db, taps = FakeHostDb(steps, refuse), FakeTaps(steps)
    return Plugger(db, taps, validate_host=lambda vif: ABSENT), db, taps


def rows_use_only_existing_taps(db, taps) -> bool:
    return set(db.rows.values()) <= taps.links


@pytest.mark.parametrize("step", ["create tap1", "create tap2", "commit"])
def test_interrupted_before_commit_leaves_nothing(step):
    plug, db, taps = plugger(step)
    with pytest.raises(Interrupt):
        plug.plug(list(VIFS))
    assert db.rows == {} and taps.links == set()


def test_interrupted_while_waiting_for_vswitchd_keeps_rows_and_taps():
    plug, db, taps = plugger("wait")
    with pytest.raises(Interrupt):
        plug.plug(list(VIFS))
    assert set(db.rows) == {"p1", "p2"} and taps.links == {"tap1", "tap2"}


def test_refused_interface_rolls_back_rows_then_taps():
    plug, db, taps = plugger(refuse=frozenset({"tap2"}))
    with pytest.raises(VswitchdError):
        plug.plug(list(VIFS))
    assert db.rows == {} and taps.links == set()
    assert db.steps.seen[-4:] == ["remove rows", "read back", "delete tap2",
                                  "delete tap1"]


def test_interrupted_row_rollback_keeps_the_taps_the_rows_use():
    plug, db, taps = plugger("remove rows", refuse=frozenset({"tap1"}))
    with pytest.raises(Interrupt):
        plug.plug(list(VIFS))
    assert set(db.rows) == {"p1", "p2"}
    assert rows_use_only_existing_taps(db, taps)


def test_interrupted_tap_rollback_leaves_no_row_without_its_tap():
    plug, db, taps = plugger("delete tap2", refuse=frozenset({"tap1"}))
    with pytest.raises(Interrupt):
        plug.plug(list(VIFS))
    assert db.rows == {} and rows_use_only_existing_taps(db, taps)


def test_existing_taps_are_never_deleted_by_a_rollback():
    steps = Steps("commit")
    db, taps = FakeHostDb(steps), FakeTaps(steps)
    taps.links.add("tap1")  # QEMU's, or an earlier plug's
    plug = Plugger(db, taps, validate_host=lambda vif: PRESENT
                   if vif.name in taps.links else ABSENT)
    with pytest.raises(Interrupt):
        plug.plug(list(VIFS))
    assert taps.links == {"tap1"}


def test_lost_commit_answer_keeps_the_taps_the_committed_rows_use():
    """The commit went through but its answer was lost (timeout): the
    rollback asks the database, which has the rows, and keeps the TAPs."""
    plug, db, taps = plugger()
    db.lose_answer = True
    with pytest.raises(OvsdbTimeout):
        plug.plug(list(VIFS))
    assert set(db.rows) == {"p1", "p2"} and taps.links == {"tap1", "tap2"}


def test_unreachable_database_keeps_the_created_taps():
    """Nobody can tell whether rows use them: they stay (marked, for gc)."""
    plug, db, taps = plugger("commit")
    db.unreachable = True
    with pytest.raises(Interrupt):
        plug.plug(list(VIFS))
    assert taps.links == {"tap1", "tap2"}


def test_rollback_keeps_a_tap_a_concurrent_plug_committed():
    plug, db, taps = plugger("commit")
    db.others.add("tap2")  # another process's row names tap2
    with pytest.raises(Interrupt):
        plug.plug(list(VIFS))
    assert taps.links == {"tap2"}


def test_marked_taps_of_an_earlier_run_keep_tap_created():
    steps = Steps()
    db, taps = FakeHostDb(steps), FakeTaps(steps)
    seen = {}
    db.plug = lambda vifs, outcome, wait, created, local_vlans: \
        seen.update(created=created)
    taps.links.add("tap1")
    taps.marked.add("tap1")
    plug = Plugger(db, taps, validate_host=lambda vif: OURS
                   if vif.name == "tap1" else ABSENT)
    plug.plug(list(VIFS))
    assert seen["created"] == {"tap1", "tap2"}
    # tap1 exists: adopted (brought up: a killed run may have left it
    # down), not created; under the lock gc waits for
    assert steps.seen == ["lock shared", "up tap1", "create tap2"]


def test_a_tap_gc_removed_before_the_lock_is_created_again():
    """validate() found tap1 (a killed run's, marked); gc deleted it before
    this plug took the lock: the plug creates it instead of committing a
    row that names nothing."""
    steps = Steps()
    db, taps = FakeHostDb(steps), FakeTaps(steps)
    plug = Plugger(db, taps, validate_host=lambda vif: OURS
                   if vif.name == "tap1" else ABSENT)
    plug.plug(list(VIFS))
    assert sorted(steps.seen[:3]) == ["create tap1", "create tap2",
                                      "lock shared"]
    assert taps.links == {"tap1", "tap2"}
    assert rows_use_only_existing_taps(db, taps)


def test_a_plug_that_touches_no_marked_tap_takes_no_lock():
    steps = Steps()
    db, taps = FakeHostDb(steps), FakeTaps(steps)
    Plugger(db, taps, validate_host=lambda vif: PRESENT).plug(list(VIFS))
    assert "lock shared" not in steps.seen


def test_an_unplug_whose_answer_was_lost_still_deletes_its_taps():
    """The database, read back, has the rows gone: the TAPs virtio-ovs
    created go too, instead of leaking."""
    plug, db, taps = plugger()
    plug.plug(list(VIFS))
    db.lose_answer = True
    with pytest.raises(OvsdbTimeout):
        plug.unplug(["p1", "p2"])
    assert db.rows == {} and taps.links == set()


def test_unplug_deletes_a_marked_tap_its_row_did_not_record():
    """Two plugs race for one new TAP; the one that saw it created but not
    yet marked plugged it as someone else's, and won the commit: its row
    lacks tap-created, but the device carries virtio-ovs's mark."""
    plug, db, taps = plugger()
    db.tap_created = False  # the rows record no tap-created
    taps.links.add("tap1")
    taps.marked.add("tap1")  # the losing plug's TAP
    db.rows["p1"] = "tap1"
    plug.unplug(["p1"])
    assert taps.links == set()
    taps.links.add("libvirt0")  # not marked: never deleted
    db.rows["p2"] = "libvirt0"
    plug.unplug(["p2"])
    assert taps.links == {"libvirt0"}


def test_the_tap_lock_is_in_the_run_directory_of_the_database(tmp_path,
                                                              monkeypatch):
    """Plugs and gc of one OVS meet in its run directory: a unix: member's,
    else $OVS_RUNDIR's; /run/lock only when OVS is elsewhere."""
    from virtio_ovs.kernel.taps import LOCK_FILE, tap_lock_path
    monkeypatch.setenv("OVS_RUNDIR", str(tmp_path / "env"))
    (tmp_path / "env").mkdir()
    assert tap_lock_path(f"tcp:127.0.0.1:6640,unix:{tmp_path}/db.sock") == \
        f"{tmp_path}/{LOCK_FILE}"
    assert tap_lock_path("tcp:127.0.0.1:6640") == f"{tmp_path}/env/{LOCK_FILE}"
    assert tap_lock_path(None) == f"{tmp_path}/env/{LOCK_FILE}"
    monkeypatch.setenv("OVS_RUNDIR", str(tmp_path / "missing"))
    assert tap_lock_path("tcp:192.0.2.1:6640") == f"/run/lock/{LOCK_FILE}"
