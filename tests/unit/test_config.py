"""The sample config is generated, and kept current."""
from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_sample_config_is_current(tmp_path):
    out = tmp_path / "sample.conf"
    generator = os.path.join(os.path.dirname(sys.executable), "oslo-config-generator")
    subprocess.run([generator, "--config-file",
                    os.path.join(ROOT, "etc/oslo-config-generator/virtio-ovs.conf"),
                    "--output-file", str(out)], check=True, cwd=ROOT)
    with open(os.path.join(ROOT, "etc/virtio-ovs.conf.sample")) as f:
        committed = f.read()
    assert out.read_text() == committed, (
        "etc/virtio-ovs.conf.sample is stale: run oslo-config-generator "
        "--config-file etc/oslo-config-generator/virtio-ovs.conf")


def test_generator_namespace_lists_every_group():
    from virtio_ovs import conf
    groups = dict(conf.list_opts())
    assert set(groups) == {"ovs", "ovn", "agent"}  # DEFAULT: oslo.log's
    assert {o.name for o in groups["ovn"]} >= {"ovn_nb_connection"}
    names = {o.name for o in groups["ovs"]}
    assert {"ovsdb_connection", "integration_bridge", "datapath_type",
            "bridge_mappings", "ovsdb_timeout"} <= names
    assert {o.name for o in groups["agent"]} >= {"report_interval", "backend"}
