#!/bin/bash
# The benchmark table (not part of the test command): each figure with its
# target and the command that produced it, comparisons in the same run.
#   tools/bench.sh [--quick] [--out DIR]
#     --quick: 1,000 ports only (no 5k/10k)
#     --out DIR: keep each benchmark's JSON result there (bench/table.py DIR
#                prints the table again, with results of other runs added)
# Runs as root on a fresh Debian 12 (installs what it needs, like
# tools/test.sh); every benchmark runs on its own private OVS in its own
# network namespace and removes it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools/setup-env.sh
source tools/setup-env.sh
"$VENV/bin/pip" install -q --disable-pip-version-check -e ".[bench]" >&2
quick=0
out=
while [ $# -gt 0 ]; do
    case $1 in
        --quick) quick=1 ;;
        --out) out=${2:?--out needs a directory}; shift ;;
        *) echo "usage: tools/bench.sh [--quick] [--out DIR]" >&2; exit 1 ;;
    esac
    shift
done
if [ -n "$out" ]; then
    mkdir -p "$out"
else
    out=$(mktemp -d /tmp/virtio-ovs-bench.XXXXXX)
    trap 'rm -rf "$out"' EXIT
fi

# run NAME SECONDS SCRIPT ARGS...: the script's --json line into NAME.json,
# or a record of why it has none (failure, or over its time limit).
run() {
    local name=$1 limit=$2
    shift 2
    echo "== $* (limit ${limit} s)" >&2
    local start rc=0
    start=$(date +%s)
    # SIGINT: Python unwinds, so each benchmark removes its sandbox.
    timeout --signal=INT --kill-after=60 "$limit" "$VENV/bin/python" "$@" --json \
        > "$out/$name.json" 2> "$out/$name.err" || rc=$?
    if [ "$rc" -ne 0 ]; then
        "$VENV/bin/python" - "$out/$name" "$rc" "$(( $(date +%s) - start ))" "$*" <<'PY'
import json, sys
path, rc, took, cmd = sys.argv[1:]
err = open(path + ".err").read().strip().splitlines()
why = (f"over its {took} s limit" if rc in ("124", "130", "137")
       else (err[-1] if err else f"exit {rc}"))
json.dump({"error": why, "command": ".venv/bin/python " + cmd},
          open(path + ".json", "w"))
PY
    fi
}

run plug 1800 bench/plug_compare.py --count 1000 --runs 7
run plugphases 900 bench/plug_phases.py --count 1000 --runs 5
run scale1k 1200 bench/agent_scale.py --ports 1000 --new 100
run sync1k 900 bench/first_sync.py --ports 1000 --connections 1,16
run check1k 900 bench/check_scale.py --ports 1000
run iperf 600 bench/iperf_ratio.py --seconds 5
run sbs1k 1800 bench/side_by_side.py --ports 1000 --new 20
run sbs0 900 bench/side_by_side.py --ports 0 --new 5
run memory 600 bench/agent_memory.py --ports 1000
if [ "$quick" -eq 0 ]; then
    run cold5k 1200 bench/agent_scale.py --ports 5000 --new 0 --timeout 900
    run scale10k 3000 bench/agent_scale.py --ports 10000 --new 5 --cap 120 --timeout 1500
    run sync10k 1800 bench/first_sync.py --ports 10000 --connections 4,8,16,32 --no-ofctl
    run sbs5k 2400 bench/side_by_side.py --ports 5000 --new 5
fi
"$VENV/bin/python" bench/table.py "$out"
