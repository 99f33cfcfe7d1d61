"""The agent's first sync, its ovs-vswitchd part: two ways of installing a
whole table (not a test: it prints). Needs root.

    .venv/bin/python bench/first_sync.py [--ports 1000]

A private OVS (userspace datapath, own namespace) holds ``--ports`` bound
TAP ports plugged by virtio-ovs; their flows are computed as the agent
computes them. Each way starts from an empty table and ends when its
bundle is committed:
- ``ovs-ofctl --bundle replace-flows`` of the flows' text (the agent's way
  today: ovs-ofctl dumps the table, diffs, sends one bundle);
- one bundle of the same flow mods over an OpenFlow connection kept open
  (``OpenFlowConnection``, the agent's way for changes).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import agent_scale as scale  # noqa: E402
from bench.common import add_integration_bridge  # noqa: E402
from virtio_ovs.openflow import wire as ofwire  # noqa: E402
from virtio_ovs.network.flows import (HostState, PortFlowCache,  # noqa: E402
                                      compute_flows)
from virtio_ovs.openflow.switch import OpenFlowConnection  # noqa: E402
from virtio_ovs.ovsdb.host.impl import IdlHostDb  # noqa: E402
from tests.lab.sandbox import OvsSandbox  # noqa: E402

COOKIE = 0x1234
OFCTL = "ovs-ofctl --bundle replace-flows"
OPEN = "one bundle over an open connection"


def desired_flows(box: OvsSandbox) -> list:
    db = IdlHostDb(box.remote, 60, is_tap=lambda name: True)
    try:
        db.start()
        state = HostState("br-int", tuple(db.list_ports()), db.networks(),
                          {}, db.groups())
        return sorted(compute_flows(state, PortFlowCache())["br-int"])
    finally:
        db.close()


def empty_table(box: OvsSandbox) -> None:
    box.exec(["ovs-ofctl", "-O", "OpenFlow14", "del-flows", "br-int"])


def by_ovs_ofctl(box: OvsSandbox, flows: list) -> float:
    text = "".join(f"{f.text(COOKIE)}\n" for f in flows)
    start = time.monotonic()
    box.exec(["ovs-ofctl", "-O", "OpenFlow14", "--no-names", "--bundle",
              "replace-flows", "br-int", "-"], input=text, timeout=600)
    return time.monotonic() - start


def by_open_connection(box: OvsSandbox, flows: list) -> float:
    os.environ["OVS_RUNDIR"] = box.rundir
    conn = OpenFlowConnection("br-int", 600)
    try:
        start = time.monotonic()
        conn.bundle(lambda bundle_id, next_xid: [
            ofwire.flow_mod(f, ofwire.OFPFC_ADD, COOKIE, next_xid())
            for f in flows])
        return time.monotonic() - start
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with OvsSandbox(prefix="vsync") as box:
        add_integration_bridge(box)
        scale.ctl(box, "net-create", "blue", "--type", "local")
        scale.plug_bound(box, 0, args.ports)
        flows = desired_flows(box)
        results = {}
        for name, way in ((OFCTL, by_ovs_ofctl), (OPEN, by_open_connection)):
            empty_table(box)
            time.sleep(1)
            results[name] = way(box, flows)
            count = scale.flow_count(box)
            assert count == len(flows), (name, count, len(flows))
    command = f".venv/bin/python bench/first_sync.py --ports {args.ports}"
    if args.json:
        print(json.dumps({"ports": args.ports, "flows": len(flows),
                          "ovs_ofctl_s": results[OFCTL],
                          "open_connection_s": results[OPEN],
                          "command": command}))
        return
    for name, seconds in results.items():
        print(f"{len(flows)} flows ({args.ports} ports) into an empty table, "
              f"{name}: {seconds:.2f} s")
    print(f"command: {command}")


if __name__ == "__main__":
    main()
