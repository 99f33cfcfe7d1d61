"""Tables and JSON for virtio-ovs-ctl."""
from __future__ import annotations

import json
import sys
from typing import Any, Sequence

LIST_COLUMNS = ("port_id", "name", "kind", "mac", "vm", "network", "ofport",
                "queues", "status", "verdict")


def print_json(data) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True)
    print()


def print_table(rows: Sequence[dict], columns: Sequence[str]) -> None:
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, list):
            return ",".join(str(v) for v in value) or "-"
        return str(value)

    table = [[c.upper() for c in columns]]
    table += [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
    for r in table:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


def print_write(dry_run: bool, fmt: str, record: dict, text: str) -> int:
    """What a write verb did: ``record`` as JSON (with ``dry_run``), or
    ``text``; a dry run says that nothing was written. Exit 0."""
    if fmt == "json":
        print_json({**record, "dry_run": dry_run})
    else:
        print(text + (" (dry run: nothing written)" if dry_run else ""))
    return 0


def print_records(records: list[dict], fmt: str, columns=LIST_COLUMNS
                  ) -> None:
    if fmt == "json":
        print_json(records)
    else:
        print_table(records, columns)


def print_check(reports: list) -> None:
    rows = [{"port_id": r.port_id, "name": r.name, "kind": r.kind,
             "verdict": r.verdict + "".join(
                 f" ({flag})" for flag in r.as_dict()["flags"]),
             "queues": f"{_q(r.queues_expected)}/{_q(r.queues_enabled)}/"
                       f"{_q(r.queues_configured)}",
             "reason": r.reason} for r in reports]
    print_table(rows, ("port_id", "name", "kind", "verdict", "queues",
                        "reason"))
    print("(queues: expected/enabled/configured)")
    for report in reports:
        print(f"\n{report.port_id} ({report.name}):")
        for line in report.evidence:
            print(f"  - {line}")
        for queue in report.queues:
            print(f"  queue {queue.index}: {queue.verdict}: {queue.reason}")


def _q(value) -> str:
    return "-" if value is None else str(value)
