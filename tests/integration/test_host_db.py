"""The host database facade, in-process, on a dummy-datapath OVS."""
from __future__ import annotations

import time

import pytest

from virtio_ovs.backend.standalone import StandaloneBackend
from virtio_ovs.core import plug_request
from virtio_ovs.core.errors import EnvironmentFailure, OvsdbTimeout, UserError
from virtio_ovs.core.outcomes import Committed, PlugOutcome
from virtio_ovs.core.roles import BridgeSpec
from virtio_ovs.ovsdb.host.impl import IdlHostDb
from tests.integration.conftest import TAPS, plug_every_kind

MAC = "52:54:00:00:10:01"


def eventually(read, timeout: float = 5.0):
    """``read()`` once it returns something truthy (the replica follows
    changes made by other clients a moment later)."""
    deadline = time.monotonic() + timeout
    while not (value := read()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return value


def vif(port_id="p1", tap="tapp1", **kw) -> plug_request.Vif:
    return plug_request.make_vif(port_id=port_id, mac=kw.pop("mac", MAC), tap=tap,
                          bridge="br-int", **kw)


def test_plug_commits_once_and_reads_back_as_a_guest_port(db, ovs):
    TAPS.add("tapp1")
    outcome = PlugOutcome()
    db.plug([vif(queues=2, vm="vm1", mtu=1400)], outcome,
            created_taps=frozenset({"tapp1"}))
    assert outcome.committed and outcome.plugged == ["p1"]
    assert len(outcome.new_ports) == 1
    port = db.get_port("p1")
    assert (port.name, port.kind, port.mac, port.vm, port.queues, port.mtu,
            port.bridge, port.tag, port.tap_created, port.plugged_by_us) == \
        ("tapp1", "tap", MAC, "vm1", 2, 1400, "br-int", None, True, True)
    # (no VLAN columns on a secure bridge: the agent's flows forward)
    assert port.ofport is not None and port.status in ("up", "down")
    next_cfg = ovs.vsctl("get", "Open_vSwitch", ".", "next_cfg")
    again = PlugOutcome()
    db.plug([vif(queues=2, vm="vm1", mtu=1400)], again)
    assert (again.committed, again.unchanged) == (Committed.NO, ["p1"])
    assert ovs.vsctl("get", "Open_vSwitch", ".", "next_cfg") == next_cfg


def test_a_plug_connection_replicates_no_link_status(ovs):
    """A plug's connection leaves out the columns ovs-vswitchd rewrites
    for each port it adds: the plug still waits for each ofport, and a
    port read there has no link state or MAC in use (None), where a full
    connection has them."""
    TAPS.add("tapp1")
    plug_db = IdlHostDb(ovs.remote, 5.0, is_tap=lambda name: name in TAPS,
                        link_status=False)
    full_db = IdlHostDb(ovs.remote, 5.0, is_tap=lambda name: name in TAPS)
    try:
        outcome = PlugOutcome()
        plug_db.plug([vif()], outcome)
        assert outcome.plugged == ["p1"] and not outcome.refused
        registered = plug_db.conn.idl.tables["Interface"].columns
        assert "link_state" not in registered and "ofport" in registered
        port = plug_db.get_port("p1")
        assert port.ofport is not None and port.hw_addr is None
        full = eventually(lambda: (p := full_db.get_port("p1")) and
                          p.hw_addr and p)
        assert full.ofport == port.ofport
    finally:
        plug_db.close()
        full_db.close()


def test_kind_comes_from_the_probe_not_from_the_name(db, ovs):
    ovs.vsctl("add-port", "br-int", "vethx", "--", "set", "Interface",
              "vethx", "external_ids:iface-id=lv", f"external_ids:attached-mac={MAC}")
    port = eventually(lambda: db.get_port("lv"))
    assert (port.kind, port.plugged_by_us) == ("system", False)
    TAPS.add("vethx")  # the probe is asked once per changed row
    ovs.vsctl("set", "Interface", "vethx", "external_ids:vm-id=vm9")
    assert eventually(lambda: db.get_port("lv").vm == "vm9")
    assert db.get_port("lv").kind == "tap"


def test_remove_ports_undoes_exactly_the_plug(db, ovs):
    outcome = PlugOutcome()
    db.plug([vif(), vif("p2", "tapp2", mac="52:54:00:00:10:02")], outcome)
    db.remove_ports(outcome)
    assert db.list_ports() == []
    db.remove_ports(outcome)  # already gone: nothing to do, no error


def test_validate_plug_refuses_conflicts_without_writing(db):
    db.plug([vif()], PlugOutcome())
    with pytest.raises(UserError, match="mac: port id 'p1' is plugged with"):
        db.validate_plug([vif(mac="52:54:00:00:10:09")])
    with pytest.raises(UserError, match="tap: 'tapp1' is already in OVSDB"):
        db.validate_plug([vif("p9")])
    with pytest.raises(UserError, match="network: no network named 'nope'"):
        db.validate_plug([vif("p8", "tapp8", network="nope")])
    assert db.validate_plug([vif("p7", "tapp7")]) == ["p7"]


def test_networks_bind_tags_and_verdicts(db):
    db.plug([vif()], PlugOutcome())
    net = db.create_network("blue", "local", None, None, {})
    assert db.list_networks() == [net] and net.local_vlan == 1
    assert db.bind_port("p1", "blue", ("10.0.0.5/24",))
    assert not db.bind_port("p1", "blue", ("10.0.0.5/24",))
    with pytest.raises(UserError, match="has bound ports: p1"):
        db.delete_network("blue")
    db.record_verdicts({"p1": ("bypass", 2)})
    port = db.get_port("p1")
    assert (port.network, port.ips, port.verdict,
            port.queues_enabled) == ("blue", ("10.0.0.5/24",), "bypass", 2)
    db.bind_port("p1", None, None)
    db.delete_network("blue")
    assert db.networks() == {}


def test_foreign_invalid_ids_are_listed_but_not_bound(db, ovs):
    db.create_network("blue", "local", None, None, {})
    ovs.vsctl("add-port", "br-int", "bad0", "--", "set", "Interface", "bad0",
              "external_ids:iface-id=bad", 'external_ids:attached-mac="52:54:00:00:10:03\\n"',
              "external_ids:virtio-ovs\\:network=blue")
    port = eventually(lambda: db.get_port("bad"))
    assert (port.valid, port.bound_network, port.network) == (False, None, None)


def test_ensure_bridges_joins_patches_only_when_asked(db, ovs):
    ovs.vsctl("add-br", "br-ex", "--", "set", "Bridge", "br-ex",
              "datapath_type=netdev")
    spec = BridgeSpec("br-int", "netdev", ("OpenFlow10", "OpenFlow14"),
                      {"phys": "br-ex"})
    assert db.ensure_bridges(spec, connect=False)
    assert ovs.vsctl("get", "Interface", "int-br-ex", "options:peer") == \
        "nonexistent-peer"
    assert ovs.vsctl("get", "Bridge", "br-ex", "fail_mode") == "secure"
    assert db.ensure_bridges(spec, connect=True)
    assert ovs.vsctl("get", "Interface", "int-br-ex", "options:peer") == \
        "phy-br-ex"
    assert not db.ensure_bridges(spec, connect=False)  # never disconnects
    assert set(db.ofports({"int-br-ex", "phy-br-ex"})) == \
        {"int-br-ex", "phy-br-ex"}
    missing = BridgeSpec("br-int", "netdev", ("OpenFlow14",),
                         {"x": "br-none", "ex": "br-ex"})
    assert db.provider_problems(missing) == {
        "x": "bridge 'br-none' does not exist; create it (ovs-vsctl add-br) "
             "and add its uplink"}
    with pytest.raises(EnvironmentFailure, match="physnet 'x': bridge "
                       "'br-none' does not exist"):
        db.ensure_bridges(missing, connect=False)


def test_agent_status_round_trip(db):
    assert db.agent_status() is None
    db.write_agent_status({"heartbeat": 1.5, "host": "h"})
    assert db.agent_status() == {"heartbeat": 1.5, "host": "h"}


def test_an_unreachable_database_is_a_timeout_not_a_hang(tmp_path):
    db = IdlHostDb(f"unix:{tmp_path}/none.sock", 0.5, is_tap=lambda n: False)
    start = time.monotonic()
    with pytest.raises(OvsdbTimeout, match="unreachable within 0.5 s"):
        db.list_ports()
    assert time.monotonic() - start < 2


def test_seqno_moves_on_a_foreign_change(db, ovs):
    db.start()
    before = db.seqno
    ovs.vsctl("set", "Bridge", "br-int", "external_ids:x=y")
    deadline = time.monotonic() + 5
    while db.seqno == before and time.monotonic() < deadline:
        db.run()
        time.sleep(0.01)
    assert db.seqno != before


def test_one_lock_holder_and_the_replica_is_there_when_start_returns(ovs):
    """Two connections ask for the agent lock: one holds it, the other is
    told it is contended and cannot write; each has its replica as soon
    as start() returns (python-ovs counts the granted lock as a change)."""
    first = IdlHostDb(ovs.remote, 5.0, is_tap=lambda n: False,
                      lock_name="vovs_test")
    second = IdlHostDb(ovs.remote, 5.0, is_tap=lambda n: False,
                       lock_name="vovs_test")
    try:
        first.start()
        assert first.networks() == {}  # the Open_vSwitch row is replicated
        assert eventually(lambda: first.run() or first.lock_state == "held")
        second.start()
        assert second.networks() == {}
        assert eventually(lambda: second.run() or second.lock_state == "contended")
        with pytest.raises(EnvironmentFailure, match="holds this "
                           "connection's lock"):
            second.write_agent_status({"heartbeat": 1})
        second.write_standby_status({"pid": 2, "heartbeat": 1})
        assert eventually(lambda: first.run() or first.standby_status()) \
            == {"pid": 2, "heartbeat": 1}
        first.close()
        assert eventually(lambda: second.run() or second.lock_state == "held")
        second.write_agent_status({"heartbeat": 2})
    finally:
        first.close()
        second.close()


def test_plug_numbers_each_port_and_ovs_vswitchd_honours_it(db, ovs):
    """ofport_request is chosen free at plug (distinct within a bulk plug,
    never one another Interface has), and ovs-vswitchd gives exactly it:
    the agent can install a port's flows before the number is reported."""
    ovs.vsctl("add-port", "br-int", "other", "--", "set", "Interface",
              "other", "ofport_request=1")
    outcome = PlugOutcome()
    db.plug([vif("p1", "tapq1"), vif("p2", "tapq2", mac="52:54:00:00:01:02")],
            outcome)
    requested = {n: int(ovs.vsctl("get", "Interface", n, "ofport_request"))
                 for n in ("tapq1", "tapq2")}
    assert len(set(requested.values())) == 2 and 1 not in requested.values()
    assert {n: db.get_port(p).ofport for n, p in
            (("tapq1", "p1"), ("tapq2", "p2"))} == requested
    assert {n: int(ovs.vsctl("get", "Interface", n, "ofport"))
            for n in requested} == requested


def test_a_port_not_yet_numbered_gets_its_requested_ofport():
    from virtio_ovs.core.port import IfaceValues, guest_port
    ids = {"iface-id": "p1", "attached-mac": MAC}
    pending = guest_port(IfaceValues("t1", "", ids, {}, None, None, None,
                                     None, ofport_request=7), True)
    refused = guest_port(IfaceValues("t1", "", ids, {}, -1, None, "no dev",
                                     None, ofport_request=7), True)
    assert (pending.ofport, pending.status) == (7, "no-ofport")
    assert refused.ofport is None  # ovs-vswitchd refused it: no flows


def test_the_wiring_version_moves_only_with_what_flows_depend_on(db, ovs):
    """A verdict or a heartbeat leaves it (the agent then skips its
    reconcile); a bind, a network, a MAC or a port on another bridge's
    side moves it."""
    db.create_network("blue", "local", None, None, {})
    TAPS.add("tapw1")
    db.plug([vif("w1", "tapw1", network="blue")], PlugOutcome())
    eventually(lambda: db.get_port("w1").status != "no-ofport")
    before = db.wiring_version()
    db.record_verdicts({"w1": ("not-running", None)})
    db.write_agent_status({"heartbeat": 1.0})
    ovs.vsctl("set", "Interface", "tapw1", "external_ids:other=1")
    assert eventually(lambda: db.get_port("w1").verdict == "not-running")
    assert db.wiring_version() == before
    for change in (
            lambda: db.bind_port("w1", "blue", ("10.0.0.9/24",)),
            lambda: db.create_network("red", "local", None, None, {}),
            lambda: ovs.vsctl("set", "Interface", "tapw1",
                              f'external_ids:attached-mac="{MAC[:-1]}9"'),
            lambda: ovs.vsctl("add-port", "br-int", "other0")):
        version = db.wiring_version()
        change()
        assert eventually(lambda: db.wiring_version() != version)


def test_a_refused_bind_writes_no_groups(db, ovs):
    """Standalone bind is one transaction: the unknown network refuses it
    whole, so the groups it asked for are not written (they were, before
    the groups and the binding became one transaction)."""
    plug_every_kind(db, ovs)
    db.create_group("db")
    backend = StandaloneBackend(db, None, {}, "br-int")
    before = db.get_port("f1")
    try:
        backend.bind("f1", "nope", None, False, ("db",))
    except UserError as exc:
        assert "no network named 'nope'" in str(exc)
    else:
        raise AssertionError("the bind was not refused")
    assert db.get_port("f1") == before
    assert backend.bind("f1", "blue", None, False, ("db",))
    assert db.get_port("f1").security_groups == ("db",)
