"""plug / unplug / list / show against a real OVS."""
from __future__ import annotations

import grp
import os
import json
import pwd
import select
import subprocess
import sys
import pathlib
import time
from typing import Callable

from tests.functional.conftest import db_state, iface_get, sysfs

MAC = "52:54:00:12:34:56"
ROOT = pathlib.Path(__file__).resolve().parents[2]
IFF_TAP, IFF_MULTI_QUEUE, IFF_NO_PI, IFF_VNET_HDR = 0x2, 0x100, 0x1000, 0x4000


def tun_flags(box, name: str) -> int:
    return int(sysfs(box, f"/sys/class/net/{name}/tun_flags"), 16)


def test_plug_multiqueue_tap_writes_one_port_with_ids_and_mtu(box, ctl):
    ctl.ok("net-create", "net1", "--type", "local")
    box.vsctl("set", "Bridge", "br-int", "fail_mode=secure")  # as the agent does
    out = ctl.ok("plug", "--port-id", "p1", "--mac", MAC, "--tap", "tapmq1",
                 "--vm", "vm-1", "--network", "net1", "--ip", "10.0.0.5/24",
                 "--queues", "4", "--mtu", "1400")
    assert "plugged 1" in out
    flags = tun_flags(box, "tapmq1")
    assert flags & IFF_TAP and flags & IFF_NO_PI and flags & IFF_VNET_HDR
    assert flags & IFF_MULTI_QUEUE
    ids = iface_get(box, "tapmq1", "external_ids")
    for pair in ('iface-id=p1', f'attached-mac="{MAC}"', 'vm-id=vm-1',
                 'iface-status=active', '"virtio-ovs:network"=net1',
                 '"virtio-ovs:queues"="4"', '"virtio-ovs:ips"="10.0.0.5/24"'):
        assert pair in ids
    assert iface_get(box, "tapmq1", "type") == '""'  # a plain system port
    assert int(iface_get(box, "tapmq1", "ofport")) > 0
    # On the agent's secure bridge no VLAN columns: its flows forward.
    assert box.vsctl("get", "Port", "tapmq1", "tag") == "[]"
    assert box.vsctl("get", "Port", "tapmq1", "trunks") == "[]"
    assert iface_get(box, "tapmq1", "mtu_request") == "1400"
    assert sysfs(box, "/sys/class/net/tapmq1/mtu") == "1400"


def test_standalone_bridge_keeps_a_bound_port_in_the_dead_vlan(box, ctl):
    # Without the agent's secure bridge, NORMAL would switch the port.
    ctl.ok("net-create", "n1", "--type", "local")
    ctl.ok("plug", "--port-id", "p1", "--mac", MAC, "--tap", "tapst1",
           "--network", "n1")
    assert box.vsctl("get", "Port", "tapst1", "tag") == "4095"
    assert box.vsctl("get", "Port", "tapst1", "trunks") == "[4095]"


def test_plug_single_queue_tap_without_network_is_in_the_dead_vlan(box, ctl):
    ctl.ok("plug", "--port-id", "p1", "--mac", MAC, "--tap", "tapsq1")
    flags = tun_flags(box, "tapsq1")
    assert flags & IFF_TAP and flags & IFF_VNET_HDR
    assert not flags & IFF_MULTI_QUEUE
    assert box.vsctl("get", "Port", "tapsq1", "tag") == "4095"
    assert box.vsctl("get", "Port", "tapsq1", "trunks") == "[4095]"
    assert box.vsctl("get", "Port", "tapsq1", "vlan_mode") == "trunk"


def test_plug_twice_changes_nothing(box, ctl):
    ctl.ok("net-create", "n1", "--type", "local")
    args = ("plug", "--port-id", "p1", "--mac", MAC, "--tap", "tapid1",
            "--queues", "2", "--network", "n1")
    ctl.ok(*args)
    before = db_state(box)
    assert "unchanged 1" in ctl.ok(*args)
    assert db_state(box) == before  # not even next_cfg moved


