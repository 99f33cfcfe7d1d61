"""Deleting many TAPs: one RTM_DELLINK each vs one for a link group (not a
test: it prints).

    .venv/bin/python bench/tap_delete.py [--taps 1000]

Creates the TAPs in a private network namespace, deletes half one at a time
and half with TapManager.delete_many, and prints both times.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import private_netns  # noqa: E402

WORKER = """
import sys, time
from virtio_ovs.kernel.taps import TapManager
n = int(sys.argv[1])
taps = TapManager()
for i in range(2 * n):
    taps.create(f"td{i}", 1)
start = time.monotonic()
for i in range(n):
    taps.delete(f"td{i}")
single = time.monotonic() - start
start = time.monotonic()
taps.delete_many([f"td{i}" for i in range(n, 2 * n)])
print(f"{single:.2f} {time.monotonic() - start:.2f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--taps", type=int, default=1000)
    args = parser.parse_args()
    with private_netns("vtd") as netns:
        out = subprocess.run(["ip", "netns", "exec", netns, sys.executable,
                              "-c", WORKER, str(args.taps)], check=True,
                             capture_output=True, text=True,
                             cwd=os.path.dirname(os.path.dirname(
                                 os.path.abspath(__file__)))).stdout
    single, batch = out.split()
    print(f"command: .venv/bin/python bench/tap_delete.py --taps {args.taps}")
    print(f"{args.taps} TAPs deleted one RTM_DELLINK each: {single} s; "
          f"{args.taps} more with one link-group delete: {batch} s")


if __name__ == "__main__":
    main()
