"""Beside neutron, in-process: a real northbound ovsdb-server holding a
network and a port written as ML2/OVN writes them, and a host database
that records every step. virtio-ovs reports neutron's port and refuses
every write to it before anything is written, in either mode."""
from __future__ import annotations

import pytest

from tests.fakes import FakeHostDb, FakeTaps, Steps
from virtio_ovs.backend.ovn import NeutronOwnedBackend, OvnBackend
from virtio_ovs.backend.plugger import Plugger
from virtio_ovs.core import plug_request
from virtio_ovs.core.errors import UserError
from virtio_ovs.kernel.taps import ABSENT
from virtio_ovs.ovsdb.nb.impl import IdlNorthboundDb

NET_UUID = "5b0c4a6e-7f0e-4c1a-9d5e-1d2f3a4b5c6d"
SWITCH = f"neutron-{NET_UUID}"
PORT = "11111111-2222-3333-4444-555555555555"
MAC = "fa:16:3e:00:00:01"


@pytest.fixture(scope="module")
def neutron_nb(central):
    """A switch and a port as ML2/OVN creates them (external_ids neutron:*,
    addresses and port_security, requested-chassis)."""
    central.nbctl(
        "--", "ls-add", SWITCH, "--", "set", "Logical_Switch", SWITCH,
        "external_ids:neutron\\:network_name=tenant-net",
        "external_ids:neutron\\:revision_number=1",
        "--", "lsp-add", SWITCH, PORT,
        "--", "lsp-set-addresses", PORT, f"{MAC} 10.1.0.5",
        "--", "lsp-set-port-security", PORT, f"{MAC} 10.1.0.5",
        "--", "set", "Logical_Switch_Port", PORT,
        "external_ids:neutron\\:device_owner=compute\\:nova",
        "external_ids:neutron\\:network_name=" + SWITCH,
        "options:requested-chassis=hv1")
    yield central
    central.nbctl("--if-exists", "ls-del", SWITCH)


def nb_dump(central) -> str:
    return "\n".join(central.nbctl("--format=json", "list", table)
                     for table in ("Logical_Switch", "Logical_Switch_Port",
                                   "Port_Group", "ACL"))


@pytest.fixture
def nb(neutron_nb):
    db = IdlNorthboundDb(neutron_nb.nb_remote, 5.0)
    if "blue" not in {n.name for n in db.list_networks()}:
        db.create_network("blue", "geneve", None, None)
    yield db
    db.close()


def host_with_neutron_port(cls, nb):
    """The port as nova/os-vif plugged it on this host."""
    steps = Steps()
    host = FakeHostDb(steps)
    host.rows[PORT] = "tap11111111-22"
    plugger = Plugger(host, FakeTaps(steps), validate_host=lambda vif: ABSENT)
    return cls(host, nb, plugger), host


def test_a_neutron_port_is_reported_with_its_switch_and_owner(nb):
    backend, _ = host_with_neutron_port(OvnBackend, nb)
    [state] = nb.port_states([PORT]).values()
    assert (state.network, state.owner, state.network_name) == \
        (SWITCH, "neutron", "tenant-net")
    record = backend.port_record(PORT)
    assert (record["ovn_switch"], record["ovn_owner"], record["network"]) \
        == (SWITCH, "neutron", "tenant-net")
    assert PORT not in nb.port_states()  # not on a network of ours


@pytest.mark.parametrize("verb, args", [
    ("bind", (PORT, "blue", None, False, None)),
    ("unbind", (PORT,)),
    ("unplug", ([PORT], False, False)),
    ("set_port_groups", (PORT, ())),
])
def test_every_write_to_a_neutron_port_is_refused_whole(nb, neutron_nb,
                                                         verb, args):
    backend, host = host_with_neutron_port(OvnBackend, nb)
    before = nb_dump(neutron_nb)
    with pytest.raises(UserError, match="belongs to neutron") as exc:
        getattr(backend, verb)(*args)
    assert len(str(exc.value).splitlines()) == 1
    assert nb_dump(neutron_nb) == before
    assert host.steps.seen == [] and host.rows == {PORT: "tap11111111-22"}


def test_a_neutron_switch_is_neither_ours_to_delete_nor_to_plug_into(
        nb, neutron_nb):
    backend, host = host_with_neutron_port(OvnBackend, nb)
    before = nb_dump(neutron_nb)
    with pytest.raises(UserError, match=f"logical switch '{SWITCH}' belongs"
                       " to neutron"):
        backend.delete_network(SWITCH)
    vif = plug_request.make_vif(port_id="p9", mac="52:54:00:00:90:01",
                                tap="tap9", bridge="br-int", network=SWITCH)
    with pytest.raises(UserError, match="belongs to neutron"):
        backend.plug([vif], wait=False)
    assert nb_dump(neutron_nb) == before and host.steps.seen == []


@pytest.mark.parametrize("verb, args", [
    ("create_network", ("n2", "geneve", None, None)),
    ("delete_network", ("blue",)), ("list_networks", ()),
    ("create_group", ("web",)), ("delete_group", ("web",)),
    ("list_groups", ()), ("delete_rule", ("web", "r1")),
    ("set_port_groups", (PORT, ())), ("bind", (PORT, "blue", None, False)),
    ("unbind", (PORT,)), ("unplug", ([PORT], False, False)),
])
def test_with_nb_owner_neutron_virtio_ovs_never_writes_the_nb(
        nb, neutron_nb, verb, args):
    backend, host = host_with_neutron_port(NeutronOwnedBackend, nb)
    before = nb_dump(neutron_nb)
    with pytest.raises(UserError) as exc:
        getattr(backend, verb)(*args)
    assert str(exc.value).startswith(("nb_owner: neutron owns",
                                      "port_id: logical switch port"))
    assert nb_dump(neutron_nb) == before and host.steps.seen == []


def test_with_nb_owner_neutron_a_plug_goes_into_ovs_only(nb, neutron_nb):
    backend, host = host_with_neutron_port(NeutronOwnedBackend, nb)
    before = nb_dump(neutron_nb)
    vif = plug_request.make_vif(port_id="p8", mac="52:54:00:00:80:01",
                                tap="tap8", bridge="br-int")
    backend.plug([vif], wait=False)
    assert host.rows["p8"] == "tap8" and nb_dump(neutron_nb) == before
    with pytest.raises(UserError, match="^network: neutron owns"):
        backend.plug([plug_request.make_vif(
            port_id="p7", mac="52:54:00:00:70:01", tap="tap7",
            bridge="br-int", network="blue")], wait=False)
    assert backend.port_record(PORT)["ovn_owner"] == "neutron"
