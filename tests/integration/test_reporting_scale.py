"""The loader of bench/reporting_scale.py writes the projection rows the projections would:
2,000 synthetic complaints, read through the real reporting API, give reports that agree
with each other and with what was loaded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx

from bench.reporting_scale import (
    MIGRATIONS,
    ROLLUPS,
    SCHEMA,
    Synthesizer,
    build_world,
    grow,
)
from services.reporting import rollups
from services.reporting.settings import ReportingSettings
from shared.db import apply_migrations
from shared.topics import Topics
from tests.support.infra import Infra
from tests.support.reporting import reporting_client

COMPLAINTS = 2000
PACKS = 7
TZ = ZoneInfo("Asia/Shanghai")


async def get(client: httpx.AsyncClient, path: str, **params: str) -> Any:
    answer = await client.get(path, params=params)
    assert answer.status_code == 200, (path, params, answer.text)
    return answer.json()


async def milestones_disagreeing(database_url: str) -> int:
    """Cases whose first contact, decision or status differ from their intake events, as
    the projections would have set them."""
    conn = await asyncpg.connect(database_url, server_settings={"search_path": SCHEMA})
    try:
        return int(
            await conn.fetchval(
                """SELECT count(*) FROM cases c JOIN LATERAL (
                       SELECT min(occurred_at) FILTER (WHERE event_type IN (
                                  'ComplaintAcknowledged', 'DecisionCommunicated',
                                  'ComplaintAnsweredOnSpot', 'ComplaintNotUpheld')) AS contact,
                              min(occurred_at) FILTER (WHERE event_type IN (
                                  'DecisionCommunicated', 'ComplaintAnsweredOnSpot',
                                  'ComplaintNotUpheld')) AS decided,
                              (array_agg(status ORDER BY sequence DESC))[1] AS status,
                              max(sequence) AS sequence
                       FROM case_status_history h WHERE h.complaint_no = c.complaint_no
                   ) h ON true
                   WHERE c.first_contact_at IS DISTINCT FROM h.contact
                      OR c.decided_at IS DISTINCT FROM h.decided
                      OR c.status <> h.status OR c.intake_sequence <> h.sequence"""
            )
        )
    finally:
        await conn.close()


async def rollups_recounted(database_url: str) -> dict[str, list[str]]:
    """The rollups as they are; called again, as counting them afresh leaves them (the
    first call's answer is what the triggers kept while the rows were copied in)."""
    conn = await asyncpg.connect(database_url, server_settings={"search_path": SCHEMA})
    try:
        tables = {}
        for table in ROLLUPS:
            rows = await conn.fetch(f"SELECT * FROM {table}")
            tables[table] = sorted(repr(sorted(dict(row).items())) for row in rows)
        assert all(tables.values()), {table: len(rows) for table, rows in tables.items()}
        async with conn.transaction():
            await rollups.refresh(conn, "Asia/Shanghai")
        return tables
    finally:
        await conn.close()


async def test_loaded_complaints_give_consistent_reports(
    infra: Infra, database_url: str, topics: Topics
) -> None:
    await apply_migrations(database_url, SCHEMA, MIGRATIONS)
    synth = Synthesizer(build_world(COMPLAINTS, days=730), days=730, seed=1)
    loaded = await grow(database_url, synth, 0, COMPLAINTS, first_load=True)
    assert loaded["rows_added"]["cases"] == COMPLAINTS
    assert all(n > 0 for n in loaded["rows_added"].values()), loaded["rows_added"]
    assert await milestones_disagreeing(database_url) == 0
    assert await rollups_recounted(database_url) == await rollups_recounted(database_url)

    settings = ReportingSettings(
        database_url=database_url,
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        complaints_topic_namespace=topics.namespace,
    )
    async with reporting_client(settings) as client:
        summary = await get(client, "/v1/reports/summary")
        assert summary["total"] == COMPLAINTS
        for dimension in ("by_branch", "by_pack", "by_status", "by_category", "by_day"):
            assert sum(summary[dimension].values()) == COMPLAINTS, dimension
        assert len(summary["by_pack"]) == PACKS
        assert len(summary["by_day"]) > 600  # two years of received days
        finished = summary["by_status"].get("closed", 0) + summary["by_status"].get("not_upheld", 0)
        assert 0 < summary["backlog"]["open"] == COMPLAINTS - finished

        # The statuses as they stand now, read from the history, are the cases' statuses.
        now = await get(client, "/v1/reports/summary", as_of=datetime.now(UTC).isoformat())
        assert now["by_status"] == summary["by_status"]

        # Filtered, each branch and pack is its share of the whole.
        for branch in ("hotel-demo", "furniture-shanghai"):
            scoped = await get(client, "/v1/reports/summary", branch_id=branch)
            assert scoped["total"] == summary["by_branch"][branch]
        hotel = await get(client, "/v1/reports/summary", pack="hotel")
        assert hotel["total"] == summary["by_pack"]["hotel"]

        await check_the_other_reports(client, summary)
        await check_rollups_answer_as_the_cases_do(client)


# A range of days takes the reports past the rollups, to the cases; this one holds them all.
EVERY_DAY = {"date_from": "2000-01-01"}
ROLLUP_REPORTS = ("summary", "sla", "response-times", "satisfaction", "complaint-rate")


async def check_rollups_answer_as_the_cases_do(client: httpx.AsyncClient) -> None:
    for scope in ({}, {"branch_id": "hotel-demo"}, {"pack": "hotel", "department": "housekeeping"}):
        for report in ROLLUP_REPORTS:
            from_rollups = await get(client, f"/v1/reports/{report}", **scope)
            from_cases = await get(client, f"/v1/reports/{report}", **scope, **EVERY_DAY)
            if report == "summary":
                for answer in (from_rollups, from_cases):
                    answer["backlog"].pop("oldest_hours")
            assert from_rollups == from_cases, (report, scope)


async def check_the_other_reports(client: httpx.AsyncClient, summary: dict[str, Any]) -> None:
    by_day: dict[str, int] = summary["by_day"]
    sla = await get(client, "/v1/reports/sla")
    assert sla["breaches"] > 0
    assert sla["escalations_by_level"]
    assert all(c["met"] + c["breached"] == c["stopped"] for c in sla["clocks"])
    assert sum(c["stopped"] for c in sla["clocks"]) > 0

    satisfaction = await get(client, "/v1/reports/satisfaction")
    assert satisfaction["overall"]["count"] > 0
    assert 0 < satisfaction["reopen_rate"] < 1
    assert 0 < satisfaction["return_visits_done"] <= satisfaction["return_visits_due"]

    rates = await get(client, "/v1/reports/complaint-rate")
    assert len(rates) == len(summary["by_branch"])
    assert next(r for r in rates if r["branch_id"] == "hotel-demo")["target"] == 0.01

    today = datetime.now(TZ).date()
    daily = await get(client, "/v1/reports/daily")
    assert daily["total"] == by_day.get(today.isoformat(), 0)

    monday = today - timedelta(days=today.weekday())
    weekly = await get(client, "/v1/reports/weekly")
    this_week = sum(n for day, n in by_day.items() if day >= monday.isoformat())
    assert sum(d["received"] for d in weekly["departments"]) == this_week

    monthly = await get(client, "/v1/reports/monthly")
    assert monthly["closed"] == len(monthly["rows"]) > 0

    late = await get(client, "/v1/reports/late-cases", limit="1000")
    assert late
    assert all(case["status"] not in ("closed", "not_upheld") for case in late)
    case = await get(client, f"/v1/cases/{late[0]['complaint_no']}")
    assert "ComplaintReceived" in {entry["event_type"] for entry in case["timeline"]}
    assert case["clocks"]
