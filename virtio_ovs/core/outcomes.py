"""What a write did, as values: the committed state travels here, never
on an exception.

``Committed`` is three-valued because a transaction whose answer was lost
(a timeout, a dropped connection) may or may not have been applied: the
adapters read it back, and when even that fails the honest answer is
``UNKNOWN``. Callers decide from it what to undo (TAPs, NB rows).
"""
from __future__ import annotations

import dataclasses
import enum

from virtio_ovs.core.port import GuestPort


class Committed(enum.Enum):
    YES = "yes"  # the server applied it (and that stays true)
    NO = "no"  # nothing was applied
    UNKNOWN = "unknown"  # the answer was lost and could not be read back

    def __bool__(self) -> bool:  # only YES is a commit; UNKNOWN is not
        return self is Committed.YES

    @classmethod
    def of(cls, value: bool) -> "Committed":
        return cls.YES if value else cls.NO


@dataclasses.dataclass
class PlugOutcome:
    """What a plug did, filled in as it goes (so that an interrupted plug
    still tells its caller what is in the database).

    ``committed`` becomes YES the moment the server has applied the
    transaction, before any wait for ovs-vswitchd: if the wait is
    interrupted or times out, the caller still knows that the rows (and so
    their TAPs) are in use.
    """

    plugged: list[str] = dataclasses.field(default_factory=list)
    updated: list[str] = dataclasses.field(default_factory=list)
    unchanged: list[str] = dataclasses.field(default_factory=list)
    committed: Committed = Committed.NO
    new_ports: list = dataclasses.field(default_factory=list)  # opaque ids
    refused: dict[str, str] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"plugged": self.plugged, "updated": self.updated,
                "unchanged": self.unchanged,
                "committed": self.committed.value, "refused": self.refused}


@dataclasses.dataclass
class UnplugOutcome:
    """What an unplug removed, filled in as it goes. ``ports``: the ports
    as they were before the transaction; ``committed``: whether their rows
    are gone (read back when the commit's answer was lost)."""

    ports: list[GuestPort] = dataclasses.field(default_factory=list)
    committed: Committed = Committed.NO
