"""What one small OVSDB write costs the agent with many ports (not a test:
it prints; no root).

    .venv/bin/python bench/transaction_cost.py [--ports 1000]

On a private OVS with the dummy datapath holding ``--ports`` bound ports:
the time to build each index a writing command may use (over the replica),
and a whole one-port ``record_verdicts`` transaction, the agent's kind of
small write. Each is the mean of 5.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import dummy_with_ports  # noqa: E402
from virtio_ovs.ovsdb.host.impl import IdlHostDb  # noqa: E402
from virtio_ovs.ovsdb.host.views import DbView  # noqa: E402

ROUNDS = 5


def mean_ms(action) -> float:
    start = time.perf_counter()
    for _ in range(ROUNDS):
        action()
    return (time.perf_counter() - start) / ROUNDS * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ports", type=int, default=1000)
    args = parser.parse_args()
    with dummy_with_ports("vtxn", args.ports) as (ovs, _):
        db = IdlHostDb(ovs.remote, 60, is_tap=lambda name: True)
        try:
            db.start()
            db.list_ports()
            for index in ("_iface_indexes", "_port_indexes",
                          "bridge_of_port"):
                took = mean_ms(lambda: getattr(DbView(db.conn), index))
                print(f"DbView.{index} over {args.ports} ports: "
                      f"{took:.1f} ms")
            took = mean_ms(lambda: db.record_verdicts({"p1": ("bypass", 1)}))
            print(f"record_verdicts of one port: {took:.1f} ms")
        finally:
            db.close()
    print(f"command: .venv/bin/python bench/transaction_cost.py --ports "
          f"{args.ports}")


if __name__ == "__main__":
    main()
