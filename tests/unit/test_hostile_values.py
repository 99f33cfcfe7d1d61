"""Validators against the values that got through before (issue 11)."""
from __future__ import annotations

import pytest

from virtio_ovs.core.errors import UserError
from virtio_ovs.core import validate as v
from virtio_ovs.core.port import IfaceValues, guest_port


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e308, 0, -1,
                                   "5", True])
def test_seconds_must_be_finite_and_in_range(value):
    with pytest.raises(UserError, match="timeout: must be a number of "
                       "seconds in"):
        v.validate_seconds(value, "timeout", 0, 3600)


@pytest.mark.parametrize("remote, ok", [
    ("unix:/run/openvswitch/db.sock", True), ("tcp:127.0.0.1:6640", True),
    ("ssl:[fd00::1]:6640", True), ("tcp:ovsdb.example:6640", True),
    ("tcp:127.0.0.1:99999", False), ("tcp:127.0.0.1:0", False),
    ("tcp:127.0.0.1", False), ("unix:", False), ("http://x", False),
    ("tcp:1.2.3.4:66\n", False), ("unix:/x\udcff", False)])
def test_remotes(remote, ok):
    if ok:
        assert v.validate_remote(remote) == remote
    else:
        with pytest.raises(UserError, match="^db: "):
            v.validate_remote(remote)


@pytest.mark.parametrize("vm", ["../x", "a/b", "..", "x\n", "\udcff", ""])
def test_vm_ids_that_could_name_other_files_are_refused(vm):
    with pytest.raises(UserError, match="^vm: "):
        v.validate_vm(vm)


def test_qmp_path_stays_in_the_template_directory():
    template = "/run/vovs/{vm}.qmp"
    assert v.qmp_socket_path(template, "abc") == "/run/vovs/abc.qmp"
    assert v.qmp_socket_path(template, "../../etc/x") is None
    assert v.qmp_socket_path(template, "a/b") is None
    for bad in ("run/{vm}", "/run/{vm}/x.qmp", "/run/x.qmp", "/run/{vm}{vm}",
                "/run/{vm}.{x}"):
        with pytest.raises(UserError, match="qmp_socket_template"):
            v.validate_qmp_template(bad)


@pytest.mark.parametrize("value", ["tap\udcff", "\ud800"])
def test_names_must_be_utf8(value):
    with pytest.raises(UserError, match="^tap: "):
        v.validate_ifname(value)
    with pytest.raises(UserError, match="^port_id: "):
        v.validate_port_id(value)


def test_port_with_a_newline_in_its_mac_is_invalid_and_says_why():
    iface = IfaceValues("t1", "", {"iface-id": "p1", "attached-mac":
                                   "52:54:00:ab:00:99\n",
                                   "virtio-ovs:network": "blue"},
                        {}, 5, None, None, "up")
    port = guest_port(iface, True)
    assert not port.valid and port.bound_network is None
    assert port.problem.startswith("external_ids:attached-mac: ")


def test_bulk_lines_without_required_keys_or_with_huge_values():
    from virtio_ovs.core.plug_request import parse_vif_lines
    cases = {'{"mac": "52:54:00:00:00:01", "tap": "t"}': "port_id: is required",
             "[" * 100000: "from_file: invalid JSON",
             '{"port_id": "p", "mac": "52:54:00:00:00:01", "queues": '
             + "9" * 5000 + "}": "from_file: invalid JSON"}
    for line, message in cases.items():
        with pytest.raises(UserError, match=message):
            parse_vif_lines([line], "br-int")


def test_the_flow_memo_holds_only_live_ports():
    from virtio_ovs.core.port import GuestPort
    from virtio_ovs.network.flows import PortFlowCache
    cache = PortFlowCache()
    for i in range(1, 50):
        port = GuestPort(port_id=f"p{i}", name=f"t{i}", kind="tap",
                         mac="52:54:00:00:00:01", ofport=i)
        cache.flows(port, 1, False)
        cache.keep_only({port.name})
    assert len(cache) == 1
