"""The agent's reconcile in-process, on a dummy-datapath OVS: its state
cache follows OVSDB notifications, flows follow the state, and a change is
reacted to within the target time."""
from __future__ import annotations

import statistics
import threading
import time

import pytest

from virtio_ovs import conf as conf_mod
from virtio_ovs.agent.agent import build_agent
from virtio_ovs.core import plug_request
from virtio_ovs.core.outcomes import PlugOutcome

MAC = "52:54:00:00:20:01"


@pytest.fixture
def agent(ovs, db, tmp_path):
    """An agent running its real loop in a thread of this process."""
    path = tmp_path / "agent.conf"
    path.write_text(f"[ovs]\novsdb_connection = {ovs.remote}\n"
                    "datapath_type = system\novsdb_timeout = 5\n"
                    "[agent]\nreport_interval = 30\ncheck_interval = 0\n")
    conf = conf_mod.load([str(path)], prog="virtio-ovs-agent")
    running = build_agent(conf)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    wait_until(lambda: running.driver.synced, "the first sync")
    yield running
    running.stop()
    thread.join(10)
    assert not thread.is_alive()


def wait_until(condition, what: str, timeout: float = 5.0) -> float:
    """Seconds until ``condition()`` held (polled every millisecond)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)
    return time.monotonic() - start


def plug(db, port_id: str, tap: str, mac: str, **kw) -> None:
    db.plug([plug_request.make_vif(port_id=port_id, mac=mac, tap=tap,
                            bridge="br-int", **kw)], PlugOutcome())


def port_flow_installed(agent, ofport: int) -> bool:
    return any(f.match == f"in_port={ofport}"
               for f in agent.driver.applied.get("br-int", ()))


def test_binding_installs_flows_within_100_ms_and_writes_no_tag(agent, db,
                                                                  ovs):
    """The median of five binds (one sample on a loaded 2-core machine
    says little). No Port.tag, before or after: the flows forward
    explicitly, and a tag write would cost ovs-vswitchd a reconfiguration
    of every bridge."""
    db.create_network("blue", "local", None, None, {})
    took = []
    for i in range(1, 6):
        mac = f"52:54:00:00:20:{i:02x}"
        plug(db, f"p{i}", f"tapa{i}", mac)
        ofport = db.get_port(f"p{i}").ofport
        assert db.get_port(f"p{i}").tag is None
        db.bind_port(f"p{i}", "blue", (f"10.0.0.{i}/24",))
        took.append(wait_until(lambda: port_flow_installed(agent, ofport),
                               "the bound port's flows", timeout=2))
        flows = ovs.ofctl("dump-flows", "br-int")
        assert f"in_port={ofport},dl_src={mac}" in flows.replace(
            "vlan_tci=0x0000/0x1fff,", "")
        assert f"cookie={agent.driver.cookie:#x}" in flows
        assert f"reg6=0x1,dl_dst={mac} actions=output:{ofport}" in flows
        assert ovs.vsctl("get", "Port", f"tapa{i}", "tag") == "[]"
    print("bind -> flows installed: " + ", ".join(
        f"{t * 1000:.1f}" for t in took) + " ms")
    assert statistics.median(took) < 0.1, \
        f"median {statistics.median(took) * 1000:.0f} ms from bind to flows"


def test_flows_are_sent_before_the_ofport_is_reported(agent, db, ovs):
    """A plug requests the port's OpenFlow number, so the agent computes and
    sends the port's flows from the new row alone. ovs-vswitchd is paused
    across the plug: it cannot have reported an ofport while the agent
    planned the flows."""
    db.create_network("blue", "local", None, None, {})
    # The first heartbeat's canary check (ovs-ofctl) is over: it would wait
    # for the paused ovs-vswitchd.
    wait_until(lambda: "heartbeat" in ovs.vsctl(
        "get", "Open_vSwitch", ".", "external_ids"), "the first heartbeat")
    with ovs.vswitchd_paused():
        db.plug([plug_request.make_vif(port_id="p0", mac=MAC, tap="tapa0",
                                bridge="br-int", network="blue")],
                PlugOutcome(), wait=False)
        requested = db.get_port("p0").ofport  # the requested number
        wait_until(lambda: any(f.match.startswith(f"in_port={requested},")
                               for f in agent.driver.planner.desired["br-int"]),
                   "the agent's flows for the new port")
        assert ovs.vsctl("--no-wait", "get", "Interface", "tapa0",
                         "ofport") == "[]"
    wait_until(lambda: port_flow_installed(agent, requested),
               "the flows acknowledged by ovs-vswitchd")
    assert f"in_port={requested},dl_src={MAC}" in ovs.ofctl(
        "dump-flows", "br-int").replace("vlan_tci=0x0000/0x1fff,", "")
    assert ovs.vsctl("get", "Interface", "tapa0", "ofport") == str(requested)


def test_a_port_someone_else_plugs_is_numbered_from_port_status(agent, db,
                                                                 ovs, caplog):
    """libvirt's way: one ovs-vsctl add-port with the ids and no
    ofport_request. The agent takes the port's number from ovs-vswitchd's
    port-status message on its OpenFlow connection (sent while ovs-vswitchd
    reconfigures for the port, before it writes Interface.ofport), and
    installs the port's flows with it; no Port.tag is written."""
    caplog.set_level("DEBUG", logger="virtio_ovs.backend.flow_driver")
    db.create_network("blue", "local", None, None, {})
    ovs.vsctl("add-port", "br-int", "tapl1", "--", "set", "Interface",
              "tapl1", "external_ids:iface-id=l1",
              f"external_ids:attached-mac={MAC}",
              'external_ids:"virtio-ovs:network"=blue')
    ofport = int(ovs.vsctl("get", "Interface", "tapl1", "ofport"))
    wait_until(lambda: port_flow_installed(agent, ofport), "the flows")
    assert f"port tapl1 numbered {ofport} (port-status)" in caplog.text
    assert f"reg6=0x1,dl_dst={MAC} actions=output:{ofport}" in ovs.ofctl(
        "dump-flows", "br-int")
    assert ovs.vsctl("get", "Port", "tapl1", "tag") == "[]"


