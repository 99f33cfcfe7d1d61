"""Rows with virtio-ovs's marks in a real OVN northbound database, written
by anyone with write access to it: an ACL's rule record, a switch's
network keys, a port's placement. Every reader and every write verb
gives a result or a one-line error (UserError, EnvironmentFailure),
never another exception."""
from __future__ import annotations

import json
import subprocess
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from virtio_ovs.core.errors import VirtioOvsError
from virtio_ovs.core.secgroups import Rule
from virtio_ovs.ovsdb.nb import commands as nbc
from virtio_ovs.ovsdb.nb.impl import IdlNorthboundDb
from virtio_ovs.ovsdb.nb.sg_commands import RULE_KEY
from tests.integration.test_ovn_backend import backend, vif


@pytest.fixture
def nb(central):
    db = IdlNorthboundDb(central.nb_remote, 5.0)
    for group in db.list_groups():
        db.delete_group(group.name)
    for net in db.list_networks():
        db.delete_ports(p for p, s in db.port_states().items()
                        if s.network == net.name)
        db.delete_network(net.name)
    db.create_network("blue", "geneve", None, None)
    db.create_group("web")
    yield db
    db.close()


def set_key(central, table: str, where: list, column: str, key: str,
            value: str) -> None:
    """``column:key=value`` on the rows of ``table`` matching ``where``."""
    ops = [{"op": "mutate", "table": table, "where": where, "mutations": [
        [column, "delete", ["set", [key]]]]},
        {"op": "mutate", "table": table, "where": where, "mutations": [
            [column, "insert", ["map", [[key, value]]]]]}]
    subprocess.run(["ovsdb-client", "transact", central.nb_remote,
                    json.dumps(["OVN_Northbound", *ops])], check=True,
                   capture_output=True)


def seen(nb, before: int) -> None:
    """Until the replica took in a change after ``before`` (1 s at most)."""
    deadline = time.monotonic() + 1.0
    while nb.seqno == before and time.monotonic() < deadline:
        nb.run()
        time.sleep(0.01)


def every_verb(nb) -> None:
    """Each reader and write verb: a result or VirtioOvsError."""
    calls = [nb.list_networks, nb.list_groups, nb.invalid_rules,
             nb.placements, nb.port_states,
             lambda: nb.add_rule("web", Rule("ingress", protocol="tcp",
                                             port_min=22, port_max=22)),
             lambda: nb.delete_rule("web", "00000000"),
             lambda: nb.set_port_groups("p1", ("web",)),
             lambda: nb.create_network("red", "geneve", None, None),
             lambda: nb.delete_network("red")]
    for call in calls:
        try:
            call()
        except VirtioOvsError as exc:
            assert "\n" not in str(exc), exc


def test_a_garbage_rule_on_one_of_our_acls_is_invalid_and_harmless(nb,
                                                                   central):
    """sg-list, sg-rule-add, sg-delete printed tracebacks on it."""
    nb.add_rule("web", Rule("ingress", protocol="tcp", port_min=80,
                            port_max=80))
    before = nb.seqno
    set_key(central, "ACL", [["priority", ">", 0]], "external_ids", RULE_KEY,
            '{"direction": ["x"]')
    seen(nb, before)
    groups = {g.name: g for g in nb.list_groups()}
    assert groups["web"].rules == ()  # every ACL of ours had its rule broken
    invalid = nb.invalid_rules()
    assert invalid and all(r.kind == "rule" and r.key.startswith("web ")
                           for r in invalid)
    assert nb.add_rule("web", Rule("egress"))
    nb.delete_group("web")
    assert nb.list_groups() == []


TEXT = st.one_of(
    st.text(max_size=40),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() |
                 st.text(max_size=8),
                 lambda inner: st.lists(inner, max_size=3) |
                 st.dictionaries(st.sampled_from(
                     ["direction", "ethertype", "protocol", "port_min",
                      "remote_ip", "remote_group", "x"]), inner, max_size=4),
                 max_leaves=10).map(json.dumps),
    st.sampled_from(["[" * 3000, "1e400", "٣", "a\nb", "\x1b[2J", "-1",
                     "99999", "hv1,hv2,hv3", ",", "garp,na"]))
TARGETS = st.sampled_from([
    ("ACL", "external_ids", RULE_KEY),
    ("Logical_Switch", "external_ids", nbc.K_TYPE),
    ("Logical_Switch", "external_ids", nbc.K_PHYSNET),
    ("Logical_Switch", "external_ids", nbc.K_SEGMENT),
    ("Logical_Switch_Port", "external_ids", nbc.K_VM),
    ("Logical_Switch_Port", "options", "requested-chassis"),
    ("Logical_Switch_Port", "options", "activation-strategy"),
    ("Port_Group", "external_ids", "virtio-ovs:sg")])


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(target=TARGETS, text=TEXT)
def test_no_value_in_our_nb_rows_escapes_as_an_exception(nb, central,
                                                         target, text):
    ovn, _ = backend(nb)
    if "p1" not in nb.port_states():
        ovn.plug([vif()], wait=False)
    table, column, key = target
    before = nb.seqno
    set_key(central, table, [], column, key, text)
    seen(nb, before)
    every_verb(nb)
