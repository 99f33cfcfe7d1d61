"""Tables and JSON for virtio-ovs-ctl."""
from __future__ import annotations

import json
import sys
import unicodedata
from typing import Any, Iterable, Sequence

from virtio_ovs.core.records import Invalid

LIST_COLUMNS = ("port_id", "name", "kind", "mac", "vm", "network", "ofport",
                "queues", "status", "verdict")


# Control characters, format characters (bidi overrides), line and
# paragraph separators, lone surrogates: a value from a database never
# moves the cursor, starts a line or recolours the terminal.
_UNSAFE = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}


def clean(value: Any) -> str:
    """``str(value)`` with every unsafe character escaped (``\\n``,
    ``\\x1b``, ``\\u202e``), for a table or a line of text."""
    text = str(value)
    if text.isprintable() and text.isascii():
        return text
    return "".join(_escape(c) if unicodedata.category(c) in _UNSAFE
                   else c for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    if char == "\n":
        return "\\n"
    if char == "\t":
        return "\\t"
    if code <= 0xff:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xffff else f"\\U{code:08x}"


def print_json(data) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True)
    print()


def print_table(rows: Sequence[dict], columns: Sequence[str]) -> None:
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, list):
            return clean(",".join(str(v) for v in value)) or "-"
        return clean(value)

    table = [[c.upper() for c in columns]]
    table += [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
    for r in table:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())


def print_invalid(records: Iterable[Invalid]) -> None:
    """One line per invalid record, on stderr (the listing on stdout stays
    what its format says)."""
    for record in records:
        print(f"virtio-ovs-ctl: warning: {clean(record.line())}",
              file=sys.stderr)


def print_write(dry_run: bool, fmt: str, record: dict, text: str) -> int:
    """What a write verb did: ``record`` as JSON (with ``dry_run``), or
    ``text``; a dry run says that nothing was written. Exit 0."""
    if fmt == "json":
        print_json({**record, "dry_run": dry_run})
    else:
        print(clean(text) + (" (dry run: nothing written)" if dry_run
                             else ""))
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
        print()
        print(clean(f"{report.port_id} ({report.name}):"))
        for line in report.evidence:
            print(f"  - {clean(line)}")
        for queue in report.queues:
            print(clean(f"  queue {queue.index}: {queue.verdict}: "
                        f"{queue.reason}"))


def _q(value) -> str:
    return "-" if value is None else str(value)
