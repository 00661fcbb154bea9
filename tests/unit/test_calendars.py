"""Working-time arithmetic against a hand-checked table, and its properties."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import assume, given
from hypothesis import strategies as st

from shared.calendars import Closure, HolidayCalendar, WorkingTime
from shared.settings import REPO_ROOT

SHANGHAI = ZoneInfo("Asia/Shanghai")
CN = HolidayCalendar.model_validate(
    yaml.safe_load(Path(REPO_ROOT / "policy-packs/calendars/cn-mainland.yaml").read_text("utf-8"))
)
DAY = ((time(8, 30), time(12, 0)), (time(13, 0), time(17, 0)))  # 001 5.2, Mon–Fri
OFFICE = WorkingTime("Asia/Shanghai", (DAY,) * 5 + ((), ()), CN)
# 001 5.2 in full: weekends 09:00–17:00 as well.
CS_CENTRE = WorkingTime("Asia/Shanghai", (DAY,) * 5 + (((time(9), time(17)),),) * 2, CN)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


TABLE = [
    # (why, start, working hours, due)
    ("ends exactly at lunch", "2026-11-18 10:00", 2, "2026-11-18 12:00"),
    ("lunch break skipped", "2026-11-18 11:00", 2, "2026-11-18 14:00"),
    ("weekend skipped", "2026-11-20 16:00", 2, "2026-11-23 09:30"),
    ("start on a Saturday", "2026-11-21 10:00", 1, "2026-11-23 09:30"),
    ("start before opening", "2026-11-18 07:00", 0.5, "2026-11-18 09:00"),
    ("调休 Saturday before Spring Festival is worked", "2026-02-13 16:30", 1, "2026-02-14 09:00"),
    ("across the whole Spring Festival", "2026-02-14 16:00", 2, "2026-02-24 09:30"),
    ("year boundary into 元旦 and its 调休 Sunday", "2025-12-31 16:00", 2, "2026-01-04 09:30"),
    ("across National Day, over a full day", "2026-09-30 16:00", 8, "2026-10-08 16:30"),
    ("across Spring Festival 2025", "2025-01-27 16:00", 2, "2025-02-05 09:30"),
]


@pytest.mark.parametrize(("why", "start", "hours", "due"), TABLE)
def test_working_time_deadlines(why: str, start: str, hours: float, due: str) -> None:
    assert OFFICE.add(at(start), timedelta(hours=hours)) == at(due), why


def test_the_customer_service_centre_also_works_weekends_but_not_holidays() -> None:
    assert CS_CENTRE.add(at("2026-11-20 16:00"), timedelta(hours=2)) == at("2026-11-21 10:00")
    assert CS_CENTRE.add(at("2026-02-14 16:00"), timedelta(hours=2)) == at("2026-02-24 09:30")


def test_working_days() -> None:
    assert OFFICE.end_of_working_day(at("2026-11-16 10:00"), 2) == at("2026-11-18 17:00")
    assert OFFICE.end_of_working_day(at("2026-02-13 10:00"), 1) == at("2026-02-14 17:00")
    assert OFFICE.end_of_working_day(at("2026-02-14 10:00"), 1) == at("2026-02-24 17:00")
    assert OFFICE.is_working_day(at("2026-01-04 00:00").date())  # a Sunday, 调休
    assert not OFFICE.is_working_day(at("2026-10-05 00:00").date())  # a Monday, 国庆


def test_between_and_is_working() -> None:
    assert OFFICE.between(at("2026-11-20 16:00"), at("2026-11-23 09:30")) == timedelta(hours=2)
    assert OFFICE.between(at("2026-11-23 09:30"), at("2026-11-20 16:00")) == timedelta(0)
    assert OFFICE.is_working(at("2026-11-18 12:59")) is False
    assert OFFICE.is_working(at("2026-11-18 13:00")) is True


def test_a_branch_closure_is_a_day_off() -> None:
    closed = WorkingTime(
        "Asia/Shanghai",
        OFFICE.weekly,
        CN,
        (Closure(at("2026-11-23 00:00").date(), at("2026-11-24 00:00").date()),),
    )
    assert closed.add(at("2026-11-20 16:00"), timedelta(hours=2)) == at("2026-11-25 09:30")


def test_impossible_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        OFFICE.add(at("2026-11-18 10:00"), timedelta(0))
    with pytest.raises(ValueError, match="without any working hours"):
        WorkingTime("Asia/Shanghai", ((),) * 7)


def test_the_2027_block_is_marked_provisional() -> None:
    assert CN.years[2027].provisional is True
    assert CN.years[2026].provisional is False


moments = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 1), timezones=st.just(UTC)
)
durations = st.integers(min_value=1, max_value=60 * 60).map(lambda m: timedelta(minutes=m))


@given(moments, durations)
def test_a_due_time_never_falls_in_non_working_time(start: datetime, duration: timedelta) -> None:
    due = OFFICE.add(start, duration)
    assert OFFICE.is_working(due - timedelta(microseconds=1))
    assert OFFICE.between(start, due) == duration


@given(moments, moments, durations)
def test_later_starts_never_give_earlier_due_times(
    first: datetime, second: datetime, duration: timedelta
) -> None:
    early, late = sorted((first, second))
    assert OFFICE.add(early, duration) <= OFFICE.add(late, duration)


@given(moments, durations, st.floats(0, 1), durations)
def test_a_pause_shifts_the_due_time_by_exactly_the_working_time_paused(
    start: datetime, duration: timedelta, fraction: float, paused_for: timedelta
) -> None:
    due = OFFICE.add(start, duration)
    pause_at = start + (due - start) * fraction
    assume(start <= pause_at < due)
    resume_at = pause_at + paused_for * 3  # wall-clock time: may span nights and weekends
    used = OFFICE.between(start, pause_at)
    new_due = OFFICE.add(resume_at, duration - used) if duration > used else resume_at
    assert OFFICE.between(due, new_due) == OFFICE.between(pause_at, resume_at) or (new_due == due)


def test_the_same_day_is_the_end_of_today_or_of_the_next_working_day() -> None:
    assert OFFICE.end_of_working_day(at("2026-11-18 10:00"), 0) == at("2026-11-18 17:00")
    assert OFFICE.end_of_working_day(at("2026-11-18 18:00"), 0) == at("2026-11-19 17:00")
    assert OFFICE.end_of_working_day(at("2026-11-21 10:00"), 0) == at("2026-11-23 17:00")