def test_replug_updates_ids_but_keeps_the_bound_vlan(box, ctl):
    ctl.ok("plug", "--port-id", "p1", "--mac", MAC, "--tap", "taprp1")
    box.vsctl("set", "Port", "taprp1", "tag=7")  # as an agent binding it
    out = ctl.ok("plug", "--port-id", "p1", "--mac", MAC, "--tap", "taprp1",
                 "--ip", "10.1.0.9/24", "--mtu", "1450")
    assert "updated 1" in out
    assert box.vsctl("get", "Port", "taprp1", "tag") == "7"
    assert iface_get(box, "taprp1", 'external_ids:"virtio-ovs:ips"') \
        == '"10.1.0.9/24"'
    assert iface_get(box, "taprp1", "mtu_request") == "1450"


def test_same_port_id_with_other_mac_or_device_is_refused(box, ctl):
    ctl.ok("plug", "--port-id", "p1", "--mac", MAC, "--tap", "tapsm1")
    before = db_state(box)
    proc = ctl("plug", "--port-id", "p1", "--mac", "52:54:00:00:00:99",
               "--tap", "tapsm1")
    assert proc.returncode == 1 and "mac:" in proc.stderr
    proc = ctl("plug", "--port-id", "p1", "--mac", MAC, "--tap", "tapsm2")
    assert proc.returncode == 1 and "tap:" in proc.stderr
    assert db_state(box) == before


def test_device_of_another_port_is_refused(box, ctl):
    ctl.ok("plug", "--port-id", "p1", "--mac", MAC, "--tap", "tapdv1")
    before = db_state(box)
    proc = ctl("plug", "--port-id", "p2", "--mac", "52:54:00:00:00:02",
               "--tap", "tapdv1")
    assert proc.returncode == 1
    assert "tap: 'tapdv1' is already in OVSDB as port id 'p1'" in proc.stderr
    assert db_state(box) == before


def test_unplug_removes_port_and_the_tap_we_created(box, ctl):
    ctl.ok("plug", "--port-id", "p1", "--mac", MAC, "--tap", "tapun1")
    assert "unplugged p1" in ctl.ok("unplug", "--port-id", "p1")
    assert "tapun1" not in box.vsctl("list-ports", "br-int").split()
    assert "tapun1" not in box.exec(["ls", "/sys/class/net"]).stdout.split()


def test_unplug_keeps_a_tap_someone_else_created(box, ctl):
    box.exec(["ip", "tuntap", "add", "dev", "tapfo1", "mode", "tap",
              "vnet_hdr"])
    ctl.ok("plug", "--port-id", "p1", "--mac", MAC, "--tap", "tapfo1")
    ctl.ok("unplug", "--port-id", "p1")
    assert "tapfo1" not in box.vsctl("list-ports", "br-int").split()
    assert "tapfo1" in box.exec(["ls", "/sys/class/net"]).stdout.split()


def test_unplug_several_ports_or_a_vm_in_one_transaction(box, ctl):
    for i, vm in ((1, "vmA"), (2, "vmA"), (3, "vmB")):
        ctl.ok("plug", "--port-id", f"m{i}", "--mac", f"52:54:00:00:5a:0{i}",
               "--tap", f"tapmu{i}", "--vm", vm)
    before = db_state(box)
    proc = ctl("unplug", "--port-id", "m3", "--port-id", "nope")
    assert proc.returncode == 1 and db_state(box) == before  # all or nothing
    out = ctl.ok("unplug", "--vm", "vmA")
    assert "unplugged m1 (tapmu1)" in out and "unplugged m2 (tapmu2)" in out
    links = box.exec(["ls", "/sys/class/net"]).stdout.split()
    assert "tapmu1" not in links and "tapmu3" in links
    ctl.ok("unplug", "--port-id", "m3", "--port-id", "nope", "--if-exists")
    assert "tapmu3" not in box.exec(["ls", "/sys/class/net"]).stdout.split()


