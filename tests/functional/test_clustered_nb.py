"""A production northbound database is a 3-member RAFT cluster: virtio-ovs
reaches it through the list of its members, as ovn-nbctl and neutron do,
and keeps working when the leader stops. One topology for the module: the
clustered NB, ovn-northd, one hypervisor with ovn-controller."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from tests.lab.ovn import OvnTopology, missing_requirement


@pytest.fixture(scope="module")
def cluster():
    reason = missing_requirement()
    if reason:
        pytest.skip(reason)
    topo = OvnTopology(hosts=1, prefix="vk", nb_members=3).start()
    try:
        yield topo
    finally:
        topo.stop()


def leader(topo, timeout: float = 15.0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        member = topo.central.nb_leader()
        if member:
            return member
        time.sleep(0.2)
    raise AssertionError("the NB cluster has no leader")


def nets(host) -> set[str]:
    return {n["name"] for n in json.loads(host.ctl_ok(
        "--timeout", "10", "net-list", "--format", "json"))}


def test_the_remote_list_is_the_configured_nb(cluster):
    host = cluster.hosts[0]
    remote = cluster.central.nb_remote
    assert remote.count(",") == 2  # three members
    with open(host.conf_path) as f:
        assert f"ovn_nb_connection = {remote}" in f.read()
    host.ctl_ok("--timeout", "10", "net-create", "c1", "--type", "geneve")
    assert "c1" in nets(host)
    # Every member has it: the write went through the cluster.
    for member in cluster.central.nb_members:
        out = subprocess.run(
            ["ovn-nbctl", "--no-leader-only", "--timeout=10",
             f"--db=unix:{cluster.central.dir}/{member}.sock", "ls-list"],
            capture_output=True, text=True, timeout=30).stdout
        assert "(c1)" in out, (member, out)


def test_ovn_nb_db_is_honoured_when_the_option_is_unset(cluster):
    host = cluster.hosts[0]
    conf = f"{host.box.dir}/env-nb.conf"
    with open(conf, "w") as f:
        f.write("[agent]\nbackend = ovn\n")
    proc = host.box.exec(
        ["env", f"OVN_NB_DB={cluster.central.nb_remote}", sys.executable,
         "-m", "virtio_ovs.cli", "--config-file", conf, "--timeout", "10",
         "net-list", "--format", "json"], check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert {n["name"] for n in json.loads(proc.stdout)} == nets(host)


def test_everything_keeps_working_when_the_leader_stops(cluster):
    host = cluster.hosts[0]
    agent_conf = f"{host.box.dir}/agent-cluster.conf"
    with open(agent_conf, "w") as f:
        f.write(f"[ovs]\ndatapath_type = netdev\n[agent]\nbackend = ovn\n"
                f"report_interval = 1\ncheck_interval = 0\n[ovn]\n"
                f"ovn_nb_connection = {cluster.central.nb_remote}\n")
    agent = subprocess.Popen(host.box.exec_cmd([
        sys.executable, "-m", "virtio_ovs.agent.main", "--config-file",
        agent_conf]), env=host.box.env, stderr=subprocess.PIPE, text=True)
    stopped = leader(cluster)
    try:
        host.ctl_ok("--timeout", "10", "net-create", "before", "--type",
                    "geneve")
        cluster.central.stop_member(stopped)
        took = {}
        start = time.monotonic()
        # Each within --timeout: the IDL finds the new leader itself.
        host.ctl_ok("--timeout", "10", "net-create", "after", "--type",
                    "geneve")
        took["net-create"] = time.monotonic() - start
        assert {"before", "after"} <= nets(host)
        took["net-list"] = time.monotonic() - start - sum(took.values())
        # Its writes (the LSP in the NB, the port in OVS); ovn-installed
        # then needs ovn-northd, whose own reconnection to the new leader
        # (C, backing off 1, 2, 4, 8 s) is OVN's time, measured apart.
        host.ctl_ok("--timeout", "10", "--no-wait", "plug", "--port-id",
                    "kp1", "--mac", "02:00:00:7a:00:01", "--tap", "tapk1",
                    "--network", "after", "--ip", "10.90.0.1/24")
        took["plug"] = time.monotonic() - start - sum(took.values())

        def port() -> dict:
            return {r["port_id"]: r for r in json.loads(host.ctl_ok(
                "list", "--format", "json"))}["kp1"]
        while not port()["ovn_installed"]:
            assert time.monotonic() - start < 30, port()
            time.sleep(0.2)
        took["ovn-installed (OVN's convergence)"] = \
            time.monotonic() - start - sum(took.values())
        print(f"leader {stopped} stopped; new leader {leader(cluster)}; "
              + ", ".join(f"{verb} {t:.1f} s" for verb, t in took.items()))
        assert port()["ovn_switch"] == "after"
        status = json.loads(host.ctl_ok("status", "--format", "json"))
        assert status["state"] == "up" and status["backend"] == "ovn"
        assert agent.poll() is None
        host.ctl_ok("--timeout", "10", "unplug", "--port-id", "kp1")
    finally:
        agent.send_signal(signal.SIGTERM)
        err = agent.communicate(timeout=10)[1]
        cluster.central.start_member(stopped)
    assert agent.returncode == 0, err[-2000:]
