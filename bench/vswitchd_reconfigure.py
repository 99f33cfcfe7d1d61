"""Does the agent's heartbeat (Open_vSwitch external_ids) or its verdicts
(Interface external_ids) make ovs-vswitchd reconfigure? (Not a test: it
prints.) A control write (mtu_request) is the comparison.

    .venv/bin/python bench/vswitchd_reconfigure.py [--ports 1000]

Counts ovs-vswitchd's own ``bridge_reconfigure`` coverage counter around
10 writes of each kind, on a private OVS with the dummy datapath.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.lab.dummy import DummyOvs  # noqa: E402

WRITES = {
    "Open_vSwitch external_ids (the heartbeat)":
        ("Open_vSwitch", ".", 'external_ids:virtio-ovs\\:agent="{i}"'),
    "Interface external_ids (a verdict)":
        ("Interface", "d1", 'external_ids:virtio-ovs\\:verdict="{i}"'),
    "Interface mtu_request (control)":
        ("Interface", "d1", "mtu_request={mtu}"),
}


def reconfigures(ovs: DummyOvs) -> int:
    out = subprocess.run(["ovs-appctl", "-t", f"{ovs.dir}/ovs-vswitchd.ctl",
                          "coverage/read-counter", "bridge_reconfigure"],
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip() or 0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", type=int, default=1000)
    args = parser.parse_args()
    ovs = DummyOvs("vrec").start()
    try:
        ovs.vsctl("add-br", "br-int")
        for first in range(0, args.ports, 500):
            cmd = []
            for i in range(first, min(args.ports, first + 500)):
                cmd += ["--", "add-port", "br-int", f"d{i}"]
            ovs.vsctl(*cmd)
        time.sleep(1)
        print(f"command: .venv/bin/python bench/vswitchd_reconfigure.py "
              f"--ports {args.ports}")
        for what, (table, record, setting) in WRITES.items():
            before = reconfigures(ovs)
            for i in range(10):
                ovs.vsctl("--no-wait", "set", table, record,
                          setting.format(i=i, mtu=1400 + i))
                time.sleep(0.2)
            time.sleep(1)
            print(f"10 writes of {what}: {reconfigures(ovs) - before} "
                  "ovs-vswitchd reconfigurations")
    finally:
        ovs.stop()


if __name__ == "__main__":
    main()
