"""The kernel side of a plug: TAP devices (pyroute2 and sysfs) and the
host paths a plug names.

Everything here acts on the caller's network namespace.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import logging
import os
import resource
import secrets
import socket
import stat
import struct
import time
from typing import Iterator, Protocol, Sequence

from virtio_ovs import paths
from virtio_ovs.core import plug_request
from virtio_ovs.core.errors import EnvironmentFailure, UserError
from virtio_ovs.core.plug_request import Vif
from virtio_ovs.core.validate import is_digits, split_remotes

# include/uapi/linux/if_tun.h
LOG = logging.getLogger(__name__)
IFF_TAP = 0x0002
IFF_MULTI_QUEUE = 0x0100
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
IFF_TUN_EXCL = 0x8000  # fail with EBUSY if the device exists
TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
TUNSETOWNER = 0x400454CC
TUNSETGROUP = 0x400454CE
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFF_PROMISC = 0x100
# include/uapi/linux/netlink.h, rtnetlink.h, if_link.h
NETLINK_ROUTE = 0
NLMSG_HDRLEN = 16
NLMSG_ERROR = 2
NLM_F_REQUEST = 1
RTM_GETLINK = 18
IFLA_IFNAME = 3


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def link_attr(name: str, attr: str, sysfs: str = "/sys/class/net"
              ) -> str | None:
    """``/sys/class/net/NAME/ATTR`` stripped, or None when it cannot be
    read (no such link or attribute; EINVAL for ``carrier`` when down)."""
    try:
        with open(f"{sysfs}/{name}/{attr}") as f:
            return f.read().strip()
    except OSError:
        return None


def frames_from_guest(name: str, sysfs: str = "/sys/class/net"
                      ) -> int | None:
    """Frames the process holding TAP ``name`` wrote into it (the kernel
    counts them as the device's rx), or None if it cannot be read. An
    incoming QEMU writes none before its guest resumes."""
    text = link_attr(name, "statistics/rx_packets", sysfs)
    return int(text) if text is not None and text.isdigit() else None


def read_tun_flags(name: str) -> int | None:
    """The TUN flags of ``name``, or None when it is not a TUN/TAP device."""
    text = link_attr(name, "tun_flags")
    try:
        return int(text, 16) if text is not None else None
    except ValueError:
        return None


def is_tap(name: str) -> bool:
    """Is ``name`` a TUN/TAP device here?"""
    return read_tun_flags(name) is not None


# What a plug finds on the host for a VIF's device.
ABSENT = "absent"  # the TAP must be created
OURS = "ours"  # a TAP virtio-ovs created (marked), e.g. by a killed run
PRESENT = "present"  # someone else's TAP, or a vhost-user socket path

# A TAP virtio-ovs creates carries "virtio-ovs created <unix time>" in its
# ifalias: a re-run recognises it (it keeps tap-created, so unplug deletes
# it) and gc can tell an orphan from a TAP a plug is about to use.
MARK = "virtio-ovs created"


def tap_mark(name: str, sysfs: str = "/sys/class/net") -> float | None:
    """When virtio-ovs created ``name`` (its ifalias mark), else None. The
    stamp is in nanoseconds (whole seconds from earlier versions): ages
    compare without rounding."""
    prefix, _, stamp = (link_attr(name, "ifalias", sysfs) or "").rpartition(
        " ")
    if prefix != MARK or not is_digits(stamp) or len(stamp) > 20:
        return None
    return int(stamp) / 1e9 if len(stamp) > 12 else float(stamp)


def mark_text(now_ns: int) -> str:
    return f"{MARK} {now_ns}"


LOCK_FILE = "virtio-ovs-taps.lock"


def tap_lock_path(remote: str | None) -> str:
    """Where plugs and gc meet: this host's OVS run directory (that of a
    unix: member of ``remote``, else ``$OVS_RUNDIR``), or /run/lock when
    OVS runs elsewhere (a tcp: remote)."""
    for member in split_remotes(remote or ""):
        if member.startswith("unix:"):
            directory = os.path.dirname(member[len("unix:"):])
            if os.path.isdir(directory):
                return os.path.join(directory, LOCK_FILE)
    rundir = paths.ovs_rundir()
    return os.path.join(rundir if os.path.isdir(rundir) else "/run/lock",
                        LOCK_FILE)


class TapLockBusy(EnvironmentFailure):
    """The TAP lock stayed taken for the whole wait."""


class TapLock:
    """Plugs and gc exclude each other on the marked TAPs: a plug that
    creates or adopts marked TAPs holds this lock shared from its check of
    the host to its commit; gc holds it exclusive from listing the TAPs
    to deleting the orphans. So gc never sees a TAP between its creation
    (or adoption) and the row that names it. A ``flock`` on
    ``tap_lock_path``'s file (one OVS, one set of plugs; the kernel drops
    it with a killed process)."""

    def __init__(self, path: str):
        self.path = path

    @contextlib.contextmanager
    def held(self, exclusive: bool, timeout: float) -> Iterator[None]:
        """TapLockBusy after ``timeout`` seconds (0: one try)."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                         0o600)
        except OSError as exc:
            raise EnvironmentFailure(f"cannot open the TAP lock {self.path}:"
                                     f" {exc.strerror}") from None
        try:
            self._take(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH,
                       time.monotonic() + timeout)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _take(self, fd: int, mode: int, deadline: float) -> None:
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TapLockBusy(f"the TAP lock {self.path} is held "
                                      f"(a plug or gc is running)") from None
                time.sleep(0.01)


