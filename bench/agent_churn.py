"""Does the agent's memory follow the live port count under churn?
(Not a test: it prints.)

    .venv/bin/python bench/agent_churn.py [--ports 250] [--rounds 8]

Plugs ``--ports`` bound TAP VIFs in one transaction, waits until the agent
has installed their flows, unplugs them all in one transaction, and does
it ``--rounds`` times with new port ids and MACs each round (a cache keyed
on them would grow). Prints the agent's RSS after each round.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.agent_scale import (agent_log, ctl, flow_count, plug_bound,  # noqa: E402
                               rss_mb, start_agent)
from tests.lab.sandbox import OvsSandbox  # noqa: E402


def wait_flows(box: OvsSandbox, predicate, timeout: float = 300) -> None:
    end = time.monotonic() + timeout
    while not predicate(flow_count(box)):
        if time.monotonic() > end:
            raise SystemExit("timed out waiting for the agent's flows:\n"
                             + agent_log(box)[-2000:])
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", type=int, default=250)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    with OvsSandbox(prefix="vch") as box:
        box.add_bridge("br-int")
        agent = start_agent(box)
        try:
            ctl(box, "net-create", "blue", "--type", "local")
            wait_flows(box, lambda n: n > 0)
            idle = flow_count(box)
            print(f"command: .venv/bin/python bench/agent_churn.py --ports "
                  f"{args.ports} --rounds {args.rounds}")
            print(f"round  cycles  agent RSS (MB)\n    0       0  "
                  f"{rss_mb(agent.pid):6.1f}")
            for r in range(args.rounds):
                first = 100000 * (r + 1)
                plug_bound(box, first, args.ports)
                wait_flows(box, lambda n: n >= idle + args.ports)
                unplug = []
                for i in range(first, first + args.ports):
                    unplug += ["--port-id", f"p{i}"]
                ctl(box, "unplug", *unplug)
                wait_flows(box, lambda n: n == idle)
                print(f"{r + 1:5}  {(r + 1) * args.ports:6}  "
                      f"{rss_mb(agent.pid):6.1f}")
        finally:
            agent.terminate()
            agent.wait(timeout=30)


if __name__ == "__main__":
    main()
