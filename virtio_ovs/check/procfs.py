"""Evidence from /proc: who holds a TAP's queues, vhost-net fds and
workers, per-thread syscalls and CPU.

Every function takes ``proc`` (default "/proc") so that recorded /proc
trees (tests/fixtures) give the same answers as a live host.
"""
from __future__ import annotations

import dataclasses
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


def _pids(proc: str) -> list[int]:
    try:
        return sorted(int(p) for p in os.listdir(proc) if p.isdigit())
    except OSError:
        return []


def _fds(proc: str, pid: int) -> dict[int, str]:
    """fd -> link target."""
    fd_dir = f"{proc}/{pid}/fd"
    result = {}
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return {}
    for name in names:
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


def scan_tap_holders(proc: str = "/proc") -> dict[str, dict[int, list[int]]]:
    """TAP name -> {pid: its /dev/net/tun fds on that TAP}, one scan of
    every process (a TAP queue is one fd)."""
    index: dict[str, dict[int, list[int]]] = {}
    for pid in _pids(proc):
        for fd, target in _fds(proc, pid).items():
            if target != TUN_DEV:
                continue
            ifname = _fdinfo_iff(proc, pid, fd)
            if ifname:
                index.setdefault(ifname, {}).setdefault(pid, []).append(fd)
    for holders in index.values():
        for fds in holders.values():
            fds.sort()
    return index


def vhost_net_fds(pid: int, proc: str = "/proc") -> list[int]:
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
    name (before 6.4)."""
    name = f"vhost-{pid}"
    workers = [tid for tid in _task_ids(proc, pid)
               if comm(f"{proc}/{pid}/task", tid) == name]
    for other in _pids(proc):
        if other != pid and _ppid(proc, other) == 2 and comm(proc, other) == name:
            workers.append(other)
    return sorted(workers)


def _task_ids(proc: str, pid: int) -> list[int]:
    try:
        return sorted(int(t) for t in os.listdir(f"{proc}/{pid}/task")
                      if t.isdigit())
    except OSError:
        return []


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
