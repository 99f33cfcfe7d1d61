"""The layout is the architecture: a pure core, one adapter per outside
system, the backends that compose them, thin faces on top, the test lab
apart. Every import counts, lazy ones (inside functions) included."""
from __future__ import annotations

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
PKG = ROOT / "virtio_ovs"
PURE_STDLIB = {"__future__", "abc", "dataclasses", "enum", "functools",
               "hashlib", "ipaddress", "json", "math", "posixpath", "re",
               "struct", "typing", "zlib"}

# Each top-level unit of virtio_ovs (a subpackage or a module) and its layer.
LAYERS = {
    "core": "pure", "network": "pure",
    "paths": "support", "conf": "support", "logs": "support",
    "endpoint": "support",
    "ovsdb": "adapter", "openflow": "adapter", "kernel": "adapter",
    "check": "adapter", "metrics": "adapter", "ovn_controller": "adapter",
    "backend": "orchestration",
    "agent": "face", "cli": "face",
}
# What each layer may import besides itself.
MAY_IMPORT = {
    "pure": {"pure"},
    "support": {"pure", "support"},
    "adapter": {"pure", "support"},  # never a sibling adapter
    "orchestration": {"pure", "support", "adapter"},
    "face": {"pure", "support", "adapter", "orchestration"},
}
# Modules that must stay free of I/O wherever they live.
PURE_MODULES = [*sorted((PKG / "core").glob("*.py")),
                *sorted((PKG / "network").glob("*.py")),
                PKG / "openflow" / "wire.py"]


def imports(path: pathlib.Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def unit_of(path: pathlib.Path) -> str:
    rel = path.relative_to(PKG).parts
    return rel[0] if len(rel) > 1 else rel[0].removesuffix(".py")


def our_units(path: pathlib.Path) -> set[str]:
    """The units of virtio_ovs that ``path`` imports (not its own)."""
    units = set()
    for name in imports(path):
        parts = name.split(".")
        if parts[0] == "virtio_ovs" and len(parts) > 1 and \
                parts[1] in LAYERS:
            units.add(parts[1])
    return units - {unit_of(path)}


def modules() -> list[pathlib.Path]:
    return sorted(PKG.rglob("*.py"))


def unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {unit: set() for unit in LAYERS}
    for path in modules():
        if unit_of(path) in LAYERS:
            graph[unit_of(path)] |= our_units(path)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def visit(node: str, stack: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt] if nxt in stack \
                    else [node, nxt]
            if nxt not in state:
                found = visit(nxt, stack + [nxt])
                if found:
                    return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_every_unit_has_a_layer():
    units = {unit_of(p) for p in modules()} - {"__init__"}
    assert units <= set(LAYERS), units - set(LAYERS)


def test_the_core_does_no_io():
    for path in PURE_MODULES:
        for name in imports(path):
            parts = name.split(".")
            if parts[0] == "virtio_ovs":
                assert LAYERS.get(parts[1]) == "pure" or \
                    name.startswith("virtio_ovs.openflow.wire"), \
                    f"{path.relative_to(PKG)} imports {name}"
            else:
                assert parts[0] in PURE_STDLIB, \
                    f"{path.relative_to(PKG)} imports {name}"


def test_each_layer_imports_only_the_layers_below_it():
    """And an adapter never imports a sibling adapter: each outside
    system has one adapter, and what composes two is a backend."""
    for path in modules():
        unit = unit_of(path)
        if unit not in LAYERS:
            continue
        layer = LAYERS[unit]
        for other in our_units(path):
            assert LAYERS[other] in MAY_IMPORT[layer] or \
                (layer == "support" and LAYERS[other] == "support"), \
                f"{path.relative_to(PKG)} ({layer}) imports {other} " \
                f"({LAYERS[other]})"


def test_no_import_cycle_between_units():
    cycle = find_cycle(unit_graph())
    assert cycle is None, " -> ".join(cycle or ())


def test_the_cycle_check_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == \
        ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_runtime_code_does_not_import_the_test_lab():
    for path in modules():
        assert not any(n.split(".")[0] == "tests" for n in imports(path)), \
            path.relative_to(PKG)


def test_no_test_harness_command_is_installed():
    setup = (ROOT / "setup.cfg").read_text()
    scripts = setup.split("console_scripts =", 1)[1].split("\n\n")[0]
    targets = re.findall(r"=\s*([\w.]+):", scripts)
    assert targets and all(t.startswith("virtio_ovs.") for t in targets)
    assert not (PKG / "testing").exists()


def test_one_way_into_each_database():
    """Outside ovsdb/, code reaches the host database and the OVN NB and
    SB only through their facades (and their public command types); only
    the facades' own packages touch IDL rows."""
    allowed = ("virtio_ovs.ovsdb.host.api", "virtio_ovs.ovsdb.host.impl",
               "virtio_ovs.ovsdb.nb.api", "virtio_ovs.ovsdb.nb.impl",
               "virtio_ovs.ovsdb.nb.commands",
               "virtio_ovs.ovsdb.nb.sg_commands",
               "virtio_ovs.ovsdb.sb", "virtio_ovs.ovsdb.connection")
    for path in modules():
        if unit_of(path) == "ovsdb":
            continue
        for name in imports(path):
            assert name.startswith(allowed) or \
                not name.startswith(("virtio_ovs.ovsdb", "ovs.db")), \
                f"{path.relative_to(PKG)} imports {name}"


def test_the_readme_layout_table_lists_every_module():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    for path in modules():
        if path.name == "__init__.py":
            continue
        rel = path.relative_to(PKG)
        directory = f"`virtio_ovs/{rel.parent}/`" if rel.parent.parts \
            else "`virtio_ovs/`"
        rows = [line for line in table.splitlines()
                if line.startswith(f"| {directory}")]
        assert any(f"`{path.name}`" in row for row in rows), \
            f"README's Layout table has no {rel}"
