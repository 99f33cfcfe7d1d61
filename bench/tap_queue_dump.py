"""The check's TAP queue counts for N TAPs: its own rtnetlink dump against
pyroute2's full parse, time and RSS growth. Not a test: it prints.

    .venv/bin/python bench/tap_queue_dump.py [--taps 5000]

Runs as root: the TAPs live in a private network namespace, deleted at
the end. Each way runs in a fresh process.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from bench.common import add_taps, private_netns  # noqa: E402
MEASURE = """
import sys, time
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1]) / 1024
from virtio_ovs.check import queues
if sys.argv[1] == 'pyroute2':
    from pyroute2 import IPRoute
before = rss()
start = time.monotonic()
if sys.argv[1] == 'pyroute2':
    with IPRoute() as ipr:
        n = sum(1 for m in ipr.get_links())  # every link, lo included
else:
    n = len(queues.all_tap_queues())
print(f"{time.monotonic() - start:.3f} {rss() - before:.1f} {n}")
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--taps", type=int, default=5000)
    args = parser.parse_args()
    with private_netns("vtqd") as netns:
        add_taps(netns, [f"t{i}" for i in range(args.taps)])
        for way in ("ours", "pyroute2"):
            out = subprocess.run(["ip", "netns", "exec", netns,
                                  sys.executable, "-c", MEASURE, way],
                                 cwd=ROOT, check=True, capture_output=True,
                                 text=True).stdout.split()
            print(f"{way:9} {float(out[0]):6.2f} s, RSS +{float(out[1]):.0f} "
                  f"MB, {out[2]} links read")
    print(f"command: .venv/bin/python bench/tap_queue_dump.py --taps "
          f"{args.taps}")


if __name__ == "__main__":
    main()