def test_unplug_unknown_port(box, ctl):
    proc = ctl("unplug", "--port-id", "nope")
    assert proc.returncode == 1
    assert proc.stderr.strip() == \
        "virtio-ovs-ctl: port_id: no port with iface-id 'nope'"
    assert "no port nope" in ctl.ok("unplug", "--port-id", "nope",
                                    "--if-exists")


def test_existing_tap_with_contradicting_multiqueue_flag(box, ctl):
    box.exec(["ip", "tuntap", "add", "dev", "tapsq2", "mode", "tap"])
    before = db_state(box)
    proc = ctl("plug", "--port-id", "p1", "--mac", MAC, "--tap", "tapsq2",
               "--queues", "2")
    assert proc.returncode == 1
    assert "queues: TAP 'tapsq2' exists and lacks IFF_MULTI_QUEUE" in proc.stderr
    assert db_state(box) == before


def test_existing_device_that_is_not_a_tap(box, ctl):
    box.exec(["ip", "link", "add", "vethx1", "type", "veth", "peer", "name",
              "vethx2"])
    before = db_state(box)
    proc = ctl("plug", "--port-id", "p1", "--mac", MAC, "--tap", "vethx1")
    assert proc.returncode == 1
    assert "tap: 'vethx1' exists and is not a TAP device" in proc.stderr
    assert db_state(box) == before


def _jsonl(*objs) -> str:
    return "".join(json.dumps(o) + "\n" for o in objs)


def _vif(i: int, **extra) -> dict:
    vif = {"port_id": f"port-{i}", "mac": f"52:54:00:00:{i // 256:02x}:{i % 256:02x}",
           "tap": f"tapb{i}", "queues": 2 if i % 2 else 1, "vm": f"vm-{i}"}
    vif.update(extra)
    return vif


def test_bulk_plug_is_one_transaction(box, ctl):
    next_cfg = int(box.vsctl("get", "Open_vSwitch", ".", "next_cfg"))
    text = _jsonl(*[_vif(i) for i in range(40)])
    out = ctl.ok("plug", "--from-file", "-", input=text)
    assert "plugged 40" in out
    # ovs-vswitchd was asked to reconfigure exactly once.
    assert int(box.vsctl("get", "Open_vSwitch", ".", "next_cfg")) == next_cfg + 1
    listed = ctl.json("list")
    assert sorted(v["port_id"] for v in listed) == sorted(f"port-{i}" for i in range(40))
    assert all(v["ofport"] and v["ofport"] > 0 for v in listed)
    assert tun_flags(box, "tapb1") & IFF_MULTI_QUEUE
    assert not tun_flags(box, "tapb2") & IFF_MULTI_QUEUE


def test_bulk_plug_is_all_or_nothing(box, ctl, tmp_path):
    path = tmp_path / "vifs.jsonl"
    path.write_text(_jsonl(_vif(1), _vif(2), _vif(3, bridge="br-missing"), _vif(4)))
    before = db_state(box)
    proc = ctl("plug", "--from-file", str(path))
    assert proc.returncode == 1
    assert "bridge: no bridge named 'br-missing'" in proc.stderr
    assert db_state(box) == before  # no port, and no TAP created


