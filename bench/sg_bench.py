"""Benchmark: security groups on the standalone backend (private OVS,
userspace datapath, conntrack in ovs-vswitchd).

1. iperf3 TCP between two guest namespaces on one network, with both ports
   in a security group (conntrack on every packet) and without, in the same
   run, alternating, ``--rounds`` times ``--seconds`` each.
2. With ``--ports`` ports bound and all in one group: the time from a
   ``sg-rule-add`` returning until the agent has installed the rule's flow
   for every port (counted in the switch).

    .venv/bin/python bench/sg_bench.py [--rounds 3] [--seconds 3] [--ports 1000]

Not a test: it prints.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import add_taps  # noqa: E402
import agent_scale as scale  # noqa: E402
from tests.lab.process import terminate  # noqa: E402
from tests.lab.sandbox import OvsSandbox, delete_netns  # noqa: E402


def guest(box: OvsSandbox, name: str, mac: str, cidr: str) -> str:
    netns = f"{box.name}-{name}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    port = f"v{name}{os.getpid() % 1000}"
    box.exec(["ip", "link", "add", port, "type", "veth", "peer", "name",
              "eth0", "netns", netns])
    box.exec(["ip", "link", "set", port, "up"])
    for cmd in (["ip", "link", "set", "lo", "up"],
                ["ip", "link", "set", "eth0", "address", mac, "up"],
                ["ip", "addr", "add", cidr, "dev", "eth0"],
                ["ethtool", "-K", "eth0", "tx", "off"]):
        subprocess.run(["ip", "netns", "exec", netns, *cmd], check=True,
                       capture_output=True)
    box.vsctl("add-port", "br-int", port, "--", "set", "Interface", port,
              f"external_ids:iface-id={name}", f"external_ids:attached-mac={mac}")
    scale.ctl(box, "bind", "--port-id", name, "--network", "blue", "--ip",
              cidr)
    return netns


def iperf(client: str, server_ip: str, seconds: float) -> float:
    out = subprocess.run(["ip", "netns", "exec", client, "iperf3", "-c",
                          server_ip, "-t", str(seconds), "-J"],
                         capture_output=True, text=True, timeout=seconds + 30)
    return json.loads(out.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9


def throughput(box: OvsSandbox, rounds: int, seconds: float) -> None:
    scale.ctl(box, "sg-create", "bench")
    scale.ctl(box, "sg-rule-add", "bench", "--direction", "ingress",
              "--protocol", "tcp", "--port-min", "5201", "--port-max", "5201")
    a = guest(box, "ga", "52:54:00:10:00:01", "10.9.0.1/24")
    b = guest(box, "gb", "52:54:00:10:00:02", "10.9.0.2/24")
    server = subprocess.Popen(["ip", "netns", "exec", b, "iperf3", "-s"],
                              stdout=subprocess.DEVNULL)
    results: dict[str, list[float]] = {"without": [], "with": []}
    try:
        time.sleep(1)
        for _ in range(rounds):
            for mode in ("without", "with"):
                for port in ("ga", "gb"):
                    scale.ctl(box, "port-update", "--port-id", port,
                              *(["--security-group", "bench"] if mode == "with"
                                else ["--no-security-group"]))
                time.sleep(1)  # the agent's flows
                results[mode].append(iperf(a, "10.9.0.2", seconds))
    finally:
        terminate(server)
        for netns in (a, b):
            delete_netns(netns)
    without = statistics.median(results["without"])
    with_sg = statistics.median(results["with"])
    print(f"iperf3 TCP, {rounds} x {seconds:g} s each way, alternating: "
          f"without a group {without:.2f} Gbit/s, with {with_sg:.2f} Gbit/s,"
          f" ratio {with_sg / without:.2f}")
    print(f"  runs without: {[round(x, 2) for x in results['without']]}, "
          f"with: {[round(x, 2) for x in results['with']]}")


def rule_change(box: OvsSandbox, ports: int) -> None:
    scale.ctl(box, "sg-create", "many")
    lines = "".join(json.dumps({"port_id": f"p{i}", "mac": scale.mac(i),
                                "tap": f"t{i}", "network": "blue",
                                "ips": [scale.ip(i)],
                                "security_groups": ["many"]}) + "\n"
                    for i in range(ports))
    start = time.monotonic()
    scale.ctl(box, "plug", "--from-file", "-", input=lines)
    wait_for(box, "table=60,dl_dst=" + scale.mac(ports - 1), 1, 600)
    print(f"{ports} ports plugged in one group until their ingress flows "
          f"are in: {time.monotonic() - start:.2f} s")
    scale.ctl(box, "sg-rule-add", "many", "--direction", "ingress",
              "--protocol", "tcp", "--port-min", "7000", "--port-max", "7000")
    start = time.monotonic()
    wait_for(box, "table=71,tcp,tp_dst=7000", ports, 120)
    print(f"sg-rule-add with {ports} ports in the group: rule flows on every"
          f" port {(time.monotonic() - start) * 1000:.0f} ms after the "
          "command returned")


def wait_for(box: OvsSandbox, match: str, count: int, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        proc = box.exec(["ovs-ofctl", "dump-flows", "br-int", match],
                        check=False)
        if proc.returncode == 0 and proc.stdout.count("cookie=") >= count:
            return
        time.sleep(0.02)
    raise SystemExit(f"timed out waiting for {count} flows {match}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--ports", type=int, default=1000)
    args = parser.parse_args()
    with OvsSandbox(prefix="vsgb") as box:
        box.add_bridge("br-int")
        agent = scale.start_agent(box)
        try:
            scale.ctl(box, "net-create", "blue", "--type", "local")
            throughput(box, args.rounds, args.seconds)
            add_taps(box.netns, [f"t{i}" for i in range(args.ports)])
            rule_change(box, args.ports)
        finally:
            terminate(agent)
    print(f"command: .venv/bin/python bench/sg_bench.py --rounds "
          f"{args.rounds} --seconds {args.seconds:g} --ports {args.ports}")


if __name__ == "__main__":
    main()
