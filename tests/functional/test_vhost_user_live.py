"""vhost-user on a real OVS-DPDK, with DPDK testpmd's virtio-user as the
guest (QEMU 7.2 under TCG crashes with vhost-user on this machine).
Hugepages are reserved by the sandbox and given back at the end."""
from __future__ import annotations

import json
import os
import sys
import time

import pytest

from tests.functional.conftest import _MISSING
from tests.lab.process import terminate
from tests.lab import testpmd
from tests.lab.sandbox import OvsSandbox

MAC = "52:54:00:00:03:01"


def _skip_reason() -> str | None:
    return _MISSING or testpmd.missing()


@pytest.fixture(scope="module")
def dpdk():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    box = OvsSandbox(prefix="vu", dpdk_memory_mb=256, guest_memory_mb=256)
    box.start()
    box.testpmd = None
    try:
        box.add_bridge("br-int")
        sock = os.path.join(box.dir, "vhu-t1")
        box.exec([sys.executable, "-m", "virtio_ovs.cli", "plug", "--port-id",
                  "t1", "--mac", MAC, "--vhost-user", sock, "--queues", "2",
                  "--pmd-rxq-affinity", "0:1,1:1"])
        box.testpmd = testpmd.start(box, sock, MAC, 2, "vhu-t1")
        yield box
    finally:
        terminate(box.testpmd)
        box.stop()


def check(box, *args):
    proc = box.exec([sys.executable, "-m", "virtio_ovs.cli", "check", "--format",
                     "json", *args], check=False, timeout=60)
    assert proc.returncode in (0, 3), proc.stderr
    return proc.returncode, json.loads(proc.stdout)[0]


def test_num_of_vrings_matches_the_queues_and_affinity_is_applied(dpdk):
    status = dpdk.vsctl("get", "Interface", "vhu-t1", "status")
    assert 'num_of_vrings="4"' in status and "mode=client" in status
    assert dpdk.vsctl("get", "Interface", "vhu-t1",
                      "other_config:pmd-rxq-affinity") == '"0:1,1:1"'
    rxq = dpdk.exec(["ovs-appctl", "dpif-netdev/pmd-rxq-show"]).stdout
    assert "isolated : true" in rxq  # pinned queues isolate their PMD


def test_check_says_bypass_for_both_queues(dpdk):
    rc, report = check(dpdk)
    assert rc == 0, report
    assert report["verdict"] == "bypass"
    assert (report["queues_expected"], report["queues_configured"],
            report["queues_enabled"]) == (2, 2, 2)
    assert [q["verdict"] for q in report["queues"]] == ["bypass", "bypass"]
    assert [q["pmd_core"] for q in report["queues"]] == [1, 1]


def test_per_queue_counters_grow_under_traffic(dpdk):
    # OVS refreshes Interface.statistics every 5 s (stats-update-interval).
    rc, report = check(dpdk, "--traffic", "6")
    assert rc == 0
    for queue in report["queues"]:
        assert queue["rx"] > 0, report  # testpmd txonly -> OVS rx, per queue
    assert any("statistics: queue 1 +" in e for e in report["evidence"])


def test_stopped_guest_is_not_running(dpdk):
    dpdk.testpmd.terminate()
    dpdk.testpmd.wait(timeout=10)
    end = time.monotonic() + 15
    while "status=connected" in dpdk.vsctl("get", "Interface", "vhu-t1", "status"):
        assert time.monotonic() < end
        time.sleep(0.2)
    rc, report = check(dpdk)
    assert rc == 3 and report["verdict"] == "not-running"
