"""The backend seam: one factory chooses, nothing else compares names."""
from __future__ import annotations

import ast
import pathlib

from virtio_ovs import conf as conf_mod
from virtio_ovs.backend import factory
from virtio_ovs.backend.base import AgentDriver, Backend

PKG = pathlib.Path(__file__).resolve().parents[2] / "virtio_ovs"
NAMES = set(factory.KINDS)


def test_the_option_offers_exactly_the_factory_s_backends():
    conf = conf_mod.make_conf()
    conf([], project="virtio-ovs")
    opt = conf._groups["agent"]._opts["backend"]["opt"]
    assert set(opt.type.choices) == NAMES


def test_each_kind_builds_the_two_faces(tmp_path):
    """Nothing connects until used: the faces are built from the options
    alone (a stand-in for the host database)."""
    class Db:
        remote = "unix:/nonexistent/db.sock"

        def agent_status(self):
            return None
    for name in NAMES:
        path = tmp_path / f"{name}.conf"
        path.write_text(f"[agent]\nbackend = {name}\n")
        conf = conf_mod.load([str(path)])
        backend = factory.build_backend(conf, Db(), 1.0)
        driver = factory.build_driver(conf, Db())
        assert isinstance(backend, Backend) and backend.name == name
        assert isinstance(driver, AgentDriver)
        backend.close()


def test_no_other_place_compares_backend_names():
    """A comparison with a backend's name ("ovn" == x, x in ("ovn", ...))
    outside the factory would be a second seam."""
    for path in PKG.rglob("*.py"):
        if path == PKG / "backend" / "factory.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Compare):
                continue
            parts = [node.left, *node.comparators]
            consts = {p.value for p in parts if isinstance(p, ast.Constant)}
            for p in parts:
                if isinstance(p, (ast.Tuple, ast.List, ast.Set)):
                    consts |= {e.value for e in p.elts
                               if isinstance(e, ast.Constant)}
            assert not consts & NAMES, \
                f"{path.relative_to(PKG)}:{node.lineno} compares backend names"


def test_the_observe_backend_writes_no_network_and_plugs_into_ovs_only():
    import pytest
    from tests.fakes import FakeHostDb, FakeTaps, Steps
    from virtio_ovs.backend.observe import ObserveBackend
    from virtio_ovs.backend.plugger import Plugger
    from virtio_ovs.core import plug_request
    from virtio_ovs.core.errors import UserError
    from virtio_ovs.kernel.taps import ABSENT
    steps = Steps()
    host = FakeHostDb(steps)
    backend = ObserveBackend(host, Plugger(host, FakeTaps(steps),
                                           validate_host=lambda v: ABSENT))
    for verb, args in (("create_network", ("n", "local", None, None)),
                       ("list_networks", ()), ("create_group", ("g",)),
                       ("bind", ("p1", "n", None, False)),
                       ("unbind", ("p1",)), ("set_port_groups", ("p1", ()))):
        with pytest.raises(UserError, match="^backend: \\[agent\\] backend "
                           "= observe"):
            getattr(backend, verb)(*args)
    assert steps.seen == []
    vif = dict(port_id="p1", mac="52:54:00:00:00:01", tap="tap1",
               bridge="br-int")
    with pytest.raises(UserError, match="^network: "):
        backend.plug([plug_request.make_vif(**vif, network="n")], wait=False)
    backend.plug([plug_request.make_vif(**vif)], wait=False)
    assert host.rows == {"p1": "tap1"}
    assert backend.unplug(["p1"], False, False).ports[0].port_id == "p1"
