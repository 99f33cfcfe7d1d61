"""virtio-ovs-ctl: the ovs-vsctl companion for guest NICs."""
from __future__ import annotations

import argparse
import grp
import json
import os
import pwd
import sys
import time
from typing import Any, Callable, Sequence

from virtio_ovs import model
from virtio_ovs.errors import UserError, VirtioOvsError
from virtio_ovs.networks import TYPES, parse_bridge_mappings

EPILOG = """\
exit codes:
  0  success
  1  user error (bad input, unknown bridge or port; nothing was written)
  2  system error (OVSDB unreachable, timeout, ovs-vswitchd or kernel failure)

The default --db is ovs-vsctl's: unix:$OVS_RUNDIR/db.sock, OVS_RUNDIR
defaulting to /var/run/openvswitch; [ovs] ovsdb_connection in a config file
overrides it, --db overrides both."""

LIST_COLUMNS = ("port_id", "name", "kind", "mac", "vm", "network", "ofport",
                "queues", "status", "verdict")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # user error: exit 1, one line
        self.exit(1, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="virtio-ovs-ctl", epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Plug guest virtio NICs (vhost-net TAPs, "
                     "vhost-user sockets) into Open vSwitch and inspect them.")
    parser.add_argument("--db", metavar="REMOTE",
                        help="OVSDB remote: unix:PATH, tcp:IP:PORT, ssl:IP:PORT")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="give up after SECONDS (default: [ovs] "
                        "ovsdb_timeout, 10)")
    parser.add_argument("--config-file", action="append", metavar="FILE",
                        help="oslo.config file(s), as the agent reads")
    parser.add_argument("--no-wait", action="store_true",
                        help="do not wait for ovs-vswitchd to apply changes")
    parser.add_argument("-p", "--private-key", metavar="FILE")
    parser.add_argument("-c", "--certificate", metavar="FILE")
    parser.add_argument("-C", "--ca-cert", metavar="FILE")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True,
                                  parser_class=_Parser)
    _add_plug(verbs)
    unplug = verbs.add_parser("unplug", help="remove a guest port")
    unplug.add_argument("--port-id", required=True)
    unplug.add_argument("--if-exists", action="store_true")
    listing = verbs.add_parser("list", help="list guest ports")
    _add_format(listing)
    show = verbs.add_parser("show", help="show one guest port")
    show.add_argument("port_id", metavar="PORT_ID")
    _add_format(show)
    _add_network_verbs(verbs)
    return parser


def _add_network_verbs(verbs) -> None:
    create = verbs.add_parser("net-create", help="create a network")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--type", required=True, choices=TYPES)
    create.add_argument("--physnet", metavar="P")
    create.add_argument("--segment", type=int, metavar="ID",
                        help="provider VLAN ID (vlan networks)")
    delete = verbs.add_parser("net-delete", help="delete a network without "
                              "bound ports")
    delete.add_argument("name", metavar="NAME")
    _add_format(verbs.add_parser("net-list", help="list networks"))
    bind = verbs.add_parser("bind", help="bind a guest port to a network")
    bind.add_argument("--port-id", required=True)
    bind.add_argument("--network", required=True, metavar="NET")
    bind.add_argument("--ip", action="append", metavar="CIDR", dest="ips",
                      help="allowed address (repeat); default: keep the "
                      "recorded ones")
    unbind = verbs.add_parser("unbind", help="isolate a guest port again")
    unbind.add_argument("--port-id", required=True)
    _add_format(verbs.add_parser("status", help="the agent's heartbeat"))
    check = verbs.add_parser(
        "check", help="prove each port's data plane bypasses QEMU",
        description="Per port and per queue: bypass, through-qemu, "
        "not-running or unknown, with the evidence. Exit 0 when every checked "
        "port bypasses QEMU with its expected queues, 1 otherwise, 2 on error.")
    check.add_argument("--port-id", action="append", dest="port_ids",
                       metavar="ID")
    check.add_argument("--vm", metavar="ID")
    check.add_argument("--traffic", type=float, metavar="SECONDS", default=0.0,
                       help="sample counters over SECONDS of live traffic")
    check.add_argument("--qmp", metavar="SOCKET",
                       help="the VM's QMP socket (x-query-virtio-status)")
    _add_format(check)


