"""`make bench` in miniature: the harness starts the platform, drives it over HTTP and
Kafka with staff working cases meanwhile, follows every complaint through, and takes its
baselines. It checks that the
benchmark works, not its numbers (those are `make bench`'s, on a quiet machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.infra import Infra

REPO = Path(__file__).resolve().parents[2]


def test_the_benchmark_runs_and_follows_every_complaint_through(
    infra: Infra, tmp_path: Path
) -> None:
    out = tmp_path / "smoke.json"
    finished = subprocess.run(
        [
            sys.executable,
            "bench/run.py",
            "--smoke",
            "--kafka",
            infra.kafka_bootstrap_servers,
            "--database-url",
            infra.database_url,
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    result = json.loads(out.read_text())
    load = result["load"]
    assert load["submitted_http"] > 0
    assert load["submitted_kafka"] > 0
    assert load["http_errors"] == 0
    assert result["accepted"] == load["submitted_http"] + load["submitted_kafka"]
    assert result["fully_processed"] == result["accepted"]
    assert result["missing_at_end"] == {"routed": 0, "clocked": 0, "acknowledged": 0, "visible": 0}
    staff = result["staff"]
    assert staff["cases_worked"] > 0
    assert sum(staff["actions"].values()) > 0  # staff acted on cases during the load
    assert staff["errors"] == 0
    assert staff["latency_ms"]["action or feedback"]["count"] > 0
    for name in ("http_intake", "accept_to_routed", "accept_to_visible_in_reporting"):
        assert result["latency_ms"][name]["count"] > 0
    services = {"intake", "routing", "sla", "notify", "reporting"}
    assert services <= set(result["processes"])
    assert all(result["processes"][name]["peak_rss_mb"] > 0 for name in services)
    assert all(result["cpu_ms_per_complaint"][name] > 0 for name in services)
    baselines = result["baselines"]
    assert baselines["kafka_perf_tools"]["produce_records_per_second"] > 0
    assert baselines["kafka_perf_tools"]["consume_records_per_second"] > 0
    assert baselines["aiokafka_consume_produce"]["records_per_second"] > 0
    assert baselines["asyncpg_one_complaints_writes"]["transactions_per_second"] > 0
