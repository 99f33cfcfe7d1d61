"""The Grafana dashboard queries only metrics that virtio-ovs exports."""
from __future__ import annotations

import json
import pathlib
import re

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from virtio_ovs.core import verdicts
from virtio_ovs.core.port import GuestPort
from virtio_ovs.metrics import AgentMetrics, reports_by_port

DASHBOARD = pathlib.Path(__file__).resolve().parents[2] / "etc" / "grafana" \
    / "virtio-ovs.json"
METRIC = re.compile(r"\bvirtio_ovs_[a-z0-9_]+")


def queried() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    variables = [json.dumps(v.get("query")) for v in
                 dashboard["templating"]["list"]]
    return {m for text in exprs + variables for m in METRIC.findall(text)}


def exported() -> set[str]:
    """Sample names of a fully populated agent registry."""
    metrics = AgentMetrics()
    report = verdicts.decide_vhost_user(verdicts.VhostUserEvidence(
        "v1", "vhu1", 2, {"status": "connected", "num_of_vrings": "4"},
        {0: {"enabled": True, "pmd_core": 1}, 1: {"enabled": True,
                                                  "pmd_core": 1}},
        counters_total={0: {"rx": 1, "tx": 1}, 1: {"rx": 1, "tx": 1}}))
    metrics.update(ports=(GuestPort("v1", "vhu1", "vhost-user",
                                    "52:54:00:00:00:01"),),
                   reports=reports_by_port([report]), flows={"br-int": 3},
                   last_sync=1.0, active=True)
    metrics.wiring.observe(0.01)
    metrics.reconcile.observe(0.001)
    text = generate_latest(metrics.registry).decode()
    return {s.name for f in text_string_to_metric_families(text)
            for s in f.samples}


def test_every_metric_the_dashboard_queries_is_exported():
    names = queried()
    assert len(names) >= 8, names
    missing = names - exported()
    assert not missing, f"the dashboard queries unexported metrics: {missing}"


def test_the_dashboard_has_the_operator_panels():
    dashboard = json.loads(DASHBOARD.read_text())
    titles = " | ".join(p["title"] for p in dashboard["panels"])
    for wanted in ("Bypass verdicts per host", "Queue mismatches",
                   "Wiring latency p50 / p99", "Per-queue packet rates"):
        assert wanted in titles
    assert len({p["id"] for p in dashboard["panels"]}) == \
        len(dashboard["panels"])
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
