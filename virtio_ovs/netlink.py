"""TAP devices: create, inspect and delete them (pyroute2 and sysfs).

Everything here acts on the caller's network namespace.
"""
from __future__ import annotations

import os

from virtio_ovs.errors import EnvironmentFailure, UserError

# include/uapi/linux/if_tun.h
IFF_TUN = 0x0001
IFF_TAP = 0x0002
IFF_MULTI_QUEUE = 0x0100
IFF_PERSIST = 0x0800
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def read_tun_flags(name: str) -> int | None:
    """The TUN flags of ``name``, or None when it is not a TUN/TAP device."""
    try:
        with open(f"/sys/class/net/{name}/tun_flags") as f:
            return int(f.read().strip(), 16)
    except (FileNotFoundError, ValueError):
        return None


def check_existing_tap(name: str, queues: int) -> bool:
    """True if ``name`` exists and fits the request; False if it is absent.

    Raises UserError when it exists but is not a TAP, or its multiqueue
    flag contradicts ``queues`` (QEMU would fail TUNSETIFF with EINVAL).
    """
    if not link_exists(name):
        return False
    flags = read_tun_flags(name)
    if flags is None or not flags & IFF_TAP:
        raise UserError("tap", f"{name!r} exists and is not a TAP device")
    multiqueue = bool(flags & IFF_MULTI_QUEUE)
    if multiqueue != (queues > 1):
        have = "has" if multiqueue else "lacks"
        raise UserError("queues", f"TAP {name!r} exists and {have} "
                        f"IFF_MULTI_QUEUE, which contradicts queues={queues}")
    return True


class TapManager:
    """Creates persistent TAPs for QEMU to attach its queues to."""

    def __init__(self) -> None:
        self._ipr = None

    def _iproute(self):
        if self._ipr is None:
            from pyroute2 import IPRoute  # slow import: only when needed
            self._ipr = IPRoute()
        return self._ipr

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    def create(self, name: str, queues: int, owner: int | None = None,
               group: int | None = None) -> None:
        """IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, plus IFF_MULTI_QUEUE if queues > 1."""
        ifr = {"no_pi": 1, "vnet_hdr": 1}
        if queues > 1:
            ifr["multi_queue"] = 1  # inside ifr, or pyroute2 ignores it
        kwargs = {}
        if owner is not None:
            kwargs["uid"] = owner
        if group is not None:
            kwargs["gid"] = group
        try:
            ipr = self._iproute()
            ipr.link("add", ifname=name, kind="tuntap", mode="tap", ifr=ifr,
                     **kwargs)
            # Up, as libvirt leaves the TAPs it creates; the carrier comes
            # when QEMU attaches a queue.
            ipr.link("set", ifname=name, state="up")
        except Exception as exc:  # pyroute2 raises NetlinkError or OSError
            raise EnvironmentFailure(f"cannot create TAP {name}: {exc}") from None
        if read_tun_flags(name) is None:
            raise EnvironmentFailure(f"TAP {name} was not created")

    def delete(self, name: str) -> None:
        if not link_exists(name):
            return
        try:
            self._iproute().link("del", ifname=name)
        except Exception as exc:
            if link_exists(name):
                raise EnvironmentFailure(f"cannot delete {name}: {exc}") from None


class TapQueues:
    """A TAP's queue state from netlink (IFLA_TUN_*), as ``ip -d link``
    shows it: ``numqueues`` attached and enabled, ``numdisabled`` attached
    but disabled (e.g. the guest set fewer combined channels)."""

    def __init__(self, enabled: int | None, disabled: int | None,
                 multi_queue: bool):
        self.enabled = enabled
        self.disabled = disabled
        self.multi_queue = multi_queue


def _tap_queues_of(msg) -> TapQueues | None:
    info = msg.get_attr("IFLA_LINKINFO")
    if info is None or info.get_attr("IFLA_INFO_KIND") != "tun":
        return None
    data = info.get_attr("IFLA_INFO_DATA")
    # The kernel reports the queue counts of multiqueue TAPs only.
    return TapQueues(enabled=data.get_attr("IFLA_TUN_NUM_QUEUES"),
                     disabled=data.get_attr("IFLA_TUN_NUM_DISABLED_QUEUES"),
                     multi_queue=bool(data.get_attr("IFLA_TUN_MULTI_QUEUE")))


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
