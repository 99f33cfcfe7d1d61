"""Where ovs-vswitchd spends a new port's reconfiguration (not a test: it
prints). Needs root and perf.

    .venv/bin/python bench/vswitchd_profile.py [--ports 1000] [--new 20]

A private OVS (userspace datapath, in its own namespace) holds ``--ports``
bound TAP ports plugged by virtio-ovs, with no agent. Then ``--new`` ports
are plugged one at a time, each until ovs-vswitchd has applied it, while
``perf record -g`` samples ovs-vswitchd. Prints the time per plug and the
number of bridge reconfigurations per plug (ovs-vswitchd's coverage
counter); then, over as many plugs again, ovs-vswitchd's system calls per
plug; then, over as many more, the functions with most samples (ovs-vswitchd is stripped: only
libc's and the kernel's names show).
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import add_taps, vif  # noqa: E402
from virtio_ovs.core.outcomes import PlugOutcome  # noqa: E402
from virtio_ovs.ovsdb.host.impl import IdlHostDb  # noqa: E402
from tests.lab.sandbox import OvsSandbox  # noqa: E402


def perf_report(data: str, *, children: bool, top: int) -> str:
    args = ["perf", "report", "-i", data, "--stdio", "--no-demangle",
            "--percent-limit", "2", "-g", "none", "--sort", "symbol"]
    args.append("--children" if children else "--no-children")
    out = subprocess.run(args, capture_output=True, text=True).stdout
    rows = [line for line in out.splitlines()
            if line.strip() and not line.startswith("#")]
    return "\n".join(rows[:top])


def plug_timed(db: IdlHostDb, count: int, first: int) -> list[float]:
    took = []
    for i in range(first, first + count):
        start = time.monotonic()
        db.plug([vif(i)], PlugOutcome())  # waits for ovs-vswitchd
        took.append((time.monotonic() - start) * 1000)
        time.sleep(0.5)  # any reconfiguration the plug set off is over
    return took


def reconfigures(box: OvsSandbox) -> int:
    """ovs-vswitchd's count of bridge reconfigurations so far."""
    out = box.exec(["ovs-appctl", "-t", "ovs-vswitchd",
                    "coverage/read-counter", "bridge_reconfigure"]).stdout
    return int(out.strip())


def traced(box: OvsSandbox, tracer: list[str], db: IdlHostDb, count: int,
           first: int) -> None:
    """``count`` plugs with ``tracer`` (a command) attached to
    ovs-vswitchd."""
    proc = subprocess.Popen([*tracer, "-p", str(box.pid("ovs-vswitchd"))],
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(1)
    try:
        plug_timed(db, count, first)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)


def syscall_counts(path: str) -> dict[str, int]:
    """``strace -c`` output: calls per system call."""
    calls = {}
    with open(path) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 5 and fields[3].isdigit():
                calls[fields[-1]] = int(fields[3])
    return calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", type=int, default=1000)
    parser.add_argument("--new", type=int, default=20)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--keep", metavar="PATH",
                        help="copy perf.data there for perf report")
    parser.add_argument("--promisc", action="store_true",
                        help="TAPs created promiscuous, as virtio-ovs "
                        "creates them (ovs-vswitchd's userspace datapath "
                        "turns it on for each port it adds)")
    args = parser.parse_args()
    with OvsSandbox(prefix="vprof") as box, \
            tempfile.TemporaryDirectory(prefix="vprof-") as tmp:
        box.add_bridge("br-int")
        add_taps(box.netns, [f"t{i}" for i in range(args.ports + 3 * args.new)],
                 vnet_hdr=True, promisc=args.promisc)
        db = IdlHostDb(box.remote, 600, is_tap=lambda name: True)
        try:
            db.create_network("blue", "local", None, None, {})
            for first in range(0, args.ports, 1000):
                db.plug([vif(i) for i in range(first, min(args.ports,
                                                          first + 1000))],
                        PlugOutcome())
            time.sleep(2)
            before = reconfigures(box)
            took = plug_timed(db, args.new, args.ports)
            per_plug = (reconfigures(box) - before) / args.new
            counts = os.path.join(tmp, "strace")
            traced(box, ["strace", "-c", "-f", "-o", counts], db, args.new,
                   args.ports + args.new)
            data = os.path.join(tmp, "perf.data")
            traced(box, ["perf", "record", "-g", "-F", "999", "-o", data],
                   db, args.new, args.ports + 2 * args.new)
            calls = syscall_counts(counts)
        finally:
            db.close()
        print(f"plug of one port with {args.ports} ports there, until "
              f"ovs-vswitchd applied it: p50 {statistics.median(took):.1f} ms,"
              f" max {max(took):.1f} ms ({args.new} plugs); bridge "
              f"reconfigurations per plug: {per_plug:.2f}")
        print(f"\nsystem calls of ovs-vswitchd per plug (strace -c -f over "
              f"{args.new} more plugs; strace slows it down):")
        for name, n in sorted(calls.items(), key=lambda kv: -kv[1])[:6]:
            print(f"  {name}: {n / args.new:.0f}")
        if args.keep:
            shutil.copy(data, args.keep)
        print(f"\nperf, inclusive (children), over {args.new} more plugs:")
        print(perf_report(data, children=True, top=args.top))
        print("\nperf, exclusive (self):")
        print(perf_report(data, children=False, top=args.top))
    print(f"\ncommand: .venv/bin/python bench/vswitchd_profile.py --ports "
          f"{args.ports} --new {args.new}"
          + (" --promisc" if args.promisc else ""))


if __name__ == "__main__":
    main()
