"""A TAP's queues and packet counters as the kernel reports them
(netlink IFLA_TUN_*, sysfs statistics)."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class TapQueues:
    """``numqueues`` attached and enabled, ``numdisabled`` attached but
    disabled (e.g. the guest set fewer combined channels), as ``ip -d
    link`` shows them."""

    enabled: int | None
    disabled: int | None


def _tap_queues_of(msg) -> TapQueues | None:
    info = msg.get_attr("IFLA_LINKINFO")
    if info is None or info.get_attr("IFLA_INFO_KIND") != "tun":
        return None
    data = info.get_attr("IFLA_INFO_DATA")
    # The kernel reports the queue counts of multiqueue TAPs only.
    return TapQueues(enabled=data.get_attr("IFLA_TUN_NUM_QUEUES"),
                     disabled=data.get_attr("IFLA_TUN_NUM_DISABLED_QUEUES"))


def all_tap_queues() -> dict[str, TapQueues]:
    """Queue state of every TUN/TAP device here, from one netlink dump."""
    from pyroute2 import IPRoute
    result = {}
    with IPRoute() as ipr:
        for msg in ipr.get_links():
            queues = _tap_queues_of(msg)
            if queues is not None:
                result[msg.get_attr("IFLA_IFNAME")] = queues
    return result


def link_counters(name: str) -> dict[str, int]:
    """rx/tx packet counters from sysfs (0 when unreadable)."""
    counters = {}
    for key in ("rx_packets", "tx_packets"):
        try:
            with open(f"/sys/class/net/{name}/statistics/{key}") as f:
                counters[key] = int(f.read())
        except (OSError, ValueError):
            counters[key] = 0
    return counters
