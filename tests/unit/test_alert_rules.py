"""deploy/monitoring/: the alerts operators load into Prometheus, checked without Prometheus.

Every expression parses (promql-parser, a PromQL parser kept compatible with
Prometheus's), reads only the platform's own metrics or the few well-known ones it names,
and every alert has a severity, a summary, a runbook entry in docs/operations.md and a
promtool test in alerts.test.yml. `make check-alerts` runs promtool itself (it takes a Go
build CI cannot afford); tests/integration/test_observability.py checks the services
export every platform metric named here.
"""

from __future__ import annotations

import re
from typing import Any

import promql_parser
import pytest
import yaml

from shared.settings import REPO_ROOT
from tests.support.alert_rules import (
    WELL_KNOWN_METRICS,
    alert_rules,
    load,
    platform_metrics_alerted_on,
    selected_metrics,
)

OPERATIONS_DOC = REPO_ROOT / "docs" / "operations.md"
SERVICES = ("intake", "routing", "sla", "notify", "reporting")
# What the platform's services export and the alerts read.
PLATFORM_METRICS = frozenset(
    {
        "consumer_lag",
        "outbox_depth",
        "clocks_breached_total",
        "notifications_sent_total",
        "notifications_failed_total",
    }
)


def documented_alerts() -> set[str]:
    """The first column of the Alerts table in docs/operations.md."""
    section = OPERATIONS_DOC.read_text().split("### Alerts", 1)[1].split("\n### ", 1)[0]
    return {
        row.split("|")[1].strip()
        for row in section.splitlines()
        if row.startswith("| ") and not row.startswith(("| alert ", "| --- "))
    }


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_parses_and_reads_known_metrics(rule: dict[str, Any]) -> None:
    expression = promql_parser.parse(rule["expr"])
    metrics = set(selected_metrics(expression))
    assert metrics, "an alert reads at least one metric"
    assert metrics <= PLATFORM_METRICS | WELL_KNOWN_METRICS


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_says_how_bad_what_and_where_to_look(rule: dict[str, Any]) -> None:
    assert re.fullmatch(r"Complaints[A-Z][A-Za-z]+", rule["alert"])
    assert rule["labels"] == {"severity": rule["labels"]["severity"]}
    assert rule["labels"]["severity"] in {"page", "ticket"}
    assert set(rule["annotations"]) == {"summary", "runbook"}
    runbook = re.fullmatch(r"docs/operations\.md#alerts \((.+)\)", rule["annotations"]["runbook"])
    assert runbook is not None
    assert runbook.group(1) in documented_alerts()
    if "for" in rule:
        assert re.fullmatch(r"\d+m", rule["for"])


def test_the_docs_alerts_are_the_rules_alerts() -> None:
    runbooks = {rule["annotations"]["runbook"] for rule in alert_rules()}
    named = {re.sub(r".*\((.+)\)$", r"\1", runbook) for runbook in runbooks}
    assert named == documented_alerts()


def test_the_platform_metrics_alerted_on_are_all_read() -> None:
    assert platform_metrics_alerted_on() == PLATFORM_METRICS


def test_alerts_on_services_name_all_five() -> None:
    alternation = "|".join(SERVICES)
    by_name = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    for alert in ("ComplaintsServiceDown", "ComplaintsServiceNotReady", "ComplaintsRestarting"):
        assert alternation in by_name[alert], alert


def test_every_alert_has_a_promtool_test_that_expects_it_to_fire() -> None:
    tests = load("alerts.test.yml")
    assert tests["rule_files"] == ["alerts.yml"]
    fired = {
        case["alertname"]
        for test in tests["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert fired == {rule["alert"] for rule in alert_rules()}


def test_the_scrape_job_names_each_target_after_its_service() -> None:
    config = load("prometheus.yml")
    assert config["rule_files"] == ["alerts.yml"]
    [job] = config["scrape_configs"]
    relabels = job["relabel_configs"]
    kept = {
        relabel["source_labels"][0]: relabel["regex"]
        for relabel in relabels
        if relabel.get("action") == "keep"
    }
    assert kept == {
        "__meta_kubernetes_pod_label_app_kubernetes_io_part_of": "complaints-platform",
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
    }
    named = [r for r in relabels if r.get("target_label") == "job"]
    assert named == [
        {
            "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
            "target_label": "job",
        }
    ]


@pytest.mark.parametrize("service", SERVICES)
def test_every_deployment_is_a_target_of_that_job(service: str) -> None:
    documents = yaml.safe_load_all((REPO_ROOT / "deploy/k8s/base" / f"{service}.yaml").read_text())
    [deployment] = [d for d in documents if d and d["kind"] == "Deployment"]
    template = deployment["spec"]["template"]["metadata"]
    assert template["labels"]["app.kubernetes.io/name"] == service
    assert template["labels"]["app.kubernetes.io/part-of"] == "complaints-platform"
    assert template["annotations"]["prometheus.io/scrape"] == "true"
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["name"] == service  # what the restart alert matches on


def test_an_expression_that_does_not_parse_is_caught() -> None:
    with pytest.raises(ValueError, match="parenthesis"):
        promql_parser.parse("sum by (job) (consumer_lag > 1000")


def test_the_walk_finds_metrics_inside_subqueries_and_calls() -> None:
    expression = promql_parser.parse(
        "deriv(sum by (job) (consumer_lag)[15m:1m]) > 0 and on (job) rate(x_total[5m]) > -up"
    )
    assert sorted(selected_metrics(expression)) == ["consumer_lag", "up", "x_total"]


def test_the_files_are_where_the_docs_say() -> None:
    text = OPERATIONS_DOC.read_text()
    for name in ("alerts.yml", "alerts.test.yml", "prometheus.yml"):
        assert f"deploy/monitoring/{name}" in text, name
