"""Where the agent's memory goes, in-process (not a test: it prints).

    .venv/bin/python bench/agent_memory.py [--ports 2000] [--top 15]

A private ovs-vswitchd with the dummy datapath (no root) holds ``--ports``
bound ports; the agent runs its real loop in a thread of this process
under tracemalloc until its first full sync. Prints the Python memory it
holds then, per port, and the source lines that allocated most of it.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import dummy_with_ports  # noqa: E402
from virtio_ovs import conf as conf_mod  # noqa: E402
from virtio_ovs.agent.agent import build_agent  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", type=int, default=2000)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    with dummy_with_ports("vmem", args.ports) as (_, path):
        tracemalloc.start(1)
        agent = build_agent(conf_mod.load([path], prog="virtio-ovs-agent"))
        thread = threading.Thread(target=agent.run, daemon=True)
        thread.start()
        while not agent.driver.synced:
            time.sleep(0.1)
        time.sleep(2)
        snapshot = tracemalloc.take_snapshot()
        agent.stop()
        thread.join(30)
    stats = snapshot.statistics("lineno")
    total = sum(s.size for s in stats)
    print(f"Python memory held by the agent after its first sync with "
          f"{args.ports} ports: {total / 2**20:.1f} MiB "
          f"({total / args.ports / 1024:.1f} KiB per port)")
    for stat in stats[:args.top]:
        frame = stat.traceback[0]
        print(f"  {stat.size / 2**20:7.1f} MiB  {stat.count:8}  "
              f"{frame.filename.split('site-packages/')[-1]}:{frame.lineno}")
    print(f"command: .venv/bin/python bench/agent_memory.py --ports "
          f"{args.ports}")


if __name__ == "__main__":
    main()
