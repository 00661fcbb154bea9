"""Deadline arithmetic shared by sla, which runs the clocks, and notify, which promises
the customer a reply time when it acknowledges a complaint. Pure: no I/O."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from shared.calendars import WorkingTime
from shared.policy import ClockRule, Recurrence


def add_months(moment: datetime, months: int, timezone: str) -> datetime:
    """The same wall-clock time ``months`` later in ``timezone``; the 31st becomes the
    month's last day where the month is shorter."""
    local = moment.astimezone(ZoneInfo(timezone))
    index = local.month - 1 + months
    year, month = local.year + index // 12, index % 12 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    return local.replace(year=year, month=month, day=day).astimezone(moment.tzinfo)


def occurrence_due(
    start: datetime, recurrence: tuple[Recurrence, ...], occurrence: int, timezone: str
) -> datetime:
    """When the ``occurrence``-th visit (1, 2, …) of a recurring schedule falls due."""
    months, remaining = 0, occurrence
    for phase in recurrence:
        in_phase = (
            phase.for_months // phase.every_months if phase.for_months is not None else remaining
        )
        step = min(remaining, in_phase)
        months += step * phase.every_months
        remaining -= step
        if remaining == 0:
            return add_months(start, months, timezone)
    return add_months(start, months, timezone)


def first_due(rule: ClockRule, started_at: datetime, time: WorkingTime) -> datetime:
    """When a clock of ``rule`` started at ``started_at`` first falls due."""
    if rule.recurrence:
        return occurrence_due(started_at, rule.recurrence, 1, time.timezone)
    if rule.target_hours is not None:
        return started_at + timedelta(hours=rule.target_hours)
    if rule.working_hours is not None:
        return time.add(started_at, timedelta(hours=rule.working_hours))
    assert rule.working_days is not None
    return time.end_of_working_day(started_at, rule.working_days)
