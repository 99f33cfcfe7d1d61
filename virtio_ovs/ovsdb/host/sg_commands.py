"""Commands on security groups in the host database (standalone backend).

Groups live in ``Open_vSwitch:external_ids:"virtio-ovs:sg:NAME"`` (JSON);
a port's groups in its Interface's ``virtio-ovs:security-groups``. Every
write verifies ``external_ids`` first, so concurrent changes retry.
"""
from __future__ import annotations

from virtio_ovs.core.errors import UserError
from virtio_ovs.core.secgroups import (EXT_SECURITY_GROUPS, Rule,
                                       SecurityGroup, validate_deletable,
                                       validate_new_group, validate_remote_group,
                                       default_rules, unknown_group,
                                       sg_key, sort_rules, validate_sg_name)
from virtio_ovs.ovsdb.host.commands import validate_groups_exist
from virtio_ovs.ovsdb.host.net_commands import update_external_ids
from virtio_ovs.ovsdb.transaction import ADDED, UNCHANGED, UPDATED


def _write(ctx, group: SecurityGroup) -> None:
    row = ctx.view.open_vswitch
    row.verify("external_ids")
    row.setkey("external_ids", sg_key(group.name), group.to_json())


def ports_using(view, name: str) -> list[str]:
    return sorted(i.external_ids["iface-id"] for i in view.guest_ifaces()
                  if name in i.external_ids.get(EXT_SECURITY_GROUPS, "")
                  .split(","))


def _existing(view, name: str) -> SecurityGroup:
    group = view.groups.get(name)
    if group is None:
        raise unknown_group(name)
    return group


class CreateGroup:
    def __init__(self, name: str):
        self.name = validate_sg_name(name)
        self.group: SecurityGroup | None = None

    def run_idl(self, ctx) -> str:
        validate_new_group(self.name, ctx.view.groups)
        self.group = SecurityGroup(self.name, default_rules(self.name))
        _write(ctx, self.group)
        return ADDED


class DeleteGroup:
    def __init__(self, name: str):
        self.name = name

    def run_idl(self, ctx) -> str:
        if sg_key(self.name) not in ctx.view.open_vswitch.external_ids:
            raise unknown_group(self.name)  # an invalid record goes too
        validate_deletable(self.name, ports_using(ctx.view, self.name),
                        ctx.view.groups)
        row = ctx.view.open_vswitch
        row.verify("external_ids")
        row.delkey("external_ids", sg_key(self.name))
        return UPDATED


class AddRule:
    def __init__(self, group: str, rule: Rule):
        self.name = group
        self.rule = rule

    def run_idl(self, ctx) -> str:
        group = _existing(ctx.view, self.name)
        validate_remote_group(self.rule, ctx.view.groups)
        if self.rule in group.rules:
            return UNCHANGED
        _write(ctx, SecurityGroup(group.name,
                                  sort_rules(group.rules + (self.rule,))))
        return ADDED


class DeleteRule:
    def __init__(self, group: str, rule_id: str):
        self.name = group
        self.rule_id = rule_id

    def run_idl(self, ctx) -> str:
        group = _existing(ctx.view, self.name)
        rules = tuple(r for r in group.rules if r.id != self.rule_id)
        if len(rules) == len(group.rules):
            raise UserError("rule_id", f"security group {self.name!r} has no "
                            f"rule {self.rule_id!r}")
        _write(ctx, SecurityGroup(group.name, rules))
        return UPDATED


class SetPortGroups:
    """A port's security groups (empty: unfiltered)."""

    def __init__(self, port_id: str, names: tuple[str, ...],
                 check: bool = True):
        self.port_id = port_id
        self.names = names
        self.check = check

    def run_idl(self, ctx) -> str:
        iface = ctx.view.ifaces_by_id.get(self.port_id)
        if iface is None or "attached-mac" not in iface.external_ids:
            raise UserError("port_id", f"no guest port with iface-id "
                            f"{self.port_id!r}")
        if self.check:
            validate_groups_exist(ctx.view, self.names)
        ctx.view.open_vswitch.verify("external_ids")
        changed = update_external_ids(
            iface, {EXT_SECURITY_GROUPS: ",".join(self.names) or None})
        return UPDATED if changed else UNCHANGED
