"""What ovs-vswitchd itself costs when a port is added, with no agent
running: the floor under the agent's reaction time (not a test: it prints).

    .venv/bin/python bench/vswitchd_floor.py [--ports 1000] [--new 30]

With ``--ports`` bound TAP ports on a private OVS (userspace datapath), for
each of ``--new`` ports: the time from its row's commit until ovs-vswitchd
has written its ofport, then the time of a one-flow
``ovs-ofctl --bundle add-flows`` sent right after; and, for comparison, the
same one-flow bundle on the idle switch.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import add_integration_bridge, add_taps  # noqa: E402
import agent_scale as scale  # noqa: E402
import ovs.poller  # noqa: E402
from virtio_ovs.core import plug_request  # noqa: E402
from virtio_ovs.core.outcomes import PlugOutcome  # noqa: E402
from virtio_ovs.backend.factory import open_host_db  # noqa: E402
from tests.lab.sandbox import OvsSandbox  # noqa: E402


def one_flow_bundle(box: OvsSandbox, ofport: int, n: int) -> float:
    flow = (f"add table=10,priority=200,in_port={ofport},ip,"
            f"nw_src=11.0.{n // 250}.{n % 250},actions=drop\\n")
    start = time.monotonic()
    box.exec(["sh", "-c", f"printf '{flow}' | ovs-ofctl -O OpenFlow14 "
              "--bundle add-flows br-int -"])
    return (time.monotonic() - start) * 1000


def wait_for_ofport(db, name: str, deadline: float) -> None:
    """Sleep on the IDL until ovs-vswitchd has numbered ``name``."""
    while not db.ofports({name}):
        if time.monotonic() > deadline:
            raise SystemExit(f"no ofport for {name}")
        poller = ovs.poller.Poller()
        db.register_wakeup(poller)
        poller.timer_wait(10)
        poller.block()
        db.run()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", type=int, default=1000)
    parser.add_argument("--new", type=int, default=30)
    args = parser.parse_args()
    first = args.ports
    with OvsSandbox(prefix="vfloor") as box:
        add_integration_bridge(box)
        scale.ctl(box, "net-create", "blue", "--type", "local")
        scale.plug_bound(box, 0, args.ports)
        db = open_host_db(box.remote, 30)
        db.start()
        add_taps(box.netns, [f"t{i}" for i in range(first, first + args.new)])
        numbered, busy, idle = [], [], []
        for i in range(first, first + args.new):
            vif = plug_request.make_vif(port_id=f"p{i}", mac=scale.mac(i), tap=f"t{i}",
                                 bridge="br-int", network="blue",
                                 ips=[scale.ip(i)])
            db.plug([vif], PlugOutcome(), wait=False)
            start = time.monotonic()
            wait_for_ofport(db, f"t{i}", start + 10)
            numbered.append((time.monotonic() - start) * 1000)
            busy.append(one_flow_bundle(box, i + 1, i))
        time.sleep(2)
        for n in range(10):
            idle.append(one_flow_bundle(box, 1, 100000 + n))
    print(f"{args.ports} bound ports, {args.new} new ones, no agent:")
    print(f"  row committed -> ofport written by ovs-vswitchd: p50 "
          f"{statistics.median(numbered):.1f} ms, max {max(numbered):.1f} ms")
    print(f"  one-flow ovs-ofctl --bundle right after that: p50 "
          f"{statistics.median(busy):.1f} ms")
    print(f"  the same on the idle switch: p50 {statistics.median(idle):.1f} ms")
    print("command: .venv/bin/python bench/vswitchd_floor.py --ports "
          f"{args.ports} --new {args.new}")


if __name__ == "__main__":
    main()
