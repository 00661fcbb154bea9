"""Reading deploy/monitoring/alerts.yml: its rules and the metrics their expressions select
(tests/unit/test_alert_rules.py, tests/integration/test_observability.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import promql_parser
import yaml

from shared.settings import REPO_ROOT

MONITORING = REPO_ROOT / "deploy" / "monitoring"
# Prometheus's own scrape health and kube-state-metrics: not the platform's to export.
WELL_KNOWN_METRICS = frozenset(
    {"up", "kube_pod_status_ready", "kube_pod_container_status_restarts_total"}
)


def load(name: str) -> Any:
    return yaml.safe_load((MONITORING / name).read_text())


def alert_rules() -> list[dict[str, Any]]:
    [group] = load("alerts.yml")["groups"]
    rules: list[dict[str, Any]] = group["rules"]
    return rules


def selected_metrics(node: Any) -> Iterator[str]:
    """The metric names an expression selects, wherever they sit in its tree."""
    if isinstance(node, promql_parser.VectorSelector):
        yield node.name
        return
    if isinstance(node, promql_parser.MatrixSelector):
        yield from selected_metrics(node.vector_selector)
        return
    children: list[Any] = []
    if isinstance(node, promql_parser.BinaryExpr):
        children = [node.lhs, node.rhs]
    elif isinstance(node, promql_parser.Call):
        children = list(node.args)
    elif isinstance(
        node,
        promql_parser.AggregateExpr
        | promql_parser.ParenExpr
        | promql_parser.SubqueryExpr
        | promql_parser.UnaryExpr,
    ):
        children = [node.expr]
    for child in children:
        yield from selected_metrics(child)


def platform_metrics_alerted_on() -> set[str]:
    """What the rules read that the platform's services must export."""
    return {
        name
        for rule in alert_rules()
        for name in selected_metrics(promql_parser.parse(rule["expr"]))
        if name not in WELL_KNOWN_METRICS
    }
