"""Every bad input: one line naming the field and the rule, exit 1, and
nothing written to OVSDB or the kernel."""
from __future__ import annotations

import json
import time

import pytest

from tests.functional.conftest import db_state

MAC = "52:54:00:12:34:56"
BASE = ("plug", "--port-id", "p1", "--mac", MAC)


def _assert_refused(box, ctl, args, field: str, rule: str, input=None):
    before = db_state(box)
    proc = ctl(*args, input=input)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr  # one line, no traceback
    assert f"{field}:" in lines[0] and rule in lines[0], lines[0]
    assert db_state(box) == before


@pytest.mark.parametrize("args, field, rule", [
    (("plug", "--port-id", "p1", "--mac", "52:54:00:12:34", "--tap", "t1"),
     "mac", "is not a MAC address"),
    (("plug", "--port-id", "p1", "--mac", "zz:54:00:12:34:56", "--tap", "t1"),
     "mac", "is not a MAC address"),
    (("plug", "--port-id", "p1", "--mac", "33:33:00:00:00:01", "--tap", "t1"),
     "mac", "multicast"),
    (BASE + ("--tap", "tap0123456789abc"), "tap", "longer than 15 bytes"),
    (BASE + ("--tap", "tap/1"), "tap", "may not contain '/'"),
    (BASE + ("--tap", "tap 1"), "tap", "whitespace"),
    (BASE + ("--tap", "tap\x01x"), "tap", "control characters"),
    (BASE + ("--tap", "tapb1", "--bridge", "br-none"), "bridge",
     "no bridge named 'br-none'"),
    (BASE + ("--tap", "tapq1", "--queues", "0"), "queues", "1..256"),
    (BASE + ("--tap", "tapq1", "--queues", "257"), "queues", "1..256"),
    (BASE + ("--tap", "tapm1", "--mtu", "67"), "mtu", "68..65535"),
    (BASE + ("--tap", "tapm1", "--mtu", "65536"), "mtu", "68..65535"),
    (BASE + ("--vhost-user", "vhu1.sock"), "vhost_user", "not an absolute path"),
    (BASE + ("--vhost-user", "/nonexistent-dir/vhu1"), "vhost_user",
     "directory /nonexistent-dir does not exist"),
    (BASE + ("--tap", "tapi1", "--ip", "10.0.0.300/24"), "ips", "CIDR"),
    (("plug", "--mac", MAC, "--tap", "tapn1"), "port-id", "is required"),
    (BASE, "tap", "give exactly one of tap or vhost_user"),
    (BASE + ("--tap", "tapg1", "--migrating-from", "hv 1"), "migrating_from",
     "1-64 characters"),
    (("migration-expect", "--port-id", "p1", "--from", "a:b"), "from",
     "1-64 characters"),
    (("migration-expect", "--port-id", "", "--cancel"), "port_id", ""),
])
def test_bad_plug_input(box, ctl, args, field, rule):
    _assert_refused(box, ctl, args, field, rule)


def test_an_expected_migration_is_recorded_and_cancelled(box, ctl):
    """migration-expect writes the record the agent gates by; --cancel
    removes it; both are idempotent."""
    key = "virtio-ovs:incoming:p9"
    out = ctl("migration-expect", "--port-id", "p9", "--from", "hv1")
    assert out.returncode == 0 and "expecting p9 from hv1" in out.stdout
    assert f'"{key}"=hv1' in box.vsctl("get", "Open_vSwitch", ".",
                                       "external_ids")
    again = ctl("migration-expect", "--port-id", "p9", "--from", "hv1")
    assert "(unchanged)" in again.stdout
    out = ctl("migration-expect", "--port-id", "p9", "--cancel")
    assert out.returncode == 0 and "no longer expecting p9" in out.stdout
    assert key not in box.vsctl("get", "Open_vSwitch", ".", "external_ids")


def test_vhost_user_needs_a_netdev_bridge(box, ctl, tmp_path):
    box.vsctl("add-br", "br-sys")  # datapath_type system
    _assert_refused(box, ctl, BASE + ("--vhost-user", str(tmp_path / "vhu1"),
                                      "--bridge", "br-sys"),
                    "bridge", "datapath_type=netdev")


def test_vhost_user_needs_an_ovs_with_the_interface_type(box, ctl, tmp_path):
    _assert_refused(box, ctl, BASE + ("--vhost-user", str(tmp_path / "vhu1")),
                    "vhost_user", "does not support interface type "
                    "dpdkvhostuserclient")


def _lines(*objs) -> str:
    return "".join((o if isinstance(o, str) else json.dumps(o)) + "\n"
                   for o in objs)


GOOD = {"port_id": "a", "mac": MAC, "tap": "tapa"}


@pytest.mark.parametrize("text, field, rule", [
    (_lines(GOOD, {"port_id": "a", "mac": "52:54:00:00:00:02", "tap": "tapb"}),
     "line 2: port_id", "'a' appears twice"),
    (_lines(GOOD, {"port_id": "b", "mac": "52:54:00:00:00:02", "tap": "tapa"}),
     "line 2: tap", "device 'tapa' appears twice"),
    (_lines(GOOD, "", '{"port_id": "b", "mac": '), "line 3: from_file",
     "invalid JSON"),
    (_lines(GOOD, "[1, 2]"), "line 2: from_file", "must be a JSON object"),
    (_lines(GOOD, {"port_id": "b", "mac": "52:54:00:00:00:02", "tap": "tb",
                   "queue": 2}), "line 2: queue", "unknown key"),
    (_lines(GOOD, {"port_id": "b", "mac": "52:54:00:00:00:02", "tap": "tb",
                   "queues": "2"}), "line 2: queues", "must be an integer"),
    (_lines(GOOD, {"port_id": "b", "mac": "52:54:00:00:00:02", "tap": "tb",
                   "ips": "10.0.0.1/24"}), "line 2: ips", "must be a list"),
])
def test_bad_bulk_file(box, ctl, text, field, rule):
    _assert_refused(box, ctl, ("plug", "--from-file", "-"), field, rule,
                    input=text)


def test_unreadable_bulk_file(box, ctl, tmp_path):
    _assert_refused(box, ctl, ("plug", "--from-file", str(tmp_path / "none")),
                    "from_file", "cannot read")
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00garbage\n")
    _assert_refused(box, ctl, ("plug", "--from-file", str(binary)),
                    "from_file", "not UTF-8")


def test_unreachable_ovsdb_fails_within_the_timeout(box, ctl):
    start = time.monotonic()
    proc = ctl("--db", "unix:/nonexistent/db.sock", "--timeout", "1.5", "list")
    elapsed = time.monotonic() - start
    assert proc.returncode == 2
    assert "unreachable within 1.5 s" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert elapsed < 5  # interpreter start + 1.5 s, never a hang


def test_stopped_ovsdb_server_fails_within_the_timeout(box, ctl):
    box.stop_ovsdb()
    start = time.monotonic()
    proc = ctl("--timeout", "1", "plug", *BASE[1:], "--tap", "tapx1")
    assert proc.returncode == 2 and "unreachable" in proc.stderr
    assert time.monotonic() - start < 5
    assert "tapx1" not in box.exec(["ls", "/sys/class/net"]).stdout.split()


def test_stopped_vswitchd_is_a_timeout_not_a_hang(box, ctl):
    box.stop_vswitchd()
    start = time.monotonic()
    proc = ctl("--timeout", "1.5", "plug", *BASE[1:], "--tap", "tapv1")
    assert proc.returncode == 2
    assert "waiting for ovs-vswitchd" in proc.stderr
    assert time.monotonic() - start < 6
