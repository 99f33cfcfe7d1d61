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
from bench.agent_profile import vif  # noqa: E402
from virtio_ovs import conf as conf_mod  # noqa: E402
from virtio_ovs.agent.agent import Agent  # noqa: E402
from virtio_ovs.ovsdb.host.api import PlugOutcome  # noqa: E402
from virtio_ovs.ovsdb.host.impl import IdlHostDb  # noqa: E402
from virtio_ovs.testing.dummy import DummyOvs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", type=int, default=2000)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    ovs = DummyOvs("vmem").start()
    try:
        os.environ["OVS_RUNDIR"] = ovs.dir
        ovs.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int",
                  "fail_mode=secure")
        db = IdlHostDb(ovs.remote, 300, is_tap=lambda name: True)
        db.create_network("blue", "local", None, None, {})
        for first in range(0, args.ports, 1000):
            db.plug([vif(i) for i in range(first, min(args.ports,
                                                       first + 1000))],
                    PlugOutcome())
        db.close()
        path = os.path.join(ovs.dir, "agent.conf")
        with open(path, "w") as f:
            f.write(f"[ovs]\novsdb_connection = {ovs.remote}\n"
                    "datapath_type = system\novsdb_timeout = 120\n"
                    "[agent]\nreport_interval = 30\ncheck_interval = 0\n"
                    "gc_interval = 0\n")
        tracemalloc.start(1)
        agent = Agent(conf_mod.load([path], prog="virtio-ovs-agent"))
        thread = threading.Thread(target=agent.run, daemon=True)
        thread.start()
        while not agent.first_sync_done:
            time.sleep(0.1)
        time.sleep(2)
        snapshot = tracemalloc.take_snapshot()
        agent.stop()
        thread.join(30)
    finally:
        ovs.stop()
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
