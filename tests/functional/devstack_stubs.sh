# shellcheck shell=bash
# Stand-ins for the devstack helpers that devstack/plugin.sh calls. Calls
# are appended to $STUB_LOG; run_process writes its command line to
# $STUB_DIR/run_process.<service>.

function _record { echo "$*" >> "$STUB_LOG"; }
function define_plugin { _record define_plugin "$@"; }
function enable_service { _record enable_service "$@"; }
# Enabled services: $STUB_SERVICES (space-separated), as ENABLED_SERVICES.
function is_service_enabled {
    local service
    for service in "$@"; do
        [[ " ${STUB_SERVICES:-virtio-ovs-agent} " == *" $service "* ]] && return 0
    done
    return 1
}
function is_ubuntu { return 1; }
function install_package { _record install_package "$@"; }
function setup_develop { _record setup_develop "$@"; }
function restart_service { _record restart_service "$@"; }
function stop_process { _record stop_process "$@"; }
function echo_summary { echo "$@"; }
function sudo { "$@"; }

function run_process {
    _record run_process "$1"
    echo "$2" > "$STUB_DIR/run_process.$1"
}

# devstack's iniset: set option in [section], keeping the rest of the file.
function iniset {
    python3 - "$@" <<'PY'
import sys
path, section, option, value = sys.argv[1:5]
try:
    lines = open(path).read().splitlines()
except FileNotFoundError:
    lines = []
out, current, done = [], None, False
for line in lines:
    stripped = line.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        if current == section and not done:
            out.append(f"{option} = {value}")
            done = True
        current = stripped[1:-1]
    elif current == section and not done and \
            stripped.split("=", 1)[0].strip() == option:
        out.append(f"{option} = {value}")
        done = True
        continue
    out.append(line)
if not done:
    if current != section:
        out.append(f"[{section}]")
    out.append(f"{option} = {value}")
open(path, "w").write("\n".join(out) + "\n")
PY
}

# devstack's: where pip puts console scripts (GLOBAL_VENV or the system's).
function get_python_exec_prefix { echo "${STUB_EXEC_PREFIX:-/usr/local/bin}"; }
