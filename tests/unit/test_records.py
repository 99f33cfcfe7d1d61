"""Records anyone with write access to OVSDB or the NB could have
written: each is used whole or skipped with one reason, and nothing a
value holds escapes as an exception."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from virtio_ovs.core import records
from virtio_ovs.core.networks import read_networks
from virtio_ovs.core.secgroups import read_groups, rule_from_record

GOOD = {"type": "vlan", "physnet": "phys", "segment": 5, "local_vlan": 7}


def net(**changes) -> str:
    return json.dumps({**GOOD, **changes})


@pytest.mark.parametrize("text, reason", [
    ("[" * 500 + "]" * 500, "nested deeper than 8"),
    ('{"type": "local", "local_vlan": 1e400}', "not JSON"),
    ('{"type": "local", "local_vlan": NaN}', "not JSON"),
    (net(physnet=["phys"]), "physnet must be"),
    (net(segment=99999), "segment must be an integer in 1..4094"),
    (net(segment="5,actions=drop"), "segment must be an integer"),
    (net(segment=True), "segment must be an integer"),
    (net(local_vlan=-1), "local_vlan must be an integer in 1..4094"),
    (net(local_vlan=0), "local_vlan must be"),
    (net(local_vlan=4095), "local_vlan must be"),
    (net(local_vlan=5.0), "local_vlan must be"),
    (net(type="geneve"), "type must be one of"),
    (net(extra=1), "unknown key 'extra'"),
    ("[1]", "must be a JSON object"),
    ("x" * 2000, "longer than 1024"),
    ('{"type": "local", "local_vlan": ' + "9" * 5000 + "}", "longer"),
])
def test_a_hostile_network_record_is_invalid_with_its_reason(text, reason):
    nets, invalid = read_networks({"virtio-ovs:net:bad": text,
                                   "virtio-ovs:net:good": net()})
    assert list(nets) == ["good"]
    assert [i.key for i in invalid] == ["virtio-ovs:net:bad"]
    assert reason in invalid[0].reason, invalid[0].reason


def test_a_local_vlan_or_segment_taken_by_an_earlier_network_is_invalid():
    nets, invalid = read_networks({
        "virtio-ovs:net:a": net(),
        "virtio-ovs:net:b": net(segment=6),  # a's local VLAN
        "virtio-ovs:net:c": net(local_vlan=9),  # a's physnet and segment
        "virtio-ovs:net:d": net(segment=8, local_vlan=10)})
    assert sorted(nets) == ["a", "d"]
    assert [(i.key[-1], i.reason) for i in invalid] == [
        ("b", "local_vlan 7 is taken by network 'a'"),
        ("c", "phys 5 is taken by network 'a'")]


@pytest.mark.parametrize("text", [
    '{"rules": [{"direction": "ingress", "protocol": "\\u0663"}]}',
    '{"rules": [{"direction": "ingress", "port_min": 1e400}]}',
    '{"rules": [{"direction": "ingress", "bogus": 1}]}',
    '{"rules": [[1]]}', '{"rules": {"a": 1}}', '{"rules": [{}]}',
    "{" * 100, "[1]"])
def test_a_hostile_group_record_is_invalid_whole(text):
    groups, invalid = read_groups({
        "virtio-ovs:sg:bad": text,
        "virtio-ovs:sg:good": '{"rules": [{"direction": "egress"}]}'})
    assert list(groups) == ["good"]
    assert [i.key for i in invalid] == ["virtio-ovs:sg:bad"]


def test_a_stored_rule_takes_ascii_protocol_numbers_only():
    assert rule_from_record('{"direction": "ingress", "protocol": "3"}'
                            ).protocol == "3"
    with pytest.raises(records.InvalidRecord, match="protocol"):
        rule_from_record('{"direction": "ingress", "protocol": "\\u0663"}')


@pytest.mark.parametrize("text", [
    "[1]", '{"heartbeat": "x"}', '{"heartbeat": 1e400}',
    '{"report_interval": 0}', '{"pid": "1"}', '{"host": [1]}',
    '{"bridge_mappings": [1]}', '{"bridge_mappings": {"p": 1}}'])
def test_a_hostile_agent_record_is_invalid(text):
    with pytest.raises(records.InvalidRecord):
        records.agent_record(text)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) |
    st.dictionaries(st.sampled_from(["type", "physnet", "segment",
                                     "local_vlan", "rules", "direction",
                                     "protocol", "port_min", "x"]) |
                    st.text(max_size=5), inner, max_size=5), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(value=JSON, raw=st.text(max_size=60))
def test_no_value_escapes_as_an_exception(value, raw):
    for text in (json.dumps(value), raw):
        ids = {"virtio-ovs:net:n": text, "virtio-ovs:sg:g": text,
               "virtio-ovs:sg:g2": json.dumps({"rules": [value]})}
        nets, bad_nets = read_networks(ids)
        groups, bad_groups = read_groups(ids)
        assert len(nets) + len(bad_nets) == 1
        assert len(groups) + len(bad_groups) == 2
        try:
            records.agent_record(text)
        except records.InvalidRecord:
            pass


def test_an_agent_record_is_read_or_said_invalid_once():
    ids = {"a": '{"pid": 7}', "b": "[1]"}
    assert records.read_agent_record(ids, "a") == ({"pid": 7}, None)
    record, bad = records.read_agent_record(ids, "b")
    assert record is None and bad.key == "b" and bad.kind == "agent"
    assert records.read_agent_record(ids, "c") == (None, None)
