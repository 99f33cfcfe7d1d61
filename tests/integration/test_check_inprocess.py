"""The check's evidence gathering in-process: recorded /proc trees, a QMP
server replaying QEMU 7.2's replies, and the host database facade."""
from __future__ import annotations

import json
import os
import shutil
import socket
import threading

import pytest

from virtio_ovs.check.gather import check_ports
from virtio_ovs.check.qmp import QmpClient, virtio_net_status
from virtio_ovs.core.errors import EnvironmentFailure
from virtio_ovs.core.port import GuestPort

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")
MAC = "52:54:00:00:00:01"
BACKEND = "/machine/peripheral-anon/device[0]/virtio-backend"
# The shapes of QEMU 7.2's answers (docs/interop/qmp, qapi/virtio.json).
REPLIES = {
    "qmp_capabilities": {},
    "query-commands": [{"name": "x-query-virtio"},
                       {"name": "x-query-virtio-status"}, {"name": "qom-get"}],
    "x-query-virtio": [{"path": "/machine/peripheral-anon/device[1]/"
                        "virtio-backend", "name": "virtio-blk"},
                       {"path": BACKEND, "name": "virtio-net"}],
    "qom-get": MAC.upper(),
    "x-query-virtio-status": {"name": "virtio-net", "vhost-started": True,
                              "status": 15, "queue-sel": 0},
}


class FakeQmp(threading.Thread):
    """A QMP server on a unix socket: greeting, then one reply per
    command from ``replies``; an event before each reply, as QEMU may."""

    def __init__(self, path: str, replies: dict, silent: bool = False):
        super().__init__(daemon=True)
        self.replies = replies
        self.silent = silent
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)

    def run(self) -> None:
        conn, _ = self.sock.accept()
        with conn, conn.makefile("rwb") as f:
            if self.silent:
                f.readline()
                return
            f.write(b'{"QMP": {"version": {}, "capabilities": []}}\n')
            f.flush()
            for line in f:
                command = json.loads(line)["execute"]
                f.write(b'{"event": "NIC_RX_FILTER_CHANGED", "data": {}}\n')
                reply = ({"return": self.replies[command]}
                         if command in self.replies else
                         {"error": {"class": "CommandNotFound",
                                    "desc": f"{command} not found"}})
                f.write(json.dumps(reply).encode() + b"\n")
                f.flush()


def tap_port(name: str = "tapg1") -> GuestPort:
    return GuestPort(port_id="g1", name=name, kind="tap", mac=MAC, queues=2)


def test_qmp_finds_the_nic_by_mac_and_skips_events(tmp_path):
    path = str(tmp_path / "qmp.sock")
    FakeQmp(path, REPLIES).start()
    with QmpClient(path, timeout=2) as client:
        assert virtio_net_status(client, MAC)["vhost-started"] is True


def test_qmp_without_the_x_commands_gives_no_status(tmp_path):
    path = str(tmp_path / "qmp.sock")
    FakeQmp(path, {**REPLIES, "query-commands": []}).start()
    with QmpClient(path, timeout=2) as client:
        assert virtio_net_status(client, MAC) is None


def test_a_silent_qmp_is_a_timeout_not_a_hang(tmp_path):
    path = str(tmp_path / "qmp.sock")
    FakeQmp(path, REPLIES, silent=True).start()
    with pytest.raises(EnvironmentFailure, match="no answer within 0.3 s"):
        QmpClient(path, timeout=0.3).connect()


@pytest.mark.parametrize("tree, verdict", [
    ("proc-tcg-userspace", "through-qemu"),
    ("proc-vhost-net-task", "bypass"),
    ("proc-vhost-net-kthread", "bypass")])
def test_tap_reports_from_recorded_proc_trees(tmp_path, tree, verdict):
    path = str(tmp_path / "qmp.sock")
    FakeQmp(path, REPLIES).start()
    [report] = check_ports([tap_port()], db=None, qmp=path,
                           proc=os.path.join(FIXTURES, tree))
    assert report.verdict == verdict, report.reason
    assert report.queues_configured == 2
    assert "qmp: x-query-virtio-status vhost-started=true" in report.evidence


