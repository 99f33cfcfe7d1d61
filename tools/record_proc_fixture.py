#!/usr/bin/env python3
"""Record the /proc entries the bypass check reads for one process.

    tools/record_proc_fixture.py PID OUTDIR

Copies comm, stat, the fd links (as symlinks), fdinfo of /dev/net/tun and
/dev/vhost-net fds, and every thread's comm, stat and io, under
OUTDIR/<pid>/, so tests can point the check at OUTDIR instead of /proc.
"""
import os
import shutil
import sys

KEEP = ("/dev/net/tun", "/dev/vhost-net")


def record(pid: int, out: str) -> None:
    src, dst = f"/proc/{pid}", os.path.join(out, str(pid))
    os.makedirs(f"{dst}/fd", exist_ok=True)
    os.makedirs(f"{dst}/fdinfo", exist_ok=True)
    for name in ("comm", "stat"):
        shutil.copyfile(f"{src}/{name}", f"{dst}/{name}")
    for fd in os.listdir(f"{src}/fd"):
        try:
            target = os.readlink(f"{src}/fd/{fd}")
        except OSError:
            continue
        os.symlink(target, f"{dst}/fd/{fd}")
        if target in KEEP:
            shutil.copyfile(f"{src}/fdinfo/{fd}", f"{dst}/fdinfo/{fd}")
    for tid in os.listdir(f"{src}/task"):
        os.makedirs(f"{dst}/task/{tid}", exist_ok=True)
        for name in ("comm", "stat", "io"):
            shutil.copyfile(f"{src}/task/{tid}/{name}",
                            f"{dst}/task/{tid}/{name}")


if __name__ == "__main__":
    record(int(sys.argv[1]), sys.argv[2])