def test_libvirt_and_os_vif_style_ports_are_listed(box, ctl):
    box.exec(["ip", "tuntap", "add", "dev", "vnet0", "mode", "tap"])
    box.vsctl("--may-exist", "add-port", "br-int", "vnet0", "--", "set",
              "Interface", "vnet0", "external-ids:iface-id=lv-port",
              f"external-ids:attached-mac={MAC}", "external-ids:vm-id=dom-1",
              "external-ids:iface-status=active")
    box.vsctl("add-port", "br-int", "qvo1", "--", "set", "Interface", "qvo1",
              "type=internal", "external-ids:iface-id=osvif-port",
              "external-ids:attached-mac=52:54:00:00:00:02",
              "external-ids:vm-uuid=inst-2")
    box.vsctl("add-port", "br-int", "other", "--", "set", "Interface", "other",
              "type=internal")  # not a guest port: no ids
    listed = {v["port_id"]: v for v in ctl.json("list")}
    assert set(listed) == {"lv-port", "osvif-port"}
    assert listed["lv-port"]["kind"] == "tap"
    assert listed["lv-port"]["vm"] == "dom-1"
    assert listed["lv-port"]["mac"] == MAC
    assert listed["lv-port"]["ofport"] > 0
    assert listed["lv-port"]["queues"] is None  # not recorded by libvirt
    assert listed["osvif-port"]["vm"] == "inst-2"
    table = ctl.ok("list")
    assert table.splitlines()[0].split() == [
        "PORT_ID", "NAME", "KIND", "MAC", "VM", "NETWORK", "OFPORT", "QUEUES",
        "STATUS", "VERDICT", "MIGRATING"]
    assert any(line.startswith("lv-port ") for line in table.splitlines())


def test_show_json_carries_the_documented_keys(box, ctl):
    ctl.ok("net-create", "blue", "--type", "local")
    ctl.ok("plug", "--port-id", "p1", "--mac", MAC, "--tap", "tapsh1",
           "--vm", "vm-9", "--network", "blue", "--queues", "2")
    shown = ctl.json("show", "p1")
    for key in ("port_id", "name", "kind", "mac", "vm", "network", "ofport",
                "queues", "status"):
        assert key in shown
    assert (shown["port_id"], shown["name"], shown["kind"], shown["mac"],
            shown["vm"], shown["network"], shown["queues"]) == \
        ("p1", "tapsh1", "tap", MAC, "vm-9", "blue", 2)
    assert shown["ofport"] > 0
    assert shown["status"] in ("up", "down")
    proc = ctl("show", "nope")
    assert proc.returncode == 1 and "port_id:" in proc.stderr


def test_config_file_gives_remote_and_bridge(box, ctl, tmp_path):
    box.add_bridge("br-cfg")
    conf = tmp_path / "virtio-ovs.conf"
    conf.write_text(f"[ovs]\novsdb_connection = {box.remote}\n"
                    "integration_bridge = br-cfg\n")
    # With OVS_RUNDIR elsewhere, only the config file can lead to the DB.
    proc = box.exec(["env", "OVS_RUNDIR=/nonexistent", sys.executable, "-m",
                     "virtio_ovs.cli", "--config-file", str(conf), "plug",
                     "--port-id", "p1", "--mac", MAC, "--tap", "tapcf1"],
                    check=False)
    assert proc.returncode == 0, proc.stderr
    assert "tapcf1" in box.vsctl("list-ports", "br-cfg").split()


def test_tap_owner_and_group_let_an_unprivileged_qemu_open_it(box, ctl):
    ctl.ok("plug", "--port-id", "p1", "--mac", MAC, "--tap", "tapow1",
           "--owner", "nobody", "--group", "nogroup")
    assert sysfs(box, "/sys/class/net/tapow1/owner") == \
        str(pwd.getpwnam("nobody").pw_uid)
    assert sysfs(box, "/sys/class/net/tapow1/group") == \
        str(grp.getgrnam("nogroup").gr_gid)


def test_tcp_remote(box, ctl):
    # The listener is on the sandbox namespace's own loopback.
    port = 16000 + (hash(box.name) % 20000)
    box.vsctl("set-manager", f"ptcp:{port}:127.0.0.1")
    out = ctl.ok("--db", f"tcp:127.0.0.1:{port}", "plug", "--port-id", "p1",
                 "--mac", MAC, "--tap", "taptc1")
    assert "plugged 1" in out
    assert ctl.json("--db", f"tcp:127.0.0.1:{port}", "list")[0]["port_id"] == "p1"


