"""What the agent does in the seconds after a cold start that its
"idle" CPU figure covers (not a test: it prints).

    .venv/bin/python bench/agent_idle.py [--ports 2000] [--settle 3]

``--ports`` bound ports on a private OVS; once every port's flows are in,
waits ``--settle`` seconds, then measures the agent's CPU over 10 s and
counts the reconciles its debug log shows meanwhile, with their times.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import agent_scale as scale  # noqa: E402
from bench.common import add_integration_bridge  # noqa: E402
from tests.lab.sandbox import OvsSandbox  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", type=int, default=2000)
    parser.add_argument("--settle", type=float, default=3)
    args = parser.parse_args()
    with OvsSandbox(prefix="vidl") as box:
        add_integration_bridge(box)
        scale.ctl(box, "net-create", "blue", "--type", "local")
        scale.plug_bound(box, 0, args.ports)
        agent = scale.start_agent(box)
        try:
            scale.wait_flows(box, args.ports * scale.flows_per_port(),
                             timeout=600)
            time.sleep(args.settle)
            log_start = len(scale.agent_log(box))
            cpu0 = scale.cpu_seconds(agent.pid)
            time.sleep(10)
            cpu = (scale.cpu_seconds(agent.pid) - cpu0) * 10
            with_flows, without = scale.reconcile_times(
                scale.agent_log(box)[log_start:])
        finally:
            agent.terminate()
            agent.wait()
    print(f"{args.ports} ports, {args.settle:g} s after the cold start: "
          f"agent CPU {cpu:.1f} % over 10 s; reconciles meanwhile: "
          f"{len(without)} without flows to send {without} ms, "
          f"{len(with_flows)} with {with_flows} ms")
    print(f"command: .venv/bin/python bench/agent_idle.py --ports "
          f"{args.ports} --settle {args.settle:g}")


if __name__ == "__main__":
    main()
