"""Deadline clocks: which clocks a complaint gets, when each falls due, when its warnings
go out, and how a pause moves them. Pure: no I/O, no clock reading.

Elapsed-time clocks count every second; working-time clocks count only the working time
of the pack's calendar (lunch breaks, weekends, public holidays and 调休 included).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from shared.calendars import WorkingTime
from shared.contracts.submissions import CustomerType, Region, Severity
from shared.deadlines import first_due, occurrence_due
from shared.policy import EscalationLevel, PolicyPack, Recurrence

_CLOCK_NAMESPACE = uuid.UUID("6f1d8f64-3c2b-4a53-9a55-0c6d3f7b1e21")


@dataclass(frozen=True)
class PlannedClock:
    clock_id: uuid.UUID
    name: str
    rule: str
    started_at: datetime
    due_at: datetime
    target_seconds: int
    working: bool
    calendar: str | None
    stops_on: tuple[str, ...]
    return_visit: bool
    warnings: tuple[tuple[float, datetime], ...]
    occurrence: int = 0
    series_start: datetime | None = None


@dataclass(frozen=True)
class ComplaintFacts:
    complaint_no: str
    category: str
    customer_type: CustomerType
    severity: Severity
    region: Region


def clock_id(complaint_no: str, clock: str, round_no: int = 1, occurrence: int = 0) -> uuid.UUID:
    """Stable per complaint, clock, handling round and visit, so a replay names the same
    clock."""
    suffix = "" if round_no == 1 else f"#{round_no}"
    visit = f"@{occurrence}" if occurrence else ""
    return uuid.uuid5(_CLOCK_NAMESPACE, f"{complaint_no}/{clock}{suffix}{visit}")


def plan_clocks(
    pack: PolicyPack,
    facts: ComplaintFacts,
    *,
    starting_event: str,
    started_at: datetime,
    round_no: int = 1,
) -> list[PlannedClock]:
    """The clocks ``starting_event`` starts: per clock name, the first matching rule."""
    planned: dict[str, PlannedClock] = {}
    for rule in pack.clocks:
        if rule.clock in planned or rule.starts_on != starting_event:
            continue
        if not rule.matches(facts.category, facts.customer_type, facts.severity, facts.region):
            continue
        time = pack.working_time(rule.calendar)
        due = first_due(rule, started_at, time)
        target = time.between(started_at, due) if rule.working else due - started_at
        occurrence = 1 if rule.recurrence else 0
        planned[rule.clock] = PlannedClock(
            clock_id=clock_id(facts.complaint_no, rule.clock, round_no, occurrence),
            name=rule.clock,
            rule=rule.id,
            started_at=started_at,
            due_at=due,
            target_seconds=int(target.total_seconds()),
            working=rule.working,
            calendar=rule.calendar,
            stops_on=rule.stops_on,
            return_visit=rule.return_visit,
            warnings=tuple(
                (fraction, _point(started_at, target * fraction, rule.working, time))
                for fraction in sorted(rule.warn_at)
            ),
            occurrence=occurrence,
            series_start=started_at if rule.recurrence else None,
        )
    return list(planned.values())


def occurrences_in(recurrence: tuple[Recurrence, ...]) -> int | None:
    """How many visits the schedule has; None when its last phase runs on."""
    if recurrence[-1].for_months is None:
        return None
    return sum((phase.for_months or 0) // phase.every_months for phase in recurrence)


def next_visit(
    pack: PolicyPack,
    rule_id: str,
    *,
    complaint_no: str,
    series_start: datetime,
    occurrence: int,
    previous_due: datetime,
    round_no: int,
) -> PlannedClock | None:
    """The visit after ``occurrence`` in a recurring schedule, or None when it has ended."""
    rule = next((r for r in pack.clocks if r.id == rule_id), None)
    if rule is None or not rule.recurrence:
        return None
    total = occurrences_in(rule.recurrence)
    if total is not None and occurrence >= total:
        return None
    timezone = pack.working_time(rule.calendar).timezone
    due = occurrence_due(series_start, rule.recurrence, occurrence + 1, timezone)
    return PlannedClock(
        clock_id=clock_id(complaint_no, rule.clock, round_no, occurrence + 1),
        name=rule.clock,
        rule=rule.id,
        started_at=previous_due,
        due_at=due,
        target_seconds=int((due - previous_due).total_seconds()),
        working=False,
        calendar=rule.calendar,
        stops_on=rule.stops_on,
        return_visit=True,
        warnings=(),
        occurrence=occurrence + 1,
        series_start=series_start,
    )


def _point(start: datetime, span: timedelta, working: bool, time: WorkingTime) -> datetime:
    if not working:
        return start + span
    return time.add(start, span) if span > timedelta(0) else start


def shifted(
    moment: datetime,
    paused_at: datetime,
    resumed_at: datetime,
    *,
    working: bool,
    time: WorkingTime,
) -> datetime:
    """Where a pending moment (a due time, a warning) lands after a pause.

    Elapsed clocks move by the wall-clock time paused; working clocks keep the working
    time that was left at the pause, counted again from the resumption.
    """
    if moment <= paused_at:
        return moment
    if not working:
        return moment + (resumed_at - paused_at)
    left = time.between(paused_at, moment)
    return time.add(resumed_at, left) if left > timedelta(0) else resumed_at


def approving_rung(pack: PolicyPack, amount: Decimal) -> EscalationLevel | None:
    """The lowest rung allowed to approve ``amount`` (核决权限), when the ladder states
    authority by amount; None when it does not, or when the first rung may."""
    ladder = pack.escalation.ladder if pack.escalation else ()
    if not any(rung.max_compensation is not None for rung in ladder):
        return None
    for rung in ladder:
        if rung.max_compensation is None or amount <= rung.max_compensation:
            return rung if rung.level > 1 else None
    return ladder[-1]
