"""Network validation and local VLAN allocation."""
from __future__ import annotations

import pytest

from virtio_ovs.core import networks as nw
from virtio_ovs.core.errors import UserError

MAPPINGS = {"phys": "br-ex"}


def create(name, net_type, physnet=None, segment=None, existing=None):
    return nw.validate_new_network(name, net_type, physnet, segment,
                                   existing or {}, MAPPINGS)


def refused(field, *args, **kw):
    with pytest.raises(UserError) as err:
        create(*args, **kw)
    assert err.value.field == field, str(err.value)
    return str(err.value)


def test_valid_networks():
    assert create("a", "local").local_vlan == 1
    assert create("v", "vlan", "phys", 100).segment == 100
    assert create("f", "flat", "phys").physnet == "phys"


def test_rules():
    assert "needs --physnet" in refused("physnet", "v", "vlan", None, 100)
    assert "not in bridge_mappings" in refused("physnet", "v", "vlan", "other", 1)
    refused("segment", "v", "vlan", "phys", None)
    refused("segment", "v", "vlan", "phys", 0)
    refused("segment", "v", "vlan", "phys", 4095)
    refused("physnet", "f", "flat")
    refused("segment", "f", "flat", "phys", 5)
    refused("physnet", "l", "local", "phys")
    refused("segment", "l", "local", None, 5)
    refused("type", "x", "vxlan")
    refused("network", "bad name", "local")


def test_duplicates():
    existing = {"v": nw.Network("v", "vlan", "phys", 100, 1),
                "f": nw.Network("f", "flat", "phys", None, 2)}
    assert "already network 'v'" in refused("segment", "v2", "vlan", "phys",
                                            100, existing=existing)
    refused("physnet", "f2", "flat", "phys", existing=existing)
    refused("name", "v", "local", existing=existing)
    assert create("v3", "vlan", "phys", 101, existing=existing).local_vlan == 3


def test_local_vlan_reuses_the_lowest_free_one():
    nets = [nw.Network(str(v), "local", None, None, v) for v in (1, 2, 4)]
    assert nw.allocate_local_vlan(nets) == 3


def test_networks_round_trip_through_external_ids_and_skip_garbage():
    net = create("v", "vlan", "phys", 100)
    ids = {nw.network_key("v"): net.to_json(), nw.network_key("bad"): "{",
           "other": "x"}
    assert nw.parse_networks(ids) == {"v": net}


@pytest.mark.parametrize("items, rule", [
    (["phys"], "is not physnet:bridge"),
    (["phys:br-ex", "phys:br-y"], "mapped twice"),
    (["a:br-ex", "b:br-ex"], "share a bridge"),
    (["phys:br-very-long-x"], "longer than 11"),
    (["phys:br/x"], "may not contain"),
])
def test_bad_bridge_mappings(items, rule):
    with pytest.raises(UserError) as err:
        nw.parse_bridge_mappings(items)
    assert err.value.field == "bridge_mappings" and rule in str(err.value)


def test_bridge_mappings():
    assert nw.parse_bridge_mappings(["phys:br-ex", " p2:br-p2"]) == \
        {"phys": "br-ex", "p2": "br-p2"}
