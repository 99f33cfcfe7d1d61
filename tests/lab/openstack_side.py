"""OpenStack's own code for the tests, kept out of the project's venv.

nova and os-vif come from PyPI into a side virtualenv (``.cache/
openstack-venv``, made once, then reused): nova pulls in eventlet, and
python-ovs's poller switches to eventlet wherever it is importable, so the
project's interpreter must never see them. ``NovaVif`` runs nova's VIF
driver (``tests/lab/nova_vif.py``) there, in a hypervisor's namespace.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.lab.sandbox import OvsSandbox, SandboxError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
VENV = os.path.join(ROOT, ".cache", "openstack-venv")
PACKAGES = ("nova==34.0.0", "os-vif==5.3.0")  # measured in the research
HELPER = os.path.join(ROOT, "tests", "lab", "nova_vif.py")


def side_venv(timeout: float = 900) -> str:
    """The side venv's python, made if missing (about 40-50 s of pip).
    SandboxError with pip's last lines when it cannot be made."""
    python = os.path.join(VENV, "bin", "python")
    marker = os.path.join(VENV, ".installed")
    wanted = "\n".join(PACKAGES)
    try:
        with open(marker) as f:
            if f.read() == wanted:
                return python
    except OSError:
        pass
    subprocess.run([sys.executable, "-m", "venv", "--clear", VENV],
                   check=True, capture_output=True, timeout=120)
    proc = subprocess.run([python, "-m", "pip", "install", "-q",
                           "--disable-pip-version-check", *PACKAGES],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise SandboxError("pip install " + " ".join(PACKAGES) + ": "
                           + proc.stderr.strip()[-600:])
    with open(marker, "w") as f:
        f.write(wanted)
    return python


class NovaVif:
    """One neutron port as nova sees it, on one hypervisor's OVS."""

    def __init__(self, python: str, box: OvsSandbox, **port):
        self.python = python
        self.box = box
        self.request = {"ovsdb": box.remote, "datapath_type": "netdev",
                        **port}

    def __call__(self, verb: str) -> dict:
        proc = subprocess.run(
            self.box.exec_cmd([self.python, "-I", HELPER, verb]),
            input=json.dumps(self.request), capture_output=True, text=True,
            env=self.box.env, timeout=120)
        if proc.returncode != 0:
            raise SandboxError(f"nova_vif.py {verb}: {proc.stderr[-1500:]}")
        return json.loads(proc.stdout)
