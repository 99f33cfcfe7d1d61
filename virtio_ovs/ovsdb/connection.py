"""The OVSDB connection: one python-ovs IDL, owned by one object.

Every wait here is bounded: each poll gets a timer, and every loop has a
deadline that raises OvsdbTimeout. (A bare ``poller.block()`` was seen to
block forever before the first connection completed.)
"""
from __future__ import annotations

import errno
import logging
import os
import time
from typing import Callable, Mapping

import ovs.db.idl
import ovs.jsonrpc
import ovs.poller
import ovs.stream

from virtio_ovs.core.errors import EnvironmentFailure, OvsdbTimeout
from virtio_ovs.core.validate import split_remotes

LOG = logging.getLogger(__name__)

POLL_SLICE_MS = 200

# table -> columns. Only what we use: the python-ovs JSON parser is pure
# Python, so every replicated column costs time. (python-ovs "readonly"
# columns are not replicated at all, unlike the C IDL's, so none is used.)
Tables = Mapping[str, tuple[str, ...]]

# python-ovs logs nothing unless ovs.vlog.Vlog.init() is called; we never call it.


def json_parser() -> str:
    """"C" when python-ovs parses JSON with its C extension (ovs._json),
    "Python" when with its pure-Python parser (about 20x slower)."""
    import ovs.json
    return "C" if ovs.json.PARSER == ovs.json.PARSER_C else "Python"


def set_ssl_files(private_key: str | None, certificate: str | None,
                  ca_cert: str | None) -> None:
    """ssl: remotes need these, as ovs-vsctl's -p/-c/-C options."""
    for path, setter in ((private_key, ovs.stream.Stream.ssl_set_private_key_file),
                         (certificate, ovs.stream.Stream.ssl_set_certificate_file),
                         (ca_cert, ovs.stream.Stream.ssl_set_ca_cert_file)):
        if path:
            setter(path)


class Deadline:
    """``seconds`` from now, or sooner when ``cancelled()`` says so (an
    agent asked to stop during a start-up wait); every wait checks it at
    least every POLL_SLICE_MS."""

    def __init__(self, seconds: float,
                 cancelled: Callable[[], bool] | None = None):
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.cancelled = cancelled

    def remaining_ms(self) -> int:
        return max(0, int((self.end - time.monotonic()) * 1000))

    def expired(self) -> bool:
        return time.monotonic() >= self.end or (
            self.cancelled is not None and self.cancelled())


def _stream_error_text(remote: str, error: int) -> str:
    return f"cannot connect to {remote}: {os.strerror(error)}"


def fetch_schema(remote: str, db_name: str, deadline: Deadline) -> dict:
    """Ask the server for the schema of ``db_name`` (JSON-RPC get_schema).

    Retries every remote in turn until the deadline, as ovs-vsctl does.
    """
    remotes = split_remotes(remote)
    last_error = "no answer"
    attempt = 0
    while not deadline.expired():
        try:
            return _fetch_schema_once(remotes[attempt % len(remotes)],
                                     db_name, deadline)
        except ConnectionError as exc:
            last_error = str(exc)
        attempt += 1
        if attempt % len(remotes) == 0:
            _sleep_ms(min(POLL_SLICE_MS, deadline.remaining_ms()))
    raise OvsdbTimeout(f"OVSDB {remote} unreachable within "
                       f"{deadline.seconds:g} s ({last_error})")


def _sleep_ms(ms: int) -> None:
    poller = ovs.poller.Poller()
    poller.timer_wait(ms)
    poller.block()


def _fetch_schema_once(remote: str, db_name: str, deadline: Deadline
                       ) -> dict:
    error, stream = ovs.stream.Stream.open(remote)
    if error:
        raise ConnectionError(_stream_error_text(remote, error))
    while True:
        error = stream.connect()
        if error != errno.EAGAIN:
            break
        if deadline.expired():
            stream.close()
            raise ConnectionError(f"connecting to {remote} timed out")
        poller = ovs.poller.Poller()
        stream.run_wait(poller)
        stream.connect_wait(poller)
        poller.timer_wait(min(POLL_SLICE_MS, deadline.remaining_ms()))
        poller.block()
    if error:
        stream.close()
        raise ConnectionError(_stream_error_text(remote, error))
    rpc = ovs.jsonrpc.Connection(stream)
    try:
        request = ovs.jsonrpc.Message.create_request("get_schema", [db_name])
        rpc.send(request)
        while not deadline.expired():
            rpc.run()
            error, msg = rpc.recv()
            if error and error != errno.EAGAIN:
                raise ConnectionError(_stream_error_text(remote, error))
            if msg is not None and msg.id == request.id:
                if msg.type != ovs.jsonrpc.Message.T_REPLY:
                    raise EnvironmentFailure(
                        f"{remote} has no {db_name} database: {msg.error}")
                return msg.result
            poller = ovs.poller.Poller()
            rpc.wait(poller)
            rpc.recv_wait(poller)
            poller.timer_wait(min(POLL_SLICE_MS, deadline.remaining_ms()))
            poller.block()
        raise ConnectionError(f"{remote} did not send its schema")
    finally:
        rpc.close()


class _Idl(ovs.db.idl.Idl):
    """Forwards row notifications to the Connection's listeners."""

    listeners: list[Callable] = []

    def notify(self, event, row, updates=None):
        for listener in self.listeners:
            listener(event, row)


