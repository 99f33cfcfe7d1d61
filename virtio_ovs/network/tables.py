"""br-int's tables and registers, and the Flow value. Pure: no I/O."""
from __future__ import annotations

import dataclasses

T_CLASSIFY, T_SPOOF, T_CANARY = 0, 10, 23
T_EGRESS, T_EGRESS_RULES = 40, 41  # security groups, from the guest
T_SWITCH, T_FLOOD = 60, 61  # by destination; broadcast and multicast
T_INGRESS, T_INGRESS_RULES = 70, 71  # security groups, to the guest
UNTAGGED = "vlan_tci=0x0000/0x1fff"
# REG6: the frame's network (its local VLAN), also its conntrack zone.
# REG5: the guest port a frame is for, in the ingress stage.
# (Matches name them reg6/reg5/reg7; actions NXM_NX_REG6/...)
# REG7: the flood stage's next chunk of ports.
REG_NET, REG_PORT, REG_CHUNK = "reg6", "reg5", "reg7"
REG_NET_FIELD, REG_PORT_FIELD = "NXM_NX_REG6", "NXM_NX_REG5"
REG_CHUNK_FIELD = "NXM_NX_REG7"


@dataclasses.dataclass(frozen=True, order=True)
class Flow:
    table: int
    priority: int
    match: str
    actions: str

    @property
    def key(self) -> tuple[int, int, str]:
        """What identifies a flow in the switch (strict match)."""
        return (self.table, self.priority, self.match)

    def match_text(self) -> str:
        match = f",{self.match}" if self.match else ""
        return f"table={self.table},priority={self.priority}{match}"

    def text(self, cookie: int) -> str:
        return f"{self.match_text()},cookie={cookie:#x},actions={self.actions}"
