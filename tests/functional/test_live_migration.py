"""Live migration on the OVN backend, with real migrations: a TCG guest
moves from hypervisor 1 to hypervisor 2 (QEMU ``-incoming`` on the
destination's TAP, QMP ``migrate`` over a unix socket) while a peer on
hypervisor 3 pings it at 100 pps. virtio-ovs plugs both ends; its agents
run on hypervisors 1 and 2. One OVN topology for the module.

    .venv/bin/python -m pytest -s tests/functional/test_live_migration.py

prints each migration's figures.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.lab.migration import Pinger, migrate
from tests.lab.ovn import OvnTopology, missing_requirement

NET = "mig"
PEER_CIDR = "10.93.0.100/24"


@pytest.fixture(scope="module")
def lab(guest_image):
    reason = missing_requirement()
    if reason:
        pytest.skip(reason)
    topo = OvnTopology(hosts=3, prefix="vl").start()
    topo.agents = {}
    try:
        h1, h2, h3 = topo.hosts
        h1.ctl_ok("net-create", NET, "--type", "geneve")
        topo.peer = topo.add_guest(h3, "peer", "02:00:00:93:00:64", PEER_CIDR)
        h3.ctl_ok("bind", "--port-id", "peer", "--network", NET, "--ip",
                  PEER_CIDR)
        for host in (h1, h2):
            start_agent(topo, host)
        topo.image = guest_image
        topo.wait_hv_sync()
        yield topo
    finally:
        for host in list(topo.agents):
            stop_agent(topo, host)
        topo.stop()


def start_agent(topo, host) -> None:
    conf = f"{host.box.dir}/agent-mig.conf"
    with open(host.conf_path) as f:
        text = f.read()
    with open(conf, "w") as f:
        f.write(text.replace("[agent]\n", "[agent]\nreport_interval = 1\n"
                             "check_interval = 0\n", 1)
                + "[ovs]\ndatapath_type = netdev\n")
    topo.agents[host] = subprocess.Popen(host.box.exec_cmd([
        sys.executable, "-m", "virtio_ovs.agent.main", "--config-file",
        conf]), env=host.box.env, stderr=subprocess.PIPE, text=True)


def stop_agent(topo, host) -> None:
    agent = topo.agents.pop(host)
    agent.send_signal(signal.SIGTERM)
    err = agent.communicate(timeout=10)[1]
    assert agent.returncode == 0, err[-2000:]


class Vm:
    """One guest and its port, on hypervisor 1 first."""

    def __init__(self, lab, name: str, index: int):
        self.lab, self.name = lab, name
        self.mac = f"52:54:00:93:00:{index:02x}"
        self.cidr = f"10.93.0.{index}/24"
        self.ip = self.cidr.split("/")[0]
        self.qemus: dict = {}

    def plug(self, host, tap: str) -> None:
        host.ctl_ok("--timeout", "20", "plug", "--port-id", self.name,
                    "--mac", self.mac, "--tap", tap, "--network", NET,
                    "--ip", self.cidr, "--vm", self.name)

    def qemu(self, host, tap: str, incoming: str | None = None):
        from tests.lab.guest import QemuGuest
        guest = QemuGuest(f"{self.name}-{host.index}", host.box.dir,
                          *self.lab.image, tap=tap, mac=self.mac,
                          ip=self.cidr, netns=host.box.netns,
                          env=host.box.env, incoming=incoming,
                          memory_mb=128, cpus=1)
        guest.start()
        self.qemus[host] = guest
        return guest

    def stop(self) -> None:
        for guest in self.qemus.values():
            guest.stop()


def nb_get(lab, port: str, key: str) -> str:
    return lab.central.nbctl("--if-exists", "get", "Logical_Switch_Port",
                             port, f"options:{key}").strip('"')


def record(host, port: str) -> dict | None:
    ports = {r["port_id"]: r for r in json.loads(host.ctl_ok(
        "list", "--format", "json"))}
    return ports.get(port)


def eventually(condition, timeout: float = 15.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return False


def migrate_vm(lab, vm: Vm, restart_agents: bool = False) -> dict:
    """Plug the destination under ping, migrate under ping, then the
    orchestrator's last step: the source QEMU quits, its port goes."""
    h1, h2 = lab.hosts[0], lab.hosts[1]
    vm.plug(h1, f"{vm.name}s")
    vm.qemu(h1, f"{vm.name}s").wait_ready()
    assert eventually(lambda: lab.peer.ping(vm.ip))
    figures: dict = {}
    ping = Pinger(lab.peer.netns, vm.ip)
    time.sleep(0.5)
    vm.plug(h2, f"{vm.name}d")  # waits for ovn-installed on h2
    figures["requested"] = nb_get(lab, vm.name, "requested-chassis")
    figures["strategy"] = nb_get(lab, vm.name, "activation-strategy")
    time.sleep(0.5)
    figures["plug"] = ping.stop()
    sock = os.path.join(h2.box.dir, f"{vm.name}.mig")
    vm.qemu(h2, f"{vm.name}d", incoming=f"unix:{sock}")
    assert eventually(lambda: os.path.exists(sock), 30)
    if restart_agents:
        for host in (h1, h2):
            stop_agent(lab, host)
    ping = Pinger(lab.peer.netns, vm.ip)
    time.sleep(0.5)
    figures["qemu"] = migrate(vm.qemus[h1].qmp_sock, f"unix:{sock}")
    if restart_agents:
        for host in (h1, h2):
            start_agent(lab, host)
    time.sleep(1.0)
    vm.qemus[h1].stop()
    h1.ctl_ok("unplug", "--port-id", vm.name)
    time.sleep(1.0)
    figures["move"] = ping.stop()
    run = figures["move"]
    print(f"\n{vm.name}: destination plugged: {len(figures['plug'].lost)} of "
          f"{figures['plug'].sent} pings lost; migration "
          f"{figures['qemu'].get('total-time')} ms, QEMU downtime "
          f"{figures['qemu'].get('downtime')} ms; longest reply gap "
          f"{run.max_gap_ms():.0f} ms, {len(run.lost)} of {run.sent} lost, "
          f"{run.duplicates} duplicates")
    return figures


