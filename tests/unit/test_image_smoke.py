"""The pure parts of `make image-smoke` (deploy/docker/smoke.py): the run itself needs a
container engine, which CI machines lack; docs/operations.md records its last result."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from shared.settings import REPO_ROOT


def _load_smoke() -> Any:
    name = "complaints_image_smoke"
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "deploy/docker/smoke.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


smoke = _load_smoke()


def test_counter_sum_adds_every_label_and_ignores_the_created_sample() -> None:
    registry = CollectorRegistry()
    sent = Counter("notifications_sent", "sent", ["channel"], registry=registry)
    sent.labels("sms").inc(3)
    sent.labels("email").inc(4)
    exposition = generate_latest(registry).decode()

    assert "notifications_sent_created" in exposition
    assert smoke.counter_sum(exposition, "notifications_sent_total") == 7


def test_a_labelled_counter_never_incremented_sums_to_zero() -> None:
    registry = CollectorRegistry()
    Counter("notifications_failed", "failed", ["channel"], registry=registry)

    assert smoke.counter_sum(generate_latest(registry).decode(), "notifications_failed_total") == 0


def test_every_service_gets_its_own_role_port_and_the_runs_namespace() -> None:
    run = smoke.Run(
        engine="podman",
        image="complaints-platform:smoke",
        kafka="127.0.0.1:9092",
        admin_url="postgresql://postgres@127.0.0.1:5433/complaints",
        stamp="1",
    )
    run.ports = {name: 40000 + i for i, name in enumerate([*smoke.SINKS, *smoke.SERVICES])}

    for service in smoke.SERVICES:
        env = run.service_env(service)
        assert env["DATABASE_URL"].startswith(f"postgresql://complaints_{service}@")
        assert env["DATABASE_URL"].endswith("/image_smoke_1")
        assert env["COMPLAINTS_TOPIC_NAMESPACE"] == "imagesmoke1"
        port_setting = f"{service.upper()}_PORT" if service in smoke.API_SERVICES else "OPS_PORT"
        assert env[port_setting] == str(run.ports[service])
        assert ("AUTH_BRANCH_KEYS_FILE" in env) == (service in smoke.API_SERVICES)
    assert run.service_env("notify")["SMS_GATEWAY_URL"] == (
        f"http://127.0.0.1:{run.ports['sms-sink']}/gateway/send"
    )


def test_without_a_working_engine_the_smoke_test_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smoke.shutil, "which", lambda _name: None)

    with pytest.raises(smoke.SmokeError, match="no working container engine"):
        smoke.pick_engine(None)


def test_log_lines_must_be_json_and_name_a_complaint_with_its_correlation_id() -> None:
    good = "\n".join(
        [
            '{"event": "assigned", "complaint_no": "261123001", "correlation_id": "c-1"}',
            '{"event": "consumer started"}',
            "",
        ]
    )
    assert smoke.log_problems("routing", good) == []

    bad = "\n".join(
        [
            '{"event": "case action", "complaint_no": "261123001"}',
            "INFO:     Started server process [1]",
        ]
    )
    problems = smoke.log_problems("intake", bad)
    assert len(problems) == 2
    assert "1 log lines not JSON" in problems[0]
    assert "'case action'" in problems[1]
