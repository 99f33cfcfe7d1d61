#!/bin/bash
# The main job: a self-contained demo on a private OVS in its own network
# namespace. Installs what it needs, cleans up on exit or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools/setup-env.sh
source tools/setup-env.sh
exec "$VENV/bin/python" -m tests.lab.demo "$@"
