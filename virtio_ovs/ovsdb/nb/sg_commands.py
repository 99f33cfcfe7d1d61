"""Security groups in the OVN northbound database: Port_Groups and ACLs
(see network/ovn_acls.py for their shape)."""
from __future__ import annotations

import dataclasses
import json

from virtio_ovs.core.errors import UserError
from virtio_ovs.core.secgroups import (Rule, SecurityGroup, validate_deletable,
                                       validate_new_group, validate_remote_group,
                                       default_rules, unknown_group,
                                       sort_rules, validate_sg_name,
                                       rule_from_record)
from virtio_ovs.core.records import Invalid, InvalidRecord
from virtio_ovs.core.ovn_acls import DROP_GROUP, acl, drop_acls, pg_name
from virtio_ovs.ovsdb.nb.api import OURS, not_ours, owner_of
from virtio_ovs.ovsdb.transaction import ADDED, UNCHANGED, UPDATED

SG_MARK = "virtio-ovs:sg"  # on a Port_Group: the group's name
RULE_KEY = "virtio-ovs:rule"  # on an ACL: the rule, as JSON


def port_groups(view) -> dict:
    """Our Port_Groups by group name (the drop group under its own name)."""
    result = {}
    for pg in view.conn.rows("Port_Group").values():
        name = pg.external_ids.get(SG_MARK)
        if name is not None:
            result[name] = pg
    return result


def group_of(pg) -> SecurityGroup:
    """The group a Port_Group of ours holds: its valid rules (an ACL
    whose rule record is not one is skipped; see ``invalid_rules``)."""
    return SecurityGroup(pg.external_ids[SG_MARK],
                         sort_rules(rule for _, rule in _rules(pg)))


def _rules(pg):
    """(ACL row, Rule) for each ACL of ours with a valid rule."""
    for row in pg.acls:
        text = row.external_ids.get(RULE_KEY)
        if text:
            try:
                yield row, rule_from_record(text)
            except InvalidRecord:
                continue


def invalid_rules(view) -> list[Invalid]:
    """The ACLs of our Port_Groups whose rule record is not a rule."""
    found = []
    for name, pg in sorted(port_groups(view).items()):
        for row in pg.acls:
            text = row.external_ids.get(RULE_KEY)
            try:
                if text:
                    rule_from_record(text)
            except InvalidRecord as exc:
                found.append(Invalid("rule", f"{name} ACL {row.uuid}",
                                     str(exc)))
    return found


def _insert_acl(ctx, spec: tuple[str, int, str, str], rule: Rule | None):
    row = ctx.insert("ACL")
    row.direction, row.priority, row.match, row.action = spec
    row.external_ids = ({RULE_KEY: json.dumps(dataclasses.asdict(rule),
                                              sort_keys=True)}
                        if rule else {SG_MARK: DROP_GROUP})
    return row


def _existing(view, name: str):
    pg = port_groups(view).get(name)
    if pg is None or name == DROP_GROUP:
        raise unknown_group(name)
    return pg


class CreateGroup:
    def __init__(self, name: str):
        self.name = validate_sg_name(name)
        self.group: SecurityGroup | None = None

    def run_idl(self, ctx) -> str:
        if self.group is not None and self.name in port_groups(ctx.view):
            return ADDED  # a retry (see ovsdb/nb/commands.py)
        validate_new_group(self.name, port_groups(ctx.view))
        pg = ctx.insert("Port_Group")
        pg.name = pg_name(self.name)
        pg.external_ids = {SG_MARK: self.name}
        self.group = SecurityGroup(self.name, default_rules(self.name))
        pg.acls = [_insert_acl(ctx, acl(self.name, rule), rule)
                   for rule in self.group.rules]
        return ADDED


