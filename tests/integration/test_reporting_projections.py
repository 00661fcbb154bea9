from __future__ import annotations

import json
import uuid
from datetime import timedelta

import asyncpg
import pytest

from services.reporting import audit, queries, reports, rollups
from services.reporting.api import CaseFile
from services.reporting.app import MIGRATIONS, SCHEMA
from services.reporting.projections import apply_events
from shared.contracts import CustomerRecordRead, Event, decode_event
from shared.contracts.submissions import Confidentiality
from shared.db import apply_migrations
from tests.contracts.golden import golden_samples


def _golden_events() -> dict[str, Event]:
    events = {}
    for name, document in golden_samples().items():
        event = decode_event(json.dumps(document).encode())
        if event is not None:  # submission outcomes are not complaint events
            events[name] = event
    return events


async def _project(database_url: str, order: list[str]) -> asyncpg.Connection:
    await apply_migrations(database_url, SCHEMA, MIGRATIONS)
    conn = await asyncpg.connect(database_url, server_settings={"search_path": SCHEMA})
    events = _golden_events()
    for name in order:
        async with conn.transaction():
            await apply_events(conn, [events[name]])
    return conn


async def _case_file(conn: asyncpg.Connection, complaint_no: str) -> CaseFile:
    case = await queries.case_row(conn, complaint_no)
    assert case is not None
    return await queries.case_file(conn, case)


async def test_the_case_file_is_the_same_whatever_the_arrival_order_and_redeliveries(
    database_url: str,
) -> None:
    in_order = [
        "ComplaintReceived",
        "ComplaintAssigned",
        "ComplaintAssignmentRecorded",
        "ClockStarted",
        "NotificationSent",
    ]
    scrambled = [
        "NotificationSent",
        "ComplaintAssignmentRecorded",
        "ComplaintAssigned",
        "ClockStarted",
        "ComplaintAssigned",
        "ComplaintReceived",
        "NotificationSent",
        "ComplaintReceived",
        "ComplaintAssignmentRecorded",
    ]
    first = await _project(database_url, in_order)
    try:
        expected = await _case_file(first, "261122001")
        await first.execute("DROP SCHEMA reporting CASCADE")
    finally:
        await first.close()
    second = await _project(database_url, scrambled)
    try:
        again = await _case_file(second, "261122001")
        summary = await reports.summary(second, reports.Filters())
    finally:
        await second.close()

    # Time remaining is read against the clock of the query; everything else must match.
    moment = {"clocks": {"__all__": {"remaining_seconds"}}}
    assert again.model_dump(exclude=moment) == expected.model_dump(exclude=moment)
    assert again.status == "assigned"
    assert again.category == "facilities"
    assert again.assignment is not None
    assert again.assignment.department == "engineering"
    assert again.assignment.assignee is not None
    assert again.assignment.assignee.name == "周强"
    assert [(c.name, c.state) for c in again.clocks] == [("resolution", "running")]
    assert [(n.channel, n.status) for n in again.notifications] == [("email", "sent")]
    assert len(again.timeline) == 5
    received = next(e for e in again.timeline if e.event_type == "ComplaintReceived")
    assert received.details["customer"]["email"] == "z***@example.com"
    assert received.details["customer"]["phone"] == "***8000"
    assert summary.total == 1
    assert summary.by_status == {"assigned": 1}
    assert summary.by_category == {"facilities": 1}
    assert summary.by_branch == {"hotel-demo": 1}


async def test_the_timeline_shows_each_events_payload_with_the_customers_contact_masked(
    database_url: str,
) -> None:
    events = _golden_events()
    conn = await _project(database_url, list(events))
    try:
        rows = await conn.fetch("SELECT event_type, details FROM case_timeline")
    finally:
        await conn.close()
    envelope = set(Event.model_fields)
    expected = {
        name: event.model_dump(mode="json", exclude=envelope)
        for name, event in events.items()
        # Not about a case, or about who read it (for auditors): no timeline.
        if name not in ("ServiceVolumeRecorded", "CustomerRecordRead")
    }
    expected["ComplaintReceived"]["customer"].update(email="z***@example.com", phone="***8000")
    assert {row["event_type"]: json.loads(row["details"]) for row in rows} == expected


async def test_a_large_batch_projects_only_the_events_it_has_not_projected_before(
    database_url: str,
) -> None:
    events = list(_golden_events().values())
    assert len(events) >= 32  # large enough to go in by COPY, which a known event fails
    await apply_migrations(database_url, SCHEMA, MIGRATIONS)
    conn = await asyncpg.connect(database_url, server_settings={"search_path": SCHEMA})
    try:
        async with conn.transaction():
            assert await apply_events(conn, events[:10]) == 10
        async with conn.transaction():
            assert await apply_events(conn, events + events[:3]) == len(events) - 10
        async with conn.transaction():
            assert await apply_events(conn, events) == 0
        timeline = await conn.fetchval("SELECT count(*) FROM case_timeline")
        inbox = await conn.fetchval("SELECT count(*) FROM processed_events")
        reads = await conn.fetchval("SELECT count(*) FROM record_reads")
    finally:
        await conn.close()
    # Volumes and record reads have no timeline.
    assert (timeline, inbox, reads) == (len(events) - 2, len(events), 1)