# Reconnection pace with a clustered database. The members answer "not
# leader" until the election after a leader's loss is over (1-2 s here),
# and python-ovs then backs off 1 s, doubling to 8 s: measured with a
# 3-member NB, a connection found the new leader 3-7 s after the old one
# stopped. python-ovs floors the backoff at 1 s; capping it there too
# makes it 2-4 s (the election, then at most 1 s).
FAILOVER_BACKOFF_MS = (1000, 1000)


def quick_failover(idl: ovs.db.idl.Idl) -> None:
    """Retry the members at most 1 s apart (python-ovs has no public
    setting: its session's reconnect FSM, fenced by
    tests/integration/test_python_ovs_fence.py)."""
    idl._session.reconnect.set_backoff(*FAILOVER_BACKOFF_MS)


class Connection:
    """An IDL replica of the tables and columns in ``tables`` of database
    ``db_name``. Owned by one facade object; never shared process-wide."""

    def __init__(self, remote: str, timeout: float, tables: Tables,
                 db_name: str = "Open_vSwitch", lock_name: str | None = None,
                 conditions: dict[str, list] | None = None):
        """``lock_name``: take this OVSDB lock (RFC 7047 "lock"); while
        another client holds it, commits fail with NOT_LOCKED, and every
        commit asserts it (a client that lost the lock cannot write).
        ``conditions``: table -> the rows to replicate from the first
        request on (``Idl.cond_change``; default: every row)."""
        self.conditions = dict(conditions or {})
        self.remote = remote
        self.lock_name = lock_name
        # A dry run (virtio-ovs-ctl --dry-run): transactions are built and
        # checked, never sent (ovsdb/transaction.py).
        self.dry_run = False
        self.db_name = db_name
        self.timeout = timeout
        self._tables = tables
        self._idl: ovs.db.idl.Idl | None = None
        self._listeners: list[Callable] = []

    def add_listener(self, listener: Callable) -> None:
        """``listener(event, row)`` on every row created, updated, deleted."""
        self._listeners.append(listener)

    @property
    def idl(self) -> ovs.db.idl.Idl:
        if self._idl is None:
            self.start()
        assert self._idl is not None
        return self._idl

    def start(self, deadline: Deadline | None = None) -> None:
        """Connect and wait for the first full replica of the tables."""
        if self._idl is not None:
            return
        deadline = deadline or Deadline(self.timeout)
        helper = ovs.db.idl.SchemaHelper(schema_json=fetch_schema(
            self.remote, self.db_name, deadline))
        for table, columns in self._tables.items():
            helper.register_columns(table, list(columns))
        self._idl = _Idl(self.remote, helper)
        for table, condition in self.conditions.items():
            self._idl.cond_change(table, condition)
        if len(split_remotes(self.remote)) > 1:
            quick_failover(self._idl)
        self._idl.listeners = self._listeners
        if self.lock_name:
            self._idl.set_lock(self.lock_name)
        # Not has_ever_connected(): python-ovs counts a granted lock as a
        # change, so with a lock it can turn true before the first replica.
        idl = self._idl
        self.wait_for(lambda: idl.state == idl.IDL_S_MONITORING, deadline,
                      f"the first update from {self.remote}")
        LOG.debug("%s: %s replicated (%s)%s", self.remote, self.db_name,
                  ", ".join(sorted(self._tables)),
                  f", lock {self.lock_name}" if self.lock_name else "")

    @property
    def started(self) -> bool:
        return self._idl is not None

    def close(self) -> None:
        if self._idl is not None:
            self._idl.close()
            self._idl = None

    def run(self) -> bool:
        """Process what the server sent; True when the replica changed."""
        before = self.idl.change_seqno
        self.idl.run()
        return self.idl.change_seqno != before

    def wait_for(self, condition: Callable[[], bool], deadline: Deadline,
                 what: str, extra_wait: Callable | None = None) -> None:
        """Run the IDL until ``condition()`` holds or the deadline passes."""
        idl = self._idl
        assert idl is not None
        while True:
            idl.run()
            if condition():
                return
            if deadline.expired():
                raise OvsdbTimeout(f"timed out after {deadline.seconds:g} s "
                                   f"waiting for {what}")
            self.block(min(POLL_SLICE_MS, deadline.remaining_ms()), extra_wait)

    def block(self, timeout_ms: int, extra_wait: Callable | None = None) -> None:
        """Sleep until the server sends something or ``timeout_ms`` passes."""
        poller = ovs.poller.Poller()
        self.idl.wait(poller)
        if extra_wait is not None:
            extra_wait(poller)
        poller.timer_wait(timeout_ms)
        poller.block()

    @property
    def lock_state(self) -> str:
        """"held" (or no lock needed), "contended" or "pending"."""
        if not self.lock_name or (self._idl and self._idl.has_lock):
            return "held"
        if self._idl and self._idl.is_lock_contended:
            return "contended"
        return "pending"

    def rows(self, table: str) -> dict:
        return self.idl.tables[table].rows


class LoopServed:
    """What an event loop needs of a facade over one ``Connection``
    (``self.conn``), the same for every database: a version that moves
    with the replica, serving what arrived, waking on it, closing."""

    conn: Connection

    @property
    def seqno(self) -> int:
        return self.conn.idl.change_seqno if self.conn.started else 0

    def run(self) -> None:
        if self.conn.started:
            self.conn.run()

    def register_wakeup(self, poller) -> None:
        if self.conn.started:
            self.conn.idl.wait(poller)

    def close(self) -> None:
        self.conn.close()
