"""Run commands in one OVSDB transaction, ovs-vsctl style.

Each attempt builds a fresh transaction from the current replica; TRY_AGAIN
waits for the replica to change and rebuilds. With ``wait``, the
transaction increments ``next_cfg`` and returns only once ovs-vswitchd has
caught up (``cur_cfg``) and every inserted Interface has an ofport or an
error.
"""
from __future__ import annotations

import dataclasses

from ovs.db.idl import Transaction

from virtio_ovs.errors import EnvironmentFailure, OvsdbTimeout, VswitchdError
from virtio_ovs.ovsdb.commands import UNCHANGED, TxnContext
from virtio_ovs.ovsdb.connection import Connection, Deadline
from virtio_ovs.ovsdb.views import DbView, optional, scalar


@dataclasses.dataclass
class TxnResult:
    outcomes: list[str]
    new_port_uuids: list
    failed_interfaces: dict[str, str]  # name -> ovs-vswitchd's error


def run_commands(conn: Connection, commands: list, deadline: Deadline,
                 wait: bool = True) -> TxnResult:
    while True:
        seqno = conn.idl.change_seqno
        ctx = TxnContext(Transaction(conn.idl), DbView(conn))
        try:
            outcomes = [command.run_idl(ctx) for command in commands]
        except BaseException:
            ctx.txn.abort()
            raise
        if all(outcome == UNCHANGED for outcome in outcomes):
            ctx.txn.abort()
            return TxnResult(outcomes, [], {})
        if wait:
            conn.the_open_vswitch().increment("next_cfg")
        status = _commit(conn, ctx.txn, deadline)
        if status == Transaction.TRY_AGAIN:
            conn.wait_for(lambda: conn.idl.change_seqno != seqno, deadline,
                          "the database to change before retrying")
            continue
        if status not in (Transaction.SUCCESS, Transaction.UNCHANGED):
            raise EnvironmentFailure(f"OVSDB transaction failed: "
                                     f"{ctx.txn.get_error()}")
        break
    new_ifaces = [ctx.txn.get_insert_uuid(row.uuid) for row in ctx.new_interfaces]
    new_ports = [ctx.txn.get_insert_uuid(row.uuid) for row in ctx.new_ports]
    failed: dict[str, str] = {}
    if wait and status == Transaction.SUCCESS:
        failed = _wait_for_vswitchd(conn, ctx.txn.get_increment_new_value(),
                                    new_ifaces, deadline)
    return TxnResult(outcomes, new_ports, failed)


def _commit(conn: Connection, txn: Transaction, deadline: Deadline) -> int:
    status = txn.commit()
    while status == Transaction.INCOMPLETE:
        if deadline.expired():
            txn.abort()
            raise OvsdbTimeout(f"OVSDB did not answer the transaction within "
                               f"{deadline.seconds:g} s")
        conn.block(min(200, deadline.remaining_ms()), extra_wait=txn.wait)
        conn.idl.run()
        status = txn.commit()
    return status


def _wait_for_vswitchd(conn: Connection, next_cfg: int, iface_uuids: list,
                       deadline: Deadline) -> dict[str, str]:
    rows = conn.rows("Interface")
    ovs_row = conn.the_open_vswitch()

    def applied() -> bool:
        if scalar(ovs_row.cur_cfg) < next_cfg:
            return False
        return all(_iface_settled(rows.get(uuid)) for uuid in iface_uuids)

    try:
        conn.wait_for(applied, deadline, f"ovs-vswitchd to apply the change "
                      f"(cur_cfg to reach {next_cfg}); is ovs-vswitchd running?")
    except OvsdbTimeout as exc:
        exc.committed = True  # the database has the change: keep its TAPs
        raise
    failed = {}
    for uuid in iface_uuids:
        iface = rows.get(uuid)
        if iface is None:
            continue
        if iface.error or optional(iface.ofport) in (None, -1):
            failed[iface.name] = optional(iface.error) or "no OpenFlow port"
    return failed


def _iface_settled(iface) -> bool:
    """Gone (deleted by someone), numbered, or refused."""
    return iface is None or bool(iface.ofport) or bool(iface.error)


def raise_vswitchd_errors(failed: dict[str, str]) -> None:
    if failed:
        name, error = sorted(failed.items())[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise VswitchdError(f"ovs-vswitchd refused {name}: {error}{more}")
