"""The check's evidence gathering in-process: recorded /proc trees, a QMP
server replaying QEMU 7.2's replies, and the host database facade."""
from __future__ import annotations

import json
import os
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


def tap_port(**kw) -> GuestPort:
    return GuestPort(port_id="g1", name="tapg1", kind="tap", mac=MAC,
                     queues=2, **kw)


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
