"""vhost-user ports on a real OVS-DPDK."""
from __future__ import annotations

import os

from tests.functional.conftest import Ctl, iface_get

MAC = "52:54:00:aa:00:01"


def test_plug_vhost_user_client_mode(dpdk_box, tmp_path):
    ctl = Ctl(dpdk_box)
    sock = str(tmp_path / "vhu-c1")
    ctl.ok("plug", "--port-id", "vu1", "--mac", MAC, "--vhost-user", sock,
           "--queues", "2", "--mtu", "9000")
    assert iface_get(dpdk_box, "vhu-c1", "type") == "dpdkvhostuserclient"
    assert iface_get(dpdk_box, "vhu-c1", "options:vhost-server-path") == \
        f'"{sock}"'
    assert iface_get(dpdk_box, "vhu-c1", "mtu_request") == "9000"
    status = iface_get(dpdk_box, "vhu-c1", "status")
    assert "mode=client" in status  # no QEMU yet: disconnected, retrying
    shown = ctl.json("show", "vu1")
    assert (shown["kind"], shown["vhost_mode"], shown["socket"],
            shown["queues"]) == ("vhost-user", "client", sock, 2)
    assert shown["ofport"] > 0
    ctl.ok("unplug", "--port-id", "vu1")
    assert "vhu-c1" not in dpdk_box.vsctl("list-ports", "br-int").split()


def test_plug_vhost_user_server_mode_socket_in_vhost_sock_dir(dpdk_box):
    ctl = Ctl(dpdk_box)
    sock = os.path.join(dpdk_box.rundir, "vhu-s1")
    ctl.ok("plug", "--port-id", "vu2", "--mac", "52:54:00:aa:00:02",
           "--vhost-user", sock, "--vhost-mode", "server")
    assert iface_get(dpdk_box, "vhu-s1", "type") == "dpdkvhostuser"
    assert os.path.exists(sock)  # OVS serves it
    proc = ctl("plug", "--port-id", "vu3", "--mac", "52:54:00:aa:00:03",
               "--vhost-user", "/tmp/vhu-s3", "--vhost-mode", "server")
    assert proc.returncode == 1
    assert f"vhost_user: in server mode OVS creates the socket in its " \
        f"vhost-sock-dir; use {dpdk_box.rundir}/vhu-s3" in proc.stderr
    ctl.ok("unplug", "--port-id", "vu2")
