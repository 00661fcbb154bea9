"""Projections are order-independent, idempotent and indifferent to batching: for random
interleavings of several complaints' events (each complaint's order kept per topic, as
Kafka keeps it), with events delivered again at random, cut into batches at random, the
projection equals the one built complaint by complaint, an event at a time, once each
(what a rebuild from the topics does)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.reporting import reports, rollups
from services.reporting.app import MIGRATIONS
from services.reporting.projections import apply_events
from shared.contracts import CustomerRecordRead, Event, decode_event
from shared.db import apply_migrations
from tests.contracts.golden import golden_samples

COMPLAINTS = 4
RESOLUTION, VISIT = "resolution", "visit"
ACKNOWLEDGEMENT, DECISION = "acknowledgement", "decision"
# One complaint's life, in the order its events happen: every event type reporting
# projects, several changes of one clock, case and notification close together (what a
# batch folds into one row), and a breach after its clock stopped (which changes nothing).
LIFE: tuple[tuple[str, dict[str, Any]], ...] = (
    ("ComplaintReceived", {"sequence": 1, "status": "received"}),
    ("ComplaintAssigned", {}),
    ("ClockStarted", {}),
    ("NotificationQueued", {}),
    ("ComplaintAcknowledged", {"sequence": 2, "status": "acknowledged"}),
    ("ComplaintAssignmentRecorded", {"sequence": 3, "status": "assigned"}),
    ("NotificationSent", {}),
    ("NotificationDelivered", {}),
    ("InvestigationStarted", {"sequence": 4, "status": "investigating"}),
    ("ComplaintPutOnHold", {"sequence": 5, "status": "on_hold"}),
    ("ClockPaused", {}),
    ("ComplaintResumed", {"sequence": 6, "status": "investigating"}),
    ("ClockResumed", {}),
    ("ClockRecomputed", {}),
    ("ClockWarning", {}),
    ("ClockBreached", {}),
    ("EscalationRaised", {}),
    (
        "ComplaintAssigned",
        {
            "department": "front-office",
            "assignee": {"staff_id": "fo-supervisor", "name": "王敏"},
            "previous_assignee": {"staff_id": "eng-manager", "name": "周强"},
        },
    ),
    ("ComplaintEscalated", {"sequence": 7, "status": "escalated"}),
    ("CustomerRecordRead", {}),
    ("CompensationRecorded", {"sequence": 8, "status": "investigating"}),
    ("DecisionCommunicated", {"sequence": 9, "status": "replied"}),
    ("NotificationQueued", {"notification": DECISION}),
    ("NotificationFailed", {"notification": DECISION, "dead_lettered": True}),
    ("FeedbackReceived", {"sequence": 10, "status": "feedback_received"}),
    ("ClockStopped", {"outcome": "breached"}),
    ("ComplaintReopened", {"sequence": 11, "status": "reopened", "round": 2}),
    ("ComplaintResolved", {"sequence": 12, "status": "resolved", "round": 2}),
    ("ClockStarted", {"clock": VISIT, "name": "return-visit", "return_visit": True}),
    ("ReturnVisitDue", {"clock": VISIT}),
    ("ClockStopped", {"clock": VISIT, "name": "return-visit"}),
    ("ClockBreached", {"clock": VISIT, "name": "return-visit"}),
    ("ReturnVisitRecorded", {"sequence": 13, "status": "return_visited", "round": 2}),
    ("ComplaintClosed", {"sequence": 14, "status": "closed", "round": 2}),
    ("ComplaintReopened", {"sequence": 15, "status": "reopened", "round": 3}),
    ("ComplaintClosed", {"sequence": 16, "status": "closed", "round": 3}),
)
IGNORED_COLUMNS = {"processed_at", "updated_at", "applied_at"}
ROLLUPS = (
    "case_counts",
    "branch_days",
    "department_days",
    "first_contact_times",
    "close_times",
    "clock_counts",
    "escalation_counts",
    "feedback_scores",
    "return_visit_counts",
)


def document(event_type: str, changes: dict[str, Any], event_id: str, at: datetime) -> Event:
    event = decode_event(
        json.dumps(
            {
                **golden_samples()[event_type],
                **changes,
                "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, event_id)),
                "occurred_at": at.isoformat(),
            }
        ).encode()
    )
    assert event is not None
    return event


def life_of(index: int) -> list[Event]:
    complaint_no = f"26112200{index}"
    start = datetime.fromisoformat("2026-11-22T02:30:00+00:00") + timedelta(hours=index)
    events = []
    # Every other complaint stops short of its last closing: it ends reopened.
    for step, (event_type, given_changes) in enumerate(LIFE[: len(LIFE) - index % 2]):
        changes = {**given_changes, "complaint_no": complaint_no}
        clock = changes.pop("clock", RESOLUTION)
        notification = changes.pop("notification", ACKNOWLEDGEMENT)
        if "clock_id" in golden_samples()[event_type]:
            changes["clock_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{complaint_no}/{clock}"))
        if "notification_id" in golden_samples()[event_type]:
            changes["notification_id"] = str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"{complaint_no}/{notification}")
            )
        if event_type == "ComplaintReceived":
            changes["received_at"] = start.isoformat()
            changes["category"] = ("facilities", "service-attitude")[index % 2]
        if event_type == "FeedbackReceived":
            changes["quality"] = 1 + index % 5
        at = start + timedelta(minutes=step)
        events.append(document(event_type, changes, f"{complaint_no}/{step}", at))
    return events


def volumes() -> list[Event]:
    """One branch's figures for one day, posted three times: the latest stands, and of two
    posted at the same moment the first."""
    at = datetime.fromisoformat("2026-11-22T15:00:00+00:00")
    return [
        document("ServiceVolumeRecorded", {"services": services}, f"volume/{step}", at + late)
        for step, (services, late) in enumerate(
            ((412, timedelta(0)), (430, timedelta(hours=1)), (999, timedelta(hours=1)))
        )
    ]


LIVES = [life_of(index) for index in range(COMPLAINTS)] + [volumes()]
ORDERLY = [event for life in LIVES for event in life]
# The orderly projection is the same for every example: built once per test run.
expected_projection: dict[str, Any] = {}


@st.composite
def deliveries(draw: st.DrawFn) -> list[list[Event]]:
    """An interleaving of the lives, with some events delivered twice, in batches. Kafka
    keeps order per topic and key: a complaint's events from one producer stay in order,
    while its events from different producers (topics) may come in any order."""
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
    cuts = sorted(draw(st.sets(st.integers(1, len(order) - 1), max_size=len(order) // 2)))
    return [order[start:end] for start, end in pairwise([0, *cuts, len(order)])]


async def project(database_url: str, batches: list[list[Event]]) -> dict[str, Any]:
    """The projection the batches make in a schema of their own, which goes afterwards."""
    schema = f"reporting_{uuid.uuid4().hex[:12]}"
    await apply_migrations(database_url, schema, MIGRATIONS)
    conn = await asyncpg.connect(database_url, server_settings={"search_path": schema})
    try:
        for batch in batches:
            async with conn.transaction():
                await apply_events(conn, batch)
        projected = await dump(conn, schema)
        # The rollups the triggers kept, event by event, are what counting afresh gives.
        async with conn.transaction():
            await rollups.refresh(conn, "Asia/Shanghai")
        recounted = await dump(conn, schema)
        assert {t: recounted[t] for t in ROLLUPS} == {t: projected[t] for t in ROLLUPS}
        assert sum(len(projected[t]) for t in ROLLUPS) > len(ROLLUPS)
        return projected
    finally:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
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
        (await reports.summary(conn, everything)).model_dump(exclude={"backlog"}),
        (await reports.response_times(conn, everything)).model_dump(),
        (await reports.sla(conn, everything)).model_dump(),
        (await reports.satisfaction(conn, everything)).model_dump(),
        (await reports.monthly(conn, everything, datetime(2026, 11, 1).date())).model_dump(),
    ]
    return result


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=deliveries())
async def test_any_interleaving_with_redeliveries_in_any_batches_projects_like_the_orderly_rebuild(
    database_url: str, batches: list[list[Event]]
) -> None:
    if not expected_projection:
        one_by_one = [[event] for event in ORDERLY]
        expected_projection.update(await project(database_url, one_by_one))
        # Every event is on its case's timeline but the volumes and who read the record.
        reads = sum(1 for event in ORDERLY if isinstance(event, CustomerRecordRead))
        assert reads == COMPLAINTS
        assert len(expected_projection["record_reads"]) == reads
        assert len(expected_projection["case_timeline"]) == len(ORDERLY) - len(LIVES[-1]) - reads
    assert await project(database_url, batches) == expected_projection
