"""The ops endpoints, the metrics and the trace context, against the real broker and database."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from services.notify.app import build_app as build_notify
from services.notify.settings import NotifySettings
from services.routing.app import build_app as build_routing
from services.sla.app import build_app as build_sla
from shared.consumer_app import ConsumerApp
from shared.topics import Topics
from tests.support.alert_rules import platform_metrics_alerted_on
from tests.support.db import scalar
from tests.support.infra import Infra
from tests.support.intake import running_intake, wait_for
from tests.support.kafka import read_records
from tests.support.services import running, settings_for
from tests.support.tcp_proxy import TcpProxy

# A caller's trace, which intake continues and the consumers carry on.
TRACE_ID = uuid.uuid4().hex
TRACEPARENT = f"00-{TRACE_ID}-{uuid.uuid4().hex[:16]}-01"


def submission(**overrides: Any) -> dict[str, Any]:
    return {
        "branch_id": "hotel-demo",
        "channel": "phone",
        "customer": {"name": "张伟", "phone": "+86 138 0013 8000", "type": "in_house_guest"},
        "description": "房间空调不制冷",
        "category": "facilities",
        **overrides,
    }


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The values of metric ``name`` (a counter's ``_total`` samples), by their labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


@asynccontextmanager
async def ops_client(app: ConsumerApp) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app's ops endpoints, once they listen."""

    async def listening() -> bool:
        return app.ops_port is not None

    await wait_for(listening, timeout=30)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.ops_port}", timeout=10) as c:
        yield c


async def until_ready(client: httpx.AsyncClient) -> None:
    async def ready() -> bool:
        return (await client.get("/ready")).status_code == 200

    await wait_for(ready, timeout=60)


def unauthenticated(client: httpx.AsyncClient, path: str) -> httpx.Request:
    request = client.build_request("GET", path)
    del request.headers["authorization"]
    return request


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_intake_and_routing_count_what_they_did_and_carry_the_trace_on(
    infra: Infra, database_url: str, topics: Topics
) -> None:
    bootstrap = infra.kafka_bootstrap_servers
    routing = build_routing(settings_for(infra, database_url, topics, ops_port=0))
    async with (
        running_intake(database_url, bootstrap, topics) as intake,
        running(routing),
        ops_client(routing) as ops,
    ):
        for path in ("/health", "/ready", "/metrics"):
            assert path not in (await intake.get("/openapi.json")).json()["paths"]
        health = await intake.send(unauthenticated(intake, "/health"))
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        await until_ready(intake)
        await until_ready(ops)
        assert (await ops.get("/health")).json() == {"status": "ok"}

        first = await intake.post(
            "/v1/complaints",
            json=submission(),
            headers={"Idempotency-Key": "first", "traceparent": TRACEPARENT},
        )
        replay = await intake.post(
            "/v1/complaints", json=submission(), headers={"Idempotency-Key": "first"}
        )
        assert first.status_code == replay.status_code == 201
        assert replay.headers["idempotent-replayed"] == "true"
        for _ in range(2):
            assert (await intake.post("/v1/complaints", json=submission())).status_code == 201

        async def three_assigned() -> bool:
            return await scalar(database_url, "SELECT count(*) FROM routing.assignments") == 3

        await wait_for(three_assigned)

        # Intake counts the accepted, not the replayed.
        exposition = (await intake.send(unauthenticated(intake, "/metrics"))).text
        assert samples(exposition, "complaints_received_total") == {
            (("branch", "hotel-demo"),): 3.0
        }
        assert samples(exposition, "outbox_depth").keys() == {()}

        # Routing's, once the three are assigned; its consumer has caught up.
        async def all_counted() -> bool:
            text = (await ops.get("/metrics")).text
            return sum(samples(text, "complaints_assigned_total").values()) == 3

        await wait_for(all_counted)
        exposition = (await ops.get("/metrics")).text
        conn = await asyncpg.connect(database_url)
        try:
            assigned = await conn.fetch(
                "SELECT department, count(*) FROM routing.assignments GROUP BY department"
            )
        finally:
            await conn.close()
        assert samples(exposition, "complaints_assigned_total") == {
            (("department", row["department"]),): float(row["count"]) for row in assigned
        }
        lag = samples(exposition, "consumer_lag")
        assert {dict(labels)["topic"] for labels in lag} == {topics.intake.name}
        assert all(value == 0 for value in lag.values())
        assert samples(exposition, "faststream_received_messages_total")

    # The caller's trace went through intake's outbox to routing, and on through routing's
    # outbox; the other complaints are traces of their own.
    number = first.json()["complaint_no"].encode()
    for topic, event_type, published in (
        # Intake's topic also has the three assignments recorded.
        (topics.intake.name, b"ComplaintReceived", 6),
        (topics.routing.name, b"ComplaintAssigned", 3),
    ):
        records = await read_records(bootstrap, topic, expected=published)
        traces = {
            record.key: dict(record.headers)["traceparent"].split(b"-")[1].decode()
            for record in records
            if dict(record.headers)["event_type"] == event_type
        }
        assert len(traces) == 3
        assert traces.pop(number) == TRACE_ID
        assert TRACE_ID not in traces.values()