def test_a_verdict_write_costs_no_reconcile(agent, db, ovs):
    """The periodic check's verdicts change Interface rows but nothing the
    flows depend on: the agent takes the update without recomputing (a
    full pass costs ~300 ms at 10,000 ports), and still reacts to a bind."""
    db.create_network("blue", "local", None, None, {})
    plug(db, "v1", "tapv1", MAC, network="blue")
    ofport = db.get_port("v1").ofport
    wait_until(lambda: port_flow_installed(agent, ofport), "flows")

    def reconciles() -> float:
        return agent.metrics.registry.get_sample_value(
            "virtio_ovs_reconcile_seconds_count")
    wait_until(lambda: agent.reconciler.reconciled_seqno[0] == agent.db.seqno,
               "a quiet agent")
    before, seen = reconciles(), agent.db.seqno
    db.record_verdicts({"v1": ("not-running", None)})
    # The agent's replica changed, and the agent has dealt with it.
    wait_until(lambda: agent.db.seqno != seen and
               agent.reconciler.reconciled_seqno[0] == agent.db.seqno,
               "the agent to take the verdict in")
    assert reconciles() == before
    db.bind_port("v1", "blue", ("10.0.0.7/24",))
    wait_until(lambda: any("nw_src=10.0.0.7" in f.match
                           for f in agent.driver.applied["br-int"]), "the bind")
    assert reconciles() > before


def heartbeat_now(agent) -> None:
    """Make the agent's loop run its heartbeat (with the canary check)."""
    agent.heartbeat.now()
    agent.wake()


def test_a_lost_canary_reprograms_every_flow(agent, db, ovs):
    db.create_network("blue", "local", None, None, {})
    plug(db, "c1", "tapc1", MAC, network="blue")
    ofport = db.get_port("c1").ofport
    wait_until(lambda: port_flow_installed(agent, ofport), "flows")
    ovs.ofctl("del-flows", "br-int")  # someone wiped the table
    heartbeat_now(agent)
    wait_until(lambda: f"in_port={ofport}," in ovs.ofctl("dump-flows",
                                                         "br-int"),
               "the flows re-installed", timeout=10)
    assert f"cookie={agent.driver.cookie:#x}" in ovs.ofctl("dump-flows", "br-int")


def test_a_busy_switch_is_not_a_lost_canary(agent, db, ovs, caplog):
    """A canary check that times out (ovs-vswitchd busy: seconds per new
    port at 10,000 TAPs) must not re-program every flow."""
    wait_until(lambda: "heartbeat" in ovs.vsctl(
        "get", "Open_vSwitch", ".", "external_ids"), "the first heartbeat")
    with ovs.vswitchd_paused():
        heartbeat_now(agent)
        wait_until(lambda: agent.heartbeat.next_at > 0, "the heartbeat to start")
        time.sleep(6)  # past the canary check's 5 s limit
    wait_until(lambda: not agent.reconciler.dirty, "a settled agent")
    assert "canary check failed" in caplog.text
    assert "re-programming" not in caplog.text
    assert agent.driver.synced and not agent.driver.need_setup


