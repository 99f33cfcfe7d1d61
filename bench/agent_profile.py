"""Where the agent's own reaction time goes, in-process (not a test: it
prints).

    .venv/bin/python bench/agent_profile.py [--ports 1000] [--new 20]

A private ovs-vswitchd with the dummy datapath (no root) holds ``--ports``
bound ports; the agent runs its real loop in a thread of this process
under cProfile. ``--new`` ports are plugged one at a time; for each, the
time from its commit until the agent has applied its flows is measured.
Prints those times, the agent's reconcile times, and the profile.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import dummy_with_ports, vif  # noqa: E402
from virtio_ovs import conf as conf_mod  # noqa: E402
from virtio_ovs.agent.agent import build_agent  # noqa: E402
from virtio_ovs.core.outcomes import PlugOutcome  # noqa: E402
from virtio_ovs.ovsdb.host.impl import IdlHostDb  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", type=int, default=1000)
    parser.add_argument("--new", type=int, default=20)
    args = parser.parse_args()
    with dummy_with_ports("vprof", args.ports) as (ovs, path):
        db = IdlHostDb(ovs.remote, 120, is_tap=lambda name: True)
        agent = build_agent(conf_mod.load([path], prog="virtio-ovs-agent"))
        profile, reconciles = cProfile.Profile(), []
        original = agent._reconcile_once

        def measured() -> None:
            start = time.monotonic()
            if agent.driver.synced:
                profile.enable()
            try:
                original()
            finally:
                profile.disable()
                reconciles.append((time.monotonic() - start) * 1000)
        agent._reconcile_once = measured
        thread = threading.Thread(target=agent.run, daemon=True)
        thread.start()
        while not agent.driver.synced:
            time.sleep(0.01)
        time.sleep(1)
        first = len(reconciles)
        reactions = []
        for i in range(args.ports, args.ports + args.new):
            new = vif(i)
            db.plug([new], PlugOutcome(), wait=False)
            start = time.monotonic()
            while not any(f"dl_src={new.mac}" in f.match
                          for f in agent.driver.applied.get("br-int", ())):
                time.sleep(0.0005)
            reactions.append((time.monotonic() - start) * 1000)
            time.sleep(0.05)
        agent.stop()
        thread.join(10)
        db.close()
    print(f"command: .venv/bin/python bench/agent_profile.py --ports "
          f"{args.ports} --new {args.new}")
    print(f"commit -> flows applied by the agent: p50 "
          f"{statistics.median(reactions):.1f} ms, max {max(reactions):.1f} ms")
    print(f"reconciles: {len(reconciles) - first}, p50 "
          f"{statistics.median(reconciles[first:]):.1f} ms")
    pstats.Stats(profile).sort_stats("cumtime").print_stats(30)


if __name__ == "__main__":
    main()
