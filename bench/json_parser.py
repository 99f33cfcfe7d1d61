"""python-ovs's JSON parser: the C extension (ovs._json) against the
pure-Python one, on one OVSDB-like document. Not a test: it prints.

    .venv/bin/python bench/json_parser.py [--rows 5000]
"""
from __future__ import annotations

import argparse
import json
import time

import ovs.json


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5000)
    args = parser.parse_args()
    doc = json.dumps([{"uuid": f"{i:036d}", "external_ids": {
        "iface-id": f"port-{i}", "attached-mac": "52:54:00:00:00:01",
        "vm-uuid": f"{i:036d}"}, "ofport": i} for i in range(args.rows)])
    results = {}
    for name, parser_kind in (("C", ovs.json.PARSER_C),
                              ("pure Python", ovs.json.PARSER_PY)):
        if parser_kind == ovs.json.PARSER_C and \
                ovs.json.PARSER != ovs.json.PARSER_C:
            print("the C extension is not available (run tools/setup-env.sh)")
            continue
        ovs.json.PARSER = parser_kind
        start = time.monotonic()
        ovs.json.from_string(doc)
        results[name] = time.monotonic() - start
        print(f"{name:12} {results[name]:.3f} s for {len(doc) / 1000:.0f} KB")
    if len(results) == 2:
        print(f"ratio: {results['pure Python'] / results['C']:.0f}x")
    print(f"command: .venv/bin/python bench/json_parser.py --rows {args.rows}")


if __name__ == "__main__":
    main()
