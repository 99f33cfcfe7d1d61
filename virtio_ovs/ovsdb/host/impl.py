"""HostDb on the python-ovs IDL: thin glue over the commands and the cache."""
from __future__ import annotations

import contextlib
import json
import logging
from typing import Callable, Iterable, Iterator, Sequence

from virtio_ovs.core.plug_request import EXT_IFACE_ID, EXT_MIGRATION, Vif
from virtio_ovs.core.errors import OvsdbTimeout, VirtioOvsError
from virtio_ovs.core.migration import INCOMING_PREFIX, parse_incoming
from virtio_ovs.core.outcomes import Committed, PlugOutcome, UnplugOutcome
from virtio_ovs.core.networks import (NET_KEY_PREFIX, Network,
                                      parse_networks, read_networks)
from virtio_ovs.core import records
from virtio_ovs.core.records import Invalid
from virtio_ovs.core.port import GuestPort
from virtio_ovs.core.secgroups import (SG_KEY_PREFIX, Rule, SecurityGroup,
                                       parse_groups, read_groups)
from virtio_ovs.ovsdb.connection import Connection, Deadline
from virtio_ovs.ovsdb.host import commands, net_commands as nc
from virtio_ovs.ovsdb.host import sg_commands as sg
from virtio_ovs.ovsdb.host.api import BridgeSpec, HostDb
from virtio_ovs.ovsdb.host.cache import StateCache, guest_port_of_row
from virtio_ovs.ovsdb.host.views import (DbView, map_of, tables,
                                         the_open_vswitch)
from virtio_ovs.ovsdb.host.vswitchd import (increment_next_cfg, raise_refused,
                                            wait_applied)
from virtio_ovs.ovsdb.transaction import (ADDED, UNCHANGED, UPDATED, Commit,
                                          TxnContext, transact)

LOG = logging.getLogger(__name__)
OVN_INSTALLED = "ovn-installed"
WIRING_KEYS = (NET_KEY_PREFIX, SG_KEY_PREFIX, INCOMING_PREFIX)  # of Open_vSwitch:external_ids
# Statistics are replicated only by a short-lived connection.
COUNTER_TABLES = {"Interface": ("name", "type", "status", "statistics")}


