"""The third reliability pass: what anyone with write access to OVSDB, or
a local account, can throw at a running agent and the CLI. Each case on
real daemons in private namespaces, seeded with networks, a group and
bound ports; after each, the agent is alive, the other ports are still
wired, a new port gets its flows, and no verb prints a traceback.

Topology (one per module):
  blue (local): g1 10.0.8.1, g2 10.0.8.2 (both in group web)
  red (local):  g3 10.0.8.3
  ext (vlan 100 on physnet phys, br-ex): g5 10.0.6.5; outside 10.0.6.100
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.functional.conftest import _MISSING
from tests.functional.topology import Topology
from tests.lab.cli_runner import Runner
from tests.lab.sandbox import OvsSandbox

pytestmark = pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))

METRICS_PORT = 9477
GUESTS = {"g1": ("52:54:00:00:08:01", "10.0.8.1/24", "blue"),
          "g2": ("52:54:00:00:08:02", "10.0.8.2/24", "blue"),
          "g3": ("52:54:00:00:08:03", "10.0.8.3/24", "red"),
          "g5": ("52:54:00:00:08:05", "10.0.6.5/24", "ext")}
NET = "virtio-ovs:net:"
SG = "virtio-ovs:sg:"
READ_VERBS = [["list"], ["list", "--format", "json"], ["net-list"],
              ["net-list", "--format", "json"], ["sg-list"], ["status"],
              ["status", "--format", "json"], ["show", "port-g1"]]
# Control characters in a printed table: a forged row or a terminal
# escape. (\n ends lines, which are counted apart.)
RAW_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f\x9b]")


# ------------------------------------------------------------ the database
def transact(box: OvsSandbox, *ops: dict) -> None:
    box.exec(["ovsdb-client", "transact", box.remote,
              json.dumps(["Open_vSwitch", *ops])])


def _set_key(table: str, where: list, column: str, key: str,
             value: str) -> list[dict]:
    """Replace ``key`` in a map column (delete, then insert)."""
    return [{"op": "mutate", "table": table, "where": where, "mutations": [
        [column, "delete", ["set", [key]]]]},
        {"op": "mutate", "table": table, "where": where, "mutations": [
            [column, "insert", ["map", [[key, value]]]]]}]


def put(box: OvsSandbox, key: str, value: str | None) -> None:
    """Open_vSwitch external_ids:key=value (None: remove the key)."""
    ops = _set_key("Open_vSwitch", [], "external_ids", key, value or "")
    transact(box, *(ops[:1] if value is None else ops))


def put_iface(box: OvsSandbox, name: str, key: str, value: str | None
              ) -> None:
    ops = _set_key("Interface", [["name", "==", name]], "external_ids", key,
                   value or "")
    transact(box, *(ops[:1] if value is None else ops))


def external_ids(box: OvsSandbox, table: str, record: str) -> dict:
    out = box.vsctl("--format=json", "--columns=external_ids", "list", table,
                    record)
    return dict(json.loads(out)["data"][0][0][1])


# --------------------------------------------------------------- the lab
@pytest.fixture(scope="module")
def lab():
    if _MISSING:
        pytest.skip(_MISSING)
    box = OvsSandbox(prefix="vr")
    box.start()
    topo = Topology(box)
    runner = None
    try:
        box.add_bridge("br-int")
        box.add_bridge("br-ex")
        topo.outside = topo.add_outside("br-ex", {100: ["10.0.6.100/24"]})
        write_config(topo)
        start(topo)
        topo.ctl_ok("net-create", "blue", "--type", "local")
        topo.ctl_ok("net-create", "red", "--type", "local")
        topo.ctl_ok("net-create", "ext", "--type", "vlan", "--physnet",
                    "phys", "--segment", "100")
        topo.ctl_ok("sg-create", "web")
        for name, (mac, ip, net) in GUESTS.items():
            guest = topo.add_guest(name, mac, ip)
            topo.ctl_ok("bind", "--port-id", guest.port_id, "--network", net,
                        "--ip", ip, *(["--security-group", "web"]
                                      if net == "blue" else []))
        runner = Runner(box)
        topo.runner = runner
        topo.new_ports = 0
        wait_served(topo)
        yield topo
    finally:
        if runner is not None:
            runner.close()
        topo.close()
        box.stop()


def write_config(topo: Topology) -> None:
    topo.write_config(mappings="phys:br-ex", extra=(
        f"metrics_bind = 127.0.0.1:{METRICS_PORT}\ngc_interval = 0\n"
        "check_interval = 0\n"))


def second_agent(topo: Topology, **kw) -> subprocess.Popen:
    """Another agent on the same OVSDB (its own config: the metrics port
    is the first one's)."""
    path = topo.conf_path + ".second"
    with open(topo.conf_path) as f, open(path, "w") as out:
        out.write(f.read().replace(f"metrics_bind = 127.0.0.1:"
                                   f"{METRICS_PORT}\n", ""))
    return topo.popen(topo.box.netns, [
        sys.executable, "-m", "virtio_ovs.agent.main", "--config-file",
        path], **kw)


def start(topo: Topology, wrapper: list[str] = ()) -> None:
    topo.start_agent(wrapper)
    topo.wait_until(lambda: topo.ctl("status", "--format", "json")
                    .returncode == 0 and topo.status().get("synced")
                    and topo.status().get("pid") == topo.agent.pid,
                    timeout=30, what="the agent's sync")


def served(topo: Topology) -> bool:
    """The seeded ports are wired as their networks say."""
    g = topo.guests
    return (topo.ping(g["g2"], "10.0.8.1") and topo.ping(g["g5"], "10.0.6.100")
            and not topo.ping(g["g1"], "10.0.8.3", wait=0.3))


def wait_served(topo: Topology) -> None:
    topo.wait_until(lambda: served(topo), timeout=20,
                    what="the seeded ports wired as their networks say")


def new_port_gets_flows(topo: Topology) -> None:
    """A port plugged now (the libvirt way) is wired within seconds."""
    topo.new_ports += 1
    i = topo.new_ports
    name, mac = f"nw{i}", f"52:54:00:00:0e:{i:02x}"
    topo.box.exec(["ip", "tuntap", "add", name, "mode", "tap"])
    topo.box.vsctl("add-port", "br-int", name, "--", "set", "Interface",
                   name, f"external-ids:iface-id=new{i}",
                   f"external-ids:attached-mac={mac}",
                   "external-ids:virtio-ovs\\:network=blue")
    topo.wait_until(lambda: f"dl_src={mac}" in topo.flows("br-int"),
                    timeout=10, what=f"flows for the new port {name}")
    topo.box.vsctl("del-port", "br-int", name)
    topo.box.exec(["ip", "link", "del", name])


def verbs_say_no_traceback(topo: Topology) -> list[dict]:
    replies = []
    for argv in READ_VERBS:
        reply = topo.runner(["--timeout", "5", *argv])
        assert reply["traceback"] is None, (argv, reply["traceback"])
        assert reply["code"] == 0, (argv, reply["stderr"])
        if "json" not in argv:
            assert not RAW_CONTROL.search(reply["stdout"]), \
                (argv, reply["stdout"])
        replies.append(reply)
    return replies


def assert_whole(topo: Topology) -> None:
    assert topo.agent is not None and topo.agent.poll() is None, \
        topo.agent_log_text()[-3000:]
    verbs_say_no_traceback(topo)
    new_port_gets_flows(topo)
    wait_served(topo)


# ----------------------------------------------------- records in OVSDB
HOSTILE_RECORDS = [
    (NET + "deep", "[" * 5000 + "]" * 5000),
    (NET + "huge", json.dumps({"type": "local", "local_vlan": 1e400})
     .replace("Infinity", "1e400")),
    (NET + "plist", json.dumps({"type": "vlan", "physnet": ["phys"],
                                "segment": 7, "local_vlan": 40})),
    (NET + "seg", json.dumps({"type": "vlan", "physnet": "phys",
                              "segment": 99999, "local_vlan": 41})),
    (NET + "inject", json.dumps({"type": "vlan", "physnet": "phys",
                                 "segment": "5,actions=drop",
                                 "local_vlan": 42})),
    (NET + "minus", json.dumps({"type": "local", "local_vlan": -1})),
    (NET + "twin", json.dumps({"type": "local", "local_vlan": 1})),
    (NET + "zero", json.dumps({"type": "local", "local_vlan": 0})),
    (NET + "dead", json.dumps({"type": "local", "local_vlan": 4095})),
    (NET + "big", json.dumps({"type": "local", "local_vlan": 99999})),
    (NET + "a\nb\x1b[31m", json.dumps({"type": "local", "local_vlan": 43})),
    (SG + "deep", "{" * 3000),
    (SG + "rules", json.dumps({"rules": [{"direction": "ingress",
                                          "protocol": "\u0663"}]})),
    (SG + "junk", json.dumps({"rules": [[1], "x"]})),
]


@pytest.mark.parametrize("key, value", HOSTILE_RECORDS,
                         ids=[k.replace("\n", "-").replace("\x1b", "esc")
                              for k, _ in HOSTILE_RECORDS])
def test_a_hostile_record_skips_itself_only(lab, key, value):
    """The record is warned about once, listed as invalid, and nothing
    else changes."""
    mark = len(lab.agent_log_text())
    put(lab.box, key, value)
    try:
        lab.wait_until(lambda: f"record {key!r}" in lab.agent_log_text()
                       [mark:], timeout=10, what="the warning")
        assert_whole(lab)  # reconciles again: one warning still
        assert lab.agent_log_text()[mark:].count(f"record {key!r}") == 1
        kind = "sg-list" if key.startswith(SG) else "net-list"
        reply = lab.runner([kind])
        assert reply["code"] == 0 and "invalid" in reply["stderr"]
        assert len(reply["stderr"].splitlines()) == 1, reply["stderr"]
        assert not RAW_CONTROL.search(reply["stderr"]), reply["stderr"]
        status = json.loads(lab.runner(["status", "--format", "json"])
                            ["stdout"])
        assert [r["key"] for r in status["invalid_records"]] == [key]
    finally:
        put(lab.box, key, None)


def test_every_hostile_record_at_once_then_a_restart(lab):
    """The agent used to exit 1 on such a record, and again at every
    restart: now it starts and serves the rest."""
    for key, value in HOSTILE_RECORDS:
        put(lab.box, key, value)
    try:
        assert lab.stop_agent() == 0
        start(lab)
        assert_whole(lab)
        log = lab.agent_log_text().split("starting: OVSDB")[-1]
        for key, _ in HOSTILE_RECORDS:  # one warning per record
            assert log.count(f"record {key!r}") == 1, key
    finally:
        for key, _ in HOSTILE_RECORDS:
            put(lab.box, key, None)


def test_values_with_newlines_and_escapes_are_shown_escaped(lab):
    """A vm-id with a newline and a colour escape cannot forge a row: the
    table has one line per port; JSON keeps the exact value."""
    name = lab.guests["g3"].port
    put_iface(lab.box, name, "vm-id", "vm\nport-x  tap  \x1b[2J")
    try:
        for argv in (["list"], ["show", "port-g3"]):
            reply = lab.runner(argv)
            assert reply["code"] == 0 and not RAW_CONTROL.search(
                reply["stdout"]), reply["stdout"]
            assert "vm\\nport-x  tap  \\x1b[2J" in reply["stdout"]
        rows = lab.runner(["list"])["stdout"].splitlines()
        assert len(rows) == 1 + len(GUESTS)
        records = json.loads(lab.runner(["list", "--format", "json"])
                             ["stdout"])
        assert {r["vm"] for r in records} >= {"vm\nport-x  tap  \x1b[2J"}
    finally:
        put_iface(lab.box, name, "vm-id", "vm-g3")


# ----------------------------------------------------- agent records
@pytest.mark.parametrize("record", ["[1]", '{"heartbeat": "x"}', "1e400",
                                    '{"heartbeat": 1e400}', "{" * 2000,
                                    '{"pid": "1\\u001b[2J"}'])
def test_hostile_standby_records_break_no_status_watch_or_takeover(lab,
                                                                    record):
    put(lab.box, "virtio-ovs:agent-standby", record)
    try:
        verbs_say_no_traceback(lab)
        watch = lab.popen(lab.box.netns, [sys.executable, "-m",
                                          "virtio_ovs.cli", "watch"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.5)
        put(lab.box, "virtio-ovs:agent-standby", record + " ")
        time.sleep(0.5)
        watch.send_signal(signal.SIGINT)
        out, err = watch.communicate(timeout=10)
        assert watch.returncode == 0 and "Traceback" not in err, err
        assert not RAW_CONTROL.search(out), out
    finally:
        put(lab.box, "virtio-ovs:agent-standby", None)


def test_a_standby_takes_over_despite_a_hostile_standby_record(lab):
    """The standby read its own record back at takeover: ``[1]`` made it
    crash with AttributeError, leaving the host without an agent."""
    first = lab.agent
    with open(lab.agent_log, "a") as log:
        second = second_agent(lab, stdout=log, stderr=subprocess.STDOUT)
    try:
        lab.wait_until(lambda: "standby" in lab.ctl_ok("status"),
                       what="the second agent standing by")
        put(lab.box, "virtio-ovs:agent-standby", "[1]")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        lab.wait_until(lambda: lab.status().get("pid") == second.pid
                       and lab.status().get("synced"), timeout=20,
                       what="the takeover")
        assert second.poll() is None
        lab.agent = second
        wait_served(lab)
    finally:
        put(lab.box, "virtio-ovs:agent-standby", None)
        if lab.agent is not second:
            second.kill()
            second.wait()
    assert_whole(lab)


# --------------------------------------------------- a deleted bridge
def test_a_provider_bridge_deleted_at_run_time_takes_only_its_physnet(lab):
    g = lab.guests
    uplink = lab.box.vsctl("list-ports", "br-ex").split()
    lab.box.vsctl("del-br", "br-ex")
    try:
        lab.wait_until(lambda: "physnet phys is not wired: bridge 'br-ex' "
                       "does not exist" in lab.agent_log_text(),
                       what="the warning")
        assert lab.ping(g["g2"], "10.0.8.1")
        assert not lab.ping(g["g5"], "10.0.6.100", wait=0.5)
        assert lab.agent.poll() is None
        new_port_gets_flows(lab)
        # and a restart without the bridge starts fine
        assert lab.stop_agent() == 0
        start(lab)
        assert lab.ping(g["g2"], "10.0.8.1")
    finally:
        lab.box.add_bridge("br-ex")
        for port in uplink:
            if not port.startswith("phy-"):
                lab.box.vsctl("add-port", "br-ex", port, "--", "set", "Port",
                              port, "tag=100")
    lab.wait_until(lambda: "physnet phys: bridge br-ex is back"
                   in lab.agent_log_text(), what="the re-wiring")
    assert_whole(lab)


# --------------------------------------------------- the metrics port
def http_get(lab, path: str) -> str:
    return lab.box.exec([sys.executable, "-c", (
        "import urllib.request, sys; r = urllib.request.urlopen("
        f"'http://127.0.0.1:{METRICS_PORT}{path}', timeout=20); "
        "sys.stdout.write(str(r.status))")], timeout=30).stdout


def test_idle_metrics_clients_beyond_the_fd_limit_cannot_hurt_the_agent(lab):
    """The agent runs with 128 file descriptors; 400 idle clients connect
    to its metrics port, 400 more every 2 s, and stay: it holds at most
    16 at once and closes each after 5 s, so its descriptors stay far from
    the limit (a Popen and the OVSDB and OpenFlow connections need them),
    a new port gets its flows, and /healthz answers once the flood is
    over."""
    assert lab.stop_agent() == 0
    start(lab, wrapper=["prlimit", "--nofile=128:128"])
    before = len(os.listdir(f"/proc/{agent_pid(lab)}/fd"))
    flood = lab.popen(lab.box.netns, [
        sys.executable, "-m", "tests.lab.flood", "127.0.0.1",
        str(METRICS_PORT), "400", "8"], stdout=subprocess.PIPE)
    most = 0
    try:
        connected = int(flood.stdout.readline())
        new_port_gets_flows(lab)
        while flood.poll() is None:
            most = max(most, len(os.listdir(f"/proc/{agent_pid(lab)}/fd")))
            time.sleep(0.1)
        assert lab.agent.poll() is None
    finally:
        flood.wait(timeout=30)
    print(f"\n{connected} of 400 idle clients connected at once (a new "
          f"batch every 2 s for 8 s); the agent had {most} fds at most, "
          f"{before} before")
    # 16 clients at most (metrics.MAX_CLIENTS), plus the pipes of the
    # canary check's ovs-ofctl and python-ovs's reconnects; a thread per
    # client reached the limit (128) here.
    assert most <= before + 16 + 12, f"{most} fds open in the agent"
    assert http_get(lab, "/healthz") == "200"
    assert lab.agent.poll() is None
    assert_whole(lab)
    assert lab.stop_agent() == 0
    start(lab)


def agent_pid(lab) -> int:
    """The agent's pid (the Popen's is ``ip netns exec``'s, which execs
    prlimit, which execs python: the same process)."""
    return lab.agent.pid


# --------------------------------------------------------- the log
def test_the_log_is_written_again_after_deletion_and_create_mode(lab):
    log = os.path.join(lab.box.dir, "hostile-agent.log")
    with open(lab.conf_path) as f:
        text = f.read()
    assert lab.stop_agent() == 0
    with open(lab.conf_path, "w") as f:
        f.write(text.replace("[DEFAULT]\n", f"[DEFAULT]\nlog_file = {log}\n",
                             1))
    try:
        start(lab)
        os.unlink(log)  # deleted
        put(lab.box, NET + "logme1", "[]")
        lab.wait_until(lambda: os.path.exists(log) and "logme1" in
                       open(log).read(), what="a new log file after deletion")
        os.rename(log, log + ".1")  # logrotate's create mode
        with open(log, "w"):
            pass
        put(lab.box, NET + "logme2", "[]")
        lab.wait_until(lambda: "logme2" in open(log).read(),
                       what="the log in the file logrotate created")
        assert "logme2" not in open(log + ".1").read()
    finally:
        put(lab.box, NET + "logme1", None)
        put(lab.box, NET + "logme2", None)
        lab.stop_agent()
        with open(lab.conf_path, "w") as f:
            f.write(text)
        start(lab)


# ------------------------------------------------------------- check
def test_a_same_named_tap_held_in_another_namespace_is_not_ours(lab):
    """A TAP "xtapN" plugged here and not held; a TAP of the same name in
    another namespace held by a process: the check says not-running."""
    name = f"xtap{os.getpid() % 1000}"
    other = lab._netns("xns")
    holder = lab.popen(other, [sys.executable, "-c", (
        "import fcntl, os, struct, sys, time\n"
        "fd = os.open('/dev/net/tun', os.O_RDWR)\n"
        f"fcntl.ioctl(fd, 0x400454CA, struct.pack('16sH', b'{name}', "
        "0x0002 | 0x1000))\n"
        "print('held', flush=True)\ntime.sleep(60)\n")],
        stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "held"
        lab.ctl_ok("plug", "--port-id", "xport", "--mac",
                   "52:54:00:00:0e:f0", "--tap", name)
        proc = lab.ctl("check", "--port-id", "xport", "--format", "json")
        assert proc.returncode == 3, proc.stderr  # 3: not bypassing
        report = json.loads(proc.stdout)
        assert report[0]["verdict"] == "not-running", report
    finally:
        holder.kill()
        holder.wait()
        lab.ctl("unplug", "--port-id", "xport")


# ------------------------------------------------- coexistence at start
def test_a_standalone_agent_refuses_an_ovn_br_int_at_start_even_as_standby(
        lab):
    """br-int belongs to ovn-controller (ovn-remote is set): a standalone
    agent refuses at start, in its log and on stderr, instead of waiting
    as standby and failing only at takeover."""
    lab.box.vsctl("set", "Open_vSwitch", ".",
                  "external_ids:ovn-remote=tcp:192.0.2.1:6642")
    second = second_agent(lab, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = second.communicate(timeout=30)
        assert second.returncode == 1, (out, err)
        assert "integration_bridge: br-int is programmed by ovn-controller" \
            in err, err
        assert err.count("\n") == 1 or "Traceback" not in err
    finally:
        if second.poll() is None:
            second.kill()
        lab.box.vsctl("remove", "Open_vSwitch", ".", "external_ids",
                      "ovn-remote")
    assert lab.agent.poll() is None


# ------------------------------------------------------------------ gc
def test_gc_grace_counts_sub_second_ages_exactly(lab):
    """The stamp was whole seconds, rounded: up to 0.5 s in the future.
    gc --grace 0 removes an orphan made a moment ago; --grace 1 keeps one
    made 0.x s ago and removes it once a second has passed."""
    make_marked_taps(lab, "ga", 1)
    reply = lab.runner(["gc", "--grace", "0", "--format", "json"])
    assert json.loads(reply["stdout"])["removed"] == ["ga0"], reply
    make_marked_taps(lab, "gb", 1)
    made = time.monotonic()
    reply = json.loads(lab.runner(["gc", "--grace", "1", "--format", "json"])
                       ["stdout"])
    age = time.monotonic() - made
    if age < 0.9:
        assert reply["young"] == ["gb0"], (age, reply)
    time.sleep(max(0.0, 1.05 - (time.monotonic() - made)))
    reply = json.loads(lab.runner(["gc", "--grace", "1", "--format", "json"])
                       ["stdout"])
    assert reply["removed"] == ["gb0"], reply


def make_marked_taps(lab, prefix: str, count: int) -> None:
    """What a plug killed between its TAPs and its commit leaves."""
    lab.box.exec([sys.executable, "-c", (
        "from virtio_ovs.kernel.taps import NewTap, TapManager\n"
        f"TapManager().create([NewTap('{prefix}' + str(i))"
        f" for i in range({count})], [])\n")])


def test_gc_racing_the_replug_of_a_killed_plug_deletes_no_used_tap(lab):
    """The README's recovery: re-run the killed plug, which adopts its
    marked TAPs. gc --grace 0 started at offsets across the plug: every
    row's TAP exists afterwards (6 of 17 offsets lost all 100 before)."""
    count = 40
    path = os.path.join(lab.box.dir, "replug.jsonl")
    with open(path, "w") as f:
        for i in range(count):
            f.write(json.dumps({"port_id": f"rp-{i}", "tap": f"rp{i}",
                                "mac": f"52:54:00:00:0d:{i:02x}"}) + "\n")
    for offset in (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.6):
        make_marked_taps(lab, "rp", count)
        plug = lab.popen(lab.box.netns, [
            sys.executable, "-m", "virtio_ovs.cli", "plug", "--from-file",
            path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(offset)
        gc = lab.ctl("gc", "--grace", "0")
        out, err = plug.communicate(timeout=60)
        assert plug.returncode == 0 and gc.returncode == 0, (err, gc.stderr)
        rows = lab.box.vsctl("--bare", "--columns=name", "list",
                             "Interface").split()
        used = [n for n in rows if re.fullmatch(r"rp\d+", n)]
        links = set(lab.box.exec(["ls", "/sys/class/net"]).stdout.split())
        assert len(used) == count and set(used) <= links, \
            (offset, sorted(set(used) - links), gc.stdout)
        args = [a for i in range(count) for a in ("--port-id", f"rp-{i}")]
        lab.ctl_ok("unplug", *args)


# ------------------------------------------- property: any record at all
KEYS = st.sampled_from([NET + "h1", NET + "blue", SG + "h1", SG + "web",
                        "virtio-ovs:agent-standby", "virtio-ovs:agent",
                        "virtio-ovs:incoming:port-g2",
                        "virtio-ovs:incoming:\x1b[31m"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) |
    st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["type", "physnet", "segment", "local_vlan", "rules",
                         "direction", "protocol", "port_min", "heartbeat",
                         "pid", "x"]), inner, max_size=4), max_leaves=12)
TEXT = st.one_of(JSON.map(json.dumps), st.sampled_from(
    ["[" * 3000, "{", "1e400", "-1", '"\\u0000"', "\x1b[31m", "a\nb"]),
    st.text(max_size=30))
IFACE_KEYS = st.sampled_from(["attached-mac", "virtio-ovs:network",
                              "virtio-ovs:ips", "virtio-ovs:security-groups",
                              "vm-id", "iface-status"])


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(key=KEYS, text=TEXT, iface_key=IFACE_KEYS, iface_text=TEXT)
def test_no_record_crashes_the_agent_or_a_verb(lab, key, text, iface_key,
                                                iface_text):
    """Hypothesis writes a record of each kind the agent and the CLI read
    (a network's, a group's, the standby's, a port's external_ids) and
    runs every read verb: no traceback, the agent alive. The records are
    put back after each example; the last check wires a new port."""
    ids = external_ids(lab.box, "Open_vSwitch", ".")
    originals = {k: ids.get(k) for k in (NET + "blue", SG + "web", key)}
    port = lab.guests["g2"].port
    old = external_ids(lab.box, "Interface", port).get(iface_key)
    try:
        put(lab.box, key, text)
        put_iface(lab.box, port, iface_key, iface_text)
        time.sleep(0.05)
        for argv in READ_VERBS:
            reply = lab.runner(["--timeout", "5", *argv])
            assert reply["traceback"] is None, (argv, reply["traceback"])
            assert reply["code"] in (0, 1), (argv, reply)
        assert lab.agent.poll() is None, lab.agent_log_text()[-2000:]
    finally:
        for k, value in originals.items():
            put(lab.box, k, value)
        put_iface(lab.box, port, iface_key, old)


def test_after_the_property_run_everything_is_served(lab):
    assert_whole(lab)
