"""Real QEMU guests on multiqueue TAPs plugged by virtio-ovs, with the
agent's flows: pings between guests, and what `check` proves.

This machine has no /dev/vhost-net, so QEMU runs vhost=off and `check`
must say through-qemu; the vhost-net positive path runs where the device
exists (and is tested from recorded /proc fixtures in tests/unit).
"""
from __future__ import annotations

import json
import os
import sys

import pytest

from tests.functional.topology import Topology
from tests.lab.guest import QemuGuest, vhost_net_available
from tests.lab.sandbox import OvsSandbox

GUESTS = {"g1": ("52:54:00:00:02:01", "10.0.2.11/24"),
          "g2": ("52:54:00:00:02:02", "10.0.2.12/24")}


@pytest.fixture(scope="module")
def lab(guest_image):
    box = OvsSandbox(prefix="vq")
    box.start()
    topo = Topology(box)
    guests = {}
    try:
        box.add_bridge("br-int")
        topo.write_config(extra="check_interval = 1\n")
        topo.start_agent()
        topo.ctl_ok("net-create", "blue", "--type", "local")
        for name, (mac, ip) in GUESTS.items():
            topo.ctl_ok("plug", "--port-id", name, "--mac", mac, "--tap",
                        f"tap{name}", "--queues", "2", "--network", "blue",
                        "--ip", ip, "--vm", f"vm-{name}")
            guests[name] = QemuGuest(name, box.dir, *guest_image,
                                     tap=f"tap{name}", mac=mac, ip=ip,
                                     queues=2, netns=box.netns, env=box.env)
            guests[name].start()
        for guest in guests.values():
            assert "queues=2" in guest.wait_ready()
        topo.guests_qemu = guests
        yield topo
    finally:
        for guest in guests.values():
            guest.stop()
        topo.close()
        box.stop()


def check(topo, *args):
    proc = topo.box.exec([sys.executable, "-m", "virtio_ovs.cli", "check",
                          "--format", "json", *args], check=False, timeout=60)
    assert proc.returncode in (0, 3), proc.stderr
    return proc.returncode, {r["port_id"]: r for r in json.loads(proc.stdout)}


def test_same_network_guests_ping_each_other_through_ovs(lab):
    g1 = lab.guests_qemu["g1"]
    out = g1.run("ping -c 3 -W 2 10.0.2.12", timeout=30)
    assert "3 packets received" in out, out
    # The packets went through the agent's flows, not a bypass of them.
    assert "n_packets=0" not in [line.split(",")[3].strip() for line in
                                 lab.box.ofctl("dump-flows", "br-int",
                                               "table=60").splitlines()[1:]]


def test_check_says_through_qemu_with_the_evidence(lab):
    g1 = lab.guests_qemu["g1"]
    rc, reports = check(lab, "--port-id", "g1", "--qmp", g1.qmp_sock)
    report = reports["g1"]
    assert rc == 3
    assert report["verdict"] == "through-qemu"
    assert (report["queues_expected"], report["queues_configured"],
            report["queues_enabled"]) == (2, 2, 2)
    evidence = "\n".join(report["evidence"])
    assert f"qemu-system-x86[{g1.pid}] holds 2 queue fd(s) of tapg1" in evidence
    assert "holds 0 /dev/vhost-net fd(s)" in evidence
    assert "vhost-started=false" in evidence
    assert [q["verdict"] for q in report["queues"]] == ["through-qemu"] * 2


def test_traffic_mode_sees_qemu_syscalls_track_packets(lab):
    g2 = lab.guests_qemu["g2"]
    g2.run("ping -c 80 -i 0.05 10.0.2.11 >/dev/null 2>&1 &")
    rc, reports = check(lab, "--port-id", "g1", "--traffic", "3")
    evidence = "\n".join(reports["g1"]["evidence"])
    assert "QEMU syscalls" in evidence, evidence
    packets = int(evidence.split("traffic: ")[1].split(" TAP packets")[0])
    assert packets >= 20
    assert reports["g1"]["verdict"] == "through-qemu"


def test_agent_records_verdicts_visible_in_show(lab):
    lab.wait_until(lambda: json.loads(lab.ctl_ok("show", "g1", "--format",
                                                 "json"))["verdict"]
                   == "through-qemu", timeout=20, what="the agent's verdict")
    shown = json.loads(lab.ctl_ok("show", "g1", "--format", "json"))
    assert shown["queues_enabled"] == 2
    assert "port g1 (tapg1): through-qemu" in lab.agent_log_text()


def test_fewer_queues_in_the_guest_is_a_mismatch(lab):
    g1 = lab.guests_qemu["g1"]
    g1.run("ethtool -L eth0 combined 1")
    try:
        rc, reports = check(lab, "--port-id", "g1")
        report = reports["g1"]
        assert rc == 3
        assert report["queues_mismatch"] and report["flags"] == ["queues-mismatch"]
        assert (report["queues_expected"], report["queues_enabled"]) == (2, 1)
        assert report["queues"][1]["verdict"] == "not-running"
        lab.wait_until(lambda: "queues-mismatch" in json.loads(lab.ctl_ok(
            "show", "g1", "--format", "json"))["verdict"], timeout=20,
            what="the agent to record the mismatch")
        table = lab.ctl("check", "--port-id", "g1").stdout
        assert "through-qemu (queues-mismatch)" in table and "2/1/2" in table
    finally:
        g1.run("ethtool -L eth0 combined 2")


def test_stopped_guest_is_not_running(lab):
    g2 = lab.guests_qemu["g2"]
    g2.stop()
    rc, reports = check(lab, "--port-id", "g2")
    assert rc == 3
    assert reports["g2"]["verdict"] == "not-running"
    assert "no process holds a queue of TAP tapg2" in reports["g2"]["reason"]


@pytest.mark.skipif(not vhost_net_available(),
                    reason="no /dev/vhost-net on this host (CONFIG_VHOST_NET"
                    " unset): the vhost-net bypass is tested from recorded "
                    "/proc fixtures instead")
def test_live_vhost_net_guest_bypasses_qemu(lab, guest_image):
    lab.ctl_ok("plug", "--port-id", "g3", "--mac", "52:54:00:00:02:03",
               "--tap", "tapg3", "--queues", "2", "--network", "blue")
    guest = QemuGuest("g3", lab.box.dir, *guest_image, tap="tapg3",
                      mac="52:54:00:00:02:03", ip="10.0.2.13/24", queues=2,
                      netns=lab.box.netns, env=lab.box.env)
    guest.start()
    try:
        guest.wait_ready()
        assert os.path.exists("/dev/vhost-net") and guest.vhost
        rc, reports = check(lab, "--port-id", "g3", "--qmp", guest.qmp_sock)
        assert rc == 0 and reports["g3"]["verdict"] == "bypass"
    finally:
        guest.stop()
