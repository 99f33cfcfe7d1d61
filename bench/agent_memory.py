"""Where the agent's memory goes (not a test: it prints).

    .venv/bin/python bench/agent_memory.py [--ports 2000] [--top 15]

First, before any port: the RSS of a fresh interpreter, then what each
group of the agent's imports adds, in a fresh process. Then per port: a
private ovs-vswitchd with the dummy datapath (no root) holds ``--ports``
bound ports; the agent runs its real loop in a thread of this process
under tracemalloc until its first full sync. Prints the Python memory it
holds then, per port, and the source lines that allocated most of it.

With ``bench/side_by_side.py --ports 0`` and ``--ports 1000`` (the agent's
and ovn-controller's RSS with no port and with 1,000), this is the
profile of where ovn-controller wins on memory and why.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import dummy_with_ports  # noqa: E402
from virtio_ovs import conf as conf_mod  # noqa: E402
from virtio_ovs.agent.agent import build_agent  # noqa: E402


# (label, modules): imported in this order, in one fresh process.
IMPORTS = (
    ("python-ovs (the IDL, its C JSON parser and the libraries "
     "libopenvswitch links: libcrypto, libunbound, libbpf...)",
     ("ovs.json", "ovs.db.idl")),
    ("oslo.config", ("oslo_config.cfg",)),
    ("oslo.log", ("oslo_log.log",)),
    ("prometheus_client", ("prometheus_client",)),
    ("virtio_ovs's own modules", ("virtio_ovs.agent.agent",
                                  "virtio_ovs.backend.factory")),
)
PROBE = """
import importlib, json, sys
def rss():
    with open("/proc/self/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0]) / 1024
out = [["a fresh interpreter", rss()]]
for label, modules in json.loads(sys.argv[1]):
    before = rss()
    for module in modules:
        importlib.import_module(module)
    out.append([label, rss() - before])
print(json.dumps(out))
"""


def baseline() -> list[tuple[str, float]]:
    """(what, MB of RSS it adds) before the first port."""
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(IMPORTS)],
                          capture_output=True, text=True, check=True)
    return [(label, mb) for label, mb in json.loads(proc.stdout)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", type=int, default=2000)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--json", action="store_true",
                        help="one JSON object: the RSS before the first "
                        "port by import, the Python heap per port")
    args = parser.parse_args()
    command = f".venv/bin/python bench/agent_memory.py --ports {args.ports}"
    stages = baseline()
    if not args.json:
        print("RSS before the first port, by what the agent imports:")
        for label, mb in stages:
            print(f"  {mb:6.1f} MB  {label}")
        print(f"  {sum(mb for _, mb in stages):6.1f} MB  in all")
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
    if args.json:
        print(json.dumps({"baseline": stages, "ports": args.ports,
                          "heap_mib": total / 2**20, "command": command}))
        return
    print(f"Python memory held by the agent after its first sync with "
          f"{args.ports} ports: {total / 2**20:.1f} MiB "
          f"({total / args.ports / 1024:.1f} KiB per port)")
    for stat in stats[:args.top]:
        frame = stat.traceback[0]
        print(f"  {stat.size / 2**20:7.1f} MiB  {stat.count:8}  "
              f"{frame.filename.split('site-packages/')[-1]}:{frame.lineno}")
    print(f"command: {command}")


if __name__ == "__main__":
    main()
