"""The sla service against the real broker and database: clocks and durable timers."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from services.sla.app import MIGRATIONS
from services.sla.app import build_app as build_sla
from services.sla.store import seconds_until_next_timer
from shared.contracts import ClockPaused, ClockResumed, ClockStarted, ClockStopped, decode_event
from shared.db import apply_migrations
from shared.deadlines import add_months
from shared.settings import REPO_ROOT
from shared.topics import Topics
from tests.integration.test_routing import case_event, produce, received
from tests.support.db import scalar
from tests.support.infra import Infra
from tests.support.intake import wait_for
from tests.support.kafka import read_records
from tests.support.processes import Platform, platform_env
from tests.support.services import running, settings_for


async def test_a_clock_pauses_resumes_and_stops_with_the_case(
    infra: Infra, database_url: str, topics: Topics
) -> None:
    bootstrap = infra.kafka_bootstrap_servers
    now = datetime.now(UTC)
    complaint = received(
        "261122301",
        "facilities",
        occurred_at=now.isoformat(),
        received_at=now.isoformat(),
    )
    hold = {
        **case_event("ComplaintPutOnHold", "261122301", 2),
        "occurred_at": (now + timedelta(hours=1)).isoformat(),
    }
    resume = {
        **case_event("ComplaintResumed", "261122301", 3),
        "occurred_at": (now + timedelta(hours=4)).isoformat(),
    }
    closed = {
        **case_event("ComplaintClosed", "261122301", 4),
        "occurred_at": (now + timedelta(hours=5)).isoformat(),
    }
    sla = build_sla(settings_for(infra, database_url, topics))
    async with running(sla):
        await produce(bootstrap, topics.intake.name, [complaint, hold, resume, closed, closed])

        async def stopped() -> bool:
            sql = "SELECT count(*) FROM sla.clocks WHERE stopped_at IS NOT NULL"
            return await scalar(database_url, sql) >= 1

        await wait_for(stopped)
    records = await read_records(bootstrap, topics.sla.name, expected=4)
    events = [decode_event(r.value) for r in records]
    started, paused, resumed, stop = events
    assert isinstance(started, ClockStarted)
    assert started.name == "resolution"
    assert started.due_at == now + timedelta(hours=24)  # the in-house guest's 24 hours
    assert isinstance(paused, ClockPaused)
    assert isinstance(resumed, ClockResumed)
    assert resumed.due_at == now + timedelta(hours=27)  # three hours on hold
    assert resumed.paused_seconds == 3 * 3600
    assert isinstance(stop, ClockStopped)
    assert stop.outcome == "met"
    assert stop.by_event == "ComplaintClosed"
    assert len(events) == 4  # the duplicate closing changed nothing


async def _due_timers(
    database_url: str, count: int, due_at: datetime, *, kind: str = "warning"
) -> None:
    """``count`` running hotel clocks with one timer each (a 50 % warning unless ``kind``
    says otherwise), all due at ``due_at``."""
    await apply_migrations(database_url, "sla", MIGRATIONS)
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "sla"})
    try:
        await conn.executemany(
            """INSERT INTO cases (complaint_no, branch_id, pack, category, customer_type,
                   severity, region, correlation_id)
               VALUES ($1, 'hotel-demo', 'hotel', 'facilities', 'member', 'normal',
                       'domestic', $1)""",
            [(f"2611{i:07d}",) for i in range(count)],
        )
        clocks = [(uuid.uuid4(), f"2611{i:07d}") for i in range(count)]
        await conn.executemany(
            """INSERT INTO clocks (clock_id, complaint_no, branch_id, name, rule, state,
                   started_at, due_at, target_seconds, pack, pack_version)
               VALUES ($1, $2, 'hotel-demo', 'resolution', 'test', 'running', $3, $4, 60,
                       'hotel', 'test')""",
            [
                (clock, number, due_at - timedelta(hours=1), due_at + timedelta(hours=1))
                for clock, number in clocks
            ],
        )
        await conn.executemany(
            """INSERT INTO timers (timer_id, clock_id, complaint_no, kind, fraction, due_at)
               VALUES ($1, $2, $3, $4, $5, $6)""",
            [
                (uuid.uuid4(), clock, number, kind, 0.5 if kind == "warning" else None, due_at)
                for clock, number in clocks
            ],
        )
    finally:
        await conn.close()


async def test_ten_thousand_timers_due_in_one_second_fire_once_across_two_instances(
    infra: Infra, database_url: str, topics: Topics
) -> None:
    count = 10_000
    due_at = datetime.now(UTC) + timedelta(seconds=8)
    await _due_timers(database_url, count, due_at)
    instances = [build_sla(settings_for(infra, database_url, topics)) for _ in range(2)]
    async with running(*instances):

        async def all_fired() -> bool:
            sql = "SELECT count(*) FROM sla.timers WHERE fired_at IS NOT NULL"
            return await scalar(database_url, sql) == count

        await wait_for(all_fired, timeout=120, interval=0.5)
    conn = await asyncpg.connect(database_url)
    try:
        lateness = await conn.fetchrow(
            """SELECT min(fired_at - due_at) AS first,
                      percentile_cont(0.5) WITHIN GROUP (ORDER BY fired_at - due_at) AS p50,
                      percentile_cont(0.99) WITHIN GROUP (ORDER BY fired_at - due_at) AS p99,
                      max(fired_at - due_at) AS last
               FROM sla.timers"""
        )
        events, clocks_warned = await conn.fetchrow(
            """SELECT count(*), count(DISTINCT convert_from(payload, 'UTF8')::jsonb->>'clock_id')
               FROM sla.outbox WHERE headers->>'event_type' = 'ClockWarning'"""
        )
    finally:
        await conn.close()
    # Timing is the benchmark's to judge (bench/sla_timers.py); here it is only shown.
    print(
        f"\n{count} timers due at once, lateness: first {lateness['first']}, "
        f"p50 {lateness['p50']}, p99 {lateness['p99']}, last {lateness['last']}"
    )
    assert lateness["first"] >= timedelta(0)  # never early
    assert events == count  # one warning per timer, none twice
    assert clocks_warned == count


async def test_a_breach_marks_the_clock_and_climbs_the_ladder_once(
    infra: Infra, database_url: str, topics: Topics
) -> None:
    due_at = datetime.now(UTC) + timedelta(seconds=2)
    await _due_timers(database_url, 1, due_at, kind="breach")
    sla = build_sla(settings_for(infra, database_url, topics))
    async with running(sla):

        async def top_rung_reached() -> bool:
            sql = (
                "SELECT count(*) FROM sla.timers WHERE kind = 'escalation' AND fired_at IS NOT NULL"
            )
            return await scalar(database_url, sql) == 2

        await wait_for(top_rung_reached, timeout=30)
    records = await read_records(infra.kafka_bootstrap_servers, topics.sla.name, expected=3)
    events = [json.loads(r.value) for r in records]
    assert [(e["event_type"], e.get("level")) for e in events] == [
        ("ClockBreached", None),
        ("EscalationRaised", 1),  # the hotel's rungs have no after_hours: they follow at once
        ("EscalationRaised", 2),
    ]
    assert events[1]["to"] == ["fo-supervisor"]
    state = await scalar(database_url, "SELECT count(*) FROM sla.clocks WHERE state = 'breached'")
    assert state == 1


async def test_the_timer_loop_wakes_for_the_next_timer_not_for_those_a_pause_holds(
    database_url: str,
) -> None:
    await _due_timers(database_url, 2, datetime.now(UTC) - timedelta(minutes=5))
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "sla"})
    try:
        hour = 3600.0
        # Both clocks paused: their due timers wait for a resume, not for the loop.
        await conn.execute("UPDATE clocks SET state = 'paused', paused_at = now()")
        assert await seconds_until_next_timer(conn, at_most=2 * hour) == 2 * hour
        await conn.execute(
            "UPDATE timers SET due_at = now() + interval '1 hour' "
            "WHERE timer_id = (SELECT min(timer_id::text)::uuid FROM timers)"
        )
        wait = await seconds_until_next_timer(conn, at_most=2 * hour)
        assert hour - 60 < wait <= hour
        assert await seconds_until_next_timer(conn, at_most=0.2) == 0.2
    finally:
        await conn.close()


async def test_timers_due_while_sla_is_killed_fire_after_restart_exactly_once(
    infra: Infra, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    count = 6_000  # several batches per sla loop, so the kill lands between them
    due_at = datetime.now(UTC) + timedelta(seconds=6)
    await _due_timers(database_url, count, due_at)
    platform = Platform(
        platform_env(
            KAFKA_BOOTSTRAP_SERVERS=infra.kafka_bootstrap_servers,
            DATABASE_URL=database_url,
            COMPLAINTS_TOPIC_NAMESPACE=topics.namespace,
        ),
        tmp_path,
    )
    platform.start("sla", "-m", "services.sla")
    try:

        async def some_fired() -> bool:
            sql = "SELECT count(*) FROM sla.timers WHERE fired_at IS NOT NULL"
            return await scalar(database_url, sql) > 0

        await wait_for(some_fired, timeout=60, interval=0.02)
        platform.processes["sla"].send_signal(signal.SIGKILL)
        platform.processes["sla"].wait()
        killed_with = await scalar(
            database_url, "SELECT count(*) FROM sla.timers WHERE fired_at IS NOT NULL"
        )
        await asyncio.sleep(2)  # the rest fall due while no sla runs
        platform.start("sla-restarted", "-m", "services.sla")

        async def all_fired() -> bool:
            sql = "SELECT count(*) FROM sla.timers WHERE fired_at IS NOT NULL"
            return await scalar(database_url, sql) == count

        await wait_for(all_fired, timeout=120, interval=0.5)
    finally:
        platform.stop()
    events = await scalar(
        database_url,
        "SELECT count(*) FROM sla.outbox WHERE headers->>'event_type' = 'ClockWarning'",
    )
    clocks_warned = await scalar(
        database_url,
        "SELECT count(DISTINCT convert_from(payload, 'UTF8')::jsonb->>'clock_id') "
        "FROM sla.outbox WHERE headers->>'event_type' = 'ClockWarning'",
    )
    assert 0 < killed_with < count  # the kill came mid-way
    assert events == count
    assert clocks_warned == count


async def test_a_pack_change_recomputes_open_clocks_only_when_the_pack_says_so(
    infra: Infra, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    bootstrap = infra.kafka_bootstrap_servers
    original = (REPO_ROOT / "policy-packs" / "hotel.yaml").read_text(encoding="utf-8")
    assert "target_hours: 24" in original
    pack_file = tmp_path / "hotel.yaml"
    pack_file.write_text(original + "\nopen_clocks_on_change: recompute\n", encoding="utf-8")
    settings = settings_for(infra, database_url, topics, policy_packs_dir=tmp_path)
    now = datetime.now(UTC)
    sla = build_sla(settings)
    async with running(sla):
        await produce(
            bootstrap,
            topics.intake.name,
            [
                received(
                    "261122401",
                    "facilities",
                    occurred_at=now.isoformat(),
                    received_at=now.isoformat(),
                )
            ],
        )

        async def started() -> bool:
            return await scalar(database_url, "SELECT count(*) FROM sla.clocks") == 1

        await wait_for(started)
        pack_file.write_text(
            original.replace("target_hours: 24", "target_hours: 12")
            + "\nopen_clocks_on_change: recompute\n",
            encoding="utf-8",
        )

        async def recomputed() -> bool:
            sql = (
                "SELECT count(*) FROM sla.clocks WHERE due_at = "
                f"'{(now + timedelta(hours=12)).isoformat()}'::timestamptz"
            )
            return await scalar(database_url, sql) == 1

        await wait_for(recomputed, timeout=30)
        pending = await scalar(
            database_url,
            "SELECT count(*) FROM sla.timers WHERE NOT cancelled AND fired_at IS NULL "
            "AND kind = 'breach'",
        )
        assert pending == 1
    records = await read_records(bootstrap, topics.sla.name, expected=2)
    kinds = [json.loads(r.value)["event_type"] for r in records]
    assert kinds == ["ClockStarted", "ClockRecomputed"]


async def test_a_delivered_project_gets_its_visits_one_after_another(
    infra: Infra, database_url: str, topics: Topics
) -> None:
    bootstrap = infra.kafka_bootstrap_servers
    now = datetime.now(UTC)
    # Delivered a month ago, less a few seconds: the first monthly visit falls due now.
    delivered = add_months(now, -1, "Asia/Shanghai") + timedelta(seconds=3)
    complaint = received(
        "261122501",
        "service-request",
        branch="it-services-demo",
        pack="it-services",
        occurred_at=now.isoformat(),
        received_at=now.isoformat(),
    )
    project = {
        **case_event("ProjectDelivered", "261122501", 2),
        "branch_id": "it-services-demo",
        "delivered_at": delivered.isoformat(),
    }
    visited = {**case_event("ReturnVisitRecorded", "261122501", 3), "branch_id": "it-services-demo"}
    sla = build_sla(settings_for(infra, database_url, topics))
    async with running(sla):
        await produce(bootstrap, topics.intake.name, [complaint, project])

        async def second_visit_planned() -> bool:
            sql = "SELECT count(*) FROM sla.clocks WHERE occurrence = 2"
            return await scalar(database_url, sql) == 1

        await wait_for(second_visit_planned, timeout=60)
        await produce(bootstrap, topics.intake.name, [visited])

        async def first_visit_met() -> bool:
            sql = "SELECT count(*) FROM sla.clocks WHERE occurrence = 1 AND state = 'met'"
            return await scalar(database_url, sql) == 1

        await wait_for(first_visit_met)
        still_due = await scalar(
            database_url,
            "SELECT count(*) FROM sla.clocks WHERE occurrence = 2 AND state = 'running'",
        )
        assert still_due == 1
    records = await read_records(bootstrap, topics.sla.name, expected=4)
    kinds = [json.loads(r.value)["event_type"] for r in records]
    assert kinds == ["ClockStarted", "ClockStarted", "ReturnVisitDue", "ClockStopped"]
    second = json.loads(records[1].value)
    assert datetime.fromisoformat(second["due_at"]) == add_months(delivered, 2, "Asia/Shanghai")