def assert_moved(lab, vm: Vm, figures: dict) -> None:
    h1, h2 = lab.hosts[0], lab.hosts[1]
    # (a) plugging the destination costs the running source nothing
    assert figures["requested"] == f"{h1.system_id},{h2.system_id}"
    assert figures["strategy"] == "rarp"
    assert figures["plug"].sent > 50 and figures["plug"].lost == []
    # (b) the network gap is QEMU's downtime, plus at most 100 ms
    assert figures["qemu"]["status"] == "completed", figures["qemu"]
    run = figures["move"]
    budget = figures["qemu"]["downtime"] + 100
    assert run.max_gap_ms() <= budget, run
    assert len(run.lost) <= budget / 10 + 1, run.lost  # 100 pps
    # (c) nothing queued in the destination TAP is replayed
    assert run.duplicates == 0
    # (d) a clean end: the destination alone
    assert eventually(lambda: nb_get(lab, vm.name, "requested-chassis")
                      == h2.system_id), nb_get(lab, vm.name,
                                               "requested-chassis")
    assert nb_get(lab, vm.name, "activation-strategy") == ""
    assert eventually(lambda: lab.central.sbctl(
        "--bare", "--columns=additional_chassis", "find", "Port_Binding",
        f"logical_port={vm.name}") == "")
    assert record(h1, vm.name) is None
    assert f"{vm.name}s" not in h1.box.exec(["ls", "/sys/class/net"]
                                            ).stdout.split()
    show = json.loads(h2.ctl_ok("show", vm.name, "--format", "json"))
    assert show["ovn_installed"] and show["migrating"] is None
    assert eventually(lambda: (record(h2, vm.name) or {}).get("migration")
                      == f"done: {h1.system_id} -> {h2.system_id}")
    assert lab.peer.ping(vm.ip, count=3)


def test_a_migration_costs_qemu_s_downtime_and_nothing_more(lab):
    vm = Vm(lab, "vma", 11)
    try:
        assert_moved(lab, vm, migrate_vm(lab, vm))
        metrics = lab.hosts[1].ctl_ok("metrics")  # the CLI's: no agent's
        assert "virtio_ovs_port_info" in metrics
    finally:
        vm.stop()


def test_an_agent_restarted_during_the_migration_changes_nothing(lab):
    vm = Vm(lab, "vmb", 12)
    try:
        assert_moved(lab, vm, migrate_vm(lab, vm, restart_agents=True))
    finally:
        vm.stop()


def test_an_aborted_migration_leaves_the_source_alone(lab):
    h1, h2 = lab.hosts[0], lab.hosts[1]
    vm = Vm(lab, "vmc", 13)
    try:
        vm.plug(h1, "vmcs")
        vm.qemu(h1, "vmcs").wait_ready()
        assert eventually(lambda: lab.peer.ping(vm.ip))
        ping = Pinger(lab.peer.netns, vm.ip)
        time.sleep(0.5)
        vm.plug(h2, "vmcd")
        assert eventually(lambda: (record(h1, vm.name) or {}).get(
            "migrating") == f"{h1.system_id} -> {h2.system_id}")
        sock = os.path.join(h2.box.dir, "vmc.mig")
        vm.qemu(h2, "vmcd", incoming=f"unix:{sock}")
        time.sleep(0.5)
        vm.qemus[h2].stop()  # the destination QEMU dies
        h2.ctl_ok("unplug", "--port-id", vm.name)  # its port removed
        time.sleep(1.0)
        run = ping.stop()
        print(f"\naborted migration: {len(run.lost)} of {run.sent} pings "
              f"lost, {run.duplicates} duplicates")
        assert len(run.lost) <= 1 and run.sent > 100
        assert nb_get(lab, vm.name, "requested-chassis") == h1.system_id
        assert eventually(lambda: (record(h1, vm.name) or {}).get(
            "migration") == f"aborted: {h1.system_id} -> {h2.system_id}")
        assert record(h2, vm.name) is None
        assert lab.peer.ping(vm.ip, count=3)
    finally:
        vm.stop()