def validate_host(vif: Vif, allow_shared_socket_dir: bool = False) -> str:
    """Check what a VIF names on this host: ABSENT, OURS or PRESENT.

    A TAP: see ``validate_existing_tap``. vhost-user: the socket's directory
    must exist, be a real directory (no symlink on the way) owned by root
    or the OVS user and not writable by others, unless
    ``allow_shared_socket_dir``: otherwise another local user could put
    a socket there for OVS to connect to."""
    if vif.kind == plug_request.KIND_TAP:
        return validate_existing_tap(vif)
    validate_socket_dir(os.path.dirname(vif.socket or "/"),
                     allow_shared_socket_dir)
    return PRESENT


def validate_socket_dir(directory: str, allow_shared: bool = False) -> None:
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        raise UserError("vhost_user", f"directory {directory} does not exist"
                        ) from None
    except OSError as exc:
        raise UserError("vhost_user", f"cannot read directory {directory}: "
                        f"{exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode) or os.path.realpath(directory) != directory:
        raise UserError("vhost_user", f"{directory} is or goes through a "
                        "symbolic link; give the real path "
                        f"{os.path.realpath(directory)}")
    if not stat.S_ISDIR(st.st_mode):
        raise UserError("vhost_user", f"{directory} is not a directory")
    if allow_shared:
        return
    owners = {0, ovs_owner()}
    if st.st_uid not in owners:
        raise UserError("vhost_user", f"directory {directory} is owned by uid "
                        f"{st.st_uid}, not root or the OVS user (another user "
                        "could replace the socket; --allow-shared-socket-dir "
                        "accepts it)")
    if st.st_mode & stat.S_IWOTH:
        raise UserError("vhost_user", f"directory {directory} is writable by "
                        "every user (another user could replace the socket; "
                        "--allow-shared-socket-dir accepts it)")


def ovs_owner() -> int:
    """The uid OVS runs as: the owner of its run directory (root, or
    openvswitch on distributions that drop privileges)."""
    try:
        return os.stat(paths.ovs_rundir()).st_uid
    except OSError:
        return 0


def read_owner(name: str, what: str) -> int | None:
    """/sys/class/net/NAME/owner or group; None when unset (-1)."""
    text = link_attr(name, what)
    try:
        value = int(text) if text is not None else -1
    except ValueError:
        return None
    return None if value < 0 else value


def validate_existing_tap(vif: Vif) -> str:
    """ABSENT, OURS or PRESENT for the TAP of ``vif``.

    Raises UserError when it exists but is not a TAP, its multiqueue flag
    contradicts the queues (QEMU would fail TUNSETIFF with EINVAL), or its
    owner or group differ from the ones asked for (OVSDB would record an
    owner the kernel does not have).
    """
    name, queues = vif.name, vif.queues
    if not link_exists(name):
        return ABSENT
    flags = read_tun_flags(name)
    if flags is None or not flags & IFF_TAP:
        raise UserError("tap", f"{name!r} exists and is not a TAP device")
    multiqueue = bool(flags & IFF_MULTI_QUEUE)
    if multiqueue != (queues > 1):
        have = "has" if multiqueue else "lacks"
        raise UserError("queues", f"TAP {name!r} exists and {have} "
                        f"IFF_MULTI_QUEUE, which contradicts queues={queues}")
    for field, wanted in (("owner", vif.owner), ("group", vif.group)):
        actual = read_owner(name, field)
        if wanted is not None and actual != wanted:
            raise UserError(field, f"TAP {name!r} exists with {field} "
                            f"{'none' if actual is None else actual}, not "
                            f"{wanted}")
    return OURS if tap_mark(name) is not None else PRESENT


class TapSpec(Protocol):
    """What creating a TAP needs (a ``Vif`` has it)."""

    name: str
    queues: int
    owner: int | None
    group: int | None


@dataclasses.dataclass(frozen=True)
class NewTap:
    name: str
    queues: int = 1
    owner: int | None = None
    group: int | None = None


def _fds_to_hold() -> int:
    """TAPs created per chunk: 500, or half the open files allowed."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 500 if soft == resource.RLIM_INFINITY else \
        max(1, min(500, soft // 2))


class TapManager:
    """Creates persistent TAPs for QEMU to attach its queues to.
    ``remote``: the OVSDB that names them (where the TAP lock is)."""

    def __init__(self, remote: str | None = None) -> None:
        self._ipr = None
        self.chunk = _fds_to_hold()
        self._rtnl: socket.socket | None = None
        self._inet: socket.socket | None = None  # for flags (ioctls)
        self.lock = TapLock(tap_lock_path(remote))

    def _iproute(self):
        if self._ipr is None:
            from pyroute2 import IPRoute  # slow import: only when needed
            self._ipr = IPRoute()
        return self._ipr

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None
        for sock in (self._rtnl, self._inet):
            if sock is not None:
                sock.close()
        self._rtnl = self._inet = None

    def create(self, taps: Sequence[TapSpec], created: list[str]) -> None:
        """Persistent TAPs with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, plus
        IFF_MULTI_QUEUE for more than one queue, with the owner and group
        asked for, marked in their ifalias, up and promiscuous. Each name
        goes to ``created`` once its TAP is persistent, also when this
        raises: the caller deletes those when it rolls back.

        IFF_TUN_EXCL makes creation exclusive: when a concurrent plug
        created a name first, this raises UserError and that TAP is not
        ours.

        In chunks, each in three passes: create and mark holding the fds,
        close them, then bring the TAPs up. Closing a TAP's fd waits for
        the kernel's RCU (``synchronize_net``), and the passes wait less
        than one TAP at a time: 1000 TAPs in 0.22 s instead of 0.32 s
        (chunks of 256: 0.24 s)."""
        for first in range(0, len(taps), self.chunk):
            chunk = taps[first:first + self.chunk]
            fds: list[int] = []
            try:
                for tap in chunk:
                    fds.append(_open_marked(tap))
                    created.append(tap.name)
            finally:
                for fd in fds:
                    os.close(fd)
            for tap in chunk:
                self.bring_up(tap.name)
        LOG.debug("created %d TAPs", len(taps))

    def bring_up(self, name: str) -> None:
        """Up and promiscuous, its carrier loss settled first: a TAP
        ``create`` makes, or one it adopts (a killed plug's, maybe down)."""
        try:
            _up_promisc(self._flags_socket(), name,
                        self._settle_carrier(name))
        except OSError as exc:
            raise EnvironmentFailure(f"cannot set up TAP {name}: "
                                     f"{exc.strerror or exc}") from None

    def _settle_carrier(self, name: str) -> int:
        """Make the kernel handle now the carrier loss of ``name``'s
        closed fd, while the TAP is down; returns its flags.

        The kernel's link watch handles a carrier change later, at most
        100 devices a second; for a device that is up by then it
        deactivates its queues and announces the link again. ovs-vswitchd
        asking for the link (RTM_GETLINK) when it adds the port makes the
        kernel handle it there: 1000 new TAPs cost it about 800 link
        announcements and 4 reconfigurations of every bridge instead of
        1 (a 1000-VIF plug took 0.3 s longer). Asked here, while the
        device is down, it is cheap and announces nothing."""
        if self._rtnl is None:
            self._rtnl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW
                                       | socket.SOCK_CLOEXEC,
                                       NETLINK_ROUTE)
        return get_link(self._rtnl, name)

    def _flags_socket(self) -> socket.socket:
        if self._inet is None:
            self._inet = socket.socket(socket.AF_INET, socket.SOCK_DGRAM
                                       | socket.SOCK_CLOEXEC)
        return self._inet

    def is_marked(self, name: str) -> bool:
        return tap_mark(name) is not None

    def guard(self, exclusive: bool, timeout: float):
        """See TapLock."""
        return self.lock.held(exclusive, timeout)

    def delete_many(self, names: list[str]) -> None:
        """Delete ``names`` in one batch: each gets a link group no other
        link has, and one RTM_DELLINK deletes the group. The kernel then
        waits for RCU once, not once per link (1000 TAPs: ~1 s instead
        of ~18 s)."""
        names = [n for n in names if link_exists(n)]
        if len(names) < 2:
            for name in names:
                self.delete(name)
            return
        ipr = self._iproute()
        try:
            used = {link.get("IFLA_GROUP") for link in ipr.get_links()}
            group = next(g for g in iter(
                lambda: secrets.randbelow(2**31 - 2) + 1, None)
                if g not in used)
            for name in names:
                ipr.link("set", ifname=name, group=group)
            ipr.link("del", group=group)
            LOG.debug("deleted %d TAPs as link group %d", len(names), group)
        except Exception as exc:  # fall back to one at a time
            LOG.warning("deleting %d TAPs as one link group failed (%s): "
                        "one at a time", len(names), exc)
            for name in names:
                self.delete(name)

    def delete(self, name: str) -> None:
        if not link_exists(name):
            return
        try:
            self._iproute().link("del", ifname=name)
        except Exception as exc:
            if link_exists(name):
                raise EnvironmentFailure(f"cannot delete {name}: {exc}") from None


def _write_ifalias(name: str, text: str,
                   sysfs: str = "/sys/class/net") -> None:
    with open(f"{sysfs}/{name}/ifalias", "w") as f:
        f.write(text)


def _disable_ipv6(name: str) -> None:
    """No IPv6 address on the host side of a guest's TAP (as os-vif does
    for the devices it makes): the host's kernel would otherwise send its
    own MLD reports and DAD probes on it, to the guest, when QEMU
    attaches; on a live migration's destination those wait in the TAP
    for the resumed guest. (Absent when IPv6 is disabled altogether.)"""
    try:
        with open(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "w") as f:
            f.write("1")
    except FileNotFoundError:
        pass


def _up_promisc(sock: socket.socket, name: str, flags: int) -> None:
    """IFF_UP and IFF_PROMISC, as ``ip link set NAME up promisc on``
    (SIOCSIFFLAGS on ``sock``, an AF_INET socket), from ``flags``, the
    link's; nothing when it has both.

    Promiscuous because ovs-vswitchd turns it on anyway (a switch port
    takes every frame): done by its userspace datapath after the port is
    added, that link change makes it reconfigure every bridge a second
    time for each new port (``bench/vswitchd_profile.py --promisc``:
    2 reconfigurations per plug, 1 with it)."""
    if flags & (IFF_UP | IFF_PROMISC) == IFF_UP | IFF_PROMISC:
        return
    fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH", name.encode(),
                                                (flags | IFF_UP | IFF_PROMISC)
                                                & 0xffff) + bytes(22))


