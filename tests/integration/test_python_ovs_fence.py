"""The fence around python-ovs's private attributes.

``ovsdb/host/views.py`` reads a replica row's datum (``row._data``,
checked against ``_changes`` and ``_mutations``) instead of python-ovs's
per-attribute conversion, and ``cache.py`` reads ``row._table``. These
are not python-ovs's API: this test reads every column kind the code reads
both ways, on the python-ovs the project installs, and fails when they
disagree or the fast path is no longer taken.
"""
from __future__ import annotations

import configparser
import pathlib
import re

import ovs.version

from virtio_ovs.ovsdb.host import views
from tests.integration.conftest import plug_every_kind

ROOT = pathlib.Path(__file__).resolve().parents[2]
# (table, column, reader, what python-ovs's attribute gives, normalised)
READS = [
    ("Interface", "name", views.string_of, lambda v: v),
    ("Interface", "type", views.string_of, lambda v: v),
    ("Interface", "external_ids", views.map_of, dict),
    ("Interface", "options", views.map_of, dict),
    ("Interface", "ofport", views.optional_of, views.optional),
    ("Interface", "mtu_request", views.optional_of, views.optional),
    ("Interface", "ofport_request", views.optional_of, views.optional),
    ("Interface", "error", views.optional_of, views.optional),
    ("Interface", "link_state", views.optional_of, views.optional),
    ("Port", "name", views.string_of, lambda v: v),
    ("Port", "tag", views.set_of, sorted),
    ("Port", "vlan_mode", views.set_of, sorted),
    ("Port", "trunks", views.set_of, sorted),
    ("Bridge", "name", views.string_of, lambda v: v),
]
REFS = [("Port", "interfaces"), ("Bridge", "ports")]


def test_every_column_kind_reads_the_same_both_ways(db, ovs):
    plug_every_kind(db, ovs)
    seen = 0
    for table, column, read, attribute in READS:
        for row in db.conn.rows(table).values():
            assert views._datum(row, column) is not None, \
                f"the fast path is not taken for {table}.{column}"
            assert read(row, column) == attribute(getattr(row, column)), \
                (table, column)
            seen += 1
    for table, column in REFS:
        for row in db.conn.rows(table).values():
            assert sorted(views.ref_uuids(row, column)) == \
                sorted(r.uuid for r in getattr(row, column))
    for row in db.conn.rows("Interface").values():
        for key in ("iface-id", "attached-mac", "absent"):
            assert views.map_value(row, "external_ids", key) == \
                row.external_ids.get(key)
        assert row._table.name == "Interface"
    assert seen > len(READS)


def test_a_row_being_changed_is_read_through_its_attributes(db, ovs):
    """A row with a pending change has no usable datum: the readers fall
    back to python-ovs, which applies the change."""
    plug_every_kind(db, ovs)
    from ovs.db.idl import Transaction
    txn = Transaction(db.conn.idl)
    try:
        row = next(i for i in db.conn.rows("Interface").values()
                   if i.name == "tapf1")
        row.setkey("external_ids", "iface-id", "changed")
        assert views._datum(row, "external_ids") is None
        assert views.map_of(row, "external_ids")["iface-id"] == "changed"
        assert views.map_value(row, "external_ids", "iface-id") == "changed"
    finally:
        txn.abort()


def test_get_port_equals_its_entry_in_list_ports(db, ovs):
    plug_every_kind(db, ovs)
    ports = {p.port_id: p for p in db.list_ports()}
    assert set(ports) == {"f1", "f2"}
    for port_id, port in ports.items():
        assert db.get_port(port_id) == port


def test_the_installed_python_ovs_is_inside_the_requirement():
    """The requirement's upper bound is the major version CI runs."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    requirement = next(line for line in cfg["options"]["install_requires"]
                       .split("\n") if line.startswith("ovs"))
    low, high = re.fullmatch(r"ovs>=([\d.]+),<(\d+)", requirement).groups()
    installed = tuple(int(x) for x in ovs.version.VERSION.split(".")[:2])
    assert tuple(int(x) for x in low.split(".")) <= installed
    assert installed[0] == int(high) - 1, \
        f"CI runs python-ovs {ovs.version.VERSION}; bound <{high}"



def test_a_clustered_connection_retries_the_members_at_most_1_s_apart(ovs):
    """``connection.quick_failover`` reaches into python-ovs's session."""
    from virtio_ovs.ovsdb.connection import FAILOVER_BACKOFF_MS, Connection
    conn = Connection(f"{ovs.remote},unix:{ovs.dir}/no-such-member.sock",
                      5.0, {"Open_vSwitch": ("external_ids",)})
    try:
        conn.start()
        fsm = conn.idl._session.reconnect
        assert (fsm.min_backoff, fsm.max_backoff) == FAILOVER_BACKOFF_MS
    finally:
        conn.close()
