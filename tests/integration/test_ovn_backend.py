"""The OVN backend's two-database order, in-process: a real northbound
ovsdb-server (no root) and a host database that fails where told."""
from __future__ import annotations

import pytest

from virtio_ovs.core import plug_request
from virtio_ovs.core.errors import OvsdbTimeout, UserError, VswitchdError
from virtio_ovs.backend.ovn import OvnBackend
from virtio_ovs.ovsdb.nb.impl import IdlNorthboundDb
from virtio_ovs.backend.plugger import Plugger
from virtio_ovs.kernel.taps import ABSENT
from tests.fakes import FakeHostDb, FakeTaps, Interrupt, Steps


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


# --- Writes to both databases: ``across`` orders them (NB, then the host)
# and undoes the NB change when the host's transaction did not commit.
# Each step is interrupted in turn.

def lsp_state(central, port_id: str = "p1") -> tuple[str, str, bool]:
    """(addresses, port_security, in vovs_web) of an LSP, or () if none."""
    if port_id not in central.nbctl("--bare", "--columns=name", "list",
                                    "Logical_Switch_Port").split():
        return ()
    uuid = central.nbctl("--bare", "--columns=_uuid", "find",
                         "Logical_Switch_Port", f"name={port_id}")
    members = central.nbctl("--bare", "--columns=ports", "find",
                            "Port_Group", "name=vovs_web")
    return (central.nbctl("get", "Logical_Switch_Port", port_id, "addresses"),
            central.nbctl("get", "Logical_Switch_Port", port_id,
                          "port_security"), uuid in members.split())


@pytest.fixture
def web(nb):
    """A security group 'web' in the NB, removed afterwards."""
    if "web" not in {g.name for g in nb.list_groups()}:
        nb.create_group("web")
    yield "web"
    for port_id in list(nb.port_states()):
        nb.set_port_groups(port_id, ())
    nb.delete_group("web")


def plugged_without_network(nb, port_id="p1", tap="tap1"):
    """A guest port on the host that no LSP describes yet."""
    ovn, host = backend(nb)
    ovn.plug([model_vif(port_id, tap, network=None)], wait=False)
    return host


def model_vif(port_id="p1", tap="tap1", network="blue"):
    return plug_request.make_vif(port_id=port_id, mac="52:54:00:00:30:01",
                                 tap=tap, bridge="br-int", network=network,
                                 ips=["10.0.0.1/24"])


def failing(nb, host, step):
    """A backend over ``host``'s rows whose ``step`` is interrupted."""
    ovn, other = backend(nb, step)
    other.rows = host.rows
    return ovn, other


def test_bind_interrupted_at_the_host_commit_removes_the_new_lsp(nb, web,
                                                                   central):
    host = plugged_without_network(nb)
    ovn, other = failing(nb, host, "host commit")
    with pytest.raises(Interrupt):
        ovn.bind("p1", "blue", ("10.0.0.9/24",), False, ("web",))
    assert lsp_state(central) == () and other.committed == []


def test_bind_interrupted_at_the_host_commit_puts_the_lsp_back(nb, web,
                                                                 central):
    ovn, host = backend(nb)
    ovn.plug([vif()], wait=False)
    before = lsp_state(central)
    assert before == ('["52:54:00:00:30:01 10.0.0.1"]',) * 2 + (False,)
    failing_ovn, _ = failing(nb, host, "host commit")
    with pytest.raises(Interrupt):
        failing_ovn.bind("p1", "blue", ("10.0.0.9/24",), False, ("web",))
    assert lsp_state(central) == before


def test_bind_whose_nb_step_fails_writes_nothing_on_the_host(nb, central):
    host = plugged_without_network(nb)
    ovn, other = failing(nb, host, None)
    with pytest.raises(UserError, match="no security group named 'nope'"):
        ovn.bind("p1", "blue", None, False, ("nope",))
    assert lsp_state(central) == () and other.steps.seen == []


def test_bind_whose_host_answer_is_lost_keeps_the_nb_change(nb, central):
    """The host may have the binding: the LSP stays (a re-run finishes)."""
    host = plugged_without_network(nb)
    ovn, other = failing(nb, host, None)
    other.lose_answer = True
    with pytest.raises(OvsdbTimeout):
        ovn.bind("p1", "blue", None, False, None)
    assert lsp_state(central)[0] == '["52:54:00:00:30:01"]'


def test_bind_commits_once_per_database(nb, web, central):
    host = plugged_without_network(nb)
    ovn, other = failing(nb, host, None)
    assert ovn.bind("p1", "blue", ("10.0.0.9/24",), False, ("web",))
    assert lsp_state(central) == ('["52:54:00:00:30:01 10.0.0.9"]',) * 2 + \
        (True,)
    assert [[type(c).__name__ for c in cmds] for cmds in other.committed] \
        == [["BindPort", "SetPortGroups"]]


def test_port_update_interrupted_at_the_host_commit_restores_the_groups(
        nb, web, central):
    ovn, host = backend(nb)
    ovn.plug([vif()], wait=False)
    failing_ovn, _ = failing(nb, host, "host commit")
    with pytest.raises(Interrupt):
        failing_ovn.set_port_groups("p1", ("web",))
    assert lsp_state(central)[2] is False
    assert ovn.set_port_groups("p1", ("web",)) is True
    assert lsp_state(central)[2] is True


# --- Exactly once in a cluster: a transaction whose answer was lost is
# built again from the fresh replica, where the first attempt may be
# applied already. The same command object run again stands for that.

