"""Evidence from /proc: who holds a TAP's queues, vhost-net fds and
workers, per-thread syscalls and CPU.

Every function takes ``proc`` (default "/proc") so that recorded /proc
trees (tests/fixtures) give the same answers as a live host.
"""
from __future__ import annotations

import dataclasses
import errno
import os

TUN_DEV = "/dev/net/tun"
VHOST_NET_DEV = "/dev/vhost-net"


@dataclasses.dataclass(frozen=True)
class ThreadSample:
    tid: int
    comm: str
    syscr: int
    syscw: int
    cpu_ticks: int  # utime + stime


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


class ProcUnreadable(Exception):
    """A live process's /proc entry could not be read (permission, a
    broken tree): the evidence it holds is missing, not negative."""


_GONE = (errno.ENOENT, errno.ESRCH)  # the process exited meanwhile


def _listdir(path: str) -> list[str]:
    """Entries of a /proc directory; [] when its process is gone."""
    try:
        return os.listdir(path)
    except OSError as exc:
        if exc.errno in _GONE:
            return []
        raise ProcUnreadable(f"{path}: {exc.strerror or exc}") from None


def _pids(proc: str) -> list[int]:
    try:
        return sorted(int(p) for p in os.listdir(proc) if p.isdigit())
    except OSError:
        return []


def _fds(proc: str, pid: int) -> dict[int, str]:
    """fd -> link target."""
    fd_dir = f"{proc}/{pid}/fd"
    result = {}
    for name in _listdir(fd_dir):
        try:
            result[int(name)] = os.readlink(f"{fd_dir}/{name}")
        except (OSError, ValueError):
            continue
    return result


def _fdinfo_iff(proc: str, pid: int, fd: int) -> str | None:
    """The TAP an fd of /dev/net/tun is attached to (tun.c's fdinfo)."""
    text = _read(f"{proc}/{pid}/fdinfo/{fd}") or ""
    for line in text.splitlines():
        if line.startswith("iff:"):
            return line.split(":", 1)[1].strip()
    return None


def comm(proc: str, pid: int) -> str:
    return (_read(f"{proc}/{pid}/comm") or "").strip()


@dataclasses.dataclass
class HolderScan:
    """Who holds which TAP queues, and the processes whose fds could not
    be read (any of them might hold a queue)."""
    index: dict[str, dict[int, list[int]]]
    unreadable: dict[int, str]

    def error(self) -> str | None:
        if not self.unreadable:
            return None
        pid, why = next(iter(sorted(self.unreadable.items())))
        more = len(self.unreadable) - 1
        return (f"the fds of {len(self.unreadable)} process(es) could not "
                f"be read (pid {pid}: {why}"
                + (f"; and {more} more" if more else "") + ")")


def own_netns(proc: str = "/proc") -> str | None:
    """This process's network namespace ("net:[inode]"), where the TAPs
    it looks at are; None for a recorded tree (no filtering)."""
    try:
        return os.readlink(f"{proc}/self/ns/net")
    except OSError:
        return None


def scan_holders(proc: str = "/proc", netns: str | None = None
                 ) -> HolderScan:
    """One scan of every process's fds (a TAP queue is one fd): TAP name
    -> {pid: its /dev/net/tun fds on that TAP}. ``netns``: only processes
    in that network namespace count (a TAP of the same name in another
    namespace is another TAP; fdinfo names the device, not its
    namespace). A process whose namespace cannot be read counts."""
    index: dict[str, dict[int, list[int]]] = {}
    unreadable: dict[int, str] = {}
    for pid in _pids(proc):
        if netns is not None and _netns(proc, pid) not in (netns, None):
            continue
        try:
            fds = _fds(proc, pid)
        except ProcUnreadable as exc:
            unreadable[pid] = str(exc).split(": ", 1)[-1]
            continue
        for fd, target in fds.items():
            if target != TUN_DEV:
                continue
            ifname = _fdinfo_iff(proc, pid, fd)
            if ifname:
                index.setdefault(ifname, {}).setdefault(pid, []).append(fd)
    for holders in index.values():
        for fds in holders.values():
            fds.sort()
    return HolderScan(index, unreadable)


def _netns(proc: str, pid: int) -> str | None:
    try:
        return os.readlink(f"{proc}/{pid}/ns/net")
    except OSError:
        return None


def vhost_net_fds(pid: int, proc: str = "/proc") -> list[int]:
    """Raises ProcUnreadable when the fds of a live ``pid`` are hidden."""
    return sorted(fd for fd, target in _fds(proc, pid).items()
                  if target == VHOST_NET_DEV)


def _ppid(proc: str, pid: int) -> int | None:
    stat = _read(f"{proc}/{pid}/stat")
    try:
        return int(stat.rsplit(")", 1)[1].split()[1]) if stat else None
    except (IndexError, ValueError):
        return None


def vhost_workers(pid: int, proc: str = "/proc") -> list[int]:
    """Thread ids of the vhost workers serving ``pid``: ``vhost-<pid>``
    threads inside it (Linux >= 6.4, vhost_task) or kernel threads of that
    name (before 6.4). Raises ProcUnreadable when ``pid``'s threads are
    hidden."""
    name = f"vhost-{pid}"
    workers = [tid for tid in _task_ids(proc, pid)
               if comm(f"{proc}/{pid}/task", tid) == name]
    for other in _pids(proc):
        if other != pid and _ppid(proc, other) == 2 and comm(proc, other) == name:
            workers.append(other)
    return sorted(workers)


def _task_ids(proc: str, pid: int) -> list[int]:
    return sorted(int(t) for t in _listdir(f"{proc}/{pid}/task")
                  if t.isdigit())


def thread_samples(pid: int, proc: str = "/proc") -> dict[int, ThreadSample]:
    """Per-thread syscall counts and CPU ticks of ``pid``."""
    samples = {}
    for tid in _task_ids(proc, pid):
        base = f"{proc}/{pid}/task/{tid}"
        io = dict(line.split(": ", 1) for line in
                  (_read(f"{base}/io") or "").splitlines() if ": " in line)
        stat = _read(f"{base}/stat") or ""
        try:
            fields = stat.rsplit(")", 1)[1].split()
            cpu = int(fields[11]) + int(fields[12])
        except (IndexError, ValueError):
            cpu = 0
        samples[tid] = ThreadSample(tid, comm(f"{proc}/{pid}/task", tid),
                                    int(io.get("syscr", 0)),
                                    int(io.get("syscw", 0)), cpu)
    return samples


def process_alive(pid: int, proc: str = "/proc") -> bool:
    stat = _read(f"{proc}/{pid}/stat")
    if not stat:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")