def test_ssl_remote_with_certificates(box, ctl, tmp_path):
    pki = tmp_path / "pki"
    for args in ("init", "req+sign db controller", "req+sign cli controller"):
        box.exec(["sh", "-c", f"cd {tmp_path} && ovs-pki --dir={pki} --force "
                  f"{args}"], timeout=120)
    cacert = pki / "controllerca" / "cacert.pem"
    box.vsctl("set-ssl", str(tmp_path / "db-privkey.pem"),
              str(tmp_path / "db-cert.pem"), str(cacert))
    port = 18000 + (hash(box.name) % 20000)
    box.vsctl("set-manager", f"pssl:{port}:127.0.0.1")
    ssl = ("--db", f"ssl:127.0.0.1:{port}",
           "-p", str(tmp_path / "cli-privkey.pem"),
           "-c", str(tmp_path / "cli-cert.pem"), "-C", str(cacert))
    out = ctl.ok(*ssl, "plug", "--port-id", "p1", "--mac", MAC,
                 "--tap", "tapss1")
    assert "plugged 1" in out
    assert [v["port_id"] for v in ctl.json(*ssl, "list")] == ["p1"]
    proc = ctl("--db", f"ssl:127.0.0.1:{port}", "--timeout", "2", "list")
    assert proc.returncode == 1
    assert proc.stderr.startswith("virtio-ovs-ctl: private-key: an ssl: remote")


def test_the_checks_link_dump_agrees_with_pyroute2(box):
    """The check reads the TAP queue counts with its own rtnetlink dump
    (check/queues.py); pyroute2's full parse is the reference."""
    for args in (["tap", "name", "tqd1"], ["tap", "name", "tqd2",
                                           "multi_queue"]):
        box.exec(["ip", "tuntap", "add", "mode", *args])
    script = (
        "from pyroute2 import IPRoute\n"
        "from virtio_ovs.check import queues as q\n"
        "ref = {}\n"
        "with IPRoute() as ipr:\n"
        "    for m in ipr.get_links():\n"
        "        info = m.get_attr('IFLA_LINKINFO')\n"
        "        if info is None or info.get_attr('IFLA_INFO_KIND') != 'tun':\n"
        "            continue\n"
        "        d = info.get_attr('IFLA_INFO_DATA')\n"
        "        ref[m.get_attr('IFLA_IFNAME')] = q.TapQueues(\n"
        "            d.get_attr('IFLA_TUN_NUM_QUEUES'),\n"
        "            d.get_attr('IFLA_TUN_NUM_DISABLED_QUEUES'))\n"
        "ours = q.all_tap_queues()\n"
        "assert ours == ref, (ours, ref)\n"
        "print(ours['tqd1'], ours['tqd2'])\n")
    out = box.exec([sys.executable, "-c", script]).stdout
    assert out.split() == ["TapQueues(enabled=None,", "disabled=None)",
                           "TapQueues(enabled=0,", "disabled=0)"]


