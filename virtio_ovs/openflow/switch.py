"""OpenFlow on a bridge, with OpenFlow 1.4 bundles.

Every change to a bridge is one bundle: the switch applies all of it or
none of it. The bridge is reached on its management socket
(``$OVS_RUNDIR/<bridge>.mgmt``), as ovs-ofctl itself does.

Changes go over a connection kept open (``OpenFlowConnection``, messages
from ``ofwire.py``): one round trip, no process start, and no download of
every port's description, which ovs-ofctl does on each call to translate
port names. The first sync (``replace_all``) spreads its bundles over
several connections at once. The canary's dump and the flow count still
use ``ovs-ofctl --no-names``. The integration bridge's kept connection
also takes packet-ins (a live migration's arrival, backend/arrival.py)
and sends port-mods (``set_forwarding``).
"""
from __future__ import annotations

import concurrent.futures
import logging
import re
import signal
import socket
import subprocess
import time
from typing import Iterable, Mapping, Sequence

from virtio_ovs import paths
from virtio_ovs.core.errors import EnvironmentFailure
from virtio_ovs.openflow import wire as ofwire
from virtio_ovs.network.flows import T_CANARY, Flow

LOG = logging.getLogger(__name__)
OFCTL = ("ovs-ofctl", "-O", "OpenFlow14", "--no-names")
# Connections the first sync spreads its bundles over (bench/first_sync.py
# measures the rate against their number).
FIRST_SYNC_CONNECTIONS = 16
PROTOCOLS = ["OpenFlow10", "OpenFlow13", "OpenFlow14"]


