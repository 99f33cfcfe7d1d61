"""Benchmark: where a bulk plug of N TAP VIFs spends its time, each part
measured on its own fresh private OVS (no instrumentation inside the CLI).
Not a test: it prints.

    .venv/bin/python bench/plug_phases.py [--count 1000] [--runs 5] [--json]

1. ``dry run``: ``virtio-ovs-ctl plug --dry-run --from-file``: the process's
   start, imports and config, connecting, validating every VIF and building
   the transaction's rows, which it then drops (no TAP, nothing sent);
2. ``TAPs``: ``TapManager.create`` of the N TAPs in the sandbox's
   namespace, ovs-vswitchd running (it reacts to every new link), timed in
   the creating process;
3. ``plug``: the plug itself, until every port has an ofport, as
   ``bench/plug_compare.py`` times it;
4. ``floor``: ``bench/plug_compare.py``'s raw python-ovs IDL transaction.

``plug - dry run - TAPs`` is what follows the building: sending the
transaction, ovsdb-server's answer and ovs-vswitchd numbering the ports,
which the floor also waits for (its figure, less its own building).
Each figure is the median of ``--runs`` runs; the four ways alternate.
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
from bench.plug_compare import (BRIDGE, plug_command, raw_idl,  # noqa: E402
                                vif_file, virtio_ovs)
from tests.lab.sandbox import OvsSandbox  # noqa: E402

# Run inside the namespace: prints the seconds TapManager.create took.
CREATE_TAPS = """
import sys, time
from virtio_ovs.kernel.taps import NewTap, TapManager
taps = [NewTap(f"t{i}") for i in range(int(sys.argv[1]))]
manager = TapManager()
start = time.monotonic()
manager.create(taps, [])
print(time.monotonic() - start)
"""


def dry_run(box: OvsSandbox, n: int) -> float:
    path = vif_file(n)
    cmd = plug_command(box, path, "--dry-run")
    start = time.monotonic()
    proc = subprocess.run(cmd, env=box.env, capture_output=True, text=True)
    elapsed = time.monotonic() - start
    os.unlink(path)
    if proc.returncode != 0:
        raise SystemExit(f"virtio-ovs-ctl plug --dry-run failed: "
                         f"{proc.stderr}")
    return elapsed


def create_taps(box: OvsSandbox, n: int) -> float:
    proc = subprocess.run(box.exec_cmd([sys.executable, "-c", CREATE_TAPS,
                                        str(n)]),
                          env=box.env, capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(
                              os.path.abspath(__file__))))
    if proc.returncode != 0:
        raise SystemExit(f"creating the TAPs failed: {proc.stderr}")
    return float(proc.stdout)


PARTS = {"dry_run": dry_run, "taps": create_taps, "plug": virtio_ovs,
         "floor": raw_idl}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.count < 1 or args.runs < 1:
        parser.error("--count and --runs: at least 1")
    runs: dict[str, list[float]] = {part: [] for part in PARTS}
    for run in range(args.runs):
        for part, measure in PARTS.items():
            with OvsSandbox(prefix="vpp") as box:
                box.add_bridge(BRIDGE)
                runs[part].append(measure(box, args.count))
            print(f"run {run + 1}: {part:8} {runs[part][-1]:6.3f} s",
                  file=sys.stderr)
    seconds = {part: statistics.median(v) for part, v in runs.items()}
    seconds["after_building"] = (seconds["plug"] - seconds["dry_run"]
                                 - seconds["taps"])
    command = (f".venv/bin/python bench/plug_phases.py --count {args.count}"
               f" --runs {args.runs}")
    if args.json:
        print(json.dumps({"count": args.count, "seconds": seconds,
                          "runs": runs, "command": command}))
        return
    print(f"a bulk plug of {args.count} TAP VIFs, in parts (medians of "
          f"{args.runs} runs, each on a fresh OVS):")
    print(f"  start, validation, rows built (--dry-run)  "
          f"{seconds['dry_run']:6.3f} s")
    print(f"  creating the TAPs                          "
          f"{seconds['taps']:6.3f} s")
    print(f"  the rest: commit, ovs-vswitchd numbering   "
          f"{seconds['after_building']:6.3f} s")
    print(f"  the plug                                   "
          f"{seconds['plug']:6.3f} s  "
          f"({seconds['plug'] / seconds['floor']:.2f}x the floor)")
    print(f"  the floor (raw IDL, TAPs made beforehand)  "
          f"{seconds['floor']:6.3f} s")
    print(f"command: {command}")


if __name__ == "__main__":
    main()