def test_a_reader_that_goes_away_ends_the_listing_quietly(box, ctl):
    """``virtio-ovs-ctl list --format json | head -1`` on more output than
    a pipe holds: no BrokenPipeError traceback, exit 0 (as ovs-vsctl)."""
    from tests.functional.test_reliability import vif_lines
    path = os.path.join(box.dir, "many.jsonl")
    with open(path, "w") as f:
        f.write(vif_lines("bp", 200))
    assert ctl("plug", "--from-file", path).returncode == 0
    proc = box.exec(["bash", "-c", "set -o pipefail; "
                     f"{sys.executable} -m virtio_ovs.cli list --format json"
                     " | head -c 100"], check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and len(proc.stdout) == 100


def test_every_write_verb_has_a_dry_run_that_writes_nothing(box, ctl):
    """--dry-run checks the request, OVSDB and the kernel as the write
    would, and writes nothing: no row, no TAP, not even next_cfg."""
    for args in (("net-create", "blue", "--type", "local"),
                 ("net-create", "spare", "--type", "local"),
                 ("sg-create", "web"),
                 ("plug", "--port-id", "d1", "--mac", "52:54:00:00:d0:01",
                  "--tap", "tapd1", "--network", "blue")):
        assert ctl(*args).returncode == 0
    rule = json.loads(ctl("sg-list", "--format", "json").stdout)[0][
        "rules"][0]["id"]
    before = db_state(box)
    for args in (
            ("plug", "--port-id", "d2", "--mac", "52:54:00:00:d0:02", "--tap",
             "tapd2", "--network", "blue", "--queues", "2"),
            ("unplug", "--port-id", "d1"),
            ("net-create", "red", "--type", "local"),
            ("net-delete", "spare"),
            ("bind", "--port-id", "d1", "--network", "spare", "--ip",
             "10.0.0.9/24"),
            ("unbind", "--port-id", "d1"),
            ("sg-create", "db"), ("sg-delete", "web"),
            ("sg-rule-add", "web", "--direction", "ingress", "--protocol",
             "tcp", "--port-min", "22", "--port-max", "22"),
            ("sg-rule-delete", "web", rule),
            ("port-update", "--port-id", "d1", "--security-group", "web")):
        proc = ctl(*args, "--dry-run", "--format", "json")
        assert proc.returncode == 0, (args, proc.stderr)
        assert json.loads(proc.stdout)["dry_run"] is True, args
        assert db_state(box) == before, args
    table = ctl("unplug", "--port-id", "d1", "--dry-run").stdout
    assert table == "unplugged d1 (tapd1) (dry run: nothing written)\n"
    # What the write would refuse, the dry run refuses the same way.
    proc = ctl("bind", "--port-id", "d1", "--network", "nope", "--dry-run")
    assert proc.returncode == 1 and "no network named 'nope'" in proc.stderr
    assert db_state(box) == before
    # And the writes themselves still work, with their JSON.
    proc = ctl("plug", "--port-id", "d2", "--mac", "52:54:00:00:d0:02",
               "--tap", "tapd2", "--network", "blue", "--format", "json")
    assert json.loads(proc.stdout) == {
        "plugged": ["d2"], "updated": [], "unchanged": [],
        "committed": "yes", "refused": {}, "dry_run": False}


def test_debug_and_log_file_show_the_command_s_own_log(box, ctl, tmp_path):
    proc = ctl("--debug", "list")
    assert proc.returncode == 0, proc.stderr
    assert "DEBUG virtio_ovs.ovsdb.connection" in proc.stderr  # ours
    assert "INFO ovs reconnect:" in proc.stderr and "connected" in \
        proc.stderr  # python-ovs's vlog, routed into the same log
    log = tmp_path / "ctl.log"
    proc = ctl("--log-file", str(log), "--debug", "plug", "--port-id", "lg-1",
               "--mac", "52:54:00:00:0e:01", "--tap", f"lgt{os.getpid() % 10000}",
               "--bridge", "br-int")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    text = log.read_text()
    assert "created TAP" in text and "txn" in text, text
    proc = ctl("--log-file", str(tmp_path / "no" / "such.log"), "list")
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("virtio-ovs-ctl: --log-file: No such file "
                                   f"or directory: {tmp_path}/no/such.log")


def test_the_completion_offers_the_database_s_port_ids_networks_and_groups(box, ctl):
    ctl.ok("plug", "--port-id", "cmp-port", "--mac", "52:54:00:00:0f:01",
           "--tap", f"cmt{os.getpid() % 10000}", "--bridge", "br-int")
    ctl.ok("net-create", "cmp-net", "--type", "local")
    ctl.ok("sg-create", "cmp_sg")
    completion = ROOT / "etc" / "bash_completion.d" / "virtio-ovs-ctl"
    bin_dir = os.path.dirname(sys.executable)  # the venv's virtio-ovs-ctl

    def complete(line: str) -> list[str]:
        words = line.split(" ")
        script = (f"source {completion}; COMP_WORDS=({' '.join(map(repr, words))}); "
                  f"COMP_CWORD={len(words) - 1}; _virtio_ovs_ctl; "
                  "printf '%s\\n' \"${COMPREPLY[@]}\"")
        proc = box.exec(["env", f"PATH={bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin",
                         "bash", "-c", script])
        return proc.stdout.split()

    assert complete("virtio-ovs-ctl show cmp") == ["cmp-port"]
    assert complete("virtio-ovs-ctl unplug --port-id ") == ["cmp-port"]
    assert complete("virtio-ovs-ctl bind --network c") == ["cmp-net"]
    assert complete("virtio-ovs-ctl port-update --security-group ") == ["cmp_sg"]
    assert complete("virtio-ovs-ctl sg-rule-add cm") == ["cmp_sg"]
    # An unreachable database offers nothing, quickly.
    assert complete("virtio-ovs-ctl --db unix:/nonexistent show ") == []


CREATE_TAPS = """
import sys
from virtio_ovs.kernel.taps import NewTap, TapManager
TapManager().create([NewTap(name) for name in sys.argv[1:]], [])
"""
IFF_UP, IFF_PROMISC = 0x1, 0x100


def link_events_while(box, action) -> list[str]:
    """The links ``ip monitor link`` in ``box``'s namespace reports while
    ``action()`` runs, fenced by a sentinel TAP: changed until the monitor
    reports it (it listens), deleted after ``action`` (it saw it all)."""
    sentinel = f"vmk{os.getpid() % 100000}"
    box.exec(["ip", "tuntap", "add", "dev", sentinel, "mode", "tap"])
    mon = subprocess.Popen(box.exec_cmd(["ip", "-o", "monitor", "link"]),
                           stdout=subprocess.PIPE)
    try:
        for qlen in range(1001, 1041):
            box.exec(["ip", "link", "set", sentinel, "txqueuelen", str(qlen)])
            if read_until(mon, lambda line: sentinel in line,
                          timeout=0.5) is not None:
                break
        else:
            raise AssertionError("ip monitor reported no change of the "
                                 "sentinel")
        action()
        box.exec(["ip", "link", "del", sentinel])
        lines = read_until(mon, lambda line: line.startswith("Deleted")
                           and sentinel in line, timeout=20)
        assert lines is not None, "ip monitor did not report the deletion"
        return [line for line in lines if sentinel not in line]
    finally:
        mon.terminate()
        mon.wait(timeout=10)


def read_until(proc: subprocess.Popen, last: Callable[[str], bool],
               timeout: float) -> list[str] | None:
    """The lines ``proc`` printed up to the ``last`` one; None when it did
    not come within ``timeout`` seconds. Unbuffered: ``select`` cannot see
    lines a buffered reader holds."""
    lines, partial = [], b""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if not ready:
            continue
        *done, partial = (partial + os.read(proc.stdout.fileno(), 65536)
                          ).split(b"\n")
        for line in done:
            lines.append(line.decode())
            if last(lines[-1]):
                return lines
    return None


def test_new_taps_are_up_and_leave_ovs_vswitchd_no_link_change(box):
    """Closing the fd that created a TAP drops its carrier; the kernel's
    link watch handles that change later (100 devices a second), or when
    someone asks for the link as ovs-vswitchd does when it adds the port,
    and for a device that is up announces it again: 1000 new TAPs cost
    ovs-vswitchd 4 reconfigurations of every bridge instead of 1. Created
    by virtio-ovs, they are up and promiscuous, and asking for each
    announces nothing."""
    names = [f"tls{i}" for i in range(300)]
    box.exec([sys.executable, "-c", CREATE_TAPS, *names], timeout=60)
    events = link_events_while(box, lambda: box.exec(
        ["ip", "-batch", "-"], input="".join(f"link show dev {name}\n"
                                             for name in names)))
    assert events == []
    for name in names[::50]:
        flags = int(sysfs(box, f"/sys/class/net/{name}/flags"), 16)
        assert flags & (IFF_UP | IFF_PROMISC) == IFF_UP | IFF_PROMISC, name
