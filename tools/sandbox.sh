#!/bin/bash
# A developer's shell (or one command) inside a private OVS in its own
# network namespace, torn down on exit. Not installed with the product.
#   tools/sandbox.sh [-- CMD...]
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools/setup-env.sh
source tools/setup-env.sh
exec "$VENV/bin/python" -m tests.lab.sandbox "$@"