async def test_ready_names_the_database_when_it_cannot_be_reached(
    infra: Infra, database_url: str, topics: Topics
) -> None:
    bootstrap = infra.kafka_bootstrap_servers
    parts = urlsplit(database_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    proxied = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    async with running_intake(proxied, bootstrap, topics) as intake:
        await until_ready(intake)
        await proxy.cut()
        started = asyncio.get_running_loop().time()
        ready = await intake.send(unauthenticated(intake, "/ready"))
        assert asyncio.get_running_loop().time() - started < 2.5
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"
        assert ready.json()["database"] != "ok"
        assert ready.json()["kafka"] == "ok"
        # What Kubernetes asks intake: the database alone (deploy/k8s/base/intake.yaml).
        database_only = await intake.send(unauthenticated(intake, "/ready?checks=database"))
        assert database_only.status_code == 503
        assert set(database_only.json()) == {"status", "database"}
        broker_only = await intake.send(unauthenticated(intake, "/ready?checks=kafka"))
        assert (broker_only.status_code, broker_only.json()["kafka"]) == (200, "ok")
        assert (await intake.get("/health")).status_code == 200

    # A consumer service whose database is away answers all the same, while it waits.
    nowhere = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{_closed_port()}"))
    routing = build_routing(settings_for(infra, nowhere, topics, ops_port=0))
    run = asyncio.create_task(routing.run())
    try:
        async with ops_client(routing) as ops:
            assert (await ops.get("/health")).status_code == 200
            ready = await ops.get("/ready")
            assert ready.status_code == 503
            assert ready.json()["database"] == "not connected yet"
    finally:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run


async def test_sla_and_notify_serve_their_ops_endpoints(
    infra: Infra, database_url: str, topics: Topics
) -> None:
    sla = build_sla(settings_for(infra, database_url, topics, ops_port=0))
    notify = build_notify(
        NotifySettings(
            database_url=database_url,
            kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
            complaints_topic_namespace=topics.namespace,
            ops_port=0,
        )
    )
    async with running(sla, notify), ops_client(sla) as sla_ops, ops_client(notify) as notify_ops:
        await until_ready(sla_ops)
        await until_ready(notify_ops)
        assert sla_ops.base_url != notify_ops.base_url
        sla_metrics = (await sla_ops.get("/metrics")).text
        notify_metrics = (await notify_ops.get("/metrics")).text
    assert "# TYPE clocks_breached_total counter" in sla_metrics
    assert "# TYPE notifications_sent_total counter" in notify_metrics
    assert "# TYPE notifications_failed_total counter" in notify_metrics
    for exposition in (sla_metrics, notify_metrics):
        assert samples(exposition, "outbox_depth") == {(): 0.0}
    # Between them sla and notify export every platform metric deploy/monitoring/alerts.yml
    # reads (consumer_lag and outbox_depth are every consumer's and outbox's).
    exported = exported_names(sla_metrics) | exported_names(notify_metrics)
    assert platform_metrics_alerted_on() <= exported


def exported_names(exposition: str) -> set[str]:
    """Every metric an exposition declares, samples or not (a labelled counter has none
    until its first increment), by the names a query uses."""
    names = set()
    for family in text_string_to_metric_families(exposition):
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
    return names
