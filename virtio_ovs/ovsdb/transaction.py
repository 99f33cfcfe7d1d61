"""Run commands in one OVSDB transaction, ovs-vsctl style. Any database.

A command is an object with ``run_idl(ctx) -> outcome``: it reads the
replica through ``ctx.view``, raises UserError on anything the database
rules out, and stages its writes in ``ctx.txn``. Each attempt builds a
fresh transaction from the current replica; TRY_AGAIN (a verified column
changed under us) waits for the replica to change and rebuilds.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import logging
from typing import Callable, Mapping, Sequence

from ovs.db.idl import Transaction

from virtio_ovs.core.errors import EnvironmentFailure, OvsdbTimeout
from virtio_ovs.ovsdb.connection import Connection, Deadline

LOG = logging.getLogger(__name__)
ADDED, UPDATED, UNCHANGED = "added", "updated", "unchanged"
_TXN_IDS = itertools.count(1)  # numbers this process's transactions in logs


class TxnContext:
    """The transaction being built, the view it reads, what it inserted."""

    def __init__(self, txn: Transaction, view):
        self.txn = txn
        self.view = view
        self.inserted: dict[str, list] = {}

    def insert(self, table: str):
        row = self.txn.insert(self.view.conn.idl.tables[table])
        self.inserted.setdefault(table, []).append(row)
        return row


@dataclasses.dataclass
class Commit:
    """What one transaction did. ``committed`` is True once the server has
    applied it, and then stays True whatever happens next."""

    outcomes: list[str]
    committed: bool
    ctx: TxnContext | None = None

    def inserted_uuids(self, table: str) -> list:
        """Permanent uuids of the rows of ``table`` this commit inserted."""
        if not self.committed or self.ctx is None:
            return []
        return [self.ctx.txn.get_insert_uuid(row.uuid)
                for row in self.ctx.inserted.get(table, [])]


def transact(conn: Connection, commands: Sequence, deadline: Deadline,
             make_context: Callable[[Transaction], TxnContext],
             prepare: Callable[[TxnContext], None] | None = None) -> Commit:
    """Stage every command in one transaction and commit it.

    Nothing is sent when every command is UNCHANGED. ``prepare(ctx)`` runs
    just before a commit (e.g. to increment ``next_cfg``). On a connection
    opened for a dry run (``conn.dry_run``), every check runs and nothing
    is sent: the outcomes say what would have been written.
    """
    txn_id = next(_TXN_IDS)
    names = ",".join(type(c).__name__ for c in commands[:8]) + \
        (f",+{len(commands) - 8}" if len(commands) > 8 else "")
    for attempt in itertools.count(1):
        seqno = conn.idl.change_seqno
        ctx = make_context(Transaction(conn.idl))
        try:
            outcomes = [command.run_idl(ctx) for command in commands]
        except BaseException as exc:
            ctx.txn.abort()
            LOG.debug("txn %d (%s) attempt %d: not sent (%s)", txn_id, names,
                      attempt, type(exc).__name__)
            raise
        if all(outcome == UNCHANGED for outcome in outcomes):
            ctx.txn.abort()
            LOG.debug("txn %d (%s): unchanged, not sent", txn_id, names)
            return Commit(outcomes, committed=False)
        if conn.dry_run:
            ctx.txn.abort()
            LOG.debug("txn %d (%s): dry run, not sent: %s", txn_id, names,
                      outcomes)
            return Commit(outcomes, committed=False)
        if prepare is not None:
            try:
                prepare(ctx)
            except BaseException:
                ctx.txn.abort()
                raise
        status = _commit(conn, ctx.txn, deadline)
        LOG.debug("txn %d (%s) attempt %d on %s: %s", txn_id, names, attempt,
                  conn.remote, status)
        if status == Transaction.TRY_AGAIN:
            conn.wait_for(lambda: conn.idl.change_seqno != seqno, deadline,
                          "the database to change before retrying")
            continue
        if status == Transaction.NOT_LOCKED:
            raise EnvironmentFailure("OVSDB refused the transaction: another "
                                     "client holds this connection's lock")
        if status not in (Transaction.SUCCESS, Transaction.UNCHANGED):
            raise EnvironmentFailure("OVSDB refused the transaction: "
                                     + error_text(ctx.txn.get_error()))
        return Commit(outcomes, committed=status == Transaction.SUCCESS,
                      ctx=ctx)
    raise AssertionError("unreachable")


def update_map(row, column: str, wanted: Mapping[str, str | None]) -> bool:
    """Set (or, for None, remove) the keys of a map column that differ, as
    mutations (concurrent writers of other keys keep theirs); True if any
    did."""
    changed = False
    current = getattr(row, column)
    for key, value in wanted.items():
        if current.get(key) == value:
            continue
        changed = True
        if value is None:
            row.delkey(column, key)
        else:
            row.setkey(column, key, value)
    return changed


def error_text(error: str | None) -> str:
    """An OVSDB error, '{"error":..., "details":...}', as one line."""
    try:
        data = json.loads(error or "")
    except ValueError:
        return " ".join((error or "unknown error").split())
    if not isinstance(data, dict):
        return " ".join(str(data).split())
    parts = [str(data.get(k)) for k in ("error", "details") if data.get(k)]
    return " ".join(": ".join(parts).split()) or "unknown error"


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
