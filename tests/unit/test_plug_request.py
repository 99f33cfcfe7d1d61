"""Validation and row building: pure logic."""
from __future__ import annotations

import pytest

from virtio_ovs.core import plug_request
from virtio_ovs.core.errors import UserError

MAC = "52:54:00:12:34:56"


def vif(**kw):
    args = dict(port_id="p1", mac=MAC, bridge="br-int", tap="tap1")
    args.update(kw)
    return plug_request.make_vif(**args)


def refused(field: str, **kw) -> str:
    with pytest.raises(UserError) as err:
        vif(**kw)
    assert err.value.field == field
    return str(err.value)


def test_tap_vif_defaults():
    v = vif()
    assert (v.kind, v.name, v.queues, v.iface_type, v.iface_options) == \
        ("tap", "tap1", 1, "", {})


def test_mac_is_normalised_to_lower_case():
    assert vif(mac="52:54:00:AB:CD:EF").mac == "52:54:00:ab:cd:ef"


@pytest.mark.parametrize("mac", ["52:54:00:12:34", "52-54-00-12-34-56",
                                 "52:54:00:12:34:5g", "", None, 42])
def test_malformed_mac(mac):
    assert "is not a MAC address" in refused("mac", mac=mac)


@pytest.mark.parametrize("mac", ["01:00:5e:00:00:01", "33:33:00:00:00:01",
                                 "ff:ff:ff:ff:ff:ff"])
def test_multicast_mac(mac):
    assert "multicast" in refused("mac", mac=mac)


def test_zero_mac():
    refused("mac", mac="00:00:00:00:00:00")


@pytest.mark.parametrize("name", ["a" * 16, "tap/0", "tap 0", "tap\t0",
                                  "tap\x7f", "tap:0", ".", "..", "", "é" * 8])
def test_bad_interface_names(name):
    refused("tap", tap=name)


def test_fifteen_byte_name_is_fine():
    assert vif(tap="a" * 15).name == "a" * 15


@pytest.mark.parametrize("queues", [0, 257, -1, True, "2", 2.0])
def test_queues_range(queues):
    refused("queues", queues=queues)


@pytest.mark.parametrize("mtu", [67, 65536, 0, "1500", False])
def test_mtu_range(mtu):
    refused("mtu", mtu=mtu)


def test_limits_are_accepted():
    v = vif(queues=256, mtu=68)
    assert (v.queues, v.mtu) == (256, 68)
    assert vif(queues=1, mtu=65535).mtu == 65535


def test_exactly_one_device():
    refused("tap", tap=None)
    refused("tap", vhost_user="/tmp/x")


def test_vhost_user_socket_rules(tmp_path):
    assert "not an absolute path" in refused("vhost_user", tap=None,
                                             vhost_user="rel/sock")
    assert "normalised" in refused("vhost_user", tap=None,
                                   vhost_user="/run/../tmp/sock")
    # The mode is QEMU's role, as in libvirt and os-vif; server is the default.
    v = vif(tap=None, vhost_user=str(tmp_path / "vhu-a"))
    assert (v.kind, v.name, v.vhost_mode, v.iface_type) == \
        ("vhost-user", "vhu-a", "server", "dpdkvhostuserclient")
    assert v.iface_options == {"vhost-server-path": str(tmp_path / "vhu-a")}
    client = vif(tap=None, vhost_user=str(tmp_path / "vhu-a"), vhost_mode="client")
    assert (client.iface_type, client.iface_options) == ("dpdkvhostuser", {})
    refused("vhost_mode", tap=None, vhost_user=str(tmp_path / "v"),
            vhost_mode="both")
    refused("vhost_mode", vhost_mode="server")  # TAPs have no mode


def test_whole_string_matches_only():
    assert "not a MAC" in refused("mac", mac="52:54:00:ab:00:99\n")
    refused("network", network="blue\n")


def test_ips_are_normalised_and_checked():
    assert vif(ips=["10.0.0.5/24", "FD00::5/64"]).ips == \
        ("10.0.0.5/24", "fd00::5/64")
    refused("ips", ips=["10.0.0.5/33"])
    refused("ips", ips=["224.0.0.1/32"])
    refused("ips", ips="10.0.0.5/24")
    refused("ips", ips=["10.0.0.5/24", "10.0.0.5/24"])


def test_external_ids_use_libvirt_and_os_vif_keys():
    ids = vif(vm="vm-1", network="n1", ips=["10.0.0.5/24"], queues=4).external_ids()
    assert ids == {"iface-id": "p1", "attached-mac": MAC, "iface-status": "active",
                   "vm-id": "vm-1", "virtio-ovs:network": "n1",
                   "virtio-ovs:ips": "10.0.0.5/24", "virtio-ovs:queues": "4"}


def test_parse_lines_defaults_bridge_and_skips_blank_lines():
    vifs = plug_request.parse_vif_lines(
        ['{"port_id": "a", "mac": "52:54:00:00:00:01", "tap": "ta"}\n', "\n",
         '{"port_id": "b", "mac": "52:54:00:00:00:02", "tap": "tb", '
         '"bridge": "br-x", "queues": 2, "ips": ["10.0.0.2/24"]}\n'], "br-int")
    assert [(v.port_id, v.bridge, v.queues) for v in vifs] == \
        [("a", "br-int", 1), ("b", "br-x", 2)]


def test_parse_lines_reports_line_numbers():
    with pytest.raises(UserError) as err:
        plug_request.parse_vif_lines(['{"port_id": "a", "mac": "52:54:00:00:00:01", '
                               '"tap": "ta"}', "", '{"port_id": "b", "mac": '
                               '"01:00:00:00:00:01", "tap": "tb"}'], "br-int")
    assert str(err.value).startswith("line 3: mac:")


def test_parse_lines_refuses_unknown_keys_instead_of_ignoring_them():
    with pytest.raises(UserError) as err:
        plug_request.parse_vif_lines(['{"port_id": "a", "mac": "52:54:00:00:00:01", '
                               '"tap": "ta", "mtu_request": 9000}'], "br-int")
    assert err.value.field == "mtu_request" and err.value.line == 1


def test_parse_lines_needs_at_least_one_vif():
    with pytest.raises(UserError):
        plug_request.parse_vif_lines(["\n"], "br-int")


def test_duplicates_carry_the_second_line():
    lines = ['{"port_id": "a", "mac": "52:54:00:00:00:01", "tap": "ta"}',
             '{"port_id": "b", "mac": "52:54:00:00:00:02", "tap": "tb"}',
             '{"port_id": "a", "mac": "52:54:00:00:00:03", "tap": "tc"}']
    with pytest.raises(UserError) as err:
        plug_request.parse_vif_lines(lines, "br-int")
    assert (err.value.field, err.value.line) == ("port_id", 3)


def test_pmd_rxq_affinity(tmp_path):
    sock = str(tmp_path / "vhu")
    v = vif(tap=None, vhost_user=sock, queues=2, pmd_rxq_affinity="0:1,1:1")
    assert v.iface_other_config == {"pmd-rxq-affinity": "0:1,1:1"}
    for bad in ("0-1", "0:1,0:2", "2:1", "", "a:b"):
        refused("pmd_rxq_affinity", tap=None, vhost_user=sock, queues=2,
                pmd_rxq_affinity=bad)
    refused("pmd_rxq_affinity", pmd_rxq_affinity="0:1")  # TAPs have no PMD
