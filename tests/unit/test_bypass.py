"""Bypass verdicts from recorded /proc trees and OVS outputs (pure)."""
from __future__ import annotations

import os

import pytest

from virtio_ovs.check import procfs
from virtio_ovs.core import verdicts

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")
PID = 29306


def proc(name: str) -> str:
    return os.path.join(FIXTURES, name)


def evidence(tree: str, expected=2, enabled=2, disabled=0, **kw):
    root = proc(tree)
    holders = procfs.scan_holders(root).index.get("tapg1", {})
    return verdicts.TapEvidence(
        port_id="g1", name="tapg1", queues_expected=expected, holders=holders,
        holder_comm={p: procfs.comm(root, p) for p in holders},
        enabled=enabled, disabled=disabled,
        vhost_fds={p: procfs.vhost_net_fds(p, root) for p in holders},
        vhost_workers={p: procfs.vhost_workers(p, root) for p in holders},
        **kw)


def test_recorded_tcg_qemu_holds_two_tap_queues_and_no_vhost():
    root = proc("proc-tcg-userspace")
    assert procfs.scan_holders(root).index == {"tapg1": {PID: [10, 11]}}
    assert procfs.vhost_net_fds(PID, root) == []
    assert procfs.vhost_workers(PID, root) == []
    assert procfs.comm(root, PID) == "qemu-system-x86"


@pytest.mark.parametrize("tree", ["proc-vhost-net-task", "proc-vhost-net-kthread"])
def test_vhost_net_fixtures_show_fds_and_workers(tree):
    root = proc(tree)
    assert procfs.vhost_net_fds(PID, root) == [190, 191]
    assert procfs.vhost_workers(PID, root) == [29320, 29321]


def test_userspace_virtio_is_through_qemu():
    report = verdicts.decide_tap(evidence("proc-tcg-userspace"))
    assert report.verdict == verdicts.THROUGH_QEMU
    assert "no /dev/vhost-net fd" in report.reason
    assert [q.verdict for q in report.queues] == [verdicts.THROUGH_QEMU] * 2
    assert not report.ok


@pytest.mark.parametrize("tree", ["proc-vhost-net-task", "proc-vhost-net-kthread"])
def test_vhost_net_is_bypass(tree):
    report = verdicts.decide_tap(evidence(tree))
    assert report.verdict == verdicts.BYPASS, report.reason
    assert [q.verdict for q in report.queues] == [verdicts.BYPASS] * 2
    assert (report.queues_configured, report.queues_enabled) == (2, 2)
    assert report.ok
    text = "\n".join(report.evidence)
    assert "holds 2 /dev/vhost-net fd(s)" in text and "2 vhost-29306 worker" in text


def test_vhost_started_false_means_fallback_to_userspace():
    report = verdicts.decide_tap(evidence("proc-vhost-net-task",
                                        qmp_status={"vhost-started": False}))
    assert report.verdict == verdicts.THROUGH_QEMU
    assert "vhost-started=false" in report.reason


def test_qemu_syscalls_tracking_packets_mean_through_qemu():
    busy = verdicts.TrafficDelta(2.0, packets=200, qemu_syscalls=420,
                               vhost_cpu_ticks=0)
    assert verdicts.decide_tap(evidence("proc-vhost-net-task", traffic=busy)
                             ).verdict == verdicts.THROUGH_QEMU
    quiet = verdicts.TrafficDelta(2.0, packets=200, qemu_syscalls=12,
                                vhost_cpu_ticks=9)
    report = verdicts.decide_tap(evidence("proc-vhost-net-task", traffic=quiet))
    assert report.verdict == verdicts.BYPASS
    assert any("0.06 per packet" in e for e in report.evidence)
    few = verdicts.TrafficDelta(2.0, packets=3, qemu_syscalls=50, vhost_cpu_ticks=0)
    report = verdicts.decide_tap(evidence("proc-vhost-net-task", traffic=few))
    assert report.verdict == verdicts.BYPASS
    assert any("too few to judge" in e for e in report.evidence)


def test_fewer_enabled_queues_than_expected_is_flagged():
    report = verdicts.decide_tap(evidence("proc-vhost-net-task", enabled=1,
                                        disabled=1))
    assert report.verdict == verdicts.BYPASS
    assert report.queues_mismatch and not report.ok
    assert report.as_dict()["flags"] == [verdicts.QUEUES_MISMATCH]
    assert [q.verdict for q in report.queues] == [verdicts.BYPASS,
                                                 verdicts.NOT_RUNNING]


def test_no_holder_is_not_running():
    report = verdicts.decide_tap(verdicts.TapEvidence(
        "g1", "tapx", 2, holders={}, holder_comm={}, enabled=None,
        disabled=None, vhost_fds={}, vhost_workers={}))
    assert report.verdict == verdicts.NOT_RUNNING
    assert not report.queues_mismatch  # nothing runs, nothing to compare


def test_json_keys():
    data = verdicts.decide_tap(evidence("proc-vhost-net-task")).as_dict()
    for key in ("port_id", "kind", "verdict", "reason", "queues_expected",
                "queues_enabled", "queues", "evidence"):
        assert key in data
    assert data["queues"][0]["index"] == 0 and "verdict" in data["queues"][0]


PMD_RXQ_SHOW = """\
pmd thread numa_id 0 core_id 1:
  isolated : false
  port: vhu-c1            queue-id:  0 (enabled)   pmd usage:  3 %
  port: vhu-c1            queue-id:  1 (disabled)  pmd usage:  0 %
  port: vhu-d2            queue-id:  0 (enabled)   pmd usage: NOT AVAIL
  overhead:  0 %
"""


