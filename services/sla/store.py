"""The sla service's tables: complaints' facts, clocks and their durable timers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.sla.domain import ComplaintFacts, PlannedClock
from shared.contracts import ComplaintReceived
from shared.contracts.submissions import CustomerType, Region, Severity
from shared.db import DbConnection


@dataclass(frozen=True)
class Case:
    facts: ComplaintFacts
    branch_id: str
    pack: str
    correlation_id: str


@dataclass(frozen=True)
class OpenClock:
    clock_id: uuid.UUID
    name: str
    state: str
    due_at: datetime
    working: bool
    calendar: str | None
    stops_on: tuple[str, ...]
    paused_at: datetime | None
    paused_seconds: int
    return_visit: bool
    rule: str
    round: int
    occurrence: int
    series_start: datetime | None


# Timers not yet fired: (timer id, due time).
Pending = list[tuple[uuid.UUID, datetime]]


def timer_id(clock: uuid.UUID, kind: str, detail: float | int | None = None) -> uuid.UUID:
    return uuid.uuid5(clock, f"{kind}/{detail}")


async def save_case(conn: DbConnection, event: ComplaintReceived) -> None:
    await conn.execute(
        """INSERT INTO cases (complaint_no, branch_id, pack, category, customer_type, severity,
               region, correlation_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (complaint_no) DO NOTHING""",
        event.complaint_no,
        event.branch_id,
        event.pack,
        event.category,
        event.customer.type.value,
        event.severity.value,
        event.region.value,
        event.correlation_id,
    )


async def case(conn: DbConnection, complaint_no: str) -> Case | None:
    row = await conn.fetchrow("SELECT * FROM cases WHERE complaint_no = $1", complaint_no)
    if row is None:
        return None
    return Case(
        facts=ComplaintFacts(
            complaint_no=complaint_no,
            category=row["category"],
            customer_type=CustomerType(row["customer_type"]),
            severity=Severity(row["severity"]),
            region=Region(row["region"]),
        ),
        branch_id=row["branch_id"],
        pack=row["pack"],
        correlation_id=row["correlation_id"],
    )


async def start_clock(
    conn: DbConnection,
    complaint_no: str,
    branch_id: str,
    clock: PlannedClock,
    *,
    pack: str,
    pack_version: str,
    round_no: int,
) -> bool:
    """Record the clock and its timers; False if this clock exists already (a replay)."""
    status: str = await conn.execute(
        """INSERT INTO clocks (clock_id, complaint_no, branch_id, name, rule, state, started_at,
               due_at, target_seconds, pack, pack_version, round, working, calendar, stops_on,
               return_visit, occurrence, series_start)
           VALUES ($1, $2, $3, $4, $5, 'running', $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                   $16, $17)
           ON CONFLICT DO NOTHING""",
        clock.clock_id,
        complaint_no,
        branch_id,
        clock.name,
        clock.rule,
        clock.started_at,
        clock.due_at,
        clock.target_seconds,
        pack,
        pack_version,
        round_no,
        clock.working,
        clock.calendar,
        list(clock.stops_on),
        clock.return_visit,
        clock.occurrence,
        clock.series_start,
    )
    if status != "INSERT 0 1":
        return False
    timers: list[tuple[Any, ...]] = [
        (
            timer_id(clock.clock_id, "warning", f),
            clock.clock_id,
            complaint_no,
            "warning",
            f,
            None,
            at,
        )
        for f, at in clock.warnings
    ]
    final = "return_visit" if clock.return_visit else "breach"
    timers.append(
        (
            timer_id(clock.clock_id, final),
            clock.clock_id,
            complaint_no,
            final,
            None,
            None,
            clock.due_at,
        )
    )
    await add_timers(conn, timers)
    return True


async def add_timers(conn: DbConnection, timers: list[tuple[Any, ...]]) -> None:
    """Rows of (timer_id, clock_id, complaint_no, kind, fraction, level, due_at)."""
    await conn.executemany(
        """INSERT INTO timers (timer_id, clock_id, complaint_no, kind, fraction, level, due_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING""",
        timers,
    )


async def open_clocks(conn: DbConnection, complaint_no: str) -> list[OpenClock]:
    """Clocks still counting or paused (and breached ones not yet stopped), locked."""
    rows = await conn.fetch(
        """SELECT clock_id, name, state, due_at, working, calendar, stops_on, paused_at,
                  paused_seconds, return_visit, rule, round, occurrence, series_start
           FROM clocks WHERE complaint_no = $1 AND stopped_at IS NULL
             AND state IN ('running', 'paused', 'breached')
           ORDER BY clock_id FOR UPDATE""",
        complaint_no,
    )
    return [
        OpenClock(
            clock_id=row["clock_id"],
            name=row["name"],
            state=row["state"],
            due_at=row["due_at"],
            working=row["working"],
            calendar=row["calendar"],
            stops_on=tuple(row["stops_on"]),
            paused_at=row["paused_at"],
            paused_seconds=row["paused_seconds"],
            return_visit=row["return_visit"],
            rule=row["rule"],
            round=row["round"],
            occurrence=row["occurrence"],
            series_start=row["series_start"],
        )
        for row in rows
    ]


async def stop(conn: DbConnection, clock: OpenClock, at: datetime) -> str:
    """Stop the clock; its outcome: met, or breached if it already was."""
    outcome = "breached" if clock.state == "breached" else "met"
    await conn.execute(
        """UPDATE clocks SET state = $2, stopped_at = $3, paused_at = NULL
           WHERE clock_id = $1""",
        clock.clock_id,
        outcome,
        at,
    )
    await conn.execute(
        "UPDATE timers SET cancelled = true WHERE clock_id = $1 AND fired_at IS NULL",
        clock.clock_id,
    )
    return outcome


async def pause(conn: DbConnection, clock: OpenClock, at: datetime) -> None:
    await conn.execute(
        "UPDATE clocks SET state = 'paused', paused_at = $2 WHERE clock_id = $1",
        clock.clock_id,
        at,
    )


async def pending_timers(conn: DbConnection, clock_id: uuid.UUID) -> Pending:
    rows = await conn.fetch(
        """SELECT timer_id, due_at FROM timers
           WHERE clock_id = $1 AND fired_at IS NULL AND NOT cancelled""",
        clock_id,
    )
    return [(row["timer_id"], row["due_at"]) for row in rows]


async def resume(
    conn: DbConnection,
    clock: OpenClock,
    *,
    due_at: datetime,
    paused_seconds: int,
    timers: Pending,
) -> None:
    await conn.execute(
        """UPDATE clocks SET state = 'running', paused_at = NULL, due_at = $2,
               paused_seconds = $3
           WHERE clock_id = $1""",
        clock.clock_id,
        due_at,
        paused_seconds,
    )
    await conn.executemany(
        "UPDATE timers SET due_at = $2 WHERE timer_id = $1", [(t, at) for t, at in timers]
    )


async def claim_due_timers(conn: DbConnection, limit: int) -> list[dict[str, Any]]:
    """Due timers whose clock is in the state they wait for, marked fired, in due order.

    One statement locks and marks them, so a batch costs one round trip; rows another
    transaction holds are skipped, so each timer fires once. Until this transaction
    commits the rows stay locked, and a rollback leaves them to fire again.
    """
    rows = await conn.fetch(
        """UPDATE timers SET fired_at = now()
           FROM (SELECT t.timer_id, t.clock_id, t.complaint_no, t.kind, t.fraction, t.level,
                        t.due_at, c.name, c.due_at AS clock_due_at, c.pack, c.rule, c.round,
                        c.occurrence, c.series_start
                 FROM timers t
                 JOIN clocks c ON c.clock_id = t.clock_id
                 WHERE t.fired_at IS NULL AND NOT t.cancelled AND t.due_at <= now()
                   AND ((t.kind = 'escalation' AND c.state = 'breached')
                        OR (t.kind <> 'escalation' AND c.state = 'running'))
                 ORDER BY t.due_at
                 LIMIT $1
                 FOR UPDATE OF t SKIP LOCKED) AS due
           -- Cases are read for the timers this claim won only, not for those it skips.
           JOIN cases k ON k.complaint_no = due.complaint_no
           WHERE timers.timer_id = due.timer_id
           RETURNING due.*, k.branch_id, k.correlation_id""",
        limit,
    )
    # RETURNING keeps no order; a complaint's events should leave in the order they fell due.
    return sorted((dict(row) for row in rows), key=lambda row: row["due_at"])


async def seconds_until_next_timer(conn: DbConnection, *, at_most: float) -> float:
    """How long to sleep before the earliest timer not yet due falls due (by the database's
    clock), so it fires on time rather than up to a poll later; ``at_most`` still bounds
    the sleep, for the timers other instances add meanwhile. Timers already due are held by
    another transaction or wait for their clock to resume, so they do not count."""
    wait: float = await conn.fetchval(
        """SELECT least(coalesce(extract(epoch FROM min(due_at) - now())::float8, $1), $1)
           FROM timers WHERE fired_at IS NULL AND NOT cancelled AND due_at > now()""",
        at_most,
    )
    return wait


async def mark_breached(conn: DbConnection, clock_ids: list[uuid.UUID]) -> None:
    await conn.execute(
        "UPDATE clocks SET state = 'breached' WHERE clock_id = ANY($1::uuid[])", clock_ids
    )


@dataclass(frozen=True)
class RunningClock:
    clock_id: uuid.UUID
    complaint_no: str
    name: str
    rule: str
    started_at: datetime
    due_at: datetime
    round: int


async def running_clocks_before(conn: DbConnection, pack: str, version: str) -> list[RunningClock]:
    """Running, never-paused clocks started under another version of the pack, locked."""
    rows = await conn.fetch(
        """SELECT clock_id, complaint_no, name, rule, started_at, due_at, round FROM clocks
           WHERE pack = $1 AND pack_version <> $2 AND state = 'running' AND paused_seconds = 0
           ORDER BY clock_id FOR UPDATE SKIP LOCKED""",
        pack,
        version,
    )
    return [RunningClock(**dict(row)) for row in rows]


async def recompute(
    conn: DbConnection, clock: RunningClock, planned: PlannedClock, version: str
) -> None:
    """Give the clock the changed pack's deadline and timers."""
    await conn.execute(
        """UPDATE clocks SET due_at = $2, target_seconds = $3, pack_version = $4
           WHERE clock_id = $1""",
        clock.clock_id,
        planned.due_at,
        planned.target_seconds,
        version,
    )
    await conn.execute(
        "UPDATE timers SET cancelled = true WHERE clock_id = $1 AND fired_at IS NULL",
        clock.clock_id,
    )
    final = "return_visit" if planned.return_visit else "breach"
    fresh: list[tuple[Any, ...]] = [
        (
            uuid.uuid5(clock.clock_id, f"{version}/warning/{f}"),
            clock.clock_id,
            clock.complaint_no,
            "warning",
            f,
            None,
            at,
        )
        for f, at in planned.warnings
        if at > datetime.now(at.tzinfo)
    ]
    fresh.append(
        (
            uuid.uuid5(clock.clock_id, f"{version}/{final}"),
            clock.clock_id,
            clock.complaint_no,
            final,
            None,
            None,
            planned.due_at,
        )
    )
    await add_timers(conn, fresh)
