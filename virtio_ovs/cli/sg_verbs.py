"""The security group verbs of virtio-ovs-ctl."""
from __future__ import annotations

from virtio_ovs.cli.context import Context
from virtio_ovs.cli.output import (print_invalid, print_json, print_table,
                                   print_write)
from virtio_ovs.core import plug_request
from virtio_ovs.core.secgroups import SecurityGroup, make_rule, validate_sg_name

RULE_COLUMNS = ("group", "id", "direction", "ethertype", "protocol",
                "port_min", "port_max", "icmp_type", "icmp_code",
                "remote_ip", "remote_group")


def _print_groups(groups: list[SecurityGroup], fmt: str) -> None:
    if fmt == "json":
        print_json([g.as_dict() for g in groups])
        return
    rows = [{"group": g.name, **r.to_dict()} for g in groups
            for r in g.rules]
    rows += [{"group": g.name, "id": "(no rules)"} for g in groups
             if not g.rules]
    print_table(rows, RULE_COLUMNS)


def cmd_sg_create(ctx: Context, args) -> int:
    group = ctx.backend.create_group(validate_sg_name(args.name))
    return print_write(ctx.dry_run, args.format, group.as_dict(),
                       f"created security group {group.name}")


def cmd_sg_delete(ctx: Context, args) -> int:
    ctx.backend.delete_group(validate_sg_name(args.name))
    return print_write(ctx.dry_run, args.format, {"deleted": args.name},
                       f"deleted security group {args.name}")


def cmd_sg_list(ctx: Context, args) -> int:
    _print_groups(ctx.backend.list_groups(), args.format)
    print_invalid(r for r in ctx.backend.invalid_records()
                  if r.kind != "network")
    return 0


def cmd_sg_rule_add(ctx: Context, args) -> int:
    group = validate_sg_name(args.group, "security_group")
    rule = make_rule(direction=args.direction, ethertype=args.ethertype,
                     protocol=args.protocol, port_min=args.port_min,
                     port_max=args.port_max, icmp_type=args.icmp_type,
                     icmp_code=args.icmp_code, remote_ip=args.remote_ip,
                     remote_group=args.remote_group, known=None)
    added = ctx.backend.add_rule(group, rule)
    return print_write(ctx.dry_run, args.format,
                       {"group": group, "added": added, **rule.to_dict()},
                       f"{'added' if added else 'already there:'} rule "
                       f"{rule.id} to {group}")


def cmd_sg_rule_delete(ctx: Context, args) -> int:
    ctx.backend.delete_rule(validate_sg_name(args.group, "security_group"),
                            args.rule_id)
    return print_write(ctx.dry_run, args.format,
                       {"group": args.group, "deleted": args.rule_id},
                       f"deleted rule {args.rule_id} from {args.group}")


def cmd_port_update(ctx: Context, args) -> int:
    names = () if args.no_security_group else \
        plug_request.validate_group_names(args.security_groups)
    port_id = plug_request.validate_port_id(args.port_id)
    changed = ctx.backend.set_port_groups(port_id, names)
    return print_write(ctx.dry_run, args.format,
                       {"port_id": port_id, "security_groups": list(names),
                        "changed": changed},
                       f"{'updated' if changed else 'unchanged:'} {port_id} "
                       f"security groups {','.join(names) or '(none)'}")


SG_VERBS = {"sg-create": cmd_sg_create, "sg-delete": cmd_sg_delete,
            "sg-list": cmd_sg_list, "sg-rule-add": cmd_sg_rule_add,
            "sg-rule-delete": cmd_sg_rule_delete,
            "port-update": cmd_port_update}