def test_parse_pmd_rxq_show():
    parsed = verdicts.parse_pmd_rxq_show(PMD_RXQ_SHOW)
    assert parsed == {"vhu-c1": {0: {"enabled": True, "pmd_core": 1},
                                 1: {"enabled": False, "pmd_core": 1}},
                      "vhu-d2": {0: {"enabled": True, "pmd_core": 1}}}


def vu(status, rxqs, expected=2, delta=None):
    return verdicts.decide_vhost_user(verdicts.VhostUserEvidence(
        "v1", "vhu-c1", expected, status, rxqs, delta))


def test_vhost_user_connected_with_enabled_vrings_is_bypass():
    rxqs = verdicts.parse_pmd_rxq_show(PMD_RXQ_SHOW.replace("(disabled)",
                                                          "(enabled)"))["vhu-c1"]
    report = vu({"status": "connected", "mode": "client", "num_of_vrings": "4"},
                rxqs, delta={0: {"rx": 100, "tx": 5}, 1: {"rx": 80, "tx": 0}})
    assert report.verdict == verdicts.BYPASS and report.ok
    assert [q.verdict for q in report.queues] == [verdicts.BYPASS] * 2
    assert report.queues[0].details == {"pmd_core": 1, "rx": 100, "tx": 5}


def test_vhost_user_disconnected_or_half_enabled():
    assert vu({"status": "disconnected"}, {}).verdict == verdicts.NOT_RUNNING
    report = vu({"status": "connected", "num_of_vrings": "4"},
                verdicts.parse_pmd_rxq_show(PMD_RXQ_SHOW)["vhu-c1"])
    assert report.verdict == verdicts.BYPASS
    assert report.queues_mismatch and report.queues_enabled == 1


def test_unreadable_pmd_rxq_show_gives_unknown_not_a_negative():
    """ovs-appctl could not reach ovs-vswitchd (e.g. the DPDK build under
    another name): a connected, busy port must not be called not-running."""
    ev = verdicts.VhostUserEvidence(
        "v1", "vhu-c1", 2, {"status": "connected", "num_of_vrings": "4"}, {},
        rxq_error="no ovs-vswitchd control socket in /run/openvswitch")
    report = verdicts.decide_vhost_user(ev)
    assert report.verdict == verdicts.UNKNOWN and not report.ok
    assert "pmd-rxq-show unavailable (no ovs-vswitchd control socket" in \
        report.reason
    assert report.queues_enabled is None
    assert [q.verdict for q in report.queues] == [verdicts.UNKNOWN] * 2
    assert any("unavailable" in line for line in report.evidence)


def test_a_port_missing_from_pmd_rxq_show_is_unknown_all_disabled_is_not():
    missing = vu({"status": "connected", "num_of_vrings": "4"}, {})
    assert missing.verdict == verdicts.UNKNOWN
    assert "2 queue(s) missing from pmd-rxq-show" in missing.reason
    disabled = {0: {"enabled": False, "pmd_core": 1},
                1: {"enabled": False, "pmd_core": 1}}
    assert vu({"status": "connected", "num_of_vrings": "4"},
              disabled).verdict == verdicts.NOT_RUNNING


def test_vswitchd_control_socket_is_found_under_either_name(tmp_path,
                                                          monkeypatch):
    from virtio_ovs import paths
    from virtio_ovs.check.gather import pmd_rxq_show
    monkeypatch.setenv("OVS_RUNDIR", str(tmp_path))
    assert paths.vswitchd_ctl() is None
    rxqs, error = pmd_rxq_show()
    assert rxqs == {} and error.startswith("no ovs-vswitchd control socket")
    (tmp_path / "ovs-vswitchd-dpdk.pid").write_text("4242\n")
    (tmp_path / "ovs-vswitchd-dpdk.4242.ctl").write_text("")
    assert paths.vswitchd_ctl() == str(tmp_path / "ovs-vswitchd-dpdk.4242.ctl")
    (tmp_path / "ovs-vswitchd.pid").write_text("7\n")
    (tmp_path / "ovs-vswitchd.7.ctl").write_text("")
    assert paths.vswitchd_ctl() == str(tmp_path / "ovs-vswitchd.7.ctl")


def test_a_same_named_tap_held_in_another_namespace_is_not_a_holder(tmp_path):
    """fdinfo names the device, not its namespace: a process in another
    network namespace holding its own "tapg1" is not holding ours."""
    root = tmp_path / "proc"
    for pid, netns in ((100, "net:[1]"), (200, "net:[2]"), (300, None)):
        (root / str(pid) / "fd").mkdir(parents=True)
        (root / str(pid) / "fdinfo").mkdir()
        os.symlink(procfs.TUN_DEV, root / str(pid) / "fd" / "7")
        (root / str(pid) / "fdinfo" / "7").write_text("pos:\t0\niff:\ttapg1\n")
        if netns:
            (root / str(pid) / "ns").mkdir()
            os.symlink(netns, root / str(pid) / "ns" / "net")
    (root / "self" / "ns").mkdir(parents=True)
    os.symlink("net:[1]", root / "self" / "ns" / "net")
    own = procfs.own_netns(str(root))
    assert own == "net:[1]"
    # 300's namespace cannot be read: it may hold ours, so it counts.
    assert procfs.scan_holders(str(root), own).index == {
        "tapg1": {100: [7], 300: [7]}}
    assert set(procfs.scan_holders(str(root)).index["tapg1"]) == \
        {100, 200, 300}