def _add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "json"), default="table")


def _add_plug(verbs) -> None:
    plug = verbs.add_parser(
        "plug", help="plug a TAP or vhost-user port (or many, --from-file)",
        description="Plug one VIF, or every VIF of a JSON Lines file in one "
        "transaction. Keys: " + ", ".join(model.JSON_KEYS) + ".")
    plug.add_argument("--from-file", metavar="FILE",
                      help="JSON Lines, one VIF per line ('-' for stdin)")
    plug.add_argument("--port-id")
    plug.add_argument("--mac")
    device = plug.add_mutually_exclusive_group()
    device.add_argument("--tap", metavar="NAME")
    device.add_argument("--vhost-user", metavar="SOCKET")
    plug.add_argument("--vhost-mode", choices=model.VHOST_MODES,
                      help="OVS's role: client (default, dpdkvhostuserclient; "
                      "QEMU serves SOCKET) or server (dpdkvhostuser)")
    plug.add_argument("--bridge", help="default: [ovs] integration_bridge")
    plug.add_argument("--vm", metavar="ID")
    plug.add_argument("--network", metavar="NET")
    plug.add_argument("--ip", action="append", metavar="CIDR", dest="ips")
    plug.add_argument("--queues", type=int, metavar="N")
    plug.add_argument("--mtu", type=int, metavar="N")
    plug.add_argument("--owner", metavar="USER",
                      help="TAP owner, so an unprivileged QEMU can open it")
    plug.add_argument("--group", metavar="GROUP")
    plug.add_argument("--pmd-rxq-affinity", metavar="Q:CORE,...",
                      help="vhost-user: pin rx queues to PMD cores")


# ---------------------------------------------------------------- helpers

def resolve_ids(owner: Any, group: Any) -> tuple[Any, Any]:
    return (_resolve(owner, "owner", lambda n: pwd.getpwnam(n).pw_uid),
            _resolve(group, "group", lambda n: grp.getgrnam(n).gr_gid))


def _resolve(value: Any, field: str, lookup: Callable[[str], int]) -> Any:
    if not isinstance(value, str):
        return value
    if value.isdigit():
        return int(value)
    try:
        return lookup(value)
    except KeyError:
        raise UserError(field, f"no such {'user' if field == 'owner' else field}"
                        f" {value!r}") from None


def _vifs_from_args(args, default_bridge: str) -> list[model.Vif]:
    if args.from_file:
        single = [o for o in ("port_id", "mac", "tap", "vhost_user", "vm",
                              "network", "ips", "queues", "mtu", "owner",
                              "group", "vhost_mode", "bridge",
                              "pmd_rxq_affinity")
                  if getattr(args, o) is not None]
        if single:
            raise UserError(single[0].replace("_", "-"),
                            "cannot be combined with --from-file")
        return _read_vif_file(args.from_file, default_bridge)
    for required in ("port_id", "mac"):
        if getattr(args, required) is None:
            raise UserError(required.replace("_", "-"), "is required")
    owner, group = resolve_ids(args.owner, args.group)
    return [model.make_vif(
        port_id=args.port_id, mac=args.mac, tap=args.tap,
        vhost_user=args.vhost_user, vhost_mode=args.vhost_mode,
        bridge=args.bridge or default_bridge, vm=args.vm,
        network=args.network, ips=args.ips, queues=args.queues,
        mtu=args.mtu, owner=owner, group=group,
        pmd_rxq_affinity=args.pmd_rxq_affinity)]


