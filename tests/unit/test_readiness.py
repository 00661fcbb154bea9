"""`/ready?checks=...`: a probe may ask for some dependencies only (shared/ops.py). Intake's
and reporting's Kubernetes readiness probes ask for the database alone, so a Kafka outage
does not take the front door out of service while its outbox holds what it accepts."""

from __future__ import annotations

from typing import Any

import httpx
from faststream.kafka import KafkaBroker

from shared.metrics import ServiceMetrics
from shared.ops import OpsEndpoints

NO_BROKER = "127.0.0.1:9"


class AnsweringPool:
    """Stands in for asyncpg's pool: the only call /ready makes is ``fetchval``."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    async def fetchval(self, query: str) -> Any:
        self.queries.append(query)
        return 1


async def get_ready(query: str, pool: AnsweringPool | None) -> httpx.Response:
    endpoints = OpsEndpoints(
        ServiceMetrics("t"), KafkaBroker(NO_BROKER), lambda: pool, outbox=False
    )
    transport = httpx.ASGITransport(app=endpoints.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://ops") as client:
        return await client.get(f"/ready{query}")


async def test_the_database_alone_is_ready_while_the_broker_is_away() -> None:
    pool = AnsweringPool()

    ready = await get_ready("?checks=database", pool)

    assert (ready.status_code, ready.json()) == (200, {"status": "ready", "database": "ok"})
    assert pool.queries == ["SELECT 1"]


async def test_without_checks_every_dependency_counts() -> None:
    ready = await get_ready("", AnsweringPool())

    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "database": "ok", "kafka": "unreachable"}


async def test_the_database_check_still_fails_when_the_database_is_not_there() -> None:
    ready = await get_ready("?checks=database", None)

    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "database": "not connected yet"}


async def test_the_broker_alone_can_be_asked_for() -> None:
    ready = await get_ready("?checks=kafka", AnsweringPool())

    assert (ready.status_code, ready.json()) == (
        503,
        {"status": "unavailable", "kafka": "unreachable"},
    )


async def test_an_unknown_check_is_a_clear_error_not_a_pass() -> None:
    for query in ("?checks=database,disk", "?checks=", "?checks=Database"):
        ready = await get_ready(query, AnsweringPool())

        assert ready.status_code == 400, query
        assert "known: database, kafka" in ready.json()["error"]
