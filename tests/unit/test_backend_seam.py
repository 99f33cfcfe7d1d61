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
