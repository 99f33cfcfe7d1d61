"""Benchmark: TCP throughput (iperf3, 5 s) between two guests through the
agent's flows, against the same two guests on a plain NORMAL bridge, on
the userspace datapath. Not a test: it prints.

    .venv/bin/python bench/iperf_ratio.py [--seconds 5] [--json]

Guests are network namespaces with a veth plugged the way libvirt plugs a
TAP (the flows and the datapath are the same for a TAP); each side runs on
its own private OVS.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.functional.topology import Topology  # noqa: E402
from tests.lab.sandbox import OvsSandbox  # noqa: E402


def throughput(topo: Topology, seconds: float) -> float:
    """Gbit/s from g1 to g2."""
    g1, g2 = topo.guests["g1"], topo.guests["g2"]
    server = topo.popen(g2.netns, ["iperf3", "-s", "-1", "-B", g2.addr],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        out = topo.run(g1.netns, ["iperf3", "-c", g2.addr, "-t", str(seconds),
                                  "-J"], timeout=seconds + 30).stdout
    finally:
        server.wait(timeout=10)
    return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e9


def side(agent: bool, seconds: float) -> float:
    box = OvsSandbox(prefix="vip")
    box.start()
    topo = Topology(box)
    try:
        box.add_bridge("br-int")
        if agent:
            topo.write_config()
            topo.start_agent()
            topo.ctl_ok("net-create", "blue", "--type", "local")
        else:
            box.vsctl("set", "Bridge", "br-int", "fail_mode=standalone")
        for i, name in enumerate(("g1", "g2"), 1):
            guest = topo.add_guest(name, f"52:54:00:00:0f:0{i}",
                                   f"10.0.15.{i}/24")
            if agent:
                topo.ctl_ok("bind", "--port-id", guest.port_id, "--network",
                            "blue", "--ip", guest.ip)
        topo.wait_until(lambda: topo.ping(topo.guests["g1"],
                                          "10.0.15.2"), 30, "g1 -> g2")
        return throughput(topo, seconds)
    finally:
        topo.close()
        box.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    agent = side(True, args.seconds)
    normal = side(False, args.seconds)
    result = {"agent_gbps": agent, "normal_gbps": normal,
              "ratio": agent / normal,
              "command": f".venv/bin/python bench/iperf_ratio.py --seconds "
                         f"{args.seconds:g}"}
    if args.json:
        print(json.dumps(result))
        return
    print(f"iperf3 TCP g1 -> g2, {args.seconds:g} s, userspace datapath:")
    print(f"  through the agent's flows: {agent:.2f} Gbit/s")
    print(f"  plain NORMAL bridge:       {normal:.2f} Gbit/s")
    print(f"  ratio: {agent / normal:.2f}")
    print(f"command: {result['command']}")


if __name__ == "__main__":
    main()
