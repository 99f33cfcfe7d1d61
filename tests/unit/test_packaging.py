"""What the source distribution carries and says (built offline, as pip
builds it from a checkout)."""
from __future__ import annotations

import pathlib
import subprocess
import sys
import tarfile

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_sdist_carries_the_operator_s_files_and_its_metadata(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", "import sys, setuptools.build_meta as b; "
         "print(b.build_sdist(sys.argv[1]))", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    name = proc.stdout.strip().splitlines()[-1]
    with tarfile.open(tmp_path / name) as tar:
        top = name.removesuffix(".tar.gz")
        files = {m.name.removeprefix(top + "/") for m in tar.getmembers()}
        info = tar.extractfile(f"{top}/PKG-INFO").read().decode()
    for path in ("LICENSE", "README.md", "etc/virtio-ovs.conf.sample",
                 "etc/systemd/virtio-ovs-agent.service",
                 "etc/bash_completion.d/virtio-ovs-ctl",
                 "etc/grafana/virtio-ovs.json", "devstack/plugin.sh",
                 "devstack/settings", "virtio_ovs/cli/main.py"):
        assert path in files, path
    assert not any(f.startswith("tests/") for f in files)
    assert "Requires-Python: >=3.11" in info
    assert "License: Apache-2.0" in info
    assert "# virtio-ovs" in info  # the README as the long description
    assert "Description-Content-Type: text/markdown" in info



def test_the_wheel_carries_the_license_and_the_operator_s_files(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
         "--disable-pip-version-check", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import zipfile
    (wheel,) = tmp_path.glob("virtio_ovs-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    data = f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.data/data/"
    for path in ("share/virtio-ovs/etc/virtio-ovs.conf.sample",
                 "share/virtio-ovs/etc/systemd/virtio-ovs-agent.service",
                 "share/virtio-ovs/etc/bash_completion.d/virtio-ovs-ctl",
                 "share/virtio-ovs/etc/grafana/virtio-ovs.json",
                 "share/virtio-ovs/devstack/plugin.sh"):
        assert data + path in names, path
    assert any(n.endswith(".dist-info/licenses/LICENSE") or
               n.endswith(".dist-info/LICENSE") for n in names)

def test_the_unit_is_a_notify_service_hardened_to_6_or_less():
    import re
    import shutil
    unit = ROOT / "etc" / "systemd" / "virtio-ovs-agent.service"
    text = unit.read_text()
    for line in ("Type=notify", "RestartPreventExitStatus=1",
                 "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "PrivateTmp=yes", "LimitNOFILE=65536"):
        assert f"\n{line}\n" in text, line
    exec_start = re.search(r"^ExecStart=(\S+)", text, re.M).group(1)
    assert exec_start == "virtio-ovs-agent"  # systemd's search path
    if shutil.which("systemd-analyze") is None:
        return  # the score needs systemd's tools; the directives are above
    proc = subprocess.run(["systemd-analyze", "security", "--offline=true",
                           str(unit)], capture_output=True, text=True,
                          timeout=60)
    score = float(re.search(r"Overall exposure level for \S+: ([\d.]+)",
                            proc.stdout).group(1))
    assert score <= 6.0, proc.stdout[-3000:]


def test_the_man_pages_say_every_verb_and_option(tmp_path):
    import argparse
    import shutil
    from virtio_ovs import conf
    from virtio_ovs.cli.parser import build_parser
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "manpages.py"),
                           str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    ctl = (tmp_path / "virtio-ovs-ctl.8").read_text().replace("\\-", "-")
    agent = (tmp_path / "virtio-ovs-agent.8").read_text().replace("\\-", "-")
    parser = build_parser()
    verbs = next(a for a in parser._actions
                 if isinstance(a, argparse._SubParsersAction)).choices
    for verb, sub in verbs.items():
        assert f".SS {verb}\n" in ctl, verb
        for action in sub._actions:
            if action.dest == "help":
                continue
            for option in action.option_strings:
                assert option in ctl, (verb, option)
    for _, opts in [("DEFAULT", conf.logging_opts()), *conf.list_opts()]:
        for opt in opts:
            assert f"\\fB{opt.name}\\fR" in agent, opt.name
    if shutil.which("groff"):
        for page in ("virtio-ovs-ctl.8", "virtio-ovs-agent.8"):
            check = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z",
                                    str(tmp_path / page)],
                                   capture_output=True, text=True, timeout=60)
            assert check.returncode == 0 and check.stderr == "", check.stderr
