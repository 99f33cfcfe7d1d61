"""Live migrations, N of them, on the OVN or the standalone backend: the
network gap a peer sees against QEMU's own downtime (not a test).

    .venv/bin/python bench/migration.py [--backend ovn|standalone]
                                        [--runs N] [--json]

OVN: three hypervisors of the OVN lab (tests/lab/ovn.py); a TCG guest
moves from hypervisor 1 to 2 while a peer on 3 pings it at 100 pps.
Standalone: two hypervisors, each with its own OVS and agent, trunked into
a physical switch on which the peer sits in VLAN 100 (the destination
plugged with --migrating-from). virtio-ovs plugs both ends and its agents
run on 1 and 2 (tests/lab/migration.py). Prints per run, then p50 and max
of: QEMU downtime, the longest reply gap, the gap minus the downtime,
pings lost, duplicates, and pings lost while the destination was plugged.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.lab.guest import build_guest  # noqa: E402
from tests.lab.migration import (OvnMigrationLab,  # noqa: E402
                                 StandaloneMigrationLab, Vm, summary)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("ovn", "standalone"),
                        default="ovn")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    image = build_guest(os.path.join(ROOT, ".cache", "guest"))
    kind = OvnMigrationLab if args.backend == "ovn" else \
        StandaloneMigrationLab
    lab = kind(image, prefix="bm").start()
    rows = []
    try:
        for i in range(args.runs):
            vm = Vm(lab, f"bm{i}", 20 + i)
            try:
                figures = vm.migrate()
            finally:
                vm.stop()
            print(summary(vm.name, figures), flush=True)
            run = figures["move"]
            downtime = figures["qemu"].get("downtime", 0)
            rows.append({"downtime_ms": downtime,
                         "gap_ms": round(run.max_gap_ms(), 1),
                         "over_downtime_ms": round(run.max_gap_ms()
                                                   - downtime, 1),
                         "lost": len(run.lost), "duplicates": run.duplicates,
                         "lost_at_plug": len(figures["plug"].lost)})
    finally:
        lab.stop()
    table = {key: {"p50": statistics.median(r[key] for r in rows),
                   "max": max(r[key] for r in rows)} for key in rows[0]}
    command = (".venv/bin/python bench/migration.py --backend "
               f"{args.backend} --runs {args.runs}")
    if args.json:
        print(json.dumps({"command": command, "runs": rows, "table": table}))
        return 0
    print(f"\n{args.runs} migrations ({command}):")
    for key, value in table.items():
        print(f"  {key:18} p50 {value['p50']:8.1f}   max {value['max']:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
