"""Plugging VIFs: validate everything, create missing TAPs, write once.

Order matters for "nothing half-written": the request is checked against
the model, then against OVSDB and the kernel, and only then are TAPs
created and the single transaction committed. If the commit fails, the
TAPs created for it are deleted again.
"""
from __future__ import annotations

from virtio_ovs import model
from virtio_ovs.model import Vif
from virtio_ovs.netlink import TapManager, check_existing_tap
from virtio_ovs.ovsdb.api import API, PlugResult, VifRecord


class Plugger:
    def __init__(self, api: API, taps: TapManager):
        self.api = api
        self.taps = taps

    def plug(self, vifs: list[Vif], wait: bool = True) -> PlugResult:
        model.check_unique(vifs)
        self.api.check_plug(vifs)
        taps = [vif for vif in vifs if vif.kind == model.KIND_TAP]
        missing = [vif for vif in taps
                   if not check_existing_tap(vif.name, vif.queues)]
        created: list[str] = []
        try:
            for vif in missing:
                self.taps.create(vif.name, vif.queues, vif.owner, vif.group)
                created.append(vif.name)
            return self.api.plug(vifs, wait, created_taps=frozenset(created))
        except BaseException as exc:
            if getattr(exc, "committed", False):
                raise
            for name in created:
                self.taps.delete(name)
            raise

    def unplug(self, port_id: str, if_exists: bool = False,
               wait: bool = True) -> VifRecord | None:
        """Remove the port; delete its TAP only if virtio-ovs created it."""
        record = self.api.unplug(port_id, if_exists, wait)
        if record is not None and record.tap_created:
            self.taps.delete(record.name)
        return record
