"""How ovs-vswitchd's userspace datapath scales with ports: add TAPs in
batches of --batch (one OVSDB transaction each, the way a bulk plug does)
and time each batch until every port has an ofport. Not a test: it prints.

    .venv/bin/python bench/vswitchd_port_add.py [--batch 1000] [--batches 5]

If each batch takes longer than the one before, by about the same step,
adding ports costs O(ports already there) each: O(n^2) in total.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import add_taps, count_ofports  # noqa: E402
from tests.lab.sandbox import OvsSandbox  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    times = []
    with OvsSandbox(prefix="vpa") as box:
        box.add_bridge("br-int")
        for b in range(args.batches):
            names = [f"t{i}" for i in range(b * args.batch,
                                            (b + 1) * args.batch)]
            add_taps(box.netns, names, vnet_hdr=True)
            cmd = []
            for name in names:
                cmd += ["--", "add-port", "br-int", name]
            start = time.monotonic()
            box.vsctl("--no-wait", *cmd, timeout=300)
            while count_ofports(box.vsctl) < (b + 1) * args.batch:
                if time.monotonic() - start > args.timeout:
                    break
                time.sleep(0.1)
            times.append(time.monotonic() - start)
            print(f"ports {b * args.batch:6} -> {(b + 1) * args.batch:6}: "
                  f"{times[-1]:7.2f} s", file=sys.stderr, flush=True)
            if times[-1] > args.timeout:
                break
    command = (f".venv/bin/python bench/vswitchd_port_add.py --batch "
               f"{args.batch} --batches {args.batches}")
    if args.json:
        print(json.dumps({"batch": args.batch, "seconds": times,
                          "command": command}))
    else:
        print(f"command: {command}")


if __name__ == "__main__":
    main()
