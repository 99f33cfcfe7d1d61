"""The kernel side of a plug: TAP devices (pyroute2 and sysfs) and the
host paths a plug names.

Everything here acts on the caller's network namespace.
"""
from __future__ import annotations

import os

from virtio_ovs.core import model
from virtio_ovs.core.errors import EnvironmentFailure, UserError
from virtio_ovs.core.model import Vif

# include/uapi/linux/if_tun.h
IFF_TAP = 0x0002
IFF_MULTI_QUEUE = 0x0100
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


def is_tap(name: str) -> bool:
    """Is ``name`` a TUN/TAP device here?"""
    return read_tun_flags(name) is not None


def check_host(vif: Vif) -> bool:
    """Check what a VIF names on this host. For a TAP: True if it exists
    and fits (see ``check_existing_tap``), False if it must be created.
    For vhost-user: the socket's directory must exist (True)."""
    if vif.kind == model.KIND_TAP:
        return check_existing_tap(vif.name, vif.queues)
    directory = os.path.dirname(vif.socket or "")
    if not os.path.isdir(directory):
        raise UserError("vhost_user", f"directory {directory} does not exist")
    return True


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
