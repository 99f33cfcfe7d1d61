"""In-process tests: the OVSDB facade, the agent's state cache and
reconcile, the check's evidence gathering, against a private OVS with the
dummy datapath (no root, no namespaces) or recorded replies."""
from __future__ import annotations

import shutil
import tempfile

import pytest

from virtio_ovs.core import plug_request
from virtio_ovs.core.outcomes import PlugOutcome
from virtio_ovs.ovsdb.host import views
from virtio_ovs.ovsdb.host.impl import IdlHostDb
from tests.lab.dummy import DummyOvs
from tests.lab.ovn import Central

TAPS: set[str] = set()  # device names the fake kernel probe calls TAPs


@pytest.fixture(scope="module")
def central():
    if shutil.which("ovn-northd") is None:
        pytest.skip("ovn-northd is not installed (run tools/test.sh)")
    directory = tempfile.mkdtemp(prefix="vovs-nb-")
    nb_central = Central(None, directory)
    try:
        nb_central.start()
        yield nb_central
    finally:
        nb_central.stop()
        shutil.rmtree(directory, ignore_errors=True)


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


def plug_every_kind(db, ovs) -> None:
    """Rows with every kind of value: ids, options, an MTU and an ofport
    request, a VLAN tag, a trunk, a second port, a network and groups."""
    TAPS.update({"tapf1", "tapf2"})
    db.create_network("blue", "local", None, None, {})
    db.create_group("web")
    vifs = [plug_request.make_vif(port_id="f1", mac="52:54:00:00:f0:01",
                                  tap="tapf1", bridge="br-int", vm="vm1",
                                  network="blue", ips=["10.0.0.1/24"],
                                  queues=2, mtu=1400,
                                  security_groups=["web"]),
            plug_request.make_vif(port_id="f2", mac="52:54:00:00:f0:02",
                                  tap="tapf2", bridge="br-int")]
    db.plug(vifs, PlugOutcome())
    ovs.vsctl("set", "Interface", "tapf2", "options:foo=bar")
    db.conn.wait_for(lambda: any(
        views.map_value(i, "options", "foo") == "bar"
        for i in db.conn.rows("Interface").values()), db._deadline(),
        "the replica")