async def test_a_failed_notification_shows_its_reason(database_url: str) -> None:
    conn = await _project(database_url, ["ComplaintReceived", "NotificationFailed"])
    try:
        case = await _case_file(conn, "261122001")
    finally:
        await conn.close()
    (notification,) = case.notifications
    assert notification.status == "failed"
    assert notification.reason == "550 5.1.1 mailbox unavailable"
    assert notification.to_customer


async def test_a_notification_shows_its_latest_state_and_every_step_is_in_the_timeline(
    database_url: str,
) -> None:
    life = ["ComplaintReceived", "NotificationQueued", "NotificationSent", "NotificationDelivered"]
    conn = await _project(database_url, life)
    try:
        case = await _case_file(conn, "261122001")
    finally:
        await conn.close()
    (notification,) = case.notifications
    assert (notification.status, notification.to_customer) == ("delivered", True)
    steps = [e.event_type for e in case.timeline if e.event_type.startswith("Notification")]
    assert steps == life[1:]


async def test_a_bi_login_reads_the_views_and_nothing_else(database_url: str) -> None:
    conn = await _project(database_url, ["ComplaintReceived", "ComplaintAssigned"])
    login = f"bi_{uuid.uuid4().hex[:8]}"
    try:
        await conn.execute(f"CREATE ROLE {login} LOGIN IN ROLE complaints_bi")
        reader = await asyncpg.connect(database_url, user=login)
        try:
            (case,) = await reader.fetch("SELECT * FROM reporting.bi_cases")
            assert case["complaint_no"] == "261122001"
            assert case["department"] == "engineering"
            for view in (
                "bi_clocks",
                "bi_feedback",
                "bi_compensation",
                "bi_escalations",
                "bi_notifications",
                "bi_service_volumes",
            ):
                await reader.fetch(f"SELECT * FROM reporting.{view}")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await reader.fetch("SELECT * FROM reporting.cases")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await reader.execute("DELETE FROM reporting.bi_cases")
        finally:
            await reader.close()
    finally:
        await conn.execute(f"DROP ROLE IF EXISTS {login}")
        await conn.close()


async def test_a_duration_bucket_starts_where_the_reports_look_for_its_values(
    database_url: str,
) -> None:
    """The reports read a percentile's values from the start of its bucket on
    (rollups.bucket_start): every duration lies at or after its bucket's start and before
    the next bucket's."""
    seconds = [0, 0.5, 1, 31, 31.999, 32, 33, 47, 63.9, 64, 1000, 86_399.5, 10**7 + 0.25]
    durations = [timedelta(seconds=s) for s in seconds] + [timedelta(seconds=-3)]
    await apply_migrations(database_url, SCHEMA, MIGRATIONS)
    conn = await asyncpg.connect(database_url, server_settings={"search_path": SCHEMA})
    try:
        buckets = await conn.fetch(
            "SELECT d, duration_bucket(d) AS b FROM unnest($1::interval[]) AS d", durations
        )
    finally:
        await conn.close()
    for row in buckets:
        assert rollups.bucket_start(row["b"]) <= row["d"] < rollups.bucket_start(row["b"] + 1)
    # Bucket-mates: 0 s and 0.5 s, 31 s and 31.999 s, 32 s and 33 s (two seconds wide).
    assert len({row["b"] for row in buckets}) == len(durations) - 3


async def test_a_case_keeps_the_confidentiality_of_its_complaint_whatever_the_order(
    database_url: str,
) -> None:
    events = _golden_events()
    personal = events["ComplaintReceived"].model_copy(
        update={"confidentiality": Confidentiality.PERSONAL}
    )
    await apply_migrations(database_url, SCHEMA, MIGRATIONS)
    conn = await asyncpg.connect(database_url, server_settings={"search_path": SCHEMA})
    try:
        level = "SELECT confidentiality FROM cases WHERE complaint_no = '261122001'"
        async with conn.transaction():
            await apply_events(conn, [events["ComplaintAssigned"]])
        assert await conn.fetchval(level) is None  # not known before intake's event
        async with conn.transaction():
            await apply_events(conn, [personal])
        assert await conn.fetchval(level) == "personal"
        async with conn.transaction():
            await apply_events(conn, [events["ComplaintAssignmentRecorded"]])
        assert await conn.fetchval(level) == "personal"
    finally:
        await conn.close()


async def test_a_record_read_from_intake_is_on_the_trail_once(database_url: str) -> None:
    read = _golden_events()["CustomerRecordRead"]
    assert isinstance(read, CustomerRecordRead)
    await apply_migrations(database_url, SCHEMA, MIGRATIONS)
    conn = await asyncpg.connect(database_url, server_settings={"search_path": SCHEMA})
    try:
        # Already there, as a rebuild carries the trail over: the event adds nothing.
        await audit.record(conn, [audit.ReadEntry.of(read)])
        for _ in range(2):
            async with conn.transaction():
                await apply_events(conn, [read])
        page = await audit.record_reads(conn, audit.ReadsQuery(limit=10))
    finally:
        await conn.close()
    (entry,) = page.reads
    assert entry.model_dump() == {
        "event_id": read.event_id,
        "read_at": read.occurred_at,
        "service": "intake",
        "reader": "staff:fo-supervisor",
        "reader_roles": ["supervisor"],
        "reason": "calling the guest back about the room",
        "outcome": "read",
        "contacts_shown": True,
        "complaint_no": "261122001",
        "branch_id": "hotel-demo",
    }
    assert page.next_after is None
