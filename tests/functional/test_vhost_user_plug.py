"""vhost-user ports on a real OVS-DPDK."""
from __future__ import annotations

import os

from tests.functional.conftest import Ctl, db_state, iface_get

MAC = "52:54:00:aa:00:01"


def test_default_mode_is_qemu_server_ovs_client(dpdk_box, tmp_path):
    """libvirt's and os-vif's meaning: the mode is QEMU's role. By default
    QEMU serves the socket and OVS (dpdkvhostuserclient) connects to it, so
    the guest keeps its socket across an OVS restart."""
    ctl = Ctl(dpdk_box)
    sock = str(tmp_path / "vhu-c1")
    ctl.ok("plug", "--port-id", "vu1", "--mac", MAC, "--vhost-user", sock,
           "--queues", "2", "--mtu", "9000")
    assert iface_get(dpdk_box, "vhu-c1", "type") == "dpdkvhostuserclient"
    assert iface_get(dpdk_box, "vhu-c1", "options:vhost-server-path") == \
        f'"{sock}"'
    assert iface_get(dpdk_box, "vhu-c1", "mtu_request") == "9000"
    status = iface_get(dpdk_box, "vhu-c1", "status")
    assert "mode=client" in status  # OVS's own status: OVS is the client
    shown = ctl.json("show", "vu1")
    assert (shown["kind"], shown["vhost_mode"], shown["socket"],
            shown["queues"]) == ("vhost-user", "server", sock, 2)
    assert shown["ofport"] > 0
    ctl.ok("unplug", "--port-id", "vu1")
    assert "vhu-c1" not in dpdk_box.vsctl("list-ports", "br-int").split()
    ctl.ok("plug", "--port-id", "vu1", "--mac", MAC, "--vhost-user", sock,
           "--vhost-mode", "server")
    assert iface_get(dpdk_box, "vhu-c1", "type") == "dpdkvhostuserclient"
    ctl.ok("unplug", "--port-id", "vu1")


def test_qemu_client_mode_ovs_serves_in_vhost_sock_dir(dpdk_box, tmp_path):
    ctl = Ctl(dpdk_box)
    sock = os.path.join(dpdk_box.rundir, "vhu-s1")
    ctl.ok("plug", "--port-id", "vu2", "--mac", "52:54:00:aa:00:02",
           "--vhost-user", sock, "--vhost-mode", "client")
    assert iface_get(dpdk_box, "vhu-s1", "type") == "dpdkvhostuser"
    assert os.path.exists(sock)  # OVS serves it
    assert ctl.json("show", "vu2")["vhost_mode"] == "client"
    proc = ctl("plug", "--port-id", "vu3", "--mac", "52:54:00:aa:00:03",
               "--vhost-user", str(tmp_path / "vhu-s3"), "--vhost-mode",
               "client")
    assert proc.returncode == 1
    assert "vhost_user: with QEMU as the client OVS serves the socket in its" \
        f" vhost-sock-dir; use {dpdk_box.rundir}/vhu-s3" in proc.stderr
    ctl.ok("unplug", "--port-id", "vu2")


def test_interface_error_rolls_the_plug_back(dpdk_box):
    ctl = Ctl(dpdk_box)
    sock = os.path.join(dpdk_box.rundir, "vhu-bad")
    os.mkdir(sock)  # OVS cannot create its socket where a directory is
    try:
        before = db_state(dpdk_box)
        proc = ctl("plug", "--port-id", "bad", "--mac", "52:54:00:aa:00:09",
                   "--vhost-user", sock, "--vhost-mode", "client")
        assert proc.returncode == 2
        assert proc.stderr.strip().startswith(
            "virtio-ovs-ctl: ovs-vswitchd refused vhu-bad: could not open")
        after = db_state(dpdk_box)
        # next_cfg moved (the plug and its rollback were committed), nothing else.
        before.pop("next_cfg"), after.pop("next_cfg")
        assert after == before
    finally:
        os.rmdir(sock)
