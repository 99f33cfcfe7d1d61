"""The OVN backend's two-database order, in-process: a real northbound
ovsdb-server (no root) and a host database that fails where told."""
from __future__ import annotations

import shutil
import tempfile

import pytest

from virtio_ovs.core import plug_request
from virtio_ovs.core.errors import UserError, VswitchdError
from virtio_ovs.backend.ovn import OvnBackend
from virtio_ovs.ovsdb.nb.impl import IdlNorthboundDb
from virtio_ovs.backend.plugger import Plugger
from virtio_ovs.kernel.taps import ABSENT
from tests.lab.ovn import Central
from tests.fakes import FakeHostDb, FakeTaps, Interrupt, Steps


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


@pytest.fixture
def nb(central):
    db = IdlNorthboundDb(central.nb_remote, 5.0)
    for net in db.list_networks():
        db.delete_ports(p for p, s in db.port_states().items()
                        if s.network == net.name)
        db.delete_network(net.name)
    db.create_network("blue", "geneve", None, None)
    yield db
    db.close()


def backend(nb, fail_at=None, refuse=frozenset()):
    steps = Steps(fail_at)
    host = FakeHostDb(steps, refuse)
    plugger = Plugger(host, FakeTaps(steps), validate_host=lambda vif: ABSENT)
    return OvnBackend(host, nb, plugger), host


def vif(port_id="p1", tap="tap1"):
    return plug_request.make_vif(port_id=port_id, mac="52:54:00:00:30:01", tap=tap,
                          bridge="br-int", network="blue",
                          ips=["10.0.0.1/24"])


def lsps(nb) -> set[str]:
    return set(nb.port_states())


@pytest.mark.parametrize("step", ["create tap1", "commit"])
def test_ovs_side_failing_before_commit_removes_the_new_lsp(nb, step):
    ovn, host = backend(nb, step)
    with pytest.raises(Interrupt):
        ovn.plug([vif()], wait=False)
    assert lsps(nb) == set() and host.rows == {}


def test_ovs_side_refused_removes_rows_and_lsp(nb):
    ovn, host = backend(nb, refuse=frozenset({"tap1"}))
    with pytest.raises(VswitchdError):
        ovn.plug([vif()], wait=True)
    assert lsps(nb) == set() and host.rows == {}


def test_ovs_side_committed_keeps_the_lsp(nb):
    ovn, host = backend(nb, "wait")  # interrupted after the OVS commit
    with pytest.raises(Interrupt):
        ovn.plug([vif()], wait=True)
    assert lsps(nb) == {"p1"} and host.rows == {"p1": "tap1"}


def test_an_existing_lsp_survives_a_failed_replug(nb):
    ovn, _ = backend(nb)
    ovn.plug([vif()], wait=False)
    failing, _ = backend(nb, "commit")
    with pytest.raises(Interrupt):
        failing.plug([vif()], wait=False)
    assert lsps(nb) == {"p1"}


def test_unknown_network_is_refused_before_any_write(nb):
    ovn, host = backend(nb)
    bad = plug_request.make_vif(port_id="p2", mac="52:54:00:00:30:02", tap="tap2",
                         bridge="br-int", network="nope")
    with pytest.raises(UserError, match="network: no network named 'nope'"):
        ovn.plug([bad], wait=False)
    assert lsps(nb) == set() and host.steps.seen == []


def test_lsp_addresses_and_port_security(nb, central):
    ovn, _ = backend(nb)
    ovn.plug([vif()], wait=False)
    assert central.nbctl("get", "Logical_Switch_Port", "p1", "addresses") == \
        central.nbctl("get", "Logical_Switch_Port", "p1", "port_security") == \
        '["52:54:00:00:30:01 10.0.0.1"]'
