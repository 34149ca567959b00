"""The example Grafana dashboard only queries metrics the bridge exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

import teams_bridge.metrics  # noqa: F401  (registers the bridge's metrics)

DASHBOARD = Path(__file__).resolve().parents[2] / "config" / "grafana-dashboard.json"
METRIC = re.compile(r"\b((?:teams_bridge|process)_[a-z_]+)")


def _exprs(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for value in node.values() for e in _exprs(value)]
    if isinstance(node, list):
        return [e for value in node for e in _exprs(value)]
    return []


def test_dashboard_queries_exported_metrics():
    exported = {sample.name for family in REGISTRY.collect() for sample in family.samples} | {
        family.name for family in REGISTRY.collect()
    }
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = _exprs(dashboard["panels"])
    assert exprs
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    bridge = {name for name in used if name.startswith("teams_bridge_")}
    assert {
        "teams_bridge_messages_total",
        "teams_bridge_delivery_seconds_bucket",
        "teams_bridge_failed_deliveries_total",
        "teams_bridge_teams_requests_total",
        "teams_bridge_connected_users",
        "teams_bridge_queue_depth",
    } <= bridge
    # Histogram buckets and labelled counters have no sample until first used.
    families = {family.name for family in REGISTRY.collect()}
    for name in used:
        base = re.sub(r"_(total|bucket|count|sum)$", "", name)
        assert name in exported or base in families, name
