"""check --libvirt-domain against a real, private libvirtd that plugs its
domains into the sandbox's OVS itself (<virtualport type='openvswitch'>):
a 2-queue and a 1-queue domain, each with 2 vCPUs, under TCG."""
from __future__ import annotations

import json
import os
import sys
import time
import uuid

import pytest

from tests.lab import libvirt as private
from tests.lab.sandbox import OvsSandbox

DOMAINS = {  # name -> (mac, queues, vcpus)
    "lvq2": ("52:54:00:00:0a:02", 2, 2),
    "lvq1": ("52:54:00:00:0a:01", 1, 2),
}


@pytest.fixture(scope="module")
def lab(guest_image):
    reason = private.missing()
    if reason:
        pytest.skip(reason)
    import libvirt
    box = OvsSandbox(prefix="lv")
    box.start()
    daemon = None
    try:
        box.add_bridge("br-int")
        daemon = private.PrivateLibvirtd(box).start()
        conn = libvirt.open(daemon.uri)
        box.ids = {}
        for name, (mac, queues, vcpus) in DOMAINS.items():
            box.ids[name] = str(uuid.uuid4())
            conn.createXML(private.domain_xml(
                name, *guest_image, mac=mac, interfaceid=box.ids[name],
                queues=queues, vcpus=vcpus, workdir=box.dir), 0)
        conn.close()
        end = time.monotonic() + 120
        for name in DOMAINS:
            console = os.path.join(box.dir, f"{name}.console")
            while "VO-READY" not in private.read_text(console):
                assert time.monotonic() < end, f"{name} never booted: " \
                    f"{private.read_text(os.path.join(box.dir, name + '.boot.log'))[-800:]}"
                time.sleep(0.3)
        box.libvirtd = daemon
        yield box
    finally:
        if daemon is not None:
            daemon.stop()
        box.stop()


def ctl(box, *args):
    return box.exec([sys.executable, "-m", "virtio_ovs.cli", *args],
                    check=False, timeout=60)


def check(box, *domains, extra=()):
    args = ["check", "--format", "json", "--libvirt-uri", box.libvirtd.ro_uri]
    for name in domains:
        args += ["--libvirt-domain", name]
    proc = ctl(box, *args, *extra)
    assert proc.returncode in (0, 3), proc.stderr
    return {r["port_id"]: r for r in json.loads(proc.stdout)}


def test_libvirt_plugged_the_ports_with_the_ids_we_map_by(lab):
    listed = {p["port_id"]: p for p in json.loads(
        ctl(lab, "list", "--format", "json").stdout)}
    for name, (mac, _, _) in DOMAINS.items():
        assert listed[lab.ids[name]]["mac"] == mac
        assert listed[lab.ids[name]]["queues"] is None  # libvirt records none


def test_two_queue_domain_gets_its_queues_from_the_xml(lab):
    report = check(lab, "lvq2")[lab.ids["lvq2"]]
    assert (report["queues_expected"], report["queues_configured"],
            report["queues_enabled"]) == (2, 2, 2)
    assert report["flags"] == []
    # No /dev/vhost-net here, and the domain asks for userspace virtio.
    assert report["verdict"] == "through-qemu"
    assert "the domain asks for it: <driver name='qemu'/>" in report["reason"]
    assert any(e.startswith("libvirt: domain lvq2 (") and
               "driver name=qemu queues=2; 2 vCPU(s)" in e
               for e in report["evidence"]), report["evidence"]


def test_one_queue_for_two_vcpus_is_flagged(lab):
    reports = check(lab, "lvq1", "lvq2")
    assert set(reports) == {lab.ids["lvq1"], lab.ids["lvq2"]}
    report = reports[lab.ids["lvq1"]]
    assert report["queues_expected"] == 1 and report["queues_enabled"] == 1
    assert report["flags"] == ["queues-below-vcpus"]
    assert any(e.startswith("advisory: 1 queue pair(s) for 2 vCPUs")
               for e in report["evidence"])
    table = ctl(lab, "check", "--libvirt-uri", lab.libvirtd.ro_uri,
                "--libvirt-domain", "lvq1").stdout
    assert "through-qemu (queues-below-vcpus)" in table


def test_libvirt_qmp_passthrough_reports_vhost_started(lab):
    report = check(lab, "lvq2", extra=("--libvirt-qmp", "--libvirt-uri",
                                       lab.libvirtd.uri))[lab.ids["lvq2"]]
    assert "qmp: x-query-virtio-status vhost-started=false" in \
        report["evidence"], report["evidence"]


@pytest.mark.parametrize("args, code, message", [
    (["--libvirt-domain", "nosuch"], 1, "libvirt-domain: no domain 'nosuch'"),
    (["--libvirt-domain", "lvq2", "--port-id", "x"], 1,
     "port-id: cannot be combined with --libvirt-domain"),
    (["--libvirt-qmp"], 1, "libvirt-uri: needs --libvirt-domain"),
])
def test_errors_are_one_line(lab, args, code, message):
    proc = ctl(lab, "check", "--libvirt-uri", lab.libvirtd.uri, *args)
    assert proc.returncode == code, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(f"virtio-ovs-ctl: {message}"), line


def test_an_unreachable_libvirtd_is_a_system_error(lab):
    proc = ctl(lab, "check", "--libvirt-uri",
               f"qemu:///system?socket={lab.dir}/no-such-sock",
               "--libvirt-domain", "lvq2")
    assert proc.returncode == 2
    assert proc.stderr.startswith("virtio-ovs-ctl: libvirt qemu:///system")
    assert len(proc.stderr.strip().splitlines()) == 1
