#!/bin/bash
# The test command: installs what the tests need on a fresh Debian 12
# machine (as root), then runs the unit and functional tests.
#   tools/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools/setup-env.sh
source tools/setup-env.sh
set +e
"$VENV/bin/python" -m pytest -ra "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "no tests were collected" >&2
fi
exit "$rc"
