"""vhost-user on a real OVS-DPDK, with DPDK testpmd's virtio-user as the
guest (QEMU 7.2 under TCG crashes with vhost-user on this machine).
Hugepages are reserved by the sandbox and given back at the end."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.functional.conftest import _MISSING
from virtio_ovs.testing.sandbox import Hugepages, OvsSandbox

MAC = "52:54:00:00:03:01"


def _skip_reason() -> str | None:
    if _MISSING:
        return _MISSING
    if shutil.which("dpdk-testpmd") is None:
        return "dpdk-testpmd is not installed (package dpdk-dev)"
    return Hugepages.available()


@pytest.fixture(scope="module")
def dpdk():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    box = OvsSandbox(prefix="vu", dpdk_memory_mb=256, guest_memory_mb=256)
    box.start()
    testpmd = None
    try:
        box.add_bridge("br-int")
        sock = os.path.join(box.dir, "vhu-t1")
        box.exec([sys.executable, "-m", "virtio_ovs.cli", "plug", "--port-id",
                  "t1", "--mac", MAC, "--vhost-user", sock, "--queues", "2",
                  "--pmd-rxq-affinity", "0:1,1:1"])
        testpmd = subprocess.Popen(
            ["dpdk-testpmd", "-l", "0,1", "--no-pci",
             f"--file-prefix={box.name}tp",
             f"--huge-dir={box.hugepages.mountpoint}", "-m", "200",
             "--single-file-segments",
             f"--vdev=net_virtio_user0,path={sock},server=1,queues=2,mac={MAC}",
             "--", "--rxq=2", "--txq=2", "--nb-cores=1",
             "--total-num-mbufs=4096", "--forward-mode=txonly",
             "--stats-period=1", "--auto-start"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        end = time.monotonic() + 30
        while "status=connected" not in box.vsctl("get", "Interface", "vhu-t1",
                                                  "status"):
            assert time.monotonic() < end, "testpmd never connected"
            time.sleep(0.2)
        box.testpmd = testpmd
        yield box
    finally:
        if testpmd is not None and testpmd.poll() is None:
            testpmd.terminate()
            try:
                testpmd.wait(timeout=10)
            except subprocess.TimeoutExpired:
                testpmd.kill()
                testpmd.wait()
        box.stop()


def check(box, *args):
    proc = box.exec([sys.executable, "-m", "virtio_ovs.cli", "check", "--format",
                     "json", *args], check=False, timeout=60)
    assert proc.returncode in (0, 1), proc.stderr
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
    assert rc == 1 and report["verdict"] == "not-running"
