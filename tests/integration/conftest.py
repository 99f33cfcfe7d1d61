"""In-process tests: the OVSDB facade, the agent's state cache and
reconcile, the check's evidence gathering, against a private OVS with the
dummy datapath (no root, no namespaces) or recorded replies."""
from __future__ import annotations

import shutil

import pytest

from virtio_ovs.ovsdb.host.impl import IdlHostDb
from tests.lab.dummy import DummyOvs

TAPS: set[str] = set()  # device names the fake kernel probe calls TAPs


@pytest.fixture(scope="module")
def dummy():
    for tool in ("ovsdb-server", "ovs-vswitchd", "ovs-vsctl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (run tools/test.sh)")
    ovs = DummyOvs().start()
    yield ovs
    ovs.stop()


@pytest.fixture
def ovs(dummy, monkeypatch):
    """The module's dummy OVS, reset to one empty br-int, with OVS_RUNDIR
    pointing at it (as ovs-ofctl and the agent expect)."""
    dummy.vsctl("--if-exists", "del-br", "br-int", "--", "--if-exists",
                "del-br", "br-ex", "--", "clear", "Open_vSwitch", ".",
                "external_ids", "--", "add-br", "br-int", "--", "set",
                "Bridge", "br-int", "fail_mode=secure")
    monkeypatch.setenv("OVS_RUNDIR", dummy.dir)
    TAPS.clear()
    return dummy


@pytest.fixture
def db(ovs):
    host_db = IdlHostDb(ovs.remote, 5.0, is_tap=lambda name: name in TAPS)
    yield host_db
    host_db.close()
