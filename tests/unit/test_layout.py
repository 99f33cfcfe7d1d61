"""The layout is the architecture: a pure core, one adapter per outside
system, thin faces on top, the test harness apart."""
from __future__ import annotations

import ast
import pathlib

PKG = pathlib.Path(__file__).resolve().parents[2] / "virtio_ovs"
PURE = [*sorted((PKG / "core").glob("*.py")),
        *(PKG / "network" / n for n in ("flows.py", "sg_flows.py",
                                         "tables.py", "ovn_acls.py", "ofwire.py")),
        PKG / "check" / "verdicts.py"]
PURE_STDLIB = {"__future__", "abc", "dataclasses", "functools", "hashlib",
               "ipaddress", "json", "math", "posixpath", "re", "struct", "typing",
               "zlib"}


def imports(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_core_does_no_io():
    for path in PURE:
        for name in imports(path):
            ours = name.startswith("virtio_ovs.")
            assert (ours and name.startswith(("virtio_ovs.core",
                                              "virtio_ovs.network.sg_flows",
                                              "virtio_ovs.network.tables"))) \
                or \
                (not ours and name.split(".")[0] in PURE_STDLIB), \
                f"{path.relative_to(PKG)} imports {name}"


def test_runtime_code_does_not_import_the_test_harness():
    for path in PKG.rglob("*.py"):
        if "testing" in path.parts:
            continue
        assert not any(n.startswith("virtio_ovs.testing") for n in
                       imports(path)), path.relative_to(PKG)


def test_one_way_into_each_database():
    """Outside ovsdb/, code reaches the host database and the OVN NB only
    through their facades (HostDb, NorthboundDb); only the facades' own
    packages touch IDL rows."""
    for path in PKG.rglob("*.py"):
        if {"ovsdb", "testing"} & set(path.parts):
            continue
        for name in imports(path):
            assert name in ("virtio_ovs.ovsdb.host.api",
                            "virtio_ovs.ovsdb.host.impl",
                            "virtio_ovs.ovsdb.nb.api",
                            "virtio_ovs.ovsdb.nb.impl",
                            "virtio_ovs.ovsdb.connection") \
                or not name.startswith(("virtio_ovs.ovsdb", "ovs.db")), \
                f"{path.relative_to(PKG)} imports {name}"