class IdlHostDb(HostDb):
    """``is_tap(name)``: does the kernel know ``name`` as a TUN/TAP (the
    plug adapter's probe; the read model needs it for ``kind``)."""

    def __init__(self, remote: str, timeout: float,
                 is_tap: Callable[[str], bool], lock_name: str | None = None,
                 link_status: bool = True):
        """``link_status``: replicate the columns ovs-vswitchd keeps the
        link's state in (views.LINK_STATUS); a plug needs none of them."""
        self.remote = remote
        self.timeout = timeout
        self.conn = Connection(remote, timeout, tables(link_status),
                               lock_name=lock_name)
        self.cache = StateCache(self.conn, is_tap)

    # ------------------------------------------------------------ helpers
    def _deadline(self) -> Deadline:
        return Deadline(self.timeout)

    def commit(self, *cmds, wait: bool = False) -> list[str]:
        return self._transact(list(cmds), wait=wait).outcomes

    def _transact(self, cmds: list, deadline: Deadline | None = None,
                  wait: bool = False) -> Commit:
        deadline = deadline or self._deadline()
        self.conn.start(deadline)
        commit = transact(self.conn, cmds, deadline, self._context,
                          increment_next_cfg if wait else None)
        if wait and commit.committed:
            raise_refused(wait_applied(self.conn, commit, deadline))
        return commit

    def _context(self, txn) -> commands.HostTxnContext:
        return commands.HostTxnContext(txn, DbView(self.conn))

    def _take_in(self) -> None:
        """Bring the cache up to what the server sent so far (no round
        trip)."""
        self.conn.start()
        self.conn.run()
        self.cache.refresh()

    def _guest_ports(self) -> list[tuple[object, GuestPort]]:
        self._take_in()
        return self.cache.guest_ports()

    # -------------------------------------------------------------- ports
    def validate_plug(self, vifs: Iterable[Vif], local_vlans: bool = True
                   ) -> list[str]:
        self.conn.start()
        view = DbView(self.conn)
        return [vif.port_id for vif in vifs if commands.PlugVif(
            vif, local_vlans=local_vlans).validate(view) == ADDED]

    def plug(self, vifs: Iterable[Vif], outcome: PlugOutcome,
             wait: bool = True, created_taps: frozenset[str] = frozenset(),
             local_vlans: bool = True) -> PlugOutcome:
        deadline = self._deadline()
        self.conn.start(deadline)
        vifs = list(vifs)
        cmds = [commands.PlugVif(vif, vif.name in created_taps, local_vlans)
                for vif in vifs]
        try:
            commit = transact(self.conn, cmds, deadline, self._context,
                              increment_next_cfg if wait else None)
        except OvsdbTimeout as exc:  # the commit's answer may be lost
            outcome.committed = self._read_back_plug(vifs)
            raise exc.with_detail(_PLUG_READ_BACK[outcome.committed]) \
                from None
        outcome.committed = Committed.of(commit.committed)
        outcome.new_ports = commit.inserted_uuids("Port")
        for vif, result in zip(vifs, commit.outcomes):
            {ADDED: outcome.plugged, UPDATED: outcome.updated,
             UNCHANGED: outcome.unchanged}[result].append(vif.port_id)
        if wait and commit.committed:
            try:
                outcome.refused = wait_applied(self.conn, commit, deadline)
            except OvsdbTimeout as exc:
                raise exc.with_detail("the plug is committed; ovs-vswitchd "
                                      "has not confirmed it yet") from None
            raise_refused(outcome.refused)
        return outcome

    def _read_back_plug(self, vifs: list[Vif]) -> Committed:
        """Is every VIF in the database as asked, on a new connection?"""
        try:
            found = self._read_back()
        except VirtioOvsError as exc:
            LOG.warning("reading the plug back failed: %s", exc)
            return Committed.UNKNOWN
        return Committed.of(all(found.get(v.port_id) == v.name
                                for v in vifs))

    def _read_back(self) -> dict[str, str]:
        """iface-id -> Interface name, on a new connection."""
        with self._fresh({"Interface": ("name", "external_ids")}) as conn:
            return {i.external_ids[EXT_IFACE_ID]: i.name
                    for i in conn.rows("Interface").values()
                    if EXT_IFACE_ID in i.external_ids}

    @contextlib.contextmanager
    def _fresh(self, tables) -> Iterator[Connection]:
        """A short-lived connection replicating ``tables`` only."""
        conn = Connection(self.remote, self.timeout, tables)
        try:
            conn.start()
            yield conn
        finally:
            conn.close()

    def devices_in_use(self, names: Iterable[str]) -> set[str]:
        with self._fresh({"Interface": ("name",)}) as conn:
            used = {i.name for i in conn.rows("Interface").values()}
        return used & set(names)

    def wait_gated(self, port_ids: Iterable[str]) -> None:
        """Until the agent has gated and wired each port, arriving by live
        migration (its record ``SRC -> HERE``: core.migration)."""
        self._wait_ids(port_ids, lambda ids: " -> " in ids.get(
            EXT_MIGRATION, "") and ": " not in ids.get(EXT_MIGRATION, ""),
            "the agent", "to gate", "is virtio-ovs-agent running?")

    def wait_ovn_installed(self, port_ids: Iterable[str]) -> None:
        self._wait_ids(port_ids, lambda ids: ids.get(OVN_INSTALLED) == "true",
                       "ovn-controller", "to install",
                       "is ovn-controller running, and is the port's logical "
                       "switch port in the northbound database?")

    def _wait_ids(self, port_ids: Iterable[str], ready, who: str, what: str,
                  hint: str) -> None:
        """Until ``ready(external_ids)`` holds for each port's Interface;
        OvsdbTimeout naming ``who`` and the ports still waited for."""
        deadline = self._deadline()
        self.conn.start(deadline)
        wanted = set(port_ids)
        missing = sorted(wanted)

        def done() -> bool:
            view = DbView(self.conn)
            missing[:] = sorted(
                p for p in wanted if (i := view.ifaces_by_id.get(p)) is None
                or not ready(i.external_ids))
            return not missing

        try:
            self.conn.wait_for(done, deadline, who)
        except OvsdbTimeout:
            raise OvsdbTimeout(
                f"timed out after {deadline.seconds:g} s waiting for "
                f"{who} {what} {', '.join(missing[:5])}"
                f"{' ...' if len(missing) > 5 else ''} ({hint})") from None

    def controller_of(self, bridge: str) -> str | None:
        self.conn.start()
        view = DbView(self.conn)
        ids = view.open_vswitch.external_ids
        ovn_bridge = ids.get("ovn-bridge") or (
            "br-int" if "ovn-remote" in ids else None)
        if ovn_bridge == bridge:
            return (f"ovn-controller (Open_vSwitch external_ids:ovn-bridge="
                    f"{bridge}, ovn-remote={ids.get('ovn-remote', '-')})")
        row = view.bridges_by_name.get(bridge)
        if row is not None and row.controller:
            targets = ", ".join(sorted(c.target for c in row.controller))
            return f"an OpenFlow controller ({targets})"
        return None

    def bridge_names(self) -> set[str]:
        self.conn.start()
        return set(DbView(self.conn).bridges_by_name)

    def remove_ports(self, outcome: PlugOutcome) -> None:
        self._transact([commands.DeletePorts(outcome.new_ports)])

    def unplug(self, port_ids: Sequence[str], if_exists: bool = False,
               wait: bool = True, outcome: UnplugOutcome | None = None
               ) -> UnplugOutcome:
        outcome = UnplugOutcome() if outcome is None else outcome
        deadline = self._deadline()
        outcome.ports = self._get_ports(port_ids)  # as they were
        try:
            commit = transact(self.conn, [commands.UnplugVif(p, if_exists)
                                          for p in port_ids],
                              deadline, self._context,
                              increment_next_cfg if wait else None)
        except OvsdbTimeout as exc:  # the commit's answer may be lost
            outcome.committed = self._read_back_unplug(port_ids)
            raise exc.with_detail(_UNPLUG_READ_BACK[outcome.committed]) \
                from None
        # Applied (or nothing was there to remove), unless a dry run.
        outcome.committed = Committed.of(not self.conn.dry_run)
        if wait and commit.committed:
            try:
                raise_refused(wait_applied(self.conn, commit, deadline))
            except OvsdbTimeout as exc:
                raise exc.with_detail("the ports are removed; ovs-vswitchd "
                                      "has not confirmed it") from None
        return outcome

    def _read_back_unplug(self, port_ids: Sequence[str]) -> Committed:
        try:
            found = self._read_back()
        except VirtioOvsError as exc:
            LOG.warning("reading the unplug back failed: %s", exc)
            return Committed.UNKNOWN
        return Committed.of(not any(p in found for p in port_ids))

    def list_ports(self) -> list[GuestPort]:
        return [port for _, port in self._guest_ports()]

    def wiring_version(self) -> int:
        self._take_in()  # not guest_ports(): it sorts and copies them all
        ids = map_of(the_open_vswitch(self.conn), "external_ids")
        return self.cache.wiring_version(
            {k: v for k, v in ids.items() if k.startswith(WIRING_KEYS)})

    def get_port(self, port_id: str) -> GuestPort | None:
        ports = self._get_ports([port_id])
        return ports[0] if ports else None

    def _get_ports(self, port_ids: Sequence[str]) -> list[GuestPort]:
        """The existing ones of ``port_ids``, from one view."""
        self.conn.start()
        self.conn.run()
        view = DbView(self.conn)
        ifaces = [i for i in map(view.ifaces_by_id.get, port_ids) if i]
        return [guest_port_of_row(i, view, self.cache.is_tap) for i in ifaces]

    # ----------------------------------------------------------- networks
    def create_network(self, name, net_type, physnet, segment, mappings):
        command = nc.CreateNetwork(name, net_type, physnet, segment, mappings)
        self._transact([command])
        assert command.network is not None
        return command.network

    def delete_network(self, name: str) -> None:
        self._transact([nc.DeleteNetwork(name)])

    def list_networks(self) -> list[Network]:
        nets = self.networks()
        return [nets[name] for name in sorted(nets)]

    def bind_port(self, port_id, network, ips, local_vlans=True) -> bool:
        commit = self._transact([nc.BindPort(port_id, network, ips,
                                             local_vlans)])
        return commit.outcomes[0] != UNCHANGED

    # ---------------------------------------------------- security groups
    def create_group(self, name: str) -> SecurityGroup:
        command = sg.CreateGroup(name)
        self._transact([command])
        assert command.group is not None
        return command.group

    def delete_group(self, name: str) -> None:
        self._transact([sg.DeleteGroup(name)])

    def list_groups(self) -> list[SecurityGroup]:
        groups = self.groups()
        return [groups[name] for name in sorted(groups)]

    def add_rule(self, group: str, rule: Rule) -> bool:
        return self._transact([sg.AddRule(group, rule)]).outcomes[0] != \
            UNCHANGED

    def delete_rule(self, group: str, rule_id: str) -> None:
        self._transact([sg.DeleteRule(group, rule_id)])

    def set_port_groups(self, port_id, names, check=True) -> bool:
        commit = self._transact([sg.SetPortGroups(port_id, names, check)])
        return commit.outcomes[0] != UNCHANGED

    def groups(self) -> dict[str, SecurityGroup]:
        self.conn.start()
        return parse_groups(the_open_vswitch(self.conn).external_ids)

    # -------------------------------------------------------------- agent
    def agent_status(self) -> dict | None:
        return self._agent_record(nc.AGENT_KEY)

    def _agent_record(self, key: str) -> dict | None:
        """A valid record, else None (``invalid_records`` says why)."""
        self.conn.start()
        return records.read_agent_record(
            the_open_vswitch(self.conn).external_ids, key)[0]

    def write_agent_status(self, status: dict) -> None:
        self._transact([nc.WriteAgentStatus(json.dumps(status,
                                                       sort_keys=True))])

    def standby_status(self) -> dict | None:
        return self._agent_record(nc.STANDBY_KEY)

    def write_standby_status(self, status: dict | None) -> None:
        text = json.dumps(status, sort_keys=True) if status else None
        with self._fresh({"Open_vSwitch": ("external_ids",)}) as conn:
            transact(conn, [nc.WriteAgentStatus(text, nc.STANDBY_KEY)],
                     Deadline(self.timeout),
                     lambda txn: TxnContext(txn, DbView(conn)))

    @property
    def lock_state(self) -> str:
        return self.conn.lock_state

    def provider_problems(self, spec: BridgeSpec) -> dict[str, str]:
        self.conn.start()
        bridges = DbView(self.conn).bridges_by_name
        problems = {physnet: nc.provider_problem(bridges.get(bridge), bridge,
                                                 spec.datapath_type)
                    for physnet, bridge in spec.mappings.items()}
        return {p: why for p, why in problems.items() if why is not None}

    def ensure_bridges(self, spec: BridgeSpec, connect: bool) -> bool:
        protocols = list(spec.protocols)
        cmds: list = [nc.EnsureBridge(spec.integration_bridge,
                                      spec.datapath_type, protocols)]
        for physnet, bridge in sorted(spec.mappings.items()):
            cmds += nc.provider_commands(spec, physnet, bridge, connect)
        commit = self._transact(cmds, wait=True)
        return any(o != UNCHANGED for o in commit.outcomes)

    def record_verdicts(self, verdicts) -> None:
        self._transact([nc.RecordVerdicts(verdicts)])

    def record_migrations(self, records) -> None:
        self._transact([nc.RecordMigrations(records)])

    def incoming(self) -> dict[str, str]:
        self.conn.start()
        return parse_incoming(the_open_vswitch(self.conn).external_ids)

    def set_incoming(self, records) -> None:
        self._transact([nc.SetIncoming(records)])

    def chassis_name(self) -> str | None:
        self.conn.start()
        return the_open_vswitch(self.conn).external_ids.get("system-id")

    def ovn_remote(self) -> str | None:
        self.conn.start()
        return the_open_vswitch(self.conn).external_ids.get("ovn-remote")

    def networks(self) -> dict[str, Network]:
        self.conn.start()
        return parse_networks(the_open_vswitch(self.conn).external_ids)

    def invalid_records(self) -> list[Invalid]:
        self.conn.start()
        ids = the_open_vswitch(self.conn).external_ids
        agents = [bad for key in (nc.AGENT_KEY, nc.STANDBY_KEY)
                  if (bad := records.read_agent_record(ids, key)[1])]
        return read_networks(ids)[1] + read_groups(ids)[1] + agents

    def ofports(self, names: set[str]) -> dict[str, int]:
        self.conn.start()
        self.cache.refresh()
        return self.cache.ofports(names)

    # ----------------------------------------------------------- evidence
    def vhost_user_counters(self) -> dict[str, tuple[dict, dict]]:
        with self._fresh(COUNTER_TABLES) as conn:
            return {i.name: (dict(i.status), dict(i.statistics))
                    for i in conn.rows("Interface").values()
                    if i.type.startswith("dpdkvhostuser")}

    # --------------------------------------------------------- event loop
    def start(self, cancelled: Callable[[], bool] | None = None) -> None:
        self.conn.start(Deadline(self.timeout, cancelled))

    def run(self) -> None:
        self.conn.run()

    @property
    def seqno(self) -> int:
        return self.conn.idl.change_seqno

    def register_wakeup(self, poller) -> None:
        self.conn.idl.wait(poller)

    def close(self) -> None:
        self.conn.close()


_PLUG_READ_BACK = {
    Committed.YES: "read back from OVSDB: the plug was committed",
    Committed.NO: "read back from OVSDB: the plug was not committed",
    Committed.UNKNOWN: "OVSDB cannot say whether the plug was committed; "
    "TAPs it created stay (marked: 'virtio-ovs-ctl gc' removes those no "
    "port uses)"}
_UNPLUG_READ_BACK = {
    Committed.YES: "read back from OVSDB: the unplug was committed",
    Committed.NO: "read back from OVSDB: the unplug was not committed",
    Committed.UNKNOWN: "OVSDB cannot say whether the unplug was committed"}