def test_a_create_or_delete_run_again_after_it_was_applied_says_done(nb):
    from virtio_ovs.core.secgroups import make_rule
    from virtio_ovs.ovsdb.nb import commands as nbc, sg_commands as sgc
    steps = [nbc.CreateNetwork("again", "geneve", None, None),
             sgc.CreateGroup("again"),
             sgc.AddRule("again", make_rule(direction="ingress",
                                            protocol="tcp", port_min=22,
                                            port_max=22, known=None)),
             nbc.DeleteNetwork("again")]
    for command in steps:
        first = nb.commit(command)
        assert nb.commit(command) == first != ["unchanged"], command
    rule_id = sgc.group_of(sgc.port_groups(nb._view())["again"]).rules[-1].id
    for command in (sgc.DeleteRule("again", rule_id),
                    sgc.DeleteGroup("again")):
        assert nb.commit(command) == nb.commit(command) == ["updated"]
    # A new command object is a new request: it is refused as before.
    with pytest.raises(UserError, match="no network named 'again'"):
        nb.commit(nbc.DeleteNetwork("again"))


# --- Placement: requested-chassis is where the port was plugged, and a
# plug on a second chassis starts a live migration towards it.

def placed(central, port_id="p1") -> tuple[str, str]:
    get = ["--if-exists", "get", "Logical_Switch_Port", port_id]
    return (central.nbctl(*get, "options:requested-chassis").strip('"'),
            central.nbctl(*get, "options:activation-strategy").strip('"'))


def on_chassis(nb, chassis, fail_at=None):
    steps = Steps(fail_at)
    host = FakeHostDb(steps)
    host.chassis = chassis
    plugger = Plugger(host, FakeTaps(steps), validate_host=lambda vif: ABSENT)
    return OvnBackend(host, nb, plugger, ovn=(23, 3)), host


def test_a_plug_places_the_lsp_on_its_chassis(nb, central):
    source, _ = on_chassis(nb, "hv1")
    source.plug([vif()], wait=False)
    assert placed(central) == ("hv1", "")
    source.plug([vif()], wait=False)  # again: nothing moves
    assert placed(central) == ("hv1", "")


def test_a_plug_on_a_second_chassis_starts_a_migration(nb, central):
    source, _ = on_chassis(nb, "hv1")
    source.plug([vif()], wait=False)
    destination, _ = on_chassis(nb, "hv2")
    destination.plug([vif(tap="tap9")], wait=False)
    assert placed(central) == ("hv1,hv2", "rarp")


def test_a_destination_plug_that_fails_puts_the_source_back(nb, central):
    source, _ = on_chassis(nb, "hv1")
    source.plug([vif()], wait=False)
    destination, _ = on_chassis(nb, "hv2", fail_at="commit")
    with pytest.raises(Interrupt):
        destination.plug([vif(tap="tap9")], wait=False)
    assert placed(central) == ("hv1", "")


def test_an_ovn_without_multichassis_binding_places_nothing(nb, central):
    old, _ = on_chassis(nb, "hv1")
    old.ovn = (22, 3)
    old.plug([vif()], wait=False)
    assert placed(central) == ("", "")


def test_unplugging_either_end_of_a_migration_keeps_the_lsp_on_the_other(
        nb, central):
    source, src_host = on_chassis(nb, "hv1")
    source.plug([vif()], wait=False)
    destination, dst_host = on_chassis(nb, "hv2")
    destination.plug([vif(tap="tap9")], wait=False)
    source.unplug(["p1"], False, False)  # the move is done
    assert placed(central) == ("hv2", "") and "p1" in lsps(nb)
    source.plug([vif()], wait=False)  # back to hv1: a second migration
    assert placed(central) == ("hv2,hv1", "rarp")
    source.unplug(["p1"], False, False)  # aborted: hv1's port goes
    assert placed(central) == ("hv2", "")
    destination.unplug(["p1"], False, False)  # the last location
    assert "p1" not in lsps(nb)


def test_an_unplug_after_the_agent_left_the_lsp_to_the_destination_keeps_it(
        nb, central):
    """The source's agent saw its port go first and left the LSP to the
    destination: the unplug that follows must not delete it."""
    from virtio_ovs.core.migration import Placement
    from virtio_ovs.ovsdb.nb.commands import SetPlacement
    source, _ = on_chassis(nb, "hv1")
    source.plug([vif()], wait=False)
    on_chassis(nb, "hv2")[0].plug([vif(tap="tap9")], wait=False)
    nb.commit(SetPlacement("p1", Placement(("hv2",)),
                           Placement(("hv1", "hv2"), "rarp")))
    source.unplug(["p1"], False, False)
    assert placed(central) == ("hv2", "") and "p1" in lsps(nb)


def test_a_dry_run_checks_the_nb_and_writes_nothing_there(nb, central):
    ovn, _ = backend(nb)
    before = central.nbctl("--format=json", "list", "Logical_Switch_Port")
    nb.conn.dry_run = True
    try:
        ovn.plug([vif()], wait=False)
        with pytest.raises(UserError, match="no network named 'nope'"):
            ovn.plug([plug_request.make_vif(
                port_id="p3", mac="52:54:00:00:30:03", tap="tap3",
                bridge="br-int", network="nope")], wait=False)
    finally:
        nb.conn.dry_run = False
    assert central.nbctl("--format=json", "list",
                         "Logical_Switch_Port") == before
