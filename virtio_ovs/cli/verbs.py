"""The verbs of virtio-ovs-ctl: each takes the Context and the parsed
arguments and returns the exit code."""
from __future__ import annotations

import gc
import grp
import pwd
import sys
import time
from typing import Any, Callable

from virtio_ovs.cli.context import Context

# check: a port does not bypass QEMU (or lacks queues). Not 1: monitoring
# must tell a data-plane finding from a user error.
EXIT_NOT_BYPASS = 3
from virtio_ovs.cli.sg_verbs import SG_VERBS
from virtio_ovs.cli.output import (LIST_COLUMNS, clean, print_check,
                                   print_invalid, print_json,
                                   print_records, print_write)
from virtio_ovs.core import plug_request
from virtio_ovs.core.errors import UserError
from virtio_ovs.core.events import agent_alive
from virtio_ovs.core.validate import (is_digits, is_utf8, validate_name,
                                      validate_seconds, validate_text)


def resolve_ids(owner: Any, group: Any) -> tuple[Any, Any]:
    return (_resolve(owner, "owner", lambda n: pwd.getpwnam(n).pw_uid),
            _resolve(group, "group", lambda n: grp.getgrnam(n).gr_gid))


def _resolve(value: Any, field: str, lookup: Callable[[str], int]) -> Any:
    if not isinstance(value, str):
        return value
    if is_digits(value):
        return int(value) if len(value) <= 10 else 2**32  # refused later
    if not value or not is_utf8(value) or "\x00" in value:
        raise UserError(field, f"{value!r} is not a user or group name")
    try:
        return lookup(value)
    except KeyError:
        raise UserError(field, f"no such {'user' if field == 'owner' else field}"
                        f" {value!r}") from None


def _vifs_from_args(args, default_bridge: str) -> list[plug_request.Vif]:
    if args.from_file:
        single = [o for o in ("port_id", "mac", "tap", "vhost_user", "vm",
                              "network", "ips", "queues", "mtu", "owner",
                              "group", "vhost_mode", "bridge",
                              "pmd_rxq_affinity", "security_groups",
                              "migrating_from")
                  if getattr(args, o) is not None]
        if single:
            raise UserError(single[0].replace("_", "-"),
                            "cannot be combined with --from-file")
        return _read_vif_file(args.from_file, default_bridge)
    for required in ("port_id", "mac"):
        if getattr(args, required) is None:
            raise UserError(required.replace("_", "-"), "is required")
    owner, group = resolve_ids(args.owner, args.group)
    return [plug_request.make_vif(
        port_id=args.port_id, mac=args.mac, tap=args.tap,
        vhost_user=args.vhost_user, vhost_mode=args.vhost_mode,
        bridge=args.bridge or default_bridge, vm=args.vm,
        network=args.network, ips=args.ips, queues=args.queues,
        mtu=args.mtu, owner=owner, group=group,
        pmd_rxq_affinity=args.pmd_rxq_affinity,
        security_groups=args.security_groups,
        migrating_from=args.migrating_from)]


