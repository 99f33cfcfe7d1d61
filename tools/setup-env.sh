#!/bin/bash
# Sourced by tools/test.sh and tools/demo.sh: Debian packages and a
# virtualenv (.venv) with the project installed. Idempotent and quick when
# everything is already there.
DEBS=(openvswitch-switch openvswitch-common openvswitch-switch-dpdk dpdk-dev
      iproute2 ethtool iputils-ping python3-venv procps qemu-system-x86
      busybox-static shellcheck ovn-central ovn-host iperf3
      libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev
      pkg-config gcc python3-dev python3-openvswitch
      python3-oslo.config python3-oslo.log)
# python3-oslo.*: the Debian package's test runs the installed commands on
# the distribution's Python, as a host would.
VENV=${VENV:-$PWD/.venv}

missing=()
for pkg in "${DEBS[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" \
        || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # Keep the packages' maintainer scripts from starting OVS/OVN daemons
    # in the root namespace: every test starts its own, privately.
    blocker=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        blocker=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' > "$blocker"
        chmod +x "$blocker"
    fi
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
    [ -z "$blocker" ] || rm -f "$blocker"
fi

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import virtio_ovs, ovs, pyroute2, oslo_config, pytest" 2>/dev/null \
   || [ setup.cfg -nt "$VENV/.installed" ]; then
    "$VENV/bin/pip" install -q --disable-pip-version-check -e ".[test]" >&2
    touch "$VENV/.installed"
fi
# python-ovs parses OVSDB's JSON in pure Python unless its C extension
# (ovs._json) was built, which pip cannot do without libopenvswitch. Debian's
# python3-openvswitch ships it compiled (libopenvswitch linked in): use it
# when the venv's Python has the same extension ABI; 20x faster parsing.
ext=$(find /usr/lib/python3/dist-packages/ovs -maxdepth 1 \
          -name '_json.cpython-*.so' 2>/dev/null | head -n 1)
if [ -n "$ext" ]; then
    read -r ovs_dir abi < <("$VENV/bin/python" -c 'import os, ovs, importlib.machinery as m
print(os.path.dirname(ovs.__file__), m.EXTENSION_SUFFIXES[0])')
    if [[ "$ext" == *"$abi" ]] && [ ! -e "$ovs_dir/$(basename "$ext")" ]; then
        ln -s "$ext" "$ovs_dir/"
        "$VENV/bin/python" -c 'import ovs.json, sys; sys.exit(ovs.json.PARSER != "C")' \
            || rm -f "$ovs_dir/$(basename "$ext")"
    fi
fi
export PATH="$VENV/bin:$PATH"
