"""Working time: weekly hours with lunch breaks, public holidays, 调休 and closures.

Pure arithmetic, no I/O. A ``WorkingTime`` answers whether a moment is working time,
adds a working duration to a start, measures the working time between two moments,
and finds the end of the n-th working day. Holidays come from a ``HolidayCalendar``
(``policy-packs/calendars/*.yaml``); on an adjusted working day (调休: a weekend day
worked instead of a holiday) the hours are those of a regular weekday.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

# Far enough to cover any deadline; a calendar with no working time at all is refused.
_SEARCH_DAYS = 3660


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class HolidaySpan(_Model):
    name: str = Field(min_length=1)
    first: date = Field(alias="from")
    last: date = Field(alias="to")


class HolidayYear(_Model):
    source: str = Field(min_length=1)
    provisional: bool = False
    holidays: tuple[HolidaySpan, ...] = ()
    working_days: tuple[date, ...] = Field(default=(), description="调休: weekend days worked.")


class HolidayCalendar(_Model):
    id: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    name: dict[str, str]
    years: dict[int, HolidayYear]

    def is_holiday(self, day: date) -> bool:
        year = self.years.get(day.year)
        return year is not None and any(s.first <= day <= s.last for s in year.holidays)

    def is_adjusted_working_day(self, day: date) -> bool:
        year = self.years.get(day.year)
        return year is not None and day in year.working_days


@dataclass(frozen=True)
class Closure:
    first: date
    last: date


@dataclass(frozen=True)
class WorkingTime:
    """A branch's working time; ``weekly[0]`` is Monday's shifts, as (start, end) times."""

    timezone: str
    weekly: tuple[tuple[tuple[time, time], ...], ...]
    holidays: HolidayCalendar | None = None
    closures: tuple[Closure, ...] = ()

    def __post_init__(self) -> None:
        if len(self.weekly) != 7:
            raise ValueError("weekly needs the shifts of all seven days")
        if not any(self.weekly) and (
            self.holidays is None
            or not any(year.working_days for year in self.holidays.years.values())
        ):
            raise ValueError("a calendar without any working hours")

    @property
    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def shifts_on(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The day's working periods as aware datetimes (empty on days off)."""
        if any(c.first <= day <= c.last for c in self.closures):
            return ()
        if self.holidays is not None and self.holidays.is_holiday(day):
            return ()
        if self.holidays is not None and self.holidays.is_adjusted_working_day(day):
            hours = self.weekly[0] or next(h for h in self.weekly if h)
        else:
            hours = self.weekly[day.weekday()]
        zone = self._zone
        return tuple(
            (datetime.combine(day, start, zone), _end_of(day, end, zone)) for start, end in hours
        )

    def is_working_day(self, day: date) -> bool:
        return bool(self.shifts_on(day))

    def is_working(self, moment: datetime) -> bool:
        local = moment.astimezone(self._zone)
        return any(start <= local < end for start, end in self.shifts_on(local.date()))

    def _periods_from(self, moment: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Working periods, or their remaining parts, from ``moment`` on, in UTC so that
        differences are real durations even across a daylight-saving change."""
        now = moment.astimezone(UTC)
        day = moment.astimezone(self._zone).date()
        for offset in range(_SEARCH_DAYS):
            for start, end in self.shifts_on(day + timedelta(days=offset)):
                start_utc, end_utc = start.astimezone(UTC), end.astimezone(UTC)
                if end_utc > now:
                    yield max(start_utc, now), end_utc
        raise ValueError("no working time within ten years")

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The moment ``duration`` of working time after ``start``.

        Exact boundaries stay where they are: a duration that runs out at a shift's end
        falls due at that end, not at the next shift's start.
        """
        if duration <= timedelta(0):
            raise ValueError("a deadline needs a positive duration")
        remaining = duration
        for period_start, period_end in self._periods_from(start):
            available = period_end - period_start
            if remaining <= available:
                return (period_start + remaining).astimezone(start.tzinfo)
            remaining -= available
        raise AssertionError("unreachable: _periods_from raises first")

    def between(self, first: datetime, second: datetime) -> timedelta:
        """Working time from ``first`` to ``second`` (zero if ``second`` is not later)."""
        total = timedelta(0)
        if second <= first:
            return total
        for period_start, period_end in self._periods_from(first):
            if period_start >= second:
                break
            total += min(period_end, second) - period_start
        return total

    def end_of_working_day(self, start: datetime, n: int) -> datetime:
        """The end of the n-th working day after the day of ``start`` (days counted from
        the next working day: received on Monday, "by the 2nd working day" is Wednesday).

        ``n = 0`` is "the same day": the end of the start day's working time, or of the
        next working day if the start comes after the day's work is over.
        """
        if n < 0:
            raise ValueError("n cannot be negative")
        day = start.astimezone(self._zone).date()
        if n == 0:
            today = self.shifts_on(day)
            if today and today[-1][1] > start:
                return today[-1][1].astimezone(start.tzinfo)
            n = 1
        counted = 0
        for offset in range(1, _SEARCH_DAYS):
            shifts = self.shifts_on(day + timedelta(days=offset))
            if shifts:
                counted += 1
                if counted == n:
                    return shifts[-1][1].astimezone(start.tzinfo)
        raise ValueError("no working time within ten years")


def _end_of(day: date, end: time, zone: ZoneInfo) -> datetime:
    if end == time.max:  # "24:00"
        return datetime.combine(day + timedelta(days=1), time(0), zone)
    return datetime.combine(day, end, zone)