def _read_vif_file(path: str, default_bridge: str) -> list[model.Vif]:
    try:
        if path == "-":
            return model.parse_vif_lines(sys.stdin, default_bridge, resolve_ids)
        with open(path, encoding="utf-8") as f:
            return model.parse_vif_lines(f, default_bridge, resolve_ids)
    except UnicodeDecodeError:
        raise UserError("from_file", f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise UserError("from_file", f"cannot read {path}: {exc.strerror}") \
            from None


def _print_table(rows: Sequence[dict], columns: Sequence[str]) -> None:
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, list):
            return ",".join(str(v) for v in value) or "-"
        return str(value)

    table = [[c.upper() for c in columns]]
    table += [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
    for r in table:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


def _print_records(records: list[dict], fmt: str, columns=LIST_COLUMNS) -> None:
    if fmt == "json":
        json.dump(records, sys.stdout, indent=2, sort_keys=True)
        print()
    else:
        _print_table(records, columns)


# ------------------------------------------------------------------ verbs

class Context:
    """What every verb needs: config, the OVSDB API, the plugger."""

    def __init__(self, args):
        from virtio_ovs import conf as conf_mod
        from virtio_ovs.ovsdb.connection import set_ssl_files
        try:
            self.conf = conf_mod.load(args.config_file)
        except Exception as exc:  # oslo raises several config error types
            raise UserError("config-file", str(exc).splitlines()[0]) from None
        ssl_files = {"private-key": args.private_key or self.conf.ovs.ssl_key_file,
                     "certificate": args.certificate or self.conf.ovs.ssl_cert_file,
                     "ca-cert": args.ca_cert or self.conf.ovs.ssl_ca_cert_file}
        self.remote = args.db or conf_mod.ovsdb_remote(self.conf)
        if "ssl:" in self.remote:
            for field, path in ssl_files.items():
                if not path:
                    raise UserError(field, "an ssl: remote needs --private-key,"
                                    " --certificate and --ca-cert (or [ovs] "
                                    "ssl_key_file, ssl_cert_file, "
                                    "ssl_ca_cert_file)")
                if not os.path.isfile(path):
                    raise UserError(field, f"{path} is not a readable file")
        set_ssl_files(*ssl_files.values())
        self.timeout = args.timeout if args.timeout is not None \
            else self.conf.ovs.ovsdb_timeout
        if self.timeout <= 0:
            raise UserError("timeout", "must be a positive number of seconds")
        self.wait = not args.no_wait
        self._api = None

    @property
    def api(self):
        if self._api is None:
            from virtio_ovs.ovsdb.impl_idl import connect
            self._api = connect(self.remote, self.timeout)
        return self._api

    def plugger(self):
        from virtio_ovs.netlink import TapManager
        from virtio_ovs.plug import Plugger
        return Plugger(self.api, TapManager())


def cmd_plug(ctx: Context, args) -> int:
    vifs = _vifs_from_args(args, ctx.conf.ovs.integration_bridge)
    result = ctx.plugger().plug(vifs, wait=ctx.wait)
    print(f"plugged {len(result.plugged)}, updated {len(result.updated)}, "
          f"unchanged {len(result.unchanged)}")
    return 0


def cmd_unplug(ctx: Context, args) -> int:
    record = ctx.plugger().unplug(args.port_id, args.if_exists, wait=ctx.wait)
    print(f"unplugged {record.port_id} ({record.name})" if record
          else f"no port {args.port_id}")
    return 0


def cmd_list(ctx: Context, args) -> int:
    _print_records([r.to_json() for r in ctx.api.list_vifs()], args.format)
    return 0


def cmd_show(ctx: Context, args) -> int:
    record = ctx.api.get_vif(args.port_id)
    if record is None:
        raise UserError("port_id", f"no port with iface-id {args.port_id!r}")
    if args.format == "json":
        json.dump(record.to_json(), sys.stdout, indent=2, sort_keys=True)
        print()
    else:
        for key, value in record.to_json().items():
            print(f"{key:14} {'-' if value is None else value}")
    return 0


def _known_mappings(ctx: Context) -> dict[str, str]:
    """bridge_mappings from the config file and from the running agent."""
    status = ctx.api.agent_status() or {}
    mappings = dict(status.get("bridge_mappings") or {})
    mappings.update(parse_bridge_mappings(ctx.conf.ovs.bridge_mappings))
    return mappings


def cmd_net_create(ctx: Context, args) -> int:
    net = ctx.api.create_network(args.name, args.type, args.physnet,
                                 args.segment, _known_mappings(ctx))
    print(f"created network {net.name} (local VLAN {net.local_vlan})")
    return 0


def cmd_net_delete(ctx: Context, args) -> int:
    ctx.api.delete_network(args.name)
    print(f"deleted network {args.name}")
    return 0


def cmd_net_list(ctx: Context, args) -> int:
    _print_records([n.as_dict() for n in ctx.api.list_networks()], args.format,
                   ("name", "type", "physnet", "segment", "local_vlan"))
    return 0


def cmd_bind(ctx: Context, args) -> int:
    network = model.validate_network(args.network)
    ips = model.validate_ips(args.ips) if args.ips is not None else None
    changed = ctx.api.bind_port(model.validate_port_id(args.port_id), network,
                                ips)
    print(f"{'bound' if changed else 'already bound:'} {args.port_id} to "
          f"{network}")
    return 0


def cmd_unbind(ctx: Context, args) -> int:
    ctx.api.bind_port(model.validate_port_id(args.port_id), None, None)
    print(f"unbound {args.port_id}")
    return 0


def agent_state(status: dict | None, now: float) -> str:
    if not status:
        return "never-ran"
    interval = float(status.get("report_interval") or 30)
    return "down" if now - float(status.get("heartbeat", 0)) > 3 * interval \
        else "up"


def cmd_status(ctx: Context, args) -> int:
    status = ctx.api.agent_status()
    record = dict(status or {})
    record["state"] = agent_state(status, time.time())
    if record.get("heartbeat"):
        record["heartbeat_age"] = round(time.time() - record["heartbeat"], 1)
    if args.format == "json":
        json.dump(record, sys.stdout, indent=2, sort_keys=True)
        print()
    else:
        for key in sorted(record):
            print(f"{key:18} {record[key]}")
    return 0


def _select_ports(ctx: Context, args) -> list:
    records = ctx.api.list_vifs()
    if args.port_ids:
        known = {r.port_id: r for r in records}
        for port_id in args.port_ids:
            if port_id not in known:
                raise UserError("port_id", f"no port with iface-id {port_id!r}")
        records = [known[p] for p in args.port_ids]
    if args.vm:
        records = [r for r in records if r.vm == args.vm]
        if not records:
            raise UserError("vm", f"no port of VM {args.vm!r}")
    return records


def _print_check(reports: list) -> None:
    rows = [{"port_id": r.port_id, "name": r.name, "kind": r.kind,
             "verdict": r.verdict + (" (queues-mismatch)" if r.queues_mismatch
                                     else ""),
             "queues": f"{_q(r.queues_expected)}/{_q(r.queues_enabled)}/"
                       f"{_q(r.queues_configured)}",
             "reason": r.reason} for r in reports]
    _print_table(rows, ("port_id", "name", "kind", "verdict", "queues",
                        "reason"))
    print("(queues: expected/enabled/configured)")
    for report in reports:
        print(f"\n{report.port_id} ({report.name}):")
        for line in report.evidence:
            print(f"  - {line}")
        for queue in report.queues:
            print(f"  queue {queue.index}: {queue.verdict}: {queue.reason}")


def _q(value) -> str:
    return "-" if value is None else str(value)


def cmd_check(ctx: Context, args) -> int:
    if args.traffic < 0 or args.traffic > 3600:
        raise UserError("traffic", "must be 0..3600 seconds")
    from virtio_ovs.check import check_ports
    reports = check_ports(_select_ports(ctx, args), ctx.remote, ctx.timeout,
                          args.traffic, args.qmp)
    if args.format == "json":
        json.dump([r.to_json() for r in reports], sys.stdout, indent=2)
        print()
    else:
        _print_check(reports)
    return 0 if all(r.ok for r in reports) else 1


VERBS = {"check": cmd_check, "plug": cmd_plug, "unplug": cmd_unplug, "list": cmd_list,
         "show": cmd_show, "net-create": cmd_net_create,
         "net-delete": cmd_net_delete, "net-list": cmd_net_list,
         "bind": cmd_bind, "unbind": cmd_unbind, "status": cmd_status}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return VERBS[args.verb](Context(args), args)
    except VirtioOvsError as exc:
        print(f"virtio-ovs-ctl: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("virtio-ovs-ctl: interrupted", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
