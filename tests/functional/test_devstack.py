"""The devstack plugin, sourced for every mode and phase with stand-ins
for devstack's helpers, against a private sandbox OVS."""
from __future__ import annotations

import configparser
import json
import os
import shlex
import subprocess
import sys
import time

import pytest

from tests.functional.topology import ROOT
from tests.lab.sandbox import NR_HUGEPAGES, Hugepages

BIN = os.path.dirname(sys.executable)


class Devstack:
    def __init__(self, box, tmp_path, **settings):
        self.box = box
        self.stub_dir = tmp_path
        self.conf_dir = tmp_path / "etc-virtio-ovs"
        self.env = {
            "STUB_LOG": str(tmp_path / "calls.log"), "STUB_DIR": str(tmp_path),
            "DEST": str(tmp_path), "VIRTIO_OVS_DIR": ROOT,
            "VIRTIO_OVS_BIN_DIR": BIN, "VIRTIO_OVS_CONF_DIR": str(self.conf_dir),
            "VIRTIO_OVS_DATAPATH_TYPE": "netdev",
            "VIRTIO_OVS_BRIDGE_MAPPINGS": "phys:br-prov",
            "VIRTIO_OVS_NETWORKS": "priv:local ext:flat:phys t100:vlan:phys:100",
            "VIRTIO_OVS_REPORT_INTERVAL": "1", **settings}

    def source(self, *args: str, netns: bool = True) -> subprocess.CompletedProcess:
        """Source the plugin in bash, in the sandbox's namespace (or, for
        mounts that must outlive the command, in the root namespace: the
        plugin reaches OVS through its unix socket either way)."""
        script = (f"set -e; source {ROOT}/tests/functional/devstack_stubs.sh; "
                  f"source {ROOT}/devstack/settings; "
                  f"source {ROOT}/devstack/plugin.sh {' '.join(args)}")
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
        cmd = ["bash", "-c", f"export {exports}; {script}"]
        if netns:
            proc = self.box.exec(cmd, check=False, timeout=120)
        else:
            proc = subprocess.run(cmd, env=self.box.env, capture_output=True,
                                  text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr + proc.stdout
        return proc

    def calls(self) -> str:
        return (self.stub_dir / "calls.log").read_text()

    def conf(self) -> configparser.ConfigParser:
        parser = configparser.ConfigParser()
        parser.read(self.conf_dir / "virtio-ovs.conf")
        return parser


def ctl_json(box, *args):
    return json.loads(box.exec([sys.executable, "-m", "virtio_ovs.cli", *args,
                                "--format", "json"]).stdout)


def test_stack_unstack_clean(box, tmp_path):
    box.add_bridge("br-mine")  # someone else's bridge: must survive clean
    ds = Devstack(box, tmp_path)
    for phase in ("pre-install", "install", "post-config", "extra",
                  "test-config"):
        ds.source("stack", phase)
    assert f"setup_develop {ROOT}" in ds.calls()
    assert "install_package openvswitch-switch" in ds.calls()
    conf = ds.conf()
    assert conf["ovs"]["ovsdb_connection"] == box.remote
    assert conf["ovs"]["datapath_type"] == "netdev"
    assert conf["ovs"]["bridge_mappings"] == "phys:br-prov"
    assert conf["ovs"]["integration_bridge"] == "br-int"
    assert conf["agent"]["report_interval"] == "1"
    # The sample's comments are kept, as devstack's iniset keeps them.
    assert "# Seconds between heartbeats" in (ds.conf_dir / "virtio-ovs.conf").read_text()
    assert box.vsctl("get", "Bridge", "br-prov", "fail_mode") == "secure"
    assert box.vsctl("get", "Bridge", "br-prov", "datapath_type") == "netdev"
    nets = {n["name"]: n for n in ctl_json(box, "net-list")}
    assert set(nets) == {"priv", "ext", "t100"}
    assert (nets["t100"]["type"], nets["t100"]["segment"]) == ("vlan", 100)

    # The command run_process got starts the real agent on that config.
    command = (tmp_path / "run_process.virtio-ovs-agent").read_text().split()
    assert command == [f"{BIN}/virtio-ovs-agent", "--config-file",
                       str(ds.conf_dir / "virtio-ovs.conf")]
    agent = subprocess.Popen(box.exec_cmd(command), env=box.env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 30
        while not ctl_json(box, "status").get("synced"):
            assert time.monotonic() < end, "agent started by run_process never synced"
            time.sleep(0.2)
        assert box.vsctl("get", "Interface", "int-br-prov", "options:peer") \
            == "phy-br-prov"
    finally:
        agent.terminate()
        agent.wait(timeout=10)

    ds.source("stack", "post-config")  # again: idempotent
    assert len(ctl_json(box, "net-list")) == 3
    ds.source("unstack")
    assert "stop_process virtio-ovs-agent" in ds.calls()
    ds.source("clean")
    # br-int existed before (the sandbox made it); br-prov was the plugin's.
    assert box.vsctl("list-br").split() == ["br-int", "br-mine"]
    assert "int-br-prov" not in box.vsctl("list-ports", "br-int").split()
    assert ctl_json(box, "net-list") == []
    assert not ds.conf_dir.exists()
    ids = box.vsctl("get", "Open_vSwitch", ".", "external_ids")
    assert "virtio-ovs" not in ids


def test_existing_bridges_and_networks_are_left_alone(box, tmp_path):
    # br-int exists already (the box fixture made it): clean keeps it.
    ds = Devstack(box, tmp_path, VIRTIO_OVS_NETWORKS="priv:local")
    box.exec([sys.executable, "-m", "virtio_ovs.cli", "net-create", "priv",
              "--type", "local"])
    ds.source("stack", "post-config")
    ds.source("clean")
    assert "br-int" in box.vsctl("list-br").split()
    assert "br-prov" not in box.vsctl("list-br").split()
    assert [n["name"] for n in ctl_json(box, "net-list")] == ["priv"]


def test_dpdk_branch_reserves_and_returns_hugepages(box, tmp_path):
    reason = Hugepages.available()
    if reason:
        pytest.skip(reason)
    before = int(open(NR_HUGEPAGES).read())
    mount = tmp_path / "huge"
    ds = Devstack(box, tmp_path, VIRTIO_OVS_DPDK="True",
                  VIRTIO_OVS_HUGEPAGES=str(before + 8),
                  VIRTIO_OVS_HUGEPAGE_MOUNT=str(mount),
                  VIRTIO_OVS_DPDK_SOCKET_MEM="16")
    try:
        ds.source("stack", "install", netns=False)
        assert "install_package openvswitch-switch-dpdk" in ds.calls()
        assert "restart_service openvswitch-switch" in ds.calls()
        assert int(open(NR_HUGEPAGES).read()) == before + 8
        assert subprocess.run(["mountpoint", "-q", str(mount)]).returncode == 0
        other = box.vsctl("get", "Open_vSwitch", ".", "other_config")
        for item in ("dpdk-init=\"true\"", "dpdk-socket-mem=\"16\"",
                     "pmd-cpu-mask=\"0x2\"", f"--huge-dir={mount}"):
            assert item in other, other
        ds.source("clean", netns=False)
        assert "dpdk-init" not in box.vsctl("get", "Open_vSwitch", ".",
                                            "other_config")
    finally:
        if subprocess.run(["mountpoint", "-q", str(mount)]).returncode == 0:
            subprocess.run(["umount", str(mount)])
        returned = int(open(NR_HUGEPAGES).read())
        if returned != before:  # a failed run gives back what it took
            with open(NR_HUGEPAGES, "w") as f:
                f.write(str(before))
    assert returned == before
    assert subprocess.run(["mountpoint", "-q", str(mount)]).returncode != 0


def test_shellcheck_passes_on_every_shell_script():
    scripts = ["devstack/plugin.sh", "devstack/settings", "tools/test.sh",
               "tools/demo.sh", "tools/setup-env.sh", "tools/build-deb.sh",
               ".ci/run",
               "tests/functional/devstack_stubs.sh",
               "etc/bash_completion.d/virtio-ovs-ctl"]
    if subprocess.run(["which", "shellcheck"], capture_output=True).returncode:
        pytest.skip("shellcheck is not installed (run tools/test.sh)")
    proc = subprocess.run(["shellcheck", "-x", "-s", "bash", *scripts], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("neutron", [
    {"Q_AGENT": "ovn", "STUB_SERVICES": "virtio-ovs-agent ovn-controller "
     "n-cpu", "OVN_NB_REMOTE": "tcp:192.0.2.10:6641"},
    {"Q_AGENT": "openvswitch", "STUB_SERVICES": "virtio-ovs-agent q-agt "
     "n-cpu"},
], ids=["ml2-ovn", "ml2-ovs"])
def test_beside_neutron_it_observes_and_creates_nothing(box, tmp_path,
                                                       neutron):
    """On a node where neutron owns the networking, the plugin configures
    virtio-ovs for observation: the backend and the NB from neutron's
    settings, no bridge, network or group made, br-int left as neutron set
    it; the agent it starts checks and reports."""
    # br-int as neutron's agent or ovn-controller left it.
    box.vsctl("set", "Bridge", "br-int", "fail_mode=standalone",
              "external_ids:owner=neutron")
    if neutron["Q_AGENT"] == "openvswitch":  # the OVS agent's controller
        box.vsctl("set-controller", "br-int", "tcp:127.0.0.1:6633")
    before = (box.vsctl("list-br"), box.vsctl(
        "--columns=fail_mode,external_ids,controller", "list", "Bridge",
        "br-int"))
    ds = Devstack(box, tmp_path, **neutron)
    for phase in ("install", "post-config", "extra"):
        ds.source("stack", phase)
    conf = ds.conf()
    if neutron["Q_AGENT"] == "ovn":
        assert conf["agent"]["backend"] == "ovn"
        assert conf["ovn"]["nb_owner"] == "neutron"
        assert conf["ovn"]["ovn_nb_connection"] == "tcp:192.0.2.10:6641"
    else:
        assert conf["agent"]["backend"] == "observe"
    assert "bridge_mappings" not in conf["ovs"]  # no provider bridge made
    command = (tmp_path / "run_process.virtio-ovs-agent").read_text().split()
    agent = subprocess.Popen(box.exec_cmd(command), env=box.env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    try:
        end = time.monotonic() + 30
        while not ctl_json(box, "status").get("synced"):
            assert agent.poll() is None, agent.communicate()[1][-2000:]
            assert time.monotonic() < end, "the agent never synced"
            time.sleep(0.2)
        status = ctl_json(box, "status")
        assert status["backend"] == conf["agent"]["backend"]
        proc = box.exec([sys.executable, "-m", "virtio_ovs.cli",
                         "--config-file", str(ds.conf_dir / "virtio-ovs.conf"),
                         "net-create", "mine", "--type", "geneve"],
                        check=False)
        assert proc.returncode == 1 and "neutron" in proc.stderr, proc.stderr
    finally:
        agent.terminate()
        agent.wait(timeout=10)
    assert (box.vsctl("list-br"), box.vsctl(
        "--columns=fail_mode,external_ids,controller", "list", "Bridge",
        "br-int")) == before
    ds.source("unstack")
    ds.source("clean")
    assert box.vsctl("list-br") == before[0]
