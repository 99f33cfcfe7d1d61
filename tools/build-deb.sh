#!/bin/bash
# Build virtio-ovs_<version>_all.deb from this checkout, for Debian 12 and
# Ubuntu hosts:
#
#     tools/build-deb.sh [OUTDIR]          # default OUTDIR: dist/
#
# PYTHON (default: the venv's, else python3) must have pip and the project's
# build requirements; it builds the package, it is not the one that runs it.
#
# python-ovs (with its C JSON parser), oslo.config and oslo.log come from the
# distribution, as distro OpenStack packages take them. Debian 12 has
# pyroute2 0.7 and prometheus-client 0.16, older than the 0.9 and 0.20 that
# virtio-ovs needs: those two are vendored, pinned, with virtio-ovs itself
# in the package's private directory /usr/lib/virtio-ovs, which the two
# commands put first on their path.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$here/dist}")
if [ -z "${PYTHON:-}" ]; then
    PYTHON=python3
    [ -x "$here/.venv/bin/python" ] && PYTHON=$here/.venv/bin/python
fi
VENDORED=(pyroute2==0.9.7 prometheus_client==0.26.0)
version=$(sed -n 's/^version = //p' "$here/setup.cfg")
package=virtio-ovs
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
private=$root/usr/lib/$package

"$PYTHON" -m pip install -q --disable-pip-version-check --no-deps \
    --no-compile --target "$private" "$here" "${VENDORED[@]}"
# pip's scripts name the builder's Python; the wheel's share/ files are
# installed below where Debian wants them.
rm -rf "${private:?}/bin" "${private:?}/share"

install -d "$root/usr/bin"
for command in ctl:virtio_ovs.cli.main:run agent:virtio_ovs.agent.main:main; do
    entry=${command#*:}
    cat > "$root/usr/bin/virtio-ovs-${command%%:*}" <<EOF
#!/usr/bin/python3
import os
import sys

sys.path.insert(0, os.path.join(
    os.path.dirname(os.path.realpath(__file__)), os.pardir, "lib", "$package"))
from ${entry%:*} import ${entry##*:}  # noqa: E402

sys.exit(${entry##*:}())
EOF
    chmod 0755 "$root/usr/bin/virtio-ovs-${command%%:*}"
done

install -D -m 0640 "$here/etc/virtio-ovs.conf.sample" \
    "$root/etc/$package/virtio-ovs.conf"
install -D -m 0644 "$here/etc/systemd/virtio-ovs-agent.service" \
    "$root/lib/systemd/system/virtio-ovs-agent.service"
install -D -m 0644 "$here/etc/bash_completion.d/virtio-ovs-ctl" \
    "$root/usr/share/bash-completion/completions/virtio-ovs-ctl"
install -D -m 0644 "$here/etc/grafana/virtio-ovs.json" \
    "$root/usr/share/$package/grafana/virtio-ovs.json"
install -d "$root/usr/share/man/man8" "$root/usr/share/doc/$package"
"$PYTHON" "$here/tools/manpages.py" "$root/usr/share/man/man8" >/dev/null
gzip -9n "$root"/usr/share/man/man8/*.8
gzip -9nc "$here/README.md" > "$root/usr/share/doc/$package/README.md.gz"
cat > "$root/usr/share/doc/$package/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: $package

Files: *
License: Apache-2.0
 On Debian systems, the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.

Files: usr/lib/$package/pyroute2*
License: GPL-2.0+ or Apache-2.0

Files: usr/lib/$package/prometheus_client*
License: Apache-2.0
EOF
chmod -R u=rwX,go=rX "$root/usr"

install -d "$root/DEBIAN"
cat > "$root/DEBIAN/control" <<EOF
Package: $package
Version: $version
Architecture: all
Maintainer: virtio-ovs developers <virtio-ovs@localhost>
Section: net
Priority: optional
Depends: python3 (>= 3.11), python3-openvswitch (>= 3.1), python3-oslo.config (>= 1:9.0), python3-oslo.log (>= 5.0)
Recommends: openvswitch-switch
Suggests: python3-libvirt, ovn-host
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Description: wire virtio NICs into Open vSwitch and prove the data plane
 virtio-ovs plugs vhost-net TAPs and vhost-user sockets into OVS bridges
 in one OVSDB transaction each, programs their flows (or their OVN logical
 ports), and checks that every port and queue bypasses QEMU.
 .
 This package holds virtio-ovs-ctl, the ovs-vsctl companion, and
 virtio-ovs-agent with its systemd unit (not enabled: edit
 /etc/virtio-ovs/virtio-ovs.conf first).
EOF
echo "/etc/$package/virtio-ovs.conf" > "$root/DEBIAN/conffiles"
# Byte-code is compiled on the host and removed with the package, as
# dh-python's py3compile and py3clean do for the modules they own.
cat > "$root/DEBIAN/postinst" <<EOF
#!/bin/sh
set -e
if [ "\$1" = configure ]; then
    python3 -m compileall -q /usr/lib/$package >/dev/null || true
    if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
fi
EOF
cat > "$root/DEBIAN/prerm" <<EOF
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "\$1" = remove ]; then
    systemctl stop virtio-ovs-agent.service || true
fi
find /usr/lib/$package -name __pycache__ -type d -prune -exec rm -rf {} + || true
EOF
cat > "$root/DEBIAN/postrm" <<EOF
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

mkdir -p "$out"
deb=$out/${package}_${version}_all.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