def get_link(rtnl: socket.socket, name: str) -> int:
    """One RTM_GETLINK for ``name`` on a NETLINK_ROUTE socket: the link's
    flags (``ifi_flags``). OSError with the kernel's errno on a refusal."""
    ifname = name.encode() + b"\0"
    attr = struct.pack("HH", 4 + len(ifname), IFLA_IFNAME) + ifname
    attr += bytes(-len(attr) % 4)
    body = struct.pack("BxHiII", socket.AF_UNSPEC, 0, 0, 0, 0) + attr
    rtnl.send(struct.pack("IHHII", NLMSG_HDRLEN + len(body), RTM_GETLINK,
                          NLM_F_REQUEST, 0, 0) + body)
    reply = rtnl.recv(65536)
    if struct.unpack_from("H", reply, 4)[0] == NLMSG_ERROR:
        error = -struct.unpack_from("i", reply, NLMSG_HDRLEN)[0] \
            or errno.EPROTO  # an acknowledgement: not what was asked
        raise OSError(error, os.strerror(error))
    return struct.unpack_from("BxHiI", reply, NLMSG_HDRLEN)[3]


def _open_marked(tap: TapSpec) -> int:
    """A new TAP for ``tap``, marked and persistent; returns the fd that
    still holds it. Marked while the fd holds it, made persistent last: a
    plug killed before that point leaves nothing, because the kernel
    deletes a TAP that is not persistent when its last fd closes; killed
    later, it leaves a marked TAP that a re-run adopts (and brings up) and
    gc collects. sysfs and ioctls, not pyroute2: 1000 TAPs in 0.3 s
    instead of 1.8 s."""
    flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_TUN_EXCL
    if tap.queues > 1:
        flags |= IFF_MULTI_QUEUE
    try:
        fd = _open_tap(tap.name, flags, tap.owner, tap.group)
    except FileExistsError:
        raise UserError("tap", f"{tap.name!r} was created by another process "
                        "meanwhile") from None
    except OSError as exc:
        raise EnvironmentFailure(f"cannot create TAP {tap.name}: "
                                 f"{exc.strerror}") from None
    try:
        _write_ifalias(tap.name, mark_text(time.time_ns()))
        _disable_ipv6(tap.name)
        fcntl.ioctl(fd, TUNSETPERSIST, 1)
    except OSError as exc:
        os.close(fd)
        raise EnvironmentFailure(f"cannot set up TAP {tap.name}: "
                                 f"{exc.strerror or exc}") from None
    LOG.debug("created TAP %s (%d queues, flags %#x)", tap.name, tap.queues,
              flags)
    return fd


def _open_tap(name: str, flags: int, owner: int | None,
              group: int | None) -> int:
    """TUNSETIFF on /dev/net/tun (not yet persistent), owner and group;
    returns the fd that holds the new TAP."""
    ifr = struct.pack("16sH", name.encode(), flags)
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    try:
        try:
            fcntl.ioctl(fd, TUNSETIFF, ifr)
        except OSError as exc:
            if exc.errno == errno.EBUSY and link_exists(name):
                raise FileExistsError(name) from None
            raise
        if owner is not None:
            fcntl.ioctl(fd, TUNSETOWNER, owner)
        if group is not None:
            fcntl.ioctl(fd, TUNSETGROUP, group)
    except BaseException:
        os.close(fd)
        raise
    return fd
