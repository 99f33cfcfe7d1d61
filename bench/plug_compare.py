"""Benchmark: plug N TAP VIFs four ways, each on a fresh private OVS, each
until ovs-vswitchd has given every port an ofport. Not a test: it prints.

    .venv/bin/python bench/plug_compare.py [--count 1000] [--runs 5]
        [--ways virtio_ovs_bulk,raw_idl_floor] [--json]

1. virtio-ovs-ctl plug --from-file: one transaction, TAP creation included;
2. N x ovs-vsctl --may-exist add-port (pre-created TAPs);
3. N x one ovsdbapp transaction per VIF, os-vif's way: add_br may_exist,
   add_port, db_set of the Interface's external_ids (pre-created TAPs;
   ovsdbapp is a bench-only dependency: pip install -e .[bench]);
4. the floor: one raw python-ovs IDL transaction inserting every Port and
   Interface (pre-created TAPs), then next_cfg.

With --runs N the bulk plug and the floor alternate N times and each of
their figures is the median (on this 2-core machine one run varies by
+-10 %); the per-VIF ways, 30 to 70 times the floor, run once.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import add_taps, count_ofports  # noqa: E402
from tests.lab.sandbox import OvsSandbox  # noqa: E402

BRIDGE = "br-int"


def mac(i: int) -> str:
    return f"52:54:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"


def ids(i: int) -> dict[str, str]:
    return {"iface-id": f"p{i}", "attached-mac": mac(i),
            "iface-status": "active", "vm-uuid": f"vm-{i}"}


def precreate_taps(box: OvsSandbox, n: int) -> list[str]:
    names = [f"t{i}" for i in range(n)]
    add_taps(box.netns, names, vnet_hdr=True)
    return names


def all_ofports(box: OvsSandbox, n: int, timeout: float = 600) -> None:
    end = time.monotonic() + timeout
    while True:
        if count_ofports(box.vsctl) >= n:
            return
        if time.monotonic() > end:
            raise SystemExit("ovs-vswitchd did not assign every ofport")
        time.sleep(0.05)


def vif_file(n: int) -> str:
    """A bulk file of ``n`` VIFs on TAPs t0, t1, ...; the caller removes
    it."""
    fd, path = tempfile.mkstemp(suffix=".jsonl")
    with os.fdopen(fd, "w") as f:
        for i in range(n):
            f.write(json.dumps({"port_id": f"p{i}", "mac": mac(i),
                                "tap": f"t{i}", "vm": f"vm-{i}"}) + "\n")
    return path


def plug_command(box: OvsSandbox, path: str, *extra: str) -> list[str]:
    """``virtio-ovs-ctl plug --from-file path`` inside ``box``."""
    return box.exec_cmd([sys.executable, "-m", "virtio_ovs.cli", "--timeout",
                         "600", "plug", *extra, "--from-file", path])


def virtio_ovs(box: OvsSandbox, n: int) -> float:
    path = vif_file(n)
    cmd = plug_command(box, path)
    start = time.monotonic()
    proc = subprocess.run(cmd, env=box.env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"virtio-ovs-ctl failed: {proc.stderr}")
    all_ofports(box, n)
    elapsed = time.monotonic() - start
    os.unlink(path)
    return elapsed


def ovs_vsctl(box: OvsSandbox, n: int) -> float:
    names = precreate_taps(box, n)
    start = time.monotonic()
    for i, name in enumerate(names):
        subprocess.run(["ovs-vsctl", f"--db={box.remote}", "--timeout=60",
                        "--may-exist", "add-port", BRIDGE, name, "--", "set",
                        "Interface", name,
                        *[f"external-ids:{k}={v}" for k, v in ids(i).items()]],
                       check=True, capture_output=True, env=box.env)
    all_ofports(box, n)
    return time.monotonic() - start


def ovsdbapp_per_vif(box: OvsSandbox, n: int) -> float:
    try:
        from ovsdbapp.backend.ovs_idl import connection
        from ovsdbapp.schema.open_vswitch import impl_idl
    except ImportError:
        raise SystemExit("ovsdbapp is not installed: .venv/bin/pip install "
                         "-e .[bench]") from None
    names = precreate_taps(box, n)
    idl = connection.OvsdbIdl.from_server(box.remote, "Open_vSwitch")
    api = impl_idl.OvsdbIdl(connection.Connection(idl=idl, timeout=60))
    start = time.monotonic()
    for i, name in enumerate(names):
        with api.transaction(check_error=True) as txn:
            txn.add(api.add_br(BRIDGE, may_exist=True,
                               datapath_type="netdev"))
            txn.add(api.add_port(BRIDGE, name, may_exist=True))
            txn.add(api.db_set("Interface", name,
                               ("external_ids", ids(i))))
    all_ofports(box, n)
    elapsed = time.monotonic() - start
    api.ovsdb_connection.stop()
    return elapsed


def raw_idl(box: OvsSandbox, n: int) -> float:
    import ovs.db.idl
    import ovs.poller
    from tests.lab.sandbox import SCHEMA
    names = precreate_taps(box, n)
    helper = ovs.db.idl.SchemaHelper(SCHEMA)
    helper.register_columns("Open_vSwitch", ["bridges", "next_cfg"])
    helper.register_columns("Bridge", ["name", "ports"])
    helper.register_columns("Port", ["name", "interfaces"])
    helper.register_columns("Interface", ["name", "external_ids"])
    idl = ovs.db.idl.Idl(box.remote, helper)
    while not idl.has_ever_connected():
        idl.run()
        poller = ovs.poller.Poller()
        idl.wait(poller)
        poller.timer_wait(100)  # the session's reconnect FSM needs a tick
        poller.block()
    start = time.monotonic()
    txn = ovs.db.idl.Transaction(idl)
    bridge = next(b for b in idl.tables["Bridge"].rows.values()
                  if b.name == BRIDGE)
    ports = list(bridge.ports)
    for i, name in enumerate(names):
        iface = txn.insert(idl.tables["Interface"])
        iface.name = name
        iface.external_ids = ids(i)
        port = txn.insert(idl.tables["Port"])
        port.name = name
        port.interfaces = [iface]
        ports.append(port)
    bridge.ports = ports
    next(iter(idl.tables["Open_vSwitch"].rows.values())).increment("next_cfg")
    while (status := txn.commit()) == ovs.db.idl.Transaction.INCOMPLETE:
        idl.run()
        poller = ovs.poller.Poller()
        idl.wait(poller)
        txn.wait(poller)
        poller.timer_wait(100)
        poller.block()
    if status != ovs.db.idl.Transaction.SUCCESS:
        raise SystemExit(f"raw IDL transaction: {status} {txn.get_error()}")
    all_ofports(box, n)
    elapsed = time.monotonic() - start
    idl.close()
    return elapsed


METHODS = {"virtio_ovs_bulk": virtio_ovs, "ovs_vsctl_per_vif": ovs_vsctl,
           "ovsdbapp_per_vif": ovsdbapp_per_vif, "raw_idl_floor": raw_idl}
# What --runs repeats (ovsdbapp's connection does not start twice in one
# process, and the per-VIF ways take a minute each).
REPEATED = ("virtio_ovs_bulk", "raw_idl_floor")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=1,
                        help="alternate the bulk plug and the floor this "
                        "many times; their figures are the medians")
    parser.add_argument("--ways", default=",".join(METHODS),
                        help="comma-separated, of: " + ", ".join(METHODS))
    parser.add_argument("--json", action="store_true",
                        help="one JSON object with the seconds of each way")
    args = parser.parse_args()
    ways = args.ways.split(",")
    unknown = set(ways) - set(METHODS)
    if unknown or args.runs < 1:
        parser.error(f"--ways: unknown {sorted(unknown)}" if unknown
                     else "--runs: at least 1")
    runs: dict[str, list[float]] = {way: [] for way in ways}
    for run in range(args.runs):
        for way in ways:
            if run and way not in REPEATED:
                continue
            with OvsSandbox(prefix="vpc") as box:
                box.add_bridge(BRIDGE)
                runs[way].append(METHODS[way](box, args.count))
            print(f"run {run + 1}: {way:18} {runs[way][-1]:8.2f} s",
                  file=sys.stderr)
    seconds = {way: statistics.median(values) for way, values in runs.items()}
    command = (f".venv/bin/python bench/plug_compare.py --count {args.count}"
               + (f" --runs {args.runs}" if args.runs > 1 else "")
               + ("" if ways == list(METHODS) else f" --ways {args.ways}"))
    if args.json:
        print(json.dumps({"count": args.count, "seconds": seconds,
                          "runs": runs, "command": command}))
        return
    floor = seconds.get("raw_idl_floor")
    median = (f"; the bulk plug and the floor: medians of {args.runs} runs"
              if args.runs > 1 else "")
    print(f"plug {args.count} TAP VIFs until every one has an ofport (each "
          f"way on a fresh OVS{median}):")
    for name, value in seconds.items():
        ratio = f"  {value / floor:5.2f}x the floor" if floor else ""
        print(f"  {name:18} {value:8.2f} s{ratio}")
    print(f"command: {command}")


if __name__ == "__main__":
    main()