class CountersDb:
    """The one HostDb method the check uses for vhost-user ports."""

    def __init__(self, samples):
        self.samples = iter(samples)

    def vhost_user_counters(self):
        return next(self.samples)


def test_vhost_user_counters_are_sampled_around_the_window():
    rxqs = {"vhu1": {0: {"enabled": True, "pmd_core": 1},
                     1: {"enabled": True, "pmd_core": 1}}}
    status = {"status": "connected", "mode": "client", "num_of_vrings": "4"}
    before = {"vhu1": (status, {"rx_q0_good_packets": 10,
                                "rx_q1_good_packets": 0})}
    after = {"vhu1": (status, {"rx_q0_good_packets": 110,
                               "rx_q1_good_packets": 50})}
    port = GuestPort(port_id="v1", name="vhu1", kind="vhost-user", mac=MAC,
                     queues=2)
    [report] = check_ports([port], CountersDb([before, after]),
                           traffic_seconds=0.01, rxq_show=lambda: (rxqs, None))
    assert report.verdict == "bypass" and report.queues_enabled == 2
    assert [q.details["rx"] for q in report.queues] == [100, 50]


# ---------------------------------------------- missing evidence: unknown

def _tree_with(tmp_path, tree: str, broken: str) -> str:
    """A copy of a recorded /proc tree in which ``broken`` (relative) is a
    file instead of a directory: reading it fails like a hidden entry."""
    root = str(tmp_path / "proc")
    shutil.copytree(os.path.join(FIXTURES, tree), root, symlinks=True)
    target = os.path.join(root, broken)
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "w") as f:
        f.write("")
    return root


def test_an_unreadable_process_makes_an_unheld_tap_unknown(tmp_path):
    root = _tree_with(tmp_path, "proc-tcg-userspace", "4242/fd")
    [report] = check_ports([tap_port(name="tapother")], db=None, proc=root)
    assert report.verdict == "unknown", report.reason
    assert "4242" in report.reason and "could not be read" in report.reason
    assert any(e.startswith("/proc: unavailable") for e in report.evidence)
    # The TAP the readable QEMU holds is still judged from its evidence.
    [held] = check_ports([tap_port()], db=None, proc=root)
    assert held.verdict == "through-qemu"


def test_hidden_threads_of_the_holder_make_the_port_unknown(tmp_path):
    root = _tree_with(tmp_path, "proc-vhost-net-task", f"{29306}/task")
    [report] = check_ports([tap_port()], db=None, proc=root)
    assert report.verdict == "unknown"
    assert "vhost-net devices and workers are unknown" in report.reason
    assert not report.queues_mismatch


def test_a_netlink_failure_makes_the_queue_states_unknown():
    def failing():
        return {}, "netlink link dump failed: [Errno 105] No buffer space"
    [report] = check_ports([tap_port()], db=None,
                           proc=os.path.join(FIXTURES, "proc-vhost-net-task"),
                           tap_queues=failing)
    assert [q.verdict for q in report.queues] == ["unknown", "unknown"]
    assert report.queues_enabled is None and not report.queues_mismatch
    assert "netlink: unavailable (netlink link dump failed: [Errno 105] " \
           "No buffer space)" in report.evidence


def test_a_refused_qmp_makes_a_would_be_bypass_unknown(tmp_path):
    path = str(tmp_path / "qmp.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.close()  # the socket file stays, nobody listens: refused
    [report] = check_ports([tap_port()], db=None, qmp=path,
                           proc=os.path.join(FIXTURES, "proc-vhost-net-task"))
    assert report.verdict == "unknown", report.reason
    assert "Connection refused" in report.reason
    assert any(e.startswith("qmp: unavailable") for e in report.evidence)
    # Without vhost-net, QMP could not change the verdict: it stands.
    [userspace] = check_ports([tap_port()], db=None, qmp=path,
                              proc=os.path.join(FIXTURES,
                                                "proc-tcg-userspace"))
    assert userspace.verdict == "through-qemu"
