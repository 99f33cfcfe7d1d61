"""The agent's first sync, its ovs-vswitchd part: installing a whole table
by ovs-ofctl and by the agent's own connections, one to many (not a test:
it prints). Needs root.

    .venv/bin/python bench/first_sync.py [--ports 1000]
                                         [--connections 1,2,4,8,16]

A private OVS (userspace datapath, own namespace) holds ``--ports`` bound
TAP ports plugged by virtio-ovs; their flows are computed as the agent
computes them. Each way starts from an empty table and ends when the
table holds exactly those flows:
- ``ovs-ofctl --bundle replace-flows`` of the flows' text (the agent's
  first sync until 2026-12: ovs-ofctl dumps the table, diffs, sends one
  bundle over one connection);
- ``OpenFlowBridge.replace_all`` (the agent's first sync now): each port's
  flows within one atomic bundle, the bundles spread over N connections
  at once, then one bundle deleting flows of other cookies; once per N.
ovs-vswitchd reads at most 50 messages per connection per main-loop
iteration, and the iteration polls every port: the rate should grow with
N until something else limits it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import agent_scale as scale  # noqa: E402
from bench.common import add_integration_bridge, empty_table  # noqa: E402
from virtio_ovs.network.flows import (HostState, PortFlowCache,  # noqa: E402
                                      compute_flows)
from virtio_ovs.openflow.switch import OpenFlowBridge  # noqa: E402
from virtio_ovs.ovsdb.host.impl import IdlHostDb  # noqa: E402
from tests.lab.sandbox import OvsSandbox  # noqa: E402

COOKIE = 0x1234
OFCTL = "ovs-ofctl --bundle replace-flows"


def desired_flows(box: OvsSandbox) -> tuple[list, list[list]]:
    """The flows, and the first sync's chunks (each port's, the rest)."""
    db = IdlHostDb(box.remote, 60, is_tap=lambda name: True)
    try:
        db.start()
        state = HostState("br-int", tuple(db.list_ports()), db.networks(),
                          {}, db.groups())
        cache = PortFlowCache()
        flows = compute_flows(state, cache)["br-int"]
        return sorted(flows), cache.chunks(flows)
    finally:
        db.close()


def by_ovs_ofctl(box: OvsSandbox, flows: list) -> float:
    text = "".join(f"{f.text(COOKIE)}\n" for f in flows)
    start = time.monotonic()
    box.exec(["ovs-ofctl", "-O", "OpenFlow14", "--no-names", "--bundle",
              "replace-flows", "br-int", "-"], input=text, timeout=600)
    return time.monotonic() - start


def by_connections(box: OvsSandbox, chunks: list[list], count: int
                   ) -> float:
    os.environ["OVS_RUNDIR"] = box.rundir
    bridge = OpenFlowBridge("br-int", 600)
    try:
        start = time.monotonic()
        bridge.replace_all(chunks, COOKIE, connections=count)
        return time.monotonic() - start
    finally:
        bridge.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", type=int, default=1000)
    parser.add_argument("--connections", default="1,2,4,8,16")
    parser.add_argument("--no-ofctl", action="store_true",
                        help="skip ovs-ofctl (252 s at 10,000 ports)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    counts = [int(n) for n in args.connections.split(",")]
    with OvsSandbox(prefix="vsync") as box:
        add_integration_bridge(box)
        scale.ctl(box, "net-create", "blue", "--type", "local")
        scale.plug_bound(box, 0, args.ports)
        flows, chunks = desired_flows(box)
        ways = [] if args.no_ofctl else [(OFCTL, lambda: by_ovs_ofctl(
            box, flows))]
        ways += [(f"replace_all, {n} connection{'s' * (n > 1)}",
                  lambda n=n: by_connections(box, chunks, n)) for n in counts]
        results = {}
        for name, way in ways:
            empty_table(box)
            time.sleep(1)
            results[name] = way()
            count = scale.flow_count(box)
            assert count == len(flows), (name, count, len(flows))
            print(f"{len(flows)} flows ({args.ports} ports), {name}: "
                  f"{results[name]:.2f} s ({len(flows) / results[name]:.0f} "
                  "flows/s)", flush=True)
    command = (f".venv/bin/python bench/first_sync.py --ports {args.ports} "
               f"--connections {args.connections}"
               + (" --no-ofctl" if args.no_ofctl else ""))
    if args.json:
        print(json.dumps({"ports": args.ports, "flows": len(flows),
                          "seconds": results, "command": command}))
        return
    print(f"command: {command}")


if __name__ == "__main__":
    main()
