"""Waiting for ovs-vswitchd to apply a committed change.

A write that increments ``next_cfg`` is applied once ovs-vswitchd has
copied it to ``cur_cfg``; a new Interface is settled once it has an ofport
or an ``error``.
"""
from __future__ import annotations

from virtio_ovs.core.errors import VswitchdError
from virtio_ovs.core.networks import NONEXISTENT_PEER
from virtio_ovs.core.port import valid_ofport
from virtio_ovs.ovsdb.connection import Connection, Deadline
from virtio_ovs.ovsdb.host.views import (map_value, optional_of, scalar,
                                         string_of, the_open_vswitch)
from virtio_ovs.ovsdb.transaction import Commit


def increment_next_cfg(ctx) -> None:
    """``prepare`` hook of a transaction that ovs-vswitchd must apply."""
    the_open_vswitch(ctx.view.conn).increment("next_cfg")


def wait_applied(conn: Connection, commit: Commit, deadline: Deadline
                 ) -> dict[str, str]:
    """Wait until ovs-vswitchd has applied ``commit`` (which incremented
    next_cfg) and each Interface it inserted is settled. Returns the
    refused ones: name -> ovs-vswitchd's error."""
    next_cfg = commit.ctx.txn.get_increment_new_value()
    iface_uuids = commit.inserted_uuids("Interface")
    rows = conn.rows("Interface")
    ovs_row = the_open_vswitch(conn)

    def applied() -> bool:
        if scalar(ovs_row.cur_cfg) < next_cfg:
            return False
        return all(_settled(rows.get(uuid)) for uuid in iface_uuids)

    conn.wait_for(applied, deadline, f"ovs-vswitchd to apply the change "
                  f"(cur_cfg to reach {next_cfg}); is ovs-vswitchd running?")
    refused = {}
    for uuid in iface_uuids:
        iface = rows.get(uuid)
        if iface is None or _unjoined_patch(iface):
            continue
        error = optional_of(iface, "error")
        if error or valid_ofport(optional_of(iface, "ofport")) is None:
            refused[string_of(iface, "name")] = error or "no OpenFlow port"
    return refused


# Read through views' accessors, not the rows' attributes (which convert
# the whole column on each access): these run over every inserted row.
def _unjoined_patch(iface) -> bool:
    """A patch port made with a peer that does not exist on purpose: OVS
    numbers it and says "No usable peer" until the agent joins it."""
    return string_of(iface, "type") == "patch" and \
        map_value(iface, "options", "peer") == NONEXISTENT_PEER


def _settled(iface) -> bool:
    """Gone (deleted by someone), numbered, or refused."""
    return iface is None or optional_of(iface, "ofport") is not None or \
        bool(optional_of(iface, "error"))


def raise_refused(refused: dict[str, str]) -> None:
    if refused:
        name, error = sorted(refused.items())[0]
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        raise VswitchdError(f"ovs-vswitchd refused {name}: {error}{more}")