class DeleteGroup:
    def __init__(self, name: str):
        self.name = name
        self.staged = False

    def run_idl(self, ctx) -> str:
        if self.staged and self.name not in port_groups(ctx.view):
            return UPDATED  # a retry (see ovsdb/nb/commands.py)
        pg = _existing(ctx.view, self.name)
        groups = {name: group_of(other) for name, other
                  in port_groups(ctx.view).items() if name != DROP_GROUP}
        validate_deletable(self.name, [p.name for p in pg.ports], groups)
        for row in pg.acls:
            row.delete()
        pg.delete()
        self.staged = True
        return UPDATED


class AddRule:
    def __init__(self, group: str, rule: Rule):
        self.name = group
        self.rule = rule
        self.staged = False

    def run_idl(self, ctx) -> str:
        pg = _existing(ctx.view, self.name)
        validate_remote_group(self.rule, port_groups(ctx.view))
        if self.rule in group_of(pg).rules:
            return ADDED if self.staged else UNCHANGED  # a retry: commands.py
        pg.addvalue("acls", _insert_acl(ctx, acl(self.name, self.rule),
                                        self.rule))
        self.staged = True
        return ADDED


class DeleteRule:
    def __init__(self, group: str, rule_id: str):
        self.name = group
        self.rule_id = rule_id
        self.staged = False

    def run_idl(self, ctx) -> str:
        pg = _existing(ctx.view, self.name)
        for row, rule in _rules(pg):
            if rule.id == self.rule_id:
                pg.delvalue("acls", row)
                row.delete()
                self.staged = True
                return UPDATED
        if self.staged:
            return UPDATED  # a retry (see ovsdb/nb/commands.py)
        raise UserError("rule_id", f"security group {self.name!r} has no "
                        f"rule {self.rule_id!r}")


def memberships(view, lsp) -> tuple[str, ...]:
    """The names of our groups (not the drop group) ``lsp`` is in."""
    return tuple(sorted(name for name, pg in port_groups(view).items()
                        if name != DROP_GROUP
                        and any(p.uuid == lsp.uuid for p in pg.ports)))


def set_memberships(ctx, lsp, names: tuple[str, ...]) -> bool:
    """Put ``lsp`` in exactly the Port_Groups of ``names`` (and in the
    drop group when there is any); True if anything changed."""
    groups = port_groups(ctx.view)
    for name in names:
        _existing(ctx.view, name)
    wanted = {pg_name(n) for n in names}
    changed = False
    if names:
        wanted.add(DROP_GROUP)
        if DROP_GROUP not in groups:
            _drop_group(ctx, lsp)
            changed = True
    for pg in groups.values():
        member = any(p.uuid == lsp.uuid for p in pg.ports)
        if (pg.name in wanted) != member:
            (pg.addvalue if not member else pg.delvalue)("ports", lsp)
            changed = True
    return changed


def _drop_group(ctx, first_port) -> None:
    pg = ctx.insert("Port_Group")
    pg.name = DROP_GROUP
    pg.external_ids = {SG_MARK: DROP_GROUP}
    pg.acls = [_insert_acl(ctx, spec, None) for spec in drop_acls()]
    pg.ports = [first_port]


class SetPortGroups:
    def __init__(self, port_id: str, names: tuple[str, ...]):
        self.port_id = port_id
        self.names = names
        self.prior: tuple[str, ...] = ()

    def run_idl(self, ctx) -> str:
        lsp = ctx.view.lsps.get(self.port_id)
        if lsp is not None and owner_of(lsp.external_ids) != OURS:
            raise UserError("port_id", not_ours(
                "logical switch port", self.port_id,
                owner_of(lsp.external_ids)))
        if lsp is None:
            raise UserError("port_id", f"port {self.port_id!r} is not bound "
                            "to an OVN network of virtio-ovs (bind it first)")
        self.prior = memberships(ctx.view, lsp)
        return UPDATED if set_memberships(ctx, lsp, self.names) else UNCHANGED

    def undo(self, outcome: str) -> list:
        """The commands that put back what this one changed."""
        return [] if outcome == UNCHANGED else \
            [SetPortGroups(self.port_id, self.prior)]
