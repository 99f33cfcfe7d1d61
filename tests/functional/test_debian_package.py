"""The Debian package, built by tools/build-deb.sh from this checkout,
unpacked into a scratch root and run from there by the distribution's
/usr/bin/python3 (python-ovs, oslo.config and oslo.log from Debian's
packages, nothing from the test's virtualenv) against a sandbox OVS."""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEBIAN_MODULES = ("ovs", "oslo_config", "oslo_log")


def _missing() -> str | None:
    if shutil.which("dpkg-deb") is None:
        return "dpkg-deb is not installed (run tools/test.sh)"
    for module in DEBIAN_MODULES:
        found = subprocess.run(["/usr/bin/python3", "-c", f"import {module}"],
                               capture_output=True, env={"PATH": "/usr/bin"})
        if found.returncode != 0:
            return (f"the distribution's Python lacks {module} "
                    "(run tools/test.sh, which installs its Debian package)")
    return None


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> pathlib.Path:
    missing = _missing()
    if missing:
        pytest.skip(missing)
    out = tmp_path_factory.mktemp("deb")
    proc = subprocess.run([str(ROOT / "tools" / "build-deb.sh"), str(out)],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return pathlib.Path(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def installed(deb, tmp_path_factory) -> pathlib.Path:
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def field(deb: pathlib.Path, name: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), name], check=True,
                          capture_output=True, text=True).stdout.strip()


def test_the_package_holds_the_commands_unit_config_completion_dashboard_and_man_pages(deb, installed):
    for path in ("usr/bin/virtio-ovs-ctl", "usr/bin/virtio-ovs-agent",
                 "lib/systemd/system/virtio-ovs-agent.service",
                 "etc/virtio-ovs/virtio-ovs.conf",
                 "usr/share/bash-completion/completions/virtio-ovs-ctl",
                 "usr/share/virtio-ovs/grafana/virtio-ovs.json",
                 "usr/share/man/man8/virtio-ovs-ctl.8.gz",
                 "usr/share/man/man8/virtio-ovs-agent.8.gz",
                 "usr/share/doc/virtio-ovs/copyright",
                 "usr/lib/virtio-ovs/virtio_ovs/cli/main.py"):
        assert (installed / path).is_file(), path
    assert os.access(installed / "usr/bin/virtio-ovs-ctl", os.X_OK)
    depends = field(deb, "Depends")
    for package in ("python3-openvswitch", "python3-oslo.config",
                    "python3-oslo.log"):
        assert package in depends, depends
    assert field(deb, "Architecture") == "all"
    # The sample config is a conffile: an upgrade keeps the operator's edits.
    control = subprocess.run(["dpkg-deb", "--ctrl-tarfile", str(deb)],
                             check=True, capture_output=True).stdout
    assert b"/etc/virtio-ovs/virtio-ovs.conf" in control
    # Nothing of the package is python-ovs: it comes from Debian's package.
    assert not (installed / "usr/lib/virtio-ovs/ovs").exists()


def _bare_env(box) -> list[str]:
    """A command prefix for a bare environment: only the sandbox's
    OVS_RUNDIR/OVS_DBDIR and a system PATH, as an operator's shell on that
    host would have (nothing of the test's virtualenv)."""
    return ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            *(f"{key}={value}" for key, value in box.env.items()
              if key in ("OVS_RUNDIR", "OVS_DBDIR"))]


def _run_installed(box, installed: pathlib.Path, *args: str):
    """An installed command inside the sandbox's namespace, with a bare
    environment."""
    return box.exec([*_bare_env(box), *args], check=False)


def test_the_installed_commands_run_from_debian_s_python_against_a_sandbox_ovs(box, installed):
    ctl = str(installed / "usr/bin/virtio-ovs-ctl")
    agent = str(installed / "usr/bin/virtio-ovs-agent")
    from virtio_ovs import version
    for command, name in ((ctl, "virtio-ovs-ctl"), (agent, "virtio-ovs-agent")):
        proc = _run_installed(box, installed, command, "--version")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == f"{name} {version()}"

    private = installed / "usr/lib/virtio-ovs"
    where = _run_installed(box, installed, "/usr/bin/python3", "-c",
                           f"import sys; sys.path.insert(0, {str(private)!r})\n"
                           "import json, ovs, ovs.json, pyroute2, virtio_ovs\n"
                           "print(json.dumps([ovs.__file__, pyroute2.__file__, "
                           "virtio_ovs.__file__]))")
    ovs_file, pyroute2_file, own_file = json.loads(where.stdout)
    assert ovs_file.startswith("/usr/lib/python3/dist-packages/"), ovs_file
    assert pyroute2_file.startswith(str(private)), pyroute2_file
    assert own_file.startswith(str(private)), own_file

    tap = f"dbt{os.getpid() % 100000}"
    plug = _run_installed(box, installed, ctl, "plug", "--port-id", "deb-1",
                          "--mac", "52:54:00:00:0d:01", "--tap", tap,
                          "--bridge", "br-int")
    assert plug.returncode == 0, plug.stderr
    listed = _run_installed(box, installed, ctl, "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    ports = {row["port_id"]: row for row in json.loads(listed.stdout)}
    assert ports["deb-1"]["mac"] == "52:54:00:00:0d:01"
    assert box.vsctl("get", "Interface", tap,
                     "external_ids:iface-id").strip('"') == "deb-1"


def test_the_installed_agent_syncs_and_stops_on_debian_s_python(box, installed):
    """The installed agent, on Debian's python-ovs and oslo.*: it starts
    (its logging set-up reaches into python-ovs), reports itself up in
    OVSDB and ends on SIGTERM with exit 0."""
    from tests.functional.topology import Topology
    topo = Topology(box)
    try:
        conf = topo.write_config()
        with open(topo.agent_log, "a") as log:
            topo.agent = topo.popen(box.netns, [
                *_bare_env(box), str(installed / "usr/bin/virtio-ovs-agent"),
                "--config-file", conf], stdout=log, stderr=subprocess.STDOUT)

        def up() -> bool:
            assert topo.agent.poll() is None, topo.agent_log_text()[-3000:]
            proc = _run_installed(box, installed, str(
                installed / "usr/bin/virtio-ovs-ctl"), "status", "--format",
                "json")
            return proc.returncode == 0 and \
                json.loads(proc.stdout).get("state") == "up"
        topo.wait_until(up, 30, "the installed agent to report itself up")
        assert "first full sync done" in topo.agent_log_text()
        assert topo.stop_agent() == 0, topo.agent_log_text()[-3000:]
    finally:
        topo.close()
