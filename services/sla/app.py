"""SLA: keeps the deadlines the policy packs promise, and raises the alarm.

Clocks start, pause, resume and stop on intake's events; durable timers in Postgres
fire warnings, breaches, escalations and return-visit reminders. Every instance runs
timer loops; ``FOR UPDATE SKIP LOCKED`` hands each due timer to exactly one of them,
in the transaction that publishes its event through the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from services.sla import store
from services.sla.domain import (
    ComplaintFacts,
    approving_rung,
    next_visit,
    plan_clocks,
    shifted,
)
from shared.consumer import subscribe_events
from shared.consumer_app import ConsumerApp, PoolHolder, consumer_app, new_broker
from shared.contracts import (
    CaseEvent,
    ClockBreached,
    ClockPaused,
    ClockRecomputed,
    ClockResumed,
    ClockStarted,
    ClockStopped,
    ClockWarning,
    ComplaintReceived,
    EscalationRaised,
    Event,
    ReturnVisitDue,
)
from shared.contracts.intake import (
    CompensationRecorded,
    ComplaintPutOnHold,
    ComplaintReopened,
    ComplaintResumed,
    ProjectDelivered,
    RepairedProductDelivered,
)
from shared.db import DbConnection
from shared.inbox import first_delivery
from shared.logging import configure_logging
from shared.metrics import ServiceMetrics
from shared.outbox import Publishable, enqueue, enqueue_many
from shared.policy import ENDING_EVENTS, LivePacks, PackRegistry, PolicyPack
from shared.settings import ServiceSettings
from shared.topics import Topics
from shared.tracing import configure_tracing

SCHEMA = "sla"
MIGRATIONS = Path(__file__).parent / "migrations"
PUBLISHES = ("sla",)
SUBSCRIBES_TO = ("intake",)
OPS_PORT = 8003
# A batch of 1000 commits within 0.1–0.2 s of being claimed, so fired_at (stamped at the
# claim) stays close to when its events are in the outbox; two loops per instance let one
# batch's database work overlap the next batch's event building (bench/sla_timers.py).
TIMER_BATCH = 1000
TIMER_WORKERS = 2
TIMER_POLL_SECONDS = 0.2

log = structlog.get_logger("sla")


def build_app(settings: ServiceSettings) -> ConsumerApp:
    configure_logging("sla", settings.log_level)
    configure_tracing("sla")
    packs = LivePacks(settings.policy_packs_dir)
    topics = Topics.in_namespace(settings.complaints_topic_namespace)
    holder = PoolHolder()
    metrics = ServiceMetrics("sla")
    breaches = metrics.counter(
        "clocks_breached_total", "SLA clocks that ran out, by clock (the packs' names).", "clock"
    )
    broker = new_broker(settings, "sla", metrics)

    def envelope(complaint_no: str, branch_id: str, correlation_id: str) -> dict[str, Any]:
        return {
            "complaint_no": complaint_no,
            "branch_id": branch_id,
            "correlation_id": correlation_id,
            "producer": "sla",
        }

    async def start_clocks(
        conn: DbConnection,
        pack: PolicyPack,
        facts: ComplaintFacts,
        cause: Event,
        starting_event: str,
        round_no: int,
    ) -> list[str]:
        started = []
        # A delivery recorded afterwards counts from when the product was delivered.
        delivered = RepairedProductDelivered | ProjectDelivered
        at = cause.delivered_at if isinstance(cause, delivered) else None
        if isinstance(cause, ComplaintReceived):
            at = cause.received_at  # a complaint a branch took earlier counts from then
        for clock in plan_clocks(
            pack,
            facts,
            starting_event=starting_event,
            started_at=at or cause.occurred_at,
            round_no=round_no,
        ):
            if not await store.start_clock(
                conn,
                facts.complaint_no,
                cause.branch_id,
                clock,
                pack=pack.pack,
                pack_version=pack.version,
                round_no=round_no,
            ):
                continue
            await enqueue(
                conn,
                topics.sla.name,
                ClockStarted.caused_by(
                    cause,
                    producer="sla",
                    clock_id=clock.clock_id,
                    name=clock.name,
                    started_at=clock.started_at,
                    due_at=clock.due_at,
                    target_seconds=clock.target_seconds,
                    calendar="working" if clock.working else "elapsed",
                    rule=clock.rule,
                    pack=pack.pack,
                    pack_version=pack.version,
                    round=round_no,
                    return_visit=clock.return_visit,
                ),
            )
            started.append(clock.name)
        return started

    async def schedule_next_visit(
        conn: DbConnection,
        pack: PolicyPack,
        *,
        complaint_no: str,
        branch_id: str,
        correlation_id: str,
        rule: str,
        occurrence: int,
        series_start: datetime | None,
        previous_due: datetime,
        round_no: int,
    ) -> Publishable | None:
        """The next visit of a recurring schedule, once the current one is due or done."""
        if not occurrence or series_start is None:
            return None
        visit = next_visit(
            pack,
            rule,
            complaint_no=complaint_no,
            series_start=series_start,
            occurrence=occurrence,
            previous_due=previous_due,
            round_no=round_no,
        )
        if visit is None or not await store.start_clock(
            conn,
            complaint_no,
            branch_id,
            visit,
            pack=pack.pack,
            pack_version=pack.version,
            round_no=round_no,
        ):
            return None
        return ClockStarted(
            event_type=ClockStarted.EVENT_TYPE,
            **envelope(complaint_no, branch_id, correlation_id),
            clock_id=visit.clock_id,
            name=visit.name,
            started_at=visit.started_at,
            due_at=visit.due_at,
            target_seconds=visit.target_seconds,
            rule=visit.rule,
            pack=pack.pack,
            pack_version=pack.version,
            round=round_no,
            return_visit=True,
        )

    async def on_received(conn: DbConnection, event: ComplaintReceived) -> None:
        pack = packs.current.require(event.pack)
        await store.save_case(conn, event)
        facts = ComplaintFacts(
            complaint_no=event.complaint_no,
            category=event.category,
            customer_type=event.customer.type,
            severity=event.severity,
            region=event.region,
        )
        started = await start_clocks(conn, pack, facts, event, "ComplaintReceived", 1)
        ladder = pack.escalation
        if event.severity.value == "major" and ladder is not None and ladder.major_to_top:
            top = ladder.ladder[-1]
            await enqueue(
                conn,
                topics.sla.name,
                EscalationRaised.caused_by(
                    event, producer="sla", level=top.level, to=top.to, reason="major"
                ),
            )
        log.info("clocks started", clocks=started)

    async def on_case_event(conn: DbConnection, event: CaseEvent) -> None:
        case = await store.case(conn, event.complaint_no)
        if case is None:
            raise LookupError(f"{event.complaint_no}: ComplaintReceived not seen")
        pack = packs.current.require(case.pack)
        at = event.occurred_at
        open_now = await store.open_clocks(conn, event.complaint_no)
        # Of a recurring schedule, a recorded visit meets the earliest one still open.
        earliest_visit = {
            clock.name: min(c.due_at for c in open_now if c.name == clock.name)
            for clock in open_now
            if clock.occurrence
        }
        for clock in open_now:
            time = pack.working_time(clock.calendar)
            about: dict[str, Any] = {"clock_id": clock.clock_id, "name": clock.name}
            # Closing ends every clock but a return visit, which is due after the reply.
            ends = event.event_type in ENDING_EVENTS and not clock.return_visit
            later_visit = clock.occurrence and clock.due_at > earliest_visit[clock.name]
            if (event.event_type in clock.stops_on and not later_visit) or ends:
                outcome = await store.stop(conn, clock, at)
                following = await schedule_next_visit(
                    conn,
                    pack,
                    complaint_no=event.complaint_no,
                    branch_id=case.branch_id,
                    correlation_id=case.correlation_id,
                    rule=clock.rule,
                    occurrence=clock.occurrence,
                    series_start=clock.series_start,
                    previous_due=clock.due_at,
                    round_no=clock.round,
                )
                if following is not None:
                    await enqueue(conn, topics.sla.name, following)
                await enqueue(
                    conn,
                    topics.sla.name,
                    ClockStopped.caused_by(
                        event,
                        producer="sla",
                        **about,
                        stopped_at=at,
                        outcome=outcome,
                        by_event=event.event_type,
                    ),
                )
            elif isinstance(event, ComplaintPutOnHold) and clock.state == "running":
                await store.pause(conn, clock, at)
                await enqueue(
                    conn,
                    topics.sla.name,
                    ClockPaused.caused_by(event, producer="sla", **about, paused_at=at),
                )
            elif isinstance(event, ComplaintResumed) and clock.paused_at is not None:
                paused_at, working = clock.paused_at, clock.working
                due = shifted(clock.due_at, paused_at, at, working=working, time=time)
                paused_seconds = clock.paused_seconds + int((at - paused_at).total_seconds())
                pending = await store.pending_timers(conn, clock.clock_id)
                await store.resume(
                    conn,
                    clock,
                    due_at=due,
                    paused_seconds=paused_seconds,
                    timers=[
                        (timer, shifted(when, paused_at, at, working=working, time=time))
                        for timer, when in pending
                    ],
                )
                await enqueue(
                    conn,
                    topics.sla.name,
                    ClockResumed.caused_by(
                        event,
                        producer="sla",
                        **about,
                        resumed_at=at,
                        due_at=due,
                        paused_seconds=paused_seconds,
                    ),
                )
        if isinstance(event, CompensationRecorded):
            rung = approving_rung(pack, event.compensation_amount)
            if rung is not None:
                await enqueue(
                    conn,
                    topics.sla.name,
                    EscalationRaised.caused_by(
                        event,
                        producer="sla",
                        level=rung.level,
                        to=rung.to,
                        reason="compensation",
                    ),
                )
        if isinstance(event, ComplaintReopened):
            # Handling starts again: the complaint's clocks restart in the new round.
            await start_clocks(conn, pack, case.facts, event, "ComplaintReceived", event.round)
        await start_clocks(conn, pack, case.facts, event, event.event_type, event.round)

    async def on_intake_event(event: Event) -> None:
        if not isinstance(event, CaseEvent):
            return
        async with holder.transaction() as conn:
            if not await first_delivery(conn, event):
                return
            if isinstance(event, ComplaintReceived):
                await on_received(conn, event)
            else:
                await on_case_event(conn, event)

    async def fire_due_timers() -> int:
        async with holder.pool.acquire() as conn, conn.transaction():
            due = await store.claim_due_timers(conn, TIMER_BATCH)
            if not due:
                return 0
            events: list[Publishable] = []
            breached: list[uuid.UUID] = []
            breached_clocks: list[str] = []
            escalations: list[tuple[Any, ...]] = []
            for timer in due:
                about = {
                    **envelope(timer["complaint_no"], timer["branch_id"], timer["correlation_id"]),
                    # The timer's id names its event: the outbox takes one event per timer.
                    "event_id": timer["timer_id"],
                    "clock_id": timer["clock_id"],
                    "name": timer["name"],
                }
                kind = timer["kind"]
                if kind == "warning":
                    events.append(
                        ClockWarning(
                            event_type=ClockWarning.EVENT_TYPE,
                            fraction=timer["fraction"],
                            due_at=timer["clock_due_at"],
                            **about,
                        )
                    )
                elif kind == "return_visit":
                    following = await schedule_next_visit(
                        conn,
                        packs.current.require(timer["pack"]),
                        complaint_no=timer["complaint_no"],
                        branch_id=timer["branch_id"],
                        correlation_id=timer["correlation_id"],
                        rule=timer["rule"],
                        occurrence=timer["occurrence"],
                        series_start=timer["series_start"],
                        previous_due=timer["clock_due_at"],
                        round_no=timer["round"],
                    )
                    if following is not None:
                        events.append(following)
                    events.append(
                        ReturnVisitDue(
                            event_type=ReturnVisitDue.EVENT_TYPE,
                            due_at=timer["clock_due_at"],
                            **about,
                        )
                    )
                elif kind == "breach":
                    breached.append(timer["clock_id"])
                    breached_clocks.append(timer["name"])
                    events.append(
                        ClockBreached(
                            event_type=ClockBreached.EVENT_TYPE,
                            due_at=timer["clock_due_at"],
                            **about,
                        )
                    )
                    escalations += _ladder_timers(packs.current.require(timer["pack"]), timer)
                else:
                    rung = packs.current.require(timer["pack"]).escalation
                    assert rung is not None
                    level = rung.ladder[timer["level"] - 1]
                    events.append(
                        EscalationRaised(
                            event_type=EscalationRaised.EVENT_TYPE,
                            level=level.level,
                            to=level.to,
                            reason="breach",
                            event_id=timer["timer_id"],
                            clock_id=timer["clock_id"],
                            **envelope(
                                timer["complaint_no"], timer["branch_id"], timer["correlation_id"]
                            ),
                        )
                    )
            if breached:
                await store.mark_breached(conn, breached)
                await store.add_timers(conn, escalations)
            await enqueue_many(conn, topics.sla.name, events)
        for clock in breached_clocks:
            breaches.labels(clock).inc()
        log.debug("timers fired", count=len(due))
        return len(due)

    async def run_timers() -> None:
        while True:
            try:
                if await fire_due_timers() == TIMER_BATCH:
                    continue  # more may be due already
                async with holder.pool.acquire() as conn:
                    wait = await store.seconds_until_next_timer(conn, at_most=TIMER_POLL_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be away; the timers wait in it
                log.warning("timer loop interrupted", error=repr(exc))
                await asyncio.sleep(1.0)
                continue
            await asyncio.sleep(wait)

    @asynccontextmanager
    async def timers_running() -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(run_timers(), name=f"sla-timers-{n}") for n in range(TIMER_WORKERS)
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def follow_pack_changes(registry: PackRegistry) -> None:
        """Packs that say ``open_clocks_on_change: recompute`` move running clocks to the
        new deadlines; the others keep them, and only new clocks follow the change."""
        for pack in registry.packs.values():
            if pack.open_clocks_on_change != "recompute":
                continue
            async with holder.pool.acquire() as conn, conn.transaction():
                for clock in await store.running_clocks_before(conn, pack.pack, pack.version):
                    case = await store.case(conn, clock.complaint_no)
                    if case is None:
                        continue
                    replanned = [
                        planned
                        for rule in pack.clocks
                        if rule.clock == clock.name
                        for planned in plan_clocks(
                            pack,
                            case.facts,
                            starting_event=rule.starts_on,
                            started_at=clock.started_at,
                            round_no=clock.round,
                        )
                        if planned.name == clock.name
                    ]
                    if not replanned:
                        continue  # the clock no longer exists in the pack: it keeps its time
                    planned = replanned[0]
                    await store.recompute(conn, clock, planned, pack.version)
                    await enqueue(
                        conn,
                        topics.sla.name,
                        ClockRecomputed(
                            event_type=ClockRecomputed.EVENT_TYPE,
                            **envelope(clock.complaint_no, case.branch_id, case.correlation_id),
                            clock_id=clock.clock_id,
                            name=clock.name,
                            due_at=planned.due_at,
                            previous_due_at=clock.due_at,
                            rule=planned.rule,
                            pack_version=pack.version,
                        ),
                    )

    packs.on_reload(follow_pack_changes)
    subscribe_events(
        broker,
        [topics.intake],
        group_id="sla",
        handle=on_intake_event,
        pool=lambda: holder.pool,
    )
    return consumer_app(
        broker,
        settings,
        SCHEMA,
        MIGRATIONS,
        holder,
        metrics,
        ops_port=OPS_PORT,
        with_relay=True,
        packs=packs,
        background=timers_running,
    )


def _ladder_timers(pack: PolicyPack, breach: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Escalation timers for a breached clock: each rung ``after_hours`` after the one below
    (the first after the breach); a rung without ``after_hours`` follows at once."""
    if pack.escalation is None:
        return []
    timers = []
    at = breach["due_at"]
    for rung in pack.escalation.ladder:
        at = at + timedelta(hours=rung.after_hours or 0)
        timers.append(
            (
                store.timer_id(breach["clock_id"], "escalation", rung.level),
                breach["clock_id"],
                breach["complaint_no"],
                "escalation",
                None,
                rung.level,
                at,
            )
        )
    return timers
