"""Live migration on the standalone backend, with real migrations: a TCG
guest moves from hypervisor 1 to hypervisor 2 (QEMU ``-incoming`` on the
destination's TAP, QMP ``migrate`` over a unix socket) while a peer behind
the physical switch pings it at 100 pps in the provider VLAN. Each host
has its own OVS and agent; they share nothing but the wire. virtio-ovs
plugs both ends (the destination with ``--migrating-from``, or the
libvirt way after ``migration-expect``). One lab for the module.

    .venv/bin/python -m pytest -s tests/functional/test_live_migration_standalone.py

prints each migration's figures; ``bench/migration.py --backend
standalone`` runs many.
"""
from __future__ import annotations

import os
import time

import pytest

from tests.lab.migration import (NET, Pinger, StandaloneMigrationLab, Vm,
                                 assert_gap_is_qemu_s, eventually,
                                 no_forward, summary)
from tests.lab.migration import port_record as record


@pytest.fixture(scope="module")
def lab(guest_image):
    migration_lab = StandaloneMigrationLab(guest_image).start()
    try:
        yield migration_lab
    finally:
        migration_lab.stop()


def incoming(host) -> str:
    """Open_vSwitch external_ids, for the incoming records."""
    return host.box.vsctl("get", "Open_vSwitch", ".", "external_ids")


def flows_naming(host, mac: str) -> list[str]:
    return [line for line in host.topo.flows("br-int").splitlines()
            if mac in line]


def assert_moved(lab, vm: Vm, figures: dict) -> None:
    h1, h2 = lab.hosts
    print("\n" + summary(vm.name, figures) + f"; destination gated: "
          f"{figures['flooded']} broadcasts reached its network, "
          f"{figures['queued']} its TAP")
    # (a) the destination is gated and wired; plugging it costs nothing
    assert figures["migrating"] == f"{h1.system_id} -> {h2.system_id}"
    assert figures["no_forward"]
    # nothing reaches the destination TAP before its guest speaks there
    assert figures["flooded"] >= 20 and figures["queued"] == 0
    assert_gap_is_qemu_s(figures)  # (a) 0 lost at the plug, (b), (c)
    assert_clean_end(lab, vm)


def assert_clean_end(lab, vm: Vm) -> None:
    """(d) the destination alone, forwarded to; the source's port, TAP
    and flows gone."""
    h1, h2 = lab.hosts
    assert eventually(lambda: (record(h2, vm.name) or {}).get("migration")
                      == f"done: {h1.system_id} -> {h2.system_id}")
    assert record(h2, vm.name)["migrating"] is None
    assert not no_forward(h2, f"{vm.name}d")
    assert f"virtio-ovs:incoming:{vm.name}" not in incoming(h2)
    assert record(h1, vm.name) is None
    assert f"{vm.name}s" not in h1.box.exec(["ls", "/sys/class/net"]
                                            ).stdout.split()
    assert eventually(lambda: flows_naming(h1, vm.mac) == [])
    assert flows_naming(h2, vm.mac)
    assert lab.peer.ping(vm.ip, count=3)


def test_a_migration_costs_qemu_s_downtime_and_nothing_more(lab):
    vm = Vm(lab, "vma", 11)
    try:
        assert_moved(lab, vm, vm.migrate())
        h2 = lab.hosts[1]
        assert eventually(lambda: 'virtio_ovs_migrations_total{direction='
                          '"in",result="done"} 1.0' in lab.scrape(h2))
        assert "virtio_ovs_migration_seconds_count 1.0" in lab.scrape(h2)
    finally:
        vm.stop()


def test_agents_restarted_during_the_migration_change_nothing(lab):
    """Both agents stopped once the destination is gated, and started
    again before the memory copy: the new agent on the destination
    gates the port again (from the record) and opens it at resume."""
    vm = Vm(lab, "vmb", 12)
    try:
        assert_moved(lab, vm, vm.migrate(restart_agents="before-copy"))
    finally:
        vm.stop()


def test_a_destination_agent_down_at_resume_opens_the_gate_when_back(lab):
    """The limit of the standalone backend, measured: the agent opens the
    gate, so the guest is reachable from when the agent is back (the
    resumed TAP's counters show the guest spoke); nothing is replayed and
    the end is as clean."""
    vm = Vm(lab, "vmd", 14)
    try:
        figures = vm.migrate(restart_agents=True)
        run = figures["move"]
        print("\n" + summary(vm.name, figures) + " (both agents down from "
              "before the copy until after it)")
        assert figures["plug"].lost == [] and run.duplicates == 0
        assert figures["qemu"]["status"] == "completed"
        assert_clean_end(lab, vm)
    finally:
        vm.stop()


def test_an_aborted_migration_leaves_the_source_alone(lab):
    """The destination prepared the libvirt way (``migration-expect``,
    then ``ovs-vsctl add-port`` of a TAP it made), its QEMU killed, its
    port removed: the source loses at most one ping."""
    h1, h2 = lab.hosts
    vm = Vm(lab, "vmc", 13)
    try:
        vm.start_on(h1, "vmcs")
        ping = Pinger(lab.peer.netns, vm.ip)
        time.sleep(0.5)
        h2.ctl_ok("migration-expect", "--port-id", vm.name, "--from",
                  h1.system_id)
        h2.box.exec(["ip", "tuntap", "add", "dev", "vmcd", "mode", "tap",
                     "vnet_hdr"])
        h2.box.exec(["ip", "link", "set", "vmcd", "up"])
        h2.box.vsctl("add-port", "br-int", "vmcd", "--", "set", "Interface",
                     "vmcd", f"external_ids:iface-id={vm.name}",
                     f"external_ids:attached-mac={vm.mac}",
                     f'external_ids:"virtio-ovs:network"={NET}',
                     "external_ids:iface-status=active")
        assert eventually(lambda: (record(h2, vm.name) or {}).get(
            "migrating") == f"{h1.system_id} -> {h2.system_id}")
        assert no_forward(h2, "vmcd")
        vm.qemu(h2, "vmcd", incoming="unix:" + os.path.join(
            h2.box.dir, "vmc.mig"))
        time.sleep(0.5)
        vm.qemus[h2].stop()  # the destination QEMU dies
        h2.box.vsctl("del-port", "br-int", "vmcd")  # its port removed
        time.sleep(1.0)
        run = ping.stop()
        print(f"\naborted migration: {len(run.lost)} of {run.sent} pings "
              f"lost, {run.duplicates} duplicates")
        assert len(run.lost) <= 1 and run.sent > 100
        assert (record(h1, vm.name) or {}).get("migration") is None
        assert eventually(lambda: f"virtio-ovs:incoming:{vm.name}"
                          not in incoming(h2))
        assert eventually(lambda: 'virtio_ovs_migrations_total{direction='
                          '"in",result="aborted"} 1.0' in lab.scrape(h2))
        assert lab.peer.ping(vm.ip, count=3)
    finally:
        vm.stop()
        h2.box.exec(["ip", "link", "del", "vmcd"], check=False)