def test_unbinding_removes_flows_and_isolates(agent, db, ovs):
    db.create_network("blue", "local", None, None, {})
    plug(db, "p2", "tapa2", MAC, network="blue")
    ofport = db.get_port("p2").ofport
    wait_until(lambda: port_flow_installed(agent, ofport), "flows")
    db.bind_port("p2", None, None)
    wait_until(lambda: not port_flow_installed(agent, ofport), "flow removal")
    flows = ovs.ofctl("dump-flows", "br-int")
    assert f"in_port={ofport}," not in flows
    assert f"output:{ofport}" not in flows.replace(f"output:{ofport}0", "")


def test_foreign_vlan_columns_are_left_alone_and_change_no_flow(agent, db,
                                                                ovs):
    """VLAN columns only steer NORMAL, which the agent's flows never use:
    someone's tag or trunks are not fought over, and the port keeps its
    flows."""
    db.create_network("blue", "local", None, None, {})
    plug(db, "p3", "tapa3", MAC, network="blue")
    ofport = db.get_port("p3").ofport
    wait_until(lambda: port_flow_installed(agent, ofport), "flows")
    before = set(agent.driver.applied["br-int"])
    ovs.vsctl("set", "Port", "tapa3", "trunks=7", "vlan_mode=trunk")
    time.sleep(0.5)  # the agent reacts in milliseconds: it did nothing
    assert ovs.vsctl("get", "Port", "tapa3", "trunks") == "[7]"
    assert set(agent.driver.applied["br-int"]) == before


def test_a_port_with_bad_ids_does_not_block_the_others(agent, db, ovs):
    db.create_network("blue", "local", None, None, {})
    ovs.vsctl("add-port", "br-int", "bad1", "--", "set", "Interface", "bad1",
              "external_ids:iface-id=bad", 'external_ids:attached-mac="zz"',
              "external_ids:virtio-ovs\\:network=blue")
    plug(db, "p4", "tapa4", MAC, network="blue")
    ofport = db.get_port("p4").ofport
    wait_until(lambda: port_flow_installed(agent, ofport), "p4's flows")
    assert "zz" not in ovs.ofctl("dump-flows", "br-int")


def test_metrics_time_the_wiring_and_the_reconciles(agent, db):
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families
    db.create_network("blue", "local", None, None, {})
    plug(db, "m1", "tapm1", MAC, network="blue")
    ofport = db.get_port("m1").ofport
    wait_until(lambda: port_flow_installed(agent, ofport), "flows")
    wait_until(lambda: agent.metrics.registry.get_sample_value(
        "virtio_ovs_port_wiring_seconds_count"), "a wiring time")
    got = {}
    for family in text_string_to_metric_families(
            generate_latest(agent.metrics.registry).decode()):
        for s in family.samples:
            got[(s.name, tuple(sorted(s.labels.items())))] = s.value
    assert got[("virtio_ovs_port_wiring_seconds_count", ())] == 1
    assert 0 < got[("virtio_ovs_port_wiring_seconds_sum", ())] < 1
    assert got[("virtio_ovs_reconcile_seconds_count", ())] >= 2
    assert got[("virtio_ovs_flows", (("bridge", "br-int"),))] == \
        len(agent.driver.applied["br-int"])
    assert got[("virtio_ovs_port_info", (("kind", "system"), ("network", "blue"),
                                         ("port_id", "m1"), ("vm", "")))] == 1
    assert got[("virtio_ovs_agent_active", ())] == 1
    assert abs(got[("virtio_ovs_agent_last_sync_timestamp_seconds", ())]
               - time.time()) < 60


def test_watch_sees_a_plug_within_a_second(ovs, db):
    from virtio_ovs.cli.watch import Watcher
    from virtio_ovs.ovsdb.host.impl import IdlHostDb
    from tests.integration.conftest import TAPS
    seen: list[dict] = []
    watch_db = IdlHostDb(ovs.remote, 5.0, is_tap=lambda name: name in TAPS)
    watcher = Watcher(watch_db, seen.append)
    try:
        watcher.start()
        assert seen[0]["event"] == "watch-started"
        plug(db, "w1", "tapw1", MAC)
        plugged_at = time.monotonic()
        took = wait_until(lambda: watcher.step() or any(
            e["event"] == "port-plugged" for e in seen), "the plug event", 1.0)
        print(f"plug committed -> watch event: {took * 1000:.1f} ms")
        [event] = [e for e in seen if e["event"] == "port-plugged"]
        assert event["port_id"] == "w1" and event["name"] == "tapw1"
        db.unplug(["w1"])
        wait_until(lambda: watcher.step() or any(
            e["event"] == "port-unplugged" for e in seen), "the unplug", 1.0)
        assert time.monotonic() - plugged_at < 5
    finally:
        watch_db.close()