class Patience:
    """How many times its usual limit a wait on ovs-vswitchd gets: doubled
    after each timeout (up to 64), halved after a success by those that
    call ``succeeded``. A busy ovs-vswitchd answers late, and retrying
    under a fixed limit below its real pace fails the same way forever."""

    def __init__(self) -> None:
        self.factor = 1

    def timed_out(self) -> None:
        self.factor = min(self.factor * 2, 64)
        LOG.info("ovs-vswitchd is slow to answer: waiting up to %dx the "
                 "usual limit from now on", self.factor)

    def succeeded(self) -> None:
        self.factor = max(1, self.factor // 2)


class OpenFlowConnection:
    """One OpenFlow 1.4 connection to a bridge's management socket, opened
    on first use and reopened once when it broke (ovs-vswitchd restarted).

    It is also the agent's watch on ovs-vswitchd: ``ended`` says the
    connection broke since ``open()`` (a restarted ovs-vswitchd has lost
    every flow), and an echo request (``probe``) that stays unanswered
    (``silent_for``) says ovs-vswitchd is alive but not serving OpenFlow."""

    def __init__(self, bridge: str, timeout: float):
        self.bridge = bridge
        self.path = paths.vswitchd_mgmt_socket(bridge).removeprefix("unix:")
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.ended = False
        # Packet-ins and port-status messages are asked for (on each
        # connect) once ``listen`` was called; they wait in ``packet_ins``
        # and ``port_statuses`` for ``take_packet_ins``/``take_port_statuses``.
        self.listening = False
        self.packet_ins: list[tuple[int, int, int | None, bytes]] = []
        self.port_statuses: list[tuple[int, int, str, str]] = []
        self._buf = b""
        self._xid = 0
        self._probe: tuple[int, float] | None = None  # (xid, sent at)
        self._patience = Patience()  # see bundle()

    def open(self) -> None:
        """Connect now, and watch from now on (``ended`` is reset)."""
        if self.sock is None:
            self._connect(time.monotonic() + self.timeout)
        self.ended = False

    def listen(self) -> None:
        """Receive packet-ins and port-status messages from now on (and
        after any reconnect)."""
        if not self.listening:
            self.listening = True
            if self.sock is not None:
                self.sock.sendall(ofwire.set_config(ofwire.OFPCML_NO_BUFFER,
                                                    self._next_xid()))

    def take_packet_ins(self) -> list[tuple[int, int, int | None, bytes]]:
        """(cookie, table, in_port, frame) of each packet-in received."""
        taken, self.packet_ins = self.packet_ins, []
        return taken

    def take_port_statuses(self) -> list[tuple[int, int, str, str]]:
        """(reason, port number, name, hw_addr) of each port added,
        deleted or modified since the last call (``wire.port_status``)."""
        taken, self.port_statuses = self.port_statuses, []
        return taken

    def probe(self) -> None:
        """Send an echo request, unless one is still unanswered."""
        if self.sock is None or self._probe is not None:
            return
        xid = self._next_xid()
        try:
            self.sock.sendall(ofwire.message(ofwire.OFPT_ECHO_REQUEST, b"",
                                             xid))
        except OSError:
            self._lost()
            return
        self._probe = (xid, time.monotonic())

    def silent_for(self) -> float:
        """Seconds the last echo request has waited for its reply (0 when
        it was answered)."""
        return 0.0 if self._probe is None else \
            time.monotonic() - self._probe[1]

    def _lost(self) -> None:
        self.ended = True
        self.close()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            self._buf = b""
        self._probe = None

    def fileno(self) -> int | None:
        return self.sock.fileno() if self.sock is not None else None

    def service(self) -> None:
        """Handle what ovs-vswitchd sent while idle, without blocking: its
        echo requests are answered (unanswered, it drops the connection
        after two minutes and logs an error); an end closes ours."""
        if self.sock is None:
            return
        try:
            self.sock.setblocking(False)
            while True:
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionResetError
                self._buf += data
        except BlockingIOError:
            pass
        except OSError:
            self._lost()
            return
        try:
            while self._take_message() is not None:
                pass  # nothing else is expected while idle
        except OSError:
            self._lost()

    def _next_xid(self) -> int:
        self._xid = self._xid % 0xfffffff0 + 1
        return self._xid

    def _connect(self, deadline: float) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            raise EnvironmentFailure(f"cannot connect to {self.bridge}'s "
                                     f"OpenFlow socket {self.path}: "
                                     f"{exc.strerror or exc}") from None
        self.sock, self._buf = sock, b""
        sock.sendall(ofwire.message(ofwire.OFPT_HELLO, b"",
                                    self._next_xid()))
        while True:
            version, msg_type, _, _, _ = self._read(deadline)
            if msg_type == ofwire.OFPT_HELLO:
                break
        if version < ofwire.OFP_VERSION:
            self.close()
            raise EnvironmentFailure(f"{self.bridge} does not speak "
                                     "OpenFlow 1.4 (its protocols column)")
        if self.listening:
            sock.sendall(ofwire.set_config(ofwire.OFPCML_NO_BUFFER,
                                           self._next_xid()))

    def _read(self, deadline: float) -> tuple[int, int, int, int, bytes]:
        """The next message: (version, type, length, xid, body); echoes
        are handled on the way."""
        assert self.sock is not None
        while True:
            message = self._take_message()
            if message is not None:
                return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(remaining)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionResetError("closed by ovs-vswitchd")
            self._buf += data

    def _take_message(self) -> tuple[int, int, int, int, bytes] | None:
        """The next whole message already received, without waiting (None
        if there is none): an echo request is answered and an echo reply
        ends the probe, and neither is returned."""
        assert self.sock is not None
        while len(self._buf) >= 8:
            version, msg_type, length, xid = ofwire.parse_header(self._buf)
            if length < 8:
                raise ConnectionResetError("malformed OpenFlow message")
            if len(self._buf) < length:
                return None
            body, self._buf = self._buf[8:length], self._buf[length:]
            if msg_type == ofwire.OFPT_ECHO_REQUEST:
                self.sock.sendall(ofwire.message(ofwire.OFPT_ECHO_REPLY,
                                                 body, xid))
            elif msg_type == ofwire.OFPT_ECHO_REPLY:
                if self._probe is not None and self._probe[0] == xid:
                    self._probe = None
            elif msg_type == ofwire.OFPT_PACKET_IN:
                if self.listening:
                    self.packet_ins.append(ofwire.packet_in(body))
            elif msg_type == ofwire.OFPT_PORT_STATUS:
                if self.listening:
                    self.port_statuses.append(ofwire.port_status(body))
            else:
                return version, msg_type, length, xid, body
        return None

    def bundle(self, build, extra: float = 0.0) -> None:
        """Send one atomic bundle whose messages ``build(bundle_id, xid)``
        returns (called again if the connection had to be reopened), and
        wait for the commit's reply; ``extra``: seconds more than
        ``timeout`` for a large one.

        The wait is ``timeout`` times a patience that doubles after each
        timeout and halves after each success: with 10,000 TAPs on the
        userspace datapath, ovs-vswitchd spent ~9 s of one loop iteration
        reconfiguring for each new port (its "Unreasonably long ... poll
        interval" log), so a fixed 10 s made every plug's bundle time out,
        and each retry recomputed every flow."""
        limit = (self.timeout + extra) * self._patience.factor
        deadline = time.monotonic() + limit
        for attempt in (1, 2):
            try:
                if self.sock is None:
                    self._connect(deadline)
                sent = self._bundle_once(build, deadline)
                self._patience.succeeded()
                LOG.debug("%s: bundle of %d messages committed in %.1f ms",
                          self.bridge, sent, (time.monotonic() - deadline
                                              + limit) * 1000)
                return
            except (ConnectionError, BrokenPipeError) as exc:
                LOG.info("%s: OpenFlow connection lost (%s), attempt %d",
                         self.bridge, exc, attempt)
                self._lost()  # the flows went with the old ovs-vswitchd
                if attempt == 2:
                    raise EnvironmentFailure(
                        f"OpenFlow connection to {self.bridge} lost: {exc}"
                    ) from None
            except (TimeoutError, socket.timeout):
                LOG.warning("%s: no answer to an OpenFlow bundle within "
                            "%g s", self.bridge, limit)
                self.close()  # an uncommitted bundle is discarded with it
                self._patience.timed_out()
                raise EnvironmentFailure(
                    f"{self.bridge} did not answer an OpenFlow bundle within "
                    f"{limit:g} s") from None

    def _bundle_once(self, build, deadline: float) -> int:
        """OPEN, the messages and COMMIT in one write, and the commit's
        reply awaited: one round trip. (With a BARRIER before the COMMIT,
        the commit waited for ovs-vswitchd's next main-loop iteration,
        which for a port that someone else plugged is the whole
        reconfiguration that its promiscuous-mode change causes: ~25 ms
        at 1,000 ports.)

        ovs-vswitchd checks each message as it is added and applies the
        bundle's others if one was refused; what it checks there is
        static (fields, prerequisites, goto forward, sizes), and
        ``wire.flow_mod`` refuses the same before anything is sent. What
        is only known when applying (a full table) fails the whole commit,
        atomically."""
        bundle_id = self._next_xid()
        open_xid = self._next_xid()
        ours = {open_xid}
        data = [ofwire.bundle_control(bundle_id, ofwire.OFPBCT_OPEN_REQUEST,
                                      open_xid)]
        for inner in build(bundle_id, self._next_xid):
            xid = ofwire.parse_header(inner)[3]
            ours.add(xid)
            data.append(ofwire.bundle_add(bundle_id, inner, xid))
        commit_xid = self._next_xid()
        data.append(ofwire.bundle_control(
            bundle_id, ofwire.OFPBCT_COMMIT_REQUEST, commit_xid))
        self._send(b"".join(data), deadline)
        error = self._wait(commit_xid, ofwire.OFPT_BUNDLE_CONTROL, ours,
                           deadline)
        if error:
            raise EnvironmentFailure(f"{self.bridge} refused the flow "
                                     f"bundle: {error}")
        return len(data) - 2

    def request(self, build) -> None:
        """Send the messages ``build(next_xid)`` returns and a barrier, and
        wait for it: EnvironmentFailure if ovs-vswitchd refused one."""
        deadline = time.monotonic() + self.timeout * self._patience.factor
        try:
            if self.sock is None:
                self._connect(deadline)
            messages = build(self._next_xid)
            ours = {ofwire.parse_header(m)[3] for m in messages}
            barrier_xid = self._next_xid()
            self._send(b"".join(messages) + ofwire.message(
                ofwire.OFPT_BARRIER_REQUEST, b"", barrier_xid), deadline)
            error = self._wait(barrier_xid, ofwire.OFPT_BARRIER_REPLY, ours,
                               deadline)
        except (ConnectionError, BrokenPipeError) as exc:
            self._lost()
            raise EnvironmentFailure(f"OpenFlow connection to {self.bridge} "
                                     f"lost: {exc}") from None
        except (TimeoutError, socket.timeout):
            self.close()
            self._patience.timed_out()
            raise EnvironmentFailure(f"{self.bridge} did not answer within "
                                     f"{self.timeout:g} s") from None
        if error:
            raise EnvironmentFailure(f"{self.bridge} refused: {error}")

    def _send(self, data: bytes, deadline: float) -> None:
        assert self.sock is not None
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        self.sock.sendall(data)

    def _wait(self, xid: int, reply_type: int, ours: set[int],
              deadline: float) -> str | None:
        """Read up to the reply ``xid``; the first error about one of
        ``ours`` (None if there was none)."""
        error = None
        while True:
            _, msg_type, _, got, body = self._read(deadline)
            if msg_type == ofwire.OFPT_ERROR and got in ours | {xid}:
                error = error or ofwire.error_text(body)
                if got == xid:
                    return error
            elif msg_type == reply_type and got == xid:
                return error


def spread(chunks: list[list[Flow]], count: int) -> list[list[Flow]]:
    """At most ``count`` lists of about equal size, each chunk whole in
    one of them (largest first, each to the smallest list so far)."""
    bins: list[list[Flow]] = [[] for _ in range(max(1, count))]
    for chunk in sorted(chunks, key=len, reverse=True):
        min(bins, key=len).extend(chunk)
    return [b for b in bins if b]


class OpenFlowBridge:
    def __init__(self, bridge: str, timeout: float = 10.0):
        self.bridge = bridge
        self.target = paths.vswitchd_mgmt_socket(bridge)
        self.timeout = timeout
        self._patience = Patience()  # for ovs-ofctl; never relaxed
        self.conn = OpenFlowConnection(bridge, timeout)

    def close(self) -> None:
        self.conn.close()

    def _ofctl(self, *args: str, stdin: str | None = None) -> str:
        # A busy ovs-vswitchd takes its time over a large bundle: with 5000
        # TAPs on the userspace datapath it staged ~1000 flow mods a second
        # (its main loop polls every port between OpenFlow messages). So a
        # second per 200 flow mods on top, doubled after each timeout: a
        # fixed limit under the real rate made the agent's first sync fail
        # and retry the same way forever.
        flows = (stdin or "").count("\n")
        timeout = max(1, int((self.timeout + flows / 200)
                             * self._patience.factor))
        cmd = [*OFCTL, f"--timeout={timeout}", *args]
        LOG.debug("%s: ovs-ofctl %s (%d flows, %d s limit)", self.bridge,
                  args[0], flows, timeout)
        try:
            proc = subprocess.run(cmd, input=stdin, capture_output=True,
                                  text=True, timeout=timeout + 5)
        except subprocess.TimeoutExpired:
            self._patience.timed_out()
            raise EnvironmentFailure(f"ovs-ofctl {args[0]} {self.bridge} "
                                     f"timed out after {timeout} s") from None
        if proc.returncode == -signal.SIGALRM:  # ovs-ofctl's --timeout
            self._patience.timed_out()
            raise EnvironmentFailure(f"ovs-ofctl {args[0]} {self.bridge} "
                                     f"timed out after {timeout} s")
        if proc.returncode != 0:
            raise EnvironmentFailure(f"ovs-ofctl {args[0]} {self.bridge}: "
                                     f"{proc.stderr.strip()}")
        return proc.stdout

    def apply(self, add: Iterable[Flow], delete: Iterable[Flow],
              cookie: int) -> None:
        """One atomic bundle: strict deletes, then adds (which replace any
        flow with the same match and priority, whatever its cookie)."""
        add, delete = list(add), list(delete)
        if not add and not delete:
            return
        mods = [(f, ofwire.OFPFC_DELETE_STRICT) for f in delete] + \
            [(f, ofwire.OFPFC_ADD) for f in add]

        def build(bundle_id: int, next_xid) -> list[bytes]:
            # Every message is encoded before the bundle's first is sent.
            return [ofwire.flow_mod(f, command, cookie, next_xid())
                    for f, command in mods]
        try:
            self.conn.bundle(build)
        except ValueError as exc:
            raise EnvironmentFailure(f"cannot encode a flow: {exc}") from None

    def replace_all(self, chunks: Sequence[Iterable[Flow]], cookie: int,
                    connections: int = FIRST_SYNC_CONNECTIONS) -> None:
        """Make the bridge's tables exactly the flows of ``chunks``, with
        ``cookie``: each chunk is added whole within one atomic bundle (the
        caller keeps a port's flows in one chunk), the bundles spread over
        up to ``connections`` connections at once; then one bundle deletes
        every flow of another cookie (an earlier run's, anyone else's).

        An add replaces the flow with the same match and priority, so no
        flow the old and new tables share is ever missing; what only the
        old table had goes last. Several connections, because
        ovs-vswitchd reads at most 50 messages per connection per
        main-loop iteration, and an iteration polls every port: ~140 ms at
        10,000 TAPs (shared/research/agent_reaction.md)."""
        bundles = spread([list(c) for c in chunks], connections)
        if len(bundles) == 1:
            self._add_bundle(self.conn, bundles[0], cookie)
        elif bundles:
            with concurrent.futures.ThreadPoolExecutor(len(bundles)) as pool:
                for done in [pool.submit(self._add_on_own_connection, flows,
                                         cookie) for flows in bundles]:
                    done.result()
        self.conn.bundle(lambda bundle_id, next_xid:
                         ofwire.delete_other_cookies(cookie, next_xid))

    def _add_on_own_connection(self, flows: list[Flow], cookie: int) -> None:
        conn = OpenFlowConnection(self.bridge, self.timeout)
        try:
            self._add_bundle(conn, flows, cookie)
        finally:
            conn.close()

    @staticmethod
    def _add_bundle(conn: "OpenFlowConnection", flows: list[Flow],
                    cookie: int) -> None:
        """One bundle of adds; a second per 200 flow mods on top of the
        usual limit, as ovs-vswitchd stages ~1000 a second when busy."""
        def build(bundle_id: int, next_xid) -> list[bytes]:
            return [ofwire.flow_mod(f, ofwire.OFPFC_ADD, cookie, next_xid())
                    for f in flows]
        try:
            conn.bundle(build, extra=len(flows) / 200)
        except ValueError as exc:
            raise EnvironmentFailure(f"cannot encode a flow: {exc}") from None

    def set_forwarding(self, ports: Mapping[int, str], forward: bool
                       ) -> None:
        """ofport -> hw_addr: forward to these ports again, or drop what
        would be forwarded to them (``no-forward``), in one request. Port
        config lives in ovs-vswitchd only: a restart clears it."""
        if ports:
            self.conn.request(lambda next_xid: [
                ofwire.port_mod(ofport, hw_addr, forward, next_xid())
                for ofport, hw_addr in sorted(ports.items())])

    def flow_count(self) -> int:
        """Every flow in the bridge's tables (dump-aggregate)."""
        out = self._ofctl("dump-aggregate", self.target)
        match = re.search(r"flow_count=(\d+)", out)
        if match is None:
            raise EnvironmentFailure(f"ovs-ofctl dump-aggregate {self.bridge}:"
                                     f" no flow_count in {out.strip()!r}")
        return int(match.group(1))

    def has_canary(self, cookie: int) -> bool:
        out = self._ofctl("dump-flows", self.target,
                          f"table={T_CANARY},cookie={cookie:#x}/-1")
        return "actions=drop" in out
