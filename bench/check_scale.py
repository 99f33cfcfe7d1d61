"""Benchmark: `virtio-ovs-ctl check` over N TAP ports on a private OVS.
Not a test: it prints.

    .venv/bin/python bench/check_scale.py [--ports 1000] [--json]

The ports are plugged in one transaction; no QEMU holds them, so the
check does its full work per port (one /proc scan for all, one netlink
dump, the per-port evidence) and says not-running.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.lab.sandbox import OvsSandbox  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with OvsSandbox(prefix="vck") as box:
        box.add_bridge("br-int")
        fd, path = tempfile.mkstemp(suffix=".jsonl")
        with os.fdopen(fd, "w") as f:
            for i in range(args.ports):
                f.write(json.dumps({"port_id": f"p{i}", "tap": f"t{i}",
                                    "mac": f"52:54:00:00:{i >> 8:02x}:"
                                           f"{i & 255:02x}",
                                    "queues": 2}) + "\n")
        box.exec([sys.executable, "-m", "virtio_ovs.cli", "--timeout", "600",
                  "plug", "--from-file", path], timeout=900)
        os.unlink(path)
        cmd = box.exec_cmd([sys.executable, "-m", "virtio_ovs.cli", "check",
                            "--format", "json"])
        start = time.monotonic()
        proc = subprocess.run(cmd, env=box.env, capture_output=True,
                              text=True, timeout=600)
        seconds = time.monotonic() - start
    reports = json.loads(proc.stdout)
    assert len(reports) == args.ports, proc.stderr
    result = {"ports": args.ports, "check_s": seconds,
              "command": f".venv/bin/python bench/check_scale.py --ports "
                         f"{args.ports}"}
    if args.json:
        print(json.dumps(result))
        return
    print(f"virtio-ovs-ctl check over {args.ports} TAP ports: {seconds:.2f} s "
          "(process start included)")
    print(f"command: {result['command']}")


if __name__ == "__main__":
    main()
