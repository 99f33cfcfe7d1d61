"""The README's demo: a private OVS, guest ports plugged through the IDL,
and what virtio-ovs reports about them. Everything lives in a network
namespace created here and is removed on exit or Ctrl-C."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile

from virtio_ovs.sandbox import OvsSandbox

VIFS = [
    {"port_id": "vm1-nic0", "mac": "52:54:00:00:01:01", "tap": "tapvm1",
     "vm": "vm1", "network": "blue", "ips": ["10.0.1.11/24"], "queues": 2},
    {"port_id": "vm2-nic0", "mac": "52:54:00:00:01:02", "tap": "tapvm2",
     "vm": "vm2", "network": "blue", "ips": ["10.0.1.12/24"], "queues": 2},
    {"port_id": "vm3-nic0", "mac": "52:54:00:00:02:03", "tap": "tapvm3",
     "vm": "vm3", "network": "red", "ips": ["10.0.2.13/24"]},
]


def _step(box: OvsSandbox, title: str, cmd: list[str], input=None) -> None:
    print(f"\n$ {' '.join(cmd)}", flush=True)
    proc = subprocess.run(box.exec_cmd(cmd), env=box.env, input=input,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"demo step failed: {title}")


def main() -> int:
    ctl = [sys.executable, "-m", "virtio_ovs.cli"]
    with OvsSandbox(prefix="vdemo") as box:
        box.add_bridge("br-int")
        print(f"private OVS in network namespace {box.netns} "
              f"(OVS_RUNDIR={box.rundir})")
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl") as f:
            f.writelines(json.dumps(v) + "\n" for v in VIFS)
            f.flush()
            _step(box, "plug", ctl + ["plug", "--from-file", f.name])
        _step(box, "list", ctl + ["list"])
        _step(box, "show", ctl + ["show", "vm1-nic0"])
        _step(box, "tun_flags", ["sh", "-c", "grep . /sys/class/net/tapvm*/tun_flags"])
        _step(box, "ovs-vsctl", ["ovs-vsctl", "show"])
        _step(box, "unplug", ctl + ["unplug", "--port-id", "vm3-nic0"])
    print("\ndemo done; the namespace and the OVS are gone")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
