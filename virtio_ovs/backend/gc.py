"""Orphan TAPs: TAPs virtio-ovs created (marked in their ifalias) that no
Interface row uses, e.g. left by a plug killed between creating its TAPs
and committing. Acts on the caller's network namespace."""
from __future__ import annotations

import dataclasses
import logging
import os
import time

from virtio_ovs.core.roles import TapUse
from virtio_ovs.kernel.taps import is_tap, link_attr, tap_mark


LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class GcResult:
    removed: list[str] = dataclasses.field(default_factory=list)
    young: list[str] = dataclasses.field(default_factory=list)  # in grace
    attached: list[str] = dataclasses.field(default_factory=list)  # a queue

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def marked_taps(sysfs: str = "/sys/class/net") -> dict[str, float]:
    """Every TAP virtio-ovs created here -> its creation time."""
    marked = {}
    for name in os.listdir(sysfs):
        stamp = tap_mark(name, sysfs)
        if stamp is not None and is_tap(name):
            marked[name] = stamp
    return marked


def has_carrier(name: str) -> bool:
    """A TAP has carrier while a process (QEMU) holds one of its queues."""
    return link_attr(name, "carrier") == "1"


def collect(db: TapUse, taps, grace: float, dry_run: bool = False,
            timeout: float = 0.0) -> GcResult:
    """Delete marked TAPs that no row uses, created more than ``grace``
    seconds ago and not held by a process. Under the TAP lock, held
    exclusive (TapLockBusy after ``timeout``): no plug is between creating
    or adopting a marked TAP and committing the row that names it, so
    "no row uses it" stays true until the delete. A dry run takes no
    lock."""
    if dry_run:
        return _collect(db, taps, grace, dry_run=True)
    with taps.guard(exclusive=True, timeout=timeout):
        return _collect(db, taps, grace, dry_run=False)


def _collect(db: TapUse, taps, grace: float, dry_run: bool) -> GcResult:
    result = GcResult()
    marked = marked_taps()
    if not marked:
        return result
    unused = set(marked) - db.devices_in_use(marked)
    now = time.time()  # after the marks were read: ages are never negative
    for name in sorted(unused):
        if now - marked[name] < grace:
            result.young.append(name)
        elif has_carrier(name):
            result.attached.append(name)
        else:
            result.removed.append(name)
    LOG.debug("gc: %d marked TAPs, %d unused; removing %s, young %s, held %s",
              len(marked), len(unused), result.removed, result.young,
              result.attached)
    if not dry_run:
        taps.delete_many(result.removed)
    return result
