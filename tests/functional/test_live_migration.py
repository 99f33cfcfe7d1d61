"""Live migration on the OVN backend, with real migrations: a TCG guest
moves from hypervisor 1 to hypervisor 2 (QEMU ``-incoming`` on the
destination's TAP, QMP ``migrate`` over a unix socket) while a peer on
hypervisor 3 pings it at 100 pps. virtio-ovs plugs both ends; its agents
run on hypervisors 1 and 2. One OVN topology for the module.

    .venv/bin/python -m pytest -s tests/functional/test_live_migration.py

prints each migration's figures; ``bench/migration.py`` runs many.
"""
from __future__ import annotations

import json
import os
import time

import pytest

from tests.lab.migration import (OvnMigrationLab, Pinger, Vm,
                                 assert_gap_is_qemu_s, eventually, migrate,
                                 summary)
from tests.lab.migration import port_record as record
from tests.lab.ovn import missing_requirement


@pytest.fixture(scope="module")
def lab(guest_image):
    reason = missing_requirement()
    if reason:
        pytest.skip(reason)
    migration_lab = OvnMigrationLab(guest_image).start()
    try:
        yield migration_lab
    finally:
        migration_lab.stop()


def assert_moved(lab, vm: Vm, figures: dict) -> None:
    h1, h2 = lab.hosts[0], lab.hosts[1]
    print("\n" + summary(vm.name, figures))
    # (a) plugging the destination costs the running source nothing
    assert figures["requested"] == f"{h1.system_id},{h2.system_id}"
    assert figures["strategy"] == "rarp"
    assert_gap_is_qemu_s(figures)  # 0 lost at the plug, (b), (c)
    # (d) a clean end: the destination alone
    assert eventually(lambda: lab.lsp_option(vm.name, "requested-chassis")
                      == h2.system_id)
    assert lab.lsp_option(vm.name, "activation-strategy") == ""
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
        assert_moved(lab, vm, vm.migrate())
        h1, h2 = lab.hosts[0], lab.hosts[1]
        assert eventually(lambda: 'virtio_ovs_migrations_total{direction='
                          '"in",result="done"} 1.0' in lab.scrape(h2))
        assert "virtio_ovs_migration_seconds_count 1.0" in lab.scrape(h2)
        assert 'virtio_ovs_migrations_total{direction="out",result="done"}' \
            ' 1.0' in lab.scrape(h1)
    finally:
        vm.stop()


def test_an_agent_restarted_during_the_migration_changes_nothing(lab):
    vm = Vm(lab, "vmb", 12)
    try:
        assert_moved(lab, vm, vm.migrate(restart_agents=True))
    finally:
        vm.stop()


def test_an_aborted_migration_leaves_the_source_alone(lab):
    h1, h2 = lab.hosts[0], lab.hosts[1]
    vm = Vm(lab, "vmc", 13)
    try:
        vm.start_on(h1, "vmcs")
        ping = Pinger(lab.peer.netns, vm.ip)
        time.sleep(0.5)
        vm.plug(h2, "vmcd")
        assert eventually(lambda: (record(h1, vm.name) or {}).get(
            "migrating") == f"{h1.system_id} -> {h2.system_id}")
        vm.qemu(h2, "vmcd", incoming="unix:" + os.path.join(
            h2.box.dir, "vmc.mig"))
        time.sleep(0.5)
        vm.qemus[h2].stop()  # the destination QEMU dies
        h2.ctl_ok("unplug", "--port-id", vm.name)  # its port removed
        time.sleep(1.0)
        run = ping.stop()
        print(f"\naborted migration: {len(run.lost)} of {run.sent} pings "
              f"lost, {run.duplicates} duplicates")
        assert len(run.lost) <= 1 and run.sent > 100
        assert lab.lsp_option(vm.name, "requested-chassis") == h1.system_id
        assert eventually(lambda: (record(h1, vm.name) or {}).get(
            "migration") == f"aborted: {h1.system_id} -> {h2.system_id}")
        assert record(h2, vm.name) is None
        assert lab.peer.ping(vm.ip, count=3)
    finally:
        vm.stop()


def test_the_move_ends_at_activation_with_the_source_still_plugged(lab):
    """The SB's additional-chassis-activated ends the move: the
    destination alone as soon as the resumed guest's RARP activated it,
    while the source's Interface is still plugged (the orchestrator has
    not cleaned up yet), and the source's agent claims nothing back."""
    h1, h2 = lab.hosts[0], lab.hosts[1]
    vm = Vm(lab, "vme", 15)
    try:
        vm.start_on(h1, "vmes")
        vm.plug(h2, "vmed", source=h1)
        sock = os.path.join(h2.box.dir, "vme.mig")
        vm.qemu(h2, "vmed", incoming=f"unix:{sock}")
        assert eventually(lambda: os.path.exists(sock), 30)
        assert migrate(vm.qemus[h1].qmp_sock, f"unix:{sock}")["status"] \
            == "completed"
        assert eventually(lambda: lab.lsp_option(vm.name, "requested-chassis")
                          == h2.system_id)
        assert lab.lsp_option(vm.name, "activation-strategy") == ""
        assert eventually(lambda: (record(h1, vm.name) or {}).get(
            "migration") == f"done: {h1.system_id} -> {h2.system_id}")
        assert eventually(lambda: (record(h2, vm.name) or {}).get(
            "migration") == f"done: {h1.system_id} -> {h2.system_id}")
        time.sleep(2.0)  # two reconciles of h1's agent at least
        assert record(h1, vm.name) is not None  # still plugged there
        assert lab.lsp_option(vm.name, "requested-chassis") == h2.system_id
        assert lab.peer.ping(vm.ip, count=3)
        vm.qemus[h1].stop()
        h1.ctl_ok("unplug", "--port-id", vm.name)
        assert lab.lsp_option(vm.name, "requested-chassis") == h2.system_id
        assert lab.peer.ping(vm.ip, count=3)
    finally:
        vm.stop()