def _read_vif_file(path: str, default_bridge: str) -> list[plug_request.Vif]:
    try:
        if path == "-":
            return plug_request.parse_vif_lines(sys.stdin, default_bridge, resolve_ids)
        with open(path, encoding="utf-8") as f:
            return plug_request.parse_vif_lines(f, default_bridge, resolve_ids)
    except UnicodeDecodeError:
        raise UserError("from_file", f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise UserError("from_file", f"cannot read {path}: {exc.strerror}") \
            from None


def cmd_plug(ctx: Context, args) -> int:
    vifs = _vifs_from_args(args, ctx.conf.ovs.integration_bridge)
    result = ctx.backend.plug(vifs, wait=ctx.wait)
    return print_write(ctx.dry_run, args.format, result.as_dict(),
                       f"plugged {len(result.plugged)}, updated "
                       f"{len(result.updated)}, unchanged "
                       f"{len(result.unchanged)}")


def cmd_unplug(ctx: Context, args) -> int:
    port_ids = [plug_request.validate_port_id(p) for p in args.port_ids or []]
    if args.vm is not None:
        vm = plug_request.validate_vm(args.vm)
        of_vm = [p.port_id for p in ctx.db.list_ports() if p.vm == vm]
        if not of_vm and not args.if_exists:
            raise UserError("vm", f"no port of VM {vm!r}")
        port_ids += of_vm
    if not port_ids and args.vm is None:
        raise UserError("port-id", "is required (or --vm)")
    port_ids = list(dict.fromkeys(port_ids))
    outcome = ctx.backend.unplug(port_ids, args.if_exists, wait=ctx.wait) \
        if port_ids else None
    records = outcome.ports if outcome else []
    missing = sorted(set(port_ids) - {r.port_id for r in records})
    lines = [f"unplugged {r.port_id} ({r.name})" for r in records] + \
        [f"no port {port_id}" for port_id in missing]
    return print_write(ctx.dry_run, args.format, {
        "unplugged": [{"port_id": r.port_id, "name": r.name,
                       "tap_deleted": r.tap_created and not ctx.dry_run}
                      for r in records],
        "missing": missing,
        "committed": outcome.committed.value if outcome else "no"},
        "\n".join(lines) or "nothing to unplug")


def cmd_migration_expect(ctx: Context, args) -> int:
    port_id = plug_request.validate_port_id(args.port_id)
    source = None if args.cancel else \
        validate_name(args.source, "from")
    changed = ctx.backend.expect_migration(port_id, source)
    what = f"expecting {port_id} from {source}" if source else \
        f"no longer expecting {port_id}"
    return print_write(ctx.dry_run, args.format,
                       {"port_id": port_id, "from": source,
                        "changed": changed},
                       what if changed else f"{what} (unchanged)")


def cmd_list(ctx: Context, args) -> int:
    columns = LIST_COLUMNS + ctx.backend.record_columns
    print_records(ctx.backend.port_records(), args.format, columns)
    return 0


def cmd_show(ctx: Context, args) -> int:
    record = ctx.backend.port_record(args.port_id)
    if record is None:
        raise UserError("port_id", f"no port with iface-id {args.port_id!r}")
    if args.format == "json":
        print_json(record)
    else:
        for key, value in record.items():
            print(f"{key:14} {'-' if value is None else clean(value)}")
    return 0


def cmd_net_create(ctx: Context, args) -> int:
    net = ctx.backend.create_network(args.name, args.type, args.physnet,
                                     args.segment)
    where = (f"local VLAN {net.local_vlan}" if net.local_vlan is not None
             else "OVN logical switch")
    return print_write(ctx.dry_run, args.format, net.as_dict(),
                       f"created network {net.name} ({where})")


def cmd_net_delete(ctx: Context, args) -> int:
    ctx.backend.delete_network(args.name)
    return print_write(ctx.dry_run, args.format, {"deleted": args.name},
                       f"deleted network {args.name}")


def cmd_net_list(ctx: Context, args) -> int:
    print_records([n.as_dict() for n in ctx.backend.list_networks()],
                  args.format, ("name", "type", "physnet", "segment",
                                "local_vlan"))
    print_invalid(r for r in ctx.backend.invalid_records()
                  if r.kind == "network")
    return 0


def cmd_bind(ctx: Context, args) -> int:
    network = plug_request.validate_network(args.network)
    ips = plug_request.validate_ips(args.ips) if args.ips is not None else None
    groups = (plug_request.validate_group_names(args.security_groups)
              if args.security_groups is not None else None)
    changed = ctx.backend.bind(plug_request.validate_port_id(args.port_id),
                               network, ips, ctx.wait, groups)
    return print_write(ctx.dry_run, args.format, {
        "port_id": args.port_id, "network": network, "changed": changed},
        f"{'bound' if changed else 'already bound:'} {args.port_id} to "
        f"{network}")


def cmd_unbind(ctx: Context, args) -> int:
    ctx.backend.unbind(plug_request.validate_port_id(args.port_id))
    return print_write(ctx.dry_run, args.format, {"unbound": args.port_id},
                       f"unbound {args.port_id}")


def cmd_gc(ctx: Context, args) -> int:
    from virtio_ovs.backend.gc import collect
    from virtio_ovs.kernel.taps import TapManager
    grace = validate_seconds(args.grace, "grace", 0, 86400, allow_low=True)
    result = collect(ctx.db, TapManager(ctx.db.remote), grace, args.dry_run,
                     ctx.timeout)
    if args.format == "json":
        print_json(result.as_dict())
        return 0
    verb = "would remove" if args.dry_run else "removed"
    print(clean(f"{verb} {len(result.removed)} orphan TAP(s)"
                f"{': ' + ' '.join(result.removed) if result.removed else ''}"))
    for what, names in (("created less than --grace ago", result.young),
                        ("held by a process", result.attached)):
        if names:
            print(clean(f"kept {len(names)} ({what}): {' '.join(names)}"))
    return 0


def agent_state(status: dict | None, now: float) -> str:
    if not status:
        return "never-ran"
    return "up" if agent_alive(status, now) else "down"


def cmd_status(ctx: Context, args) -> int:
    status = ctx.db.agent_status()
    record = dict(status or {})
    record["state"] = agent_state(status, time.time())
    if record.get("heartbeat"):
        record["heartbeat_age"] = round(time.time() - record["heartbeat"], 1)
    standby = ctx.db.standby_status()
    if standby and agent_state(standby, time.time()) == "up":
        record["standby"] = f"{standby.get('host')} pid {standby.get('pid')}"
    invalid = ctx.db.invalid_records()
    record["invalid_records"] = [r.as_dict() for r in invalid]
    if args.format == "json":
        print_json(record)
    else:
        record["invalid_records"] = len(invalid)
        for key in sorted(record):
            print(f"{key:18} {clean(record[key])}")
        print_invalid(invalid)
    return 0


def _select_ports(ctx: Context, args) -> list:
    records = ctx.db.list_ports()
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


def _check_libvirt(ctx: Context, args) -> list:
    from virtio_ovs.check import libvirt as lv
    for name, value in (("port-id", args.port_ids), ("vm", args.vm),
                        ("qmp", args.qmp), ("traffic", args.traffic)):
        if value:
            raise UserError(name, "cannot be combined with --libvirt-domain")
    for name in args.libvirt_domains:
        if not name or not is_utf8(name) or \
                any(ord(c) < 32 or c == "\x7f" for c in name):
            raise UserError("libvirt-domain", "must be a domain name: "
                            "UTF-8 without control characters")
    uri = validate_text(args.libvirt_uri or lv.DEFAULT_URI, "libvirt-uri")
    source = lv.Libvirt(uri, ctx.timeout, qmp=args.libvirt_qmp)
    try:
        return lv.check_domains(args.libvirt_domains, ctx.db.list_ports(),
                                ctx.db, source, args.libvirt_qmp)
    finally:
        source.close()


def cmd_check(ctx: Context, args) -> int:
    validate_seconds(args.traffic, "traffic", 0, 3600, allow_low=True)
    if args.libvirt_domains:
        reports = _check_libvirt(ctx, args)
    elif args.libvirt_uri or args.libvirt_qmp:
        raise UserError("libvirt-uri" if args.libvirt_uri else "libvirt-qmp",
                        "needs --libvirt-domain")
    else:
        from virtio_ovs.check.gather import check_ports
        reports = check_ports(_select_ports(ctx, args), ctx.db, args.traffic,
                              args.qmp)
    if args.format == "json":
        print_json([r.as_dict() for r in reports])
    else:
        print_check(reports)
    return 0 if all(r.ok for r in reports) else EXIT_NOT_BYPASS


def cmd_metrics(ctx: Context, args) -> int:
    """The agent's per-port families, computed here once (no agent
    needed), for node_exporter's textfile collector."""
    from virtio_ovs.check.gather import check_ports
    from virtio_ovs.metrics import Snapshot, render, reports_by_port
    ports = ctx.db.list_ports()
    reports = check_ports(ports, ctx.db)
    status = ctx.db.agent_status() or {}
    flows = {}
    if ctx.backend.flow_bridges():
        from virtio_ovs.openflow.switch import OpenFlowBridge
        for bridge in sorted(ctx.backend.flow_bridges()):
            flows[bridge] = OpenFlowBridge(bridge, ctx.timeout).flow_count()
    sys.stdout.write(render(Snapshot(
        tuple(ports), reports_by_port(reports), flows,
        last_sync=status.get("last_reconcile"))).decode())
    return 0


def cmd_watch(ctx: Context, args) -> int:
    from virtio_ovs.cli import watch
    gc.enable()  # runs until interrupted (cli.main.run turned it off)
    return watch.run(ctx.db, args.format)


VERBS = {**SG_VERBS, "metrics": cmd_metrics, "watch": cmd_watch, "check": cmd_check, "plug": cmd_plug, "unplug": cmd_unplug, "list": cmd_list,
         "show": cmd_show, "net-create": cmd_net_create,
         "net-delete": cmd_net_delete, "net-list": cmd_net_list,
         "bind": cmd_bind, "unbind": cmd_unbind, "status": cmd_status,
         "gc": cmd_gc, "migration-expect": cmd_migration_expect}


