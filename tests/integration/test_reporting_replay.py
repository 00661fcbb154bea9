"""Projections are order-independent and idempotent: for random interleavings of several
complaints' events (each complaint's order kept per topic, as Kafka keeps it), with
events delivered again at random, the projection equals the one built complaint by
complaint, once each (what a rebuild from the topics does)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.reporting import reports
from services.reporting.app import MIGRATIONS
from services.reporting.projections import apply_event
from shared.contracts import Event, decode_event
from shared.db import apply_migrations
from tests.contracts.golden import golden_samples

COMPLAINTS = 4
# One complaint's life, in the order its events happen.
LIFE = (
    ("ComplaintReceived", {"sequence": 1, "status": "received"}),
    ("ComplaintAssigned", {}),
    ("ClockStarted", {}),
    ("ComplaintAssignmentRecorded", {"sequence": 2, "status": "assigned"}),
    ("NotificationQueued", {}),
    ("NotificationSent", {}),
    ("InvestigationStarted", {"sequence": 3, "status": "investigating"}),
    ("EscalationRaised", {}),
    ("CompensationRecorded", {"sequence": 4, "status": "investigating"}),
    ("DecisionCommunicated", {"sequence": 5, "status": "replied"}),
    ("FeedbackReceived", {"sequence": 6, "status": "feedback_received"}),
    ("ClockStopped", {}),
    ("ComplaintReopened", {"sequence": 7, "status": "reopened", "round": 2}),
    ("ComplaintClosed", {"sequence": 8, "status": "closed", "round": 2}),
)
IGNORED_COLUMNS = {"processed_at", "updated_at", "applied_at"}


def life_of(index: int) -> list[Event]:
    complaint_no = f"26112200{index}"
    start = datetime.fromisoformat("2026-11-22T02:30:00+00:00") + timedelta(hours=index)
    clock_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"clock/{complaint_no}"))
    notification_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"notification/{complaint_no}"))
    events = []
    for step, (event_type, changes) in enumerate(LIFE):
        document: dict[str, Any] = {
            **golden_samples()[event_type],
            **changes,
            "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{complaint_no}/{event_type}")),
            "complaint_no": complaint_no,
            "occurred_at": (start + timedelta(minutes=step)).isoformat(),
        }
        if "clock_id" in document:
            document["clock_id"] = clock_id
        if "notification_id" in document:
            document["notification_id"] = notification_id
        if event_type == "ComplaintReceived":
            document["received_at"] = start.isoformat()
            document["category"] = ("facilities", "service-attitude")[index % 2]
        if event_type == "FeedbackReceived":
            document["quality"] = 1 + index % 5
        event = decode_event(json.dumps(document).encode())
        assert event is not None
        events.append(event)
    return events


LIVES = [life_of(index) for index in range(COMPLAINTS)]


@st.composite
def deliveries(draw: st.DrawFn) -> list[Event]:
    """An interleaving of the lives, with some events delivered twice. Kafka keeps order
    per topic and key: a complaint's events from one producer stay in order, while its
    events from different producers (topics) may come in any order."""
    remaining = [
        [event for event in life if event.producer == producer]
        for life in LIVES
        for producer in ("intake", "routing", "sla", "notify")
    ]
    order: list[Event] = []
    while any(remaining):
        choices = [i for i, life in enumerate(remaining) if life]
        order.append(remaining[draw(st.sampled_from(choices))].pop(0))
    again = draw(st.lists(st.integers(0, len(order) - 1), max_size=8))
    for position in sorted(again, reverse=True):
        # A redelivery comes later than the first delivery, never before it.
        at = draw(st.integers(position + 1, len(order)))
        order.insert(at, order[position])
    return order


async def project(database_url: str, schema: str, events: list[Event]) -> dict[str, Any]:
    admin = await asyncpg.connect(database_url)
    await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    await admin.close()
    await apply_migrations(database_url, schema, MIGRATIONS)
    conn = await asyncpg.connect(database_url, server_settings={"search_path": schema})
    try:
        for event in events:
            async with conn.transaction():
                await apply_event(conn, event)
        return await dump(conn, schema)
    finally:
        await conn.close()


async def dump(conn: asyncpg.Connection, schema: str) -> dict[str, Any]:
    tables = await conn.fetch(
        """SELECT table_name FROM information_schema.tables
           WHERE table_schema = $1 AND table_type = 'BASE TABLE'
             AND table_name NOT IN ('schema_migrations', 'outbox')""",
        schema,
    )
    result: dict[str, Any] = {}
    for table in sorted(t["table_name"] for t in tables):
        rows = await conn.fetch(f"SELECT * FROM {table}")
        result[table] = sorted(
            json.dumps(
                {k: v for k, v in dict(row).items() if k not in IGNORED_COLUMNS},
                default=str,
                sort_keys=True,
            )
            for row in rows
        )
    everything = reports.Filters()
    result["reports"] = [
        (await reports.sla(conn, everything)).model_dump(),
        (await reports.satisfaction(conn, everything)).model_dump(),
        (await reports.monthly(conn, everything, datetime(2026, 11, 1).date())).model_dump(),
    ]
    return result


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(order=deliveries())
async def test_any_interleaving_with_redeliveries_projects_like_the_orderly_rebuild(
    database_url: str, order: list[Event]
) -> None:
    orderly = [event for life in LIVES for event in life]
    expected = await project(database_url, "reporting_orderly", orderly)
    assert len(expected["case_timeline"]) == len(orderly)
    assert await project(database_url, "reporting_shuffled", order) == expected
