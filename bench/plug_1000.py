"""Benchmark: plug N TAP VIFs with one `virtio-ovs-ctl plug --from-file`
against N sequential `ovs-vsctl --may-exist add-port` calls, on the same
private OVS in the same run, each until ovs-vswitchd has given every port
an ofport.

    .venv/bin/python bench/plug_1000.py [--count 1000]

Both sides plug pre-created TAPs (ovs-vsctl cannot create them); a third
figure adds virtio-ovs creating the TAPs itself. Not a test: it prints.
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
from virtio_ovs.testing.sandbox import OvsSandbox  # noqa: E402


def precreate_taps(box: OvsSandbox, names: list[str]) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".ip") as batch:
        batch.writelines(f"tuntap add dev {n} mode tap vnet_hdr\n" for n in names)
        batch.flush()
        box.exec(["ip", "-batch", batch.name], timeout=300)


def vif_file(prefix: str, count: int, bridge: str) -> str:
    fd, path = tempfile.mkstemp(suffix=".jsonl")
    with os.fdopen(fd, "w") as f:
        for i in range(count):
            f.write(json.dumps({"port_id": f"{prefix}-{i}", "bridge": bridge,
                                "mac": f"52:54:00:{i >> 16 & 255:02x}:"
                                       f"{i >> 8 & 255:02x}:{i & 255:02x}",
                                "tap": f"{prefix}{i}", "vm": f"vm-{i}"}) + "\n")
    return path


def time_virtio_ovs(box: OvsSandbox, path: str) -> float:
    cmd = box.exec_cmd([sys.executable, "-m", "virtio_ovs.cli", "--timeout",
                        "120", "plug", "--from-file", path])
    start = time.monotonic()
    proc = subprocess.run(cmd, env=box.env, capture_output=True, text=True)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"virtio-ovs-ctl failed: {proc.stderr}")
    return elapsed


def time_ovs_vsctl(box: OvsSandbox, bridge: str, names: list[str]) -> float:
    start = time.monotonic()
    for i, name in enumerate(names):
        subprocess.run(["ovs-vsctl", f"--db={box.remote}", "--timeout=60",
                        "--may-exist", "add-port", bridge, name, "--", "set",
                        "Interface", name, f"external-ids:iface-id=vs-{i}",
                        f"external-ids:attached-mac=52:54:00:01:{i >> 8:02x}:"
                        f"{i & 255:02x}", "external-ids:iface-status=active"],
                       check=True, capture_output=True, env=box.env)
    return time.monotonic() - start


def count_ofports(box: OvsSandbox, bridge: str) -> int:
    out = box.vsctl("--format=json", "--columns=name,ofport", "list", "Interface")
    ports = set(box.vsctl("list-ports", bridge).split())
    return sum(1 for name, ofport in json.loads(out)["data"]
               if name in ports and isinstance(ofport, int) and ofport > 0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    n = args.count
    with OvsSandbox(prefix="vb") as box:
        for bridge in ("br-a", "br-b", "br-c"):
            box.add_bridge(bridge)
        precreate_taps(box, [f"ta{i}" for i in range(n)] +
                       [f"tb{i}" for i in range(n)])
        ours = time_virtio_ovs(box, vif_file("ta", n, "br-a"))
        assert count_ofports(box, "br-a") == n
        box.vsctl("del-br", "br-a")  # both sides start from an empty OVS
        theirs = time_ovs_vsctl(box, "br-b", [f"tb{i}" for i in range(n)])
        assert count_ofports(box, "br-b") == n
        box.vsctl("del-br", "br-b")
        with_taps = time_virtio_ovs(box, vif_file("tc", n, "br-c"))
        assert count_ofports(box, "br-c") == n
    print(f"plug {n} pre-created TAPs until every one has an ofport:")
    print(f"  virtio-ovs-ctl plug --from-file (1 transaction): {ours:7.2f} s")
    print(f"  {n} x ovs-vsctl --may-exist add-port:          {theirs:7.2f} s")
    print(f"  ratio: {theirs / ours:.1f}x")
    print(f"virtio-ovs-ctl creating the {n} TAPs too:         {with_taps:7.2f} s")
    print("command: .venv/bin/python bench/plug_1000.py --count", n)


if __name__ == "__main__":
    main()
