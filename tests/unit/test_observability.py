"""The pure parts of the ops endpoints, the metrics and the trace context."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI
from fastapi.telemetry import get_telemetry_data
from faststream.kafka import KafkaBroker
from opentelemetry import trace
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shared import ops
from shared.metrics import ServiceMetrics, partition_lag
from shared.ops import OpsEndpoints, readiness
from shared.tracing import (
    FASTAPI_TELEMETRY,
    TraceRequests,
    add_trace_id,
    configure_tracing,
    handling,
    trace_headers,
)

configure_tracing("unit-tests")


def traceparent(trace_id: str) -> str:
    return f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"


def test_ready_only_when_every_dependency_answers() -> None:
    assert readiness({"database": "ok", "kafka": "ok"}) == (
        200,
        {"status": "ready", "database": "ok", "kafka": "ok"},
    )
    assert readiness({"database": "down: ConnectionRefusedError", "kafka": "ok"}) == (
        503,
        {"status": "unavailable", "database": "down: ConnectionRefusedError", "kafka": "ok"},
    )


def test_lag_is_what_the_consumer_has_not_been_given() -> None:
    assert partition_lag(end_offset=120, position=100) == 20
    assert partition_lag(end_offset=100, position=100) == 0
    # A position read after the end offset (records arrived in between) is no lag.
    assert partition_lag(end_offset=100, position=103) == 0


async def test_services_built_in_one_process_keep_their_own_counts() -> None:
    first, second = ServiceMetrics("routing"), ServiceMetrics("routing")
    first.counter("complaints_assigned_total", "Assignments.", "department").labels("a").inc()
    second.counter("complaints_assigned_total", "Assignments.", "department")
    counts = [
        [
            (sample.labels, sample.value)
            for family in text_string_to_metric_families((await m.exposition()).decode())
            for sample in family.samples
            if sample.name == "complaints_assigned_total"
        ]
        for m in (first, second)
    ]
    assert counts == [[({"department": "a"}, 1.0)], []]


def test_no_trace_context_outside_a_span() -> None:
    assert trace_headers() == {}
    assert add_trace_id(None, "info", {"event": "x"}) == {"event": "x"}


def test_a_handled_message_continues_its_producers_trace() -> None:
    trace_id = uuid.uuid4().hex
    with handling("t.intake", [("traceparent", traceparent(trace_id).encode())]):
        carried = trace_headers()["traceparent"]
        logged = add_trace_id(None, "info", {"event": "x"})
    assert carried.split("-")[1] == trace_id
    assert logged["trace_id"] == trace_id


def test_a_message_without_a_trace_starts_one() -> None:
    with handling("t.intake", [("event_type", b"ComplaintReceived")]):
        started = trace.get_current_span().get_span_context()
        carried = trace_headers()["traceparent"]
    assert started.is_valid
    assert carried.split("-")[1] == trace.format_trace_id(started.trace_id)


async def test_a_request_continues_its_callers_trace() -> None:
    async def carried(_request: Request) -> JSONResponse:
        return JSONResponse(trace_headers())

    app = TraceRequests(Starlette(routes=[Route("/v1/x/{n}", carried)]), untraced=["/health"])
    trace_id = uuid.uuid4().hex
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        continued = (await c.get("/v1/x/1", headers={"traceparent": traceparent(trace_id)})).json()
        fresh = (await c.get("/v1/x/2")).json()
    assert continued["traceparent"].split("-")[1] == trace_id
    assert fresh["traceparent"].split("-")[1] != trace_id


async def test_requests_are_traced_once_not_by_fastapi_too() -> None:
    """FastAPI's own request spans would record paths and query strings, and cost every
    request their time: only ``TraceRequests`` traces, and the context still travels."""
    fastapis: dict[bool, object] = {}

    def app(fastapi_telemetry: bool) -> FastAPI:
        api = FastAPI() if fastapi_telemetry else FastAPI(telemetry=FASTAPI_TELEMETRY)

        @api.get("/v1/x/{n}")
        async def carried(n: int) -> dict[str, str]:
            fastapis[fastapi_telemetry] = get_telemetry_data()
            return trace_headers()

        api.add_middleware(TraceRequests)
        return api

    trace_id = uuid.uuid4().hex
    for fastapi_telemetry in (True, False):
        transport = httpx.ASGITransport(app=app(fastapi_telemetry))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            continued = await c.get("/v1/x/1", headers={"traceparent": traceparent(trace_id)})
        assert continued.json()["traceparent"].split("-")[1] == trace_id
    # With a tracer provider set, FastAPI's telemetry is on unless told otherwise.
    assert fastapis[True] is not None
    assert fastapis[False] is None


async def ops_get(endpoints: OpsEndpoints, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=endpoints.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://ops") as client:
        return await client.get(path)


async def test_health_fails_once_a_restart_is_requested(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoints = OpsEndpoints(
        ServiceMetrics("t"), KafkaBroker("127.0.0.1:9"), lambda: None, outbox=False
    )
    assert (await ops_get(endpoints, "/health")).json() == {"status": "ok"}
    monkeypatch.setattr(ops, "restart_requested", lambda: True)
    restarting = await ops_get(endpoints, "/health")
    assert (restarting.status_code, restarting.json()) == (503, {"status": "restarting"})


async def test_a_service_not_yet_started_is_not_ready() -> None:
    endpoints = OpsEndpoints(
        ServiceMetrics("t"), KafkaBroker("127.0.0.1:9"), lambda: None, outbox=True
    )
    ready = await ops_get(endpoints, "/ready")
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "unavailable",
        "database": "not connected yet",
        "kafka": "unreachable",
    }
    assert "outbox_depth" in (await ops_get(endpoints, "/metrics")).text
