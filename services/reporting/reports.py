"""The reports, read from the projections: the numbers managers run the business from.

Every report takes the same filters (branch, pack, department, a range of received days)
and counts only cases intake has recorded (events from other services can arrive first).
Days are calendar days in the reporting time zone (``REPORT_TIMEZONE``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from asyncpg import Record

from services.reporting import percentiles, rollups
from services.reporting.api import (
    Backlog,
    CategoryTrend,
    ClockStats,
    ComplaintRateRow,
    DailyReport,
    DailyRow,
    DepartmentWeek,
    LateCase,
    MonthlyDepartment,
    MonthlyReport,
    MonthlyRow,
    Percentiles,
    ResponseTimes,
    SatisfactionReport,
    ScoreStats,
    SlaReport,
    Summary,
    WeeklyReport,
)
from shared.db import DbConnection

FINISHED = ("closed", "not_upheld")
AGE_BUCKETS = (("<1d", 1), ("1-3d", 3), ("3-7d", 7), (">7d", None))
# Planner settings of a report's transaction: see _reading.
REPORT_WORK_MEM = "32MB"
REPORT_RANDOM_PAGE_COST = "1.1"


@dataclass(frozen=True)
class Filters:
    branch_id: str | None = None
    pack: str | None = None
    department: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    timezone: str = "Asia/Shanghai"

    def where(self, params: list[Any], alias: str = "c") -> str:
        """SQL conditions on the cases table ``alias``; appends their values to ``params``."""

        clauses = [f"{alias}.received_at IS NOT NULL"]
        if self.branch_id is not None:
            clauses.append(f"{alias}.branch_id = {bind_parameter(params, self.branch_id)}")
        if self.pack is not None:
            clauses.append(f"{alias}.pack = {bind_parameter(params, self.pack)}")
        if self.department is not None:
            clauses.append(f"{alias}.department = {bind_parameter(params, self.department)}")
        clauses += self.days_between(f"{alias}.received_at", self.date_from, self.date_to, params)
        return " AND ".join(clauses)

    @property
    def all_time(self) -> bool:
        """No range of days: the rollups, which count every day, can answer."""
        return self.date_from is None and self.date_to is None

    @property
    def days_rollup(self) -> str:
        """The rollup of cases per day these filters read: by department only if need be
        (it has a row per department, so several times as many)."""
        return "branch_days" if self.department is None else "department_days"

    def scope(self, params: list[Any], alias: str) -> str:
        """Conditions on the branch, pack and department columns of ``alias`` (a rollup)."""
        clauses = ["true"]
        for column in ("branch_id", "pack", "department"):
            if (value := getattr(self, column)) is not None:
                clauses.append(f"{alias}.{column} = {bind_parameter(params, value)}")
        return " AND ".join(clauses)

    def days_between(
        self, column: str, first: date | None, last: date | None, params: list[Any]
    ) -> list[str]:
        """``column`` (a time) falls on the days ``first`` to ``last`` (either open), as a
        range of instants that an index on ``column`` serves. Exact: the day a time falls on
        never decreases as time passes, so it is on or after ``first`` exactly when the
        time is at or after the first instant of ``first``."""
        clauses = []
        if first is not None and (start := self.start_of(first)) is not None:
            clauses.append(f"{column} >= {bind_parameter(params, start)}")
        if last is not None and (end := self.start_of(last, days_later=1)) is not None:
            clauses.append(f"{column} < {bind_parameter(params, end)}")
        return clauses

    def start_of(self, day: date, days_later: int = 0) -> datetime | None:
        """The first instant of the day ``days_later`` days after ``day`` in the time zone
        (fold 0: the earlier of a repeated midnight; a skipped midnight maps to the instant
        the day begins). None past the range of datetimes, where no bound is needed."""
        try:
            later = day + timedelta(days=days_later)
            return datetime.combine(later, time(), ZoneInfo(self.timezone)).astimezone(UTC)
        except OverflowError:
            return None


# The summary's dimensions and the columns the query gives them.
_SUMMARY_DIMENSIONS = {
    "status": "status_then",
    "category": "category",
    "branch": "branch_id",
    "pack": "pack",
    "department": "department",
    "channel": "channel",
}
_SUMMARY_COLUMNS = ", ".join(_SUMMARY_DIMENSIONS.values())
# A grouping set per dimension; GROUPING() of the summary's columns names the set: a 1 bit
# for each column rolled up, the first column's the highest.
_SUMMARY_SETS_SQL = ", ".join(f"({column})" for column in _SUMMARY_DIMENSIONS.values())
_SUMMARY_SETS = {
    (1 << len(_SUMMARY_DIMENSIONS)) - 1 - (1 << (len(_SUMMARY_DIMENSIONS) - 1 - index)): name
    for index, name in enumerate(_SUMMARY_DIMENSIONS)
}


Rows = list[Record]


async def summary(conn: DbConnection, filters: Filters, as_of: datetime | None = None) -> Summary:
    """Counts by every dimension and the open backlog; ``as_of``: as they stood then."""
    reference = as_of or datetime.now(UTC)
    counts: dict[str, Counter[str]] = {name: Counter() for name in _SUMMARY_DIMENSIONS}
    async with _reading(conn, filters):
        if as_of is None and await _rollup_days_match(conn, filters):
            counted, days = await _summary_counts(conn, filters, reference)
            for row in counted:
                dimension = _SUMMARY_SETS[row["grouping_set"]]
                key = row[_SUMMARY_DIMENSIONS[dimension]]
                counts[dimension]["unknown" if key is None else key] += row["n"]
            backlog = await _backlog(conn, filters, reference)
        else:
            combinations, days = await _summary_scan(conn, filters, as_of, reference)
            for row in combinations:
                for dimension, column in _SUMMARY_DIMENSIONS.items():
                    key = "unknown" if row[column] is None else row[column]
                    counts[dimension][key] += row["n"]
            backlog = combinations
    by_day: Counter[str] = Counter()
    for row in days:
        by_day[row["received_day"].isoformat()] += row["n"]
    by_age: Counter[str] = Counter()
    oldest: datetime | None = None
    for row in backlog:
        by_age.update({name: row[name] for name, _ in AGE_BUCKETS})
        if row["oldest"] is not None and (oldest is None or row["oldest"] < oldest):
            oldest = row["oldest"]
    return Summary(
        as_of=as_of,
        total=sum(counts["status"].values()),
        by_status=_nonzero(counts["status"]),
        by_category=_nonzero(counts["category"]),
        by_branch=_nonzero(counts["branch"]),
        by_pack=_nonzero(counts["pack"]),
        by_department=_nonzero(counts["department"]),
        by_channel=_nonzero(counts["channel"]),
        by_day=dict(sorted(_nonzero(by_day).items())),
        backlog=Backlog(
            open=sum(by_age.values()),
            by_age={name: by_age[name] for name, _ in AGE_BUCKETS},
            oldest_hours=(
                round((reference - oldest).total_seconds() / 3600, 2) if oldest else None
            ),
        ),
    )


def _nonzero(counts: Counter[str]) -> dict[str, int]:
    """Keys whose count is not nothing: cases received after the moment are taken from
    the rollups' counts, and the key of a group they emptied must go."""
    return {key: n for key, n in counts.items() if n}


def _ages(params: list[Any], reference: datetime) -> str:
    """The open cases by age and the oldest, as of ``reference``: aggregates over
    ``received_at`` and ``is_open``."""
    one, three, seven = (bind_parameter(params, reference - timedelta(days=n)) for n in (1, 3, 7))
    return f"""min(received_at) FILTER (WHERE is_open) AS oldest,
               count(*) FILTER (WHERE is_open AND received_at > {one}) AS "<1d",
               count(*) FILTER (WHERE is_open AND received_at <= {one}
                                AND received_at > {three}) AS "1-3d",
               count(*) FILTER (WHERE is_open AND received_at <= {three}
                                AND received_at > {seven}) AS "3-7d",
               count(*) FILTER (WHERE is_open AND received_at <= {seven}) AS ">7d"
    """


async def _summary_scan(
    conn: DbConnection, filters: Filters, as_of: datetime | None, reference: datetime
) -> tuple[Rows, Rows]:
    """The summary's counts read from the cases (a range of days, or ``as_of``): every
    combination of the dimensions that occurs, with its backlog; and the days."""
    params: list[Any] = []
    where = filters.where(params)
    moment = bind_parameter(params, reference)
    ages = _ages(params, reference)
    # The status at ``moment``: intake's latest event then (its sequence orders them).
    # A case whose status has not changed since (status_at) has it still; only the others
    # are looked up: the condition on c alone gates the lookup, it is not a filter after
    # it. A join, not a subquery in the select list, which would run once per mention.
    status, history = "c.status", ""
    if as_of is not None:
        status = f"CASE WHEN c.status_at <= {moment} THEN c.status ELSE h.status END"
        history = f"""LEFT JOIN LATERAL (
                SELECT h.status FROM case_status_history h
                WHERE (c.status_at <= {moment}) IS NOT TRUE
                  AND h.complaint_no = c.complaint_no AND h.occurred_at <= {moment}
                ORDER BY h.sequence DESC LIMIT 1
            ) h ON true"""  # noqa: S608 -- moment is a parameter
    # One pass over the cases, two grouping sets: every combination of the dimensions
    # that occurs (a few thousand at most: they are rolled up by the caller), and the days.
    rows = await conn.fetch(
        f"""SELECT GROUPING(received_day) = 0 AS is_day, received_day, {_SUMMARY_COLUMNS},
                   count(*) AS n, {ages}
            FROM (
                SELECT {status} AS status_then, c.category, c.branch_id, c.pack,
                       c.department, c.channel, c.received_at::date AS received_day,
                       c.received_at
                FROM cases c {history} WHERE {where} AND c.received_at <= {moment}
            ) chosen,
            LATERAL (SELECT status_then NOT IN ('closed', 'not_upheld') AS is_open) o
            WHERE status_then IS NOT NULL
            GROUP BY GROUPING SETS (({_SUMMARY_COLUMNS}), (received_day))""",  # noqa: S608
        *params,
    )
    return [row for row in rows if not row["is_day"]], [row for row in rows if row["is_day"]]


async def _summary_counts(
    conn: DbConnection, filters: Filters, reference: datetime
) -> tuple[Rows, Rows]:
    """The summary's counts per dimension and its days, without the cases received after
    ``reference`` (a clock running ahead), which the summary leaves out.

    The counts are folded in the database from every combination of the dimensions that
    occurs, a few thousand at most: over every day the rollup's combinations less the
    cases received later; over a range of days, the cases' combinations counted from an
    index. The days come from the rollup of days either way, a row per day and branch."""
    params: list[Any] = []
    where = filters.where(params)
    moment = bind_parameter(params, reference)
    if filters.all_time:
        combinations = f"""
            SELECT status AS status_then, category, branch_id, pack, department, channel,
                   cases AS n
            FROM case_counts r WHERE {filters.scope(params, "r")}
            UNION ALL
            SELECT c.status, c.category, c.branch_id, c.pack, c.department, c.channel, -1
            FROM cases c WHERE {where} AND c.received_at > {moment}"""  # noqa: S608
    else:
        combinations = f"""
            SELECT c.status AS status_then, c.category, c.branch_id, c.pack, c.department,
                   c.channel, count(*) AS n
            FROM cases c WHERE {where} AND c.received_at <= {moment}
            GROUP BY 1, 2, 3, 4, 5, 6"""  # noqa: S608
    counted = await conn.fetch(
        f"""SELECT GROUPING({_SUMMARY_COLUMNS}) AS grouping_set, {_SUMMARY_COLUMNS},
                   sum(n)::integer AS n
            FROM ({combinations}) combinations
            GROUP BY GROUPING SETS ({_SUMMARY_SETS_SQL})""",  # noqa: S608
        *params,
    )
    params = []
    where = filters.where(params)
    moment = bind_parameter(params, reference)
    day_range = "".join(
        f" AND r.received_day {operator} {bind_parameter(params, day)}"
        for operator, day in ((">=", filters.date_from), ("<=", filters.date_to))
        if day is not None
    )
    days = await conn.fetch(
        f"""SELECT received_day, sum(n)::integer AS n
            FROM (
                SELECT received_day, cases AS n FROM {filters.days_rollup} r
                WHERE {filters.scope(params, "r")}{day_range}
                UNION ALL
                SELECT c.received_at::date, -1 FROM cases c
                WHERE {where} AND c.received_at > {moment}
            ) days
            GROUP BY received_day""",  # noqa: S608
        *params,
    )
    return counted, days


async def _backlog(conn: DbConnection, filters: Filters, reference: datetime) -> Rows:
    """The open cases by age, from the few there are (the index ``cases_open``)."""
    params: list[Any] = []
    where = filters.where(params)
    moment = bind_parameter(params, reference)
    ages = _ages(params, reference)
    return await conn.fetch(
        f"""SELECT {ages} FROM (
                    SELECT c.received_at, true AS is_open FROM cases c
                    WHERE {where} AND c.status NOT IN ('closed', 'not_upheld')
                      AND c.received_at <= {moment}
                ) open_cases""",  # noqa: S608
        *params,
    )


async def _rollups_answer(conn: DbConnection, filters: Filters) -> bool:
    """The rollups can answer a report with these filters: no range of days, and the
    rollups' days are those of the report's time zone."""
    return filters.all_time and await _rollup_days_match(conn, filters)


async def _rollup_days_match(conn: DbConnection, filters: Filters) -> bool:
    """The rollups' days are those of the report's time zone (its received days)."""
    return bool(await conn.fetchval("SELECT zone = $1 FROM rollup_zone", filters.timezone))


@asynccontextmanager
async def _reading(conn: DbConnection, filters: Filters) -> AsyncIterator[None]:
    """A report's queries, in a transaction set up for them:

    - a time's ``::date`` is its day in the report time zone, far cheaper per row than
      ``AT TIME ZONE``;
    - work memory lets grouping by day hash: the planner, not knowing how few days there
      are, counts on a group per row and would sort tens of thousands of rows on disk;
    - a random page costs about what a sequential one does, as it does for projections
      read from memory: a branch's few thousand cases then look up their clocks by index
      instead of hashing all the clocks there are.
    """
    async with conn.transaction(readonly=True):
        await conn.execute(
            """SELECT set_config('TimeZone', $1, true), set_config('work_mem', $2, true),
                      set_config('random_page_cost', $3, true)""",
            filters.timezone,
            REPORT_WORK_MEM,
            REPORT_RANDOM_PAGE_COST,
        )
        yield


def bind_parameter(params: list[Any], value: Any) -> str:
    """Appends ``value`` to a query's ``params``; its placeholder."""
    params.append(value)
    return f"${len(params)}"


async def sla(conn: DbConnection, filters: Filters) -> SlaReport:
    async with _reading(conn, filters):
        if await _rollups_answer(conn, filters):
            clocks, escalations = await _sla_counts(conn, filters)
        else:
            clocks, escalations = await _sla_scan(conn, filters)
    stats = [
        ClockStats(
            clock=row["name"],
            stopped=row["met"] + row["breached"],
            met=row["met"],
            breached=row["breached"],
            on_time_rate=_ratio(row["met"], row["met"] + row["breached"]),
            running=row["running"],
            overdue=row["overdue"],
        )
        for row in clocks
    ]
    return SlaReport(
        clocks=stats,
        breaches=sum(s.breached for s in stats),
        escalations_by_level={row["level"]: row["n"] for row in escalations},
    )


async def _sla_scan(conn: DbConnection, filters: Filters) -> tuple[Rows, Rows]:
    params: list[Any] = []
    where = filters.where(params)
    clocks = await conn.fetch(
        f"""SELECT k.name,
                   count(*) FILTER (WHERE k.state = 'met') AS met,
                   count(*) FILTER (WHERE k.state = 'breached') AS breached,
                   count(*) FILTER (WHERE k.state IN ('running', 'paused')) AS running,
                   count(*) FILTER (WHERE k.state IN ('running', 'paused')
                                    AND k.due_at < now()) AS overdue
            FROM case_clocks k JOIN cases c USING (complaint_no)
            WHERE {where} AND NOT k.return_visit
            GROUP BY k.name ORDER BY k.name""",  # noqa: S608
        *params,
    )
    escalations = await conn.fetch(
        f"""SELECT coalesce(e.level::text, 'staff') AS level, count(*) AS n
            FROM case_escalations e JOIN cases c USING (complaint_no)
            WHERE {where} GROUP BY 1 ORDER BY 1""",  # noqa: S608
        *params,
    )
    return clocks, escalations


async def _sla_counts(conn: DbConnection, filters: Filters) -> tuple[Rows, Rows]:
    """The clocks' states and the escalations from the rollups; overdue, which moves with
    the time, from the running clocks past due (the index ``case_clocks_running``)."""
    params: list[Any] = []
    scope = filters.scope(params, "r")
    where = filters.where(params)
    clocks = await conn.fetch(
        f"""WITH overdue AS (
                SELECT k.name, count(*) AS n
                FROM case_clocks k JOIN cases c USING (complaint_no)
                WHERE {where} AND k.state IN ('running', 'paused') AND NOT k.return_visit
                  AND k.due_at < now()
                GROUP BY k.name
            )
            SELECT r.name,
                   coalesce(sum(r.clocks) FILTER (WHERE r.state = 'met'), 0) AS met,
                   coalesce(sum(r.clocks) FILTER (WHERE r.state = 'breached'), 0) AS breached,
                   coalesce(sum(r.clocks) FILTER (WHERE r.state IN ('running', 'paused')), 0)
                       AS running,
                   coalesce(min(o.n), 0) AS overdue
            FROM clock_counts r LEFT JOIN overdue o USING (name)
            WHERE {scope} GROUP BY r.name ORDER BY r.name""",  # noqa: S608
        *params,
    )
    params = []
    scope = filters.scope(params, "r")
    escalations = await conn.fetch(
        f"""SELECT level, sum(escalations) AS n FROM escalation_counts r
            WHERE {scope} GROUP BY level ORDER BY level""",  # noqa: S608
        *params,
    )
    return clocks, escalations


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


_PERCENTILES = """count(x) AS n, sum(seconds) AS seconds,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY x) AS p50,
    percentile_cont(0.9) WITHIN GROUP (ORDER BY x) AS p90,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY x) AS p95"""


def _hours(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


def _percentiles(row: Any) -> Percentiles:
    return Percentiles(
        count=row["n"],
        mean_hours=percentiles.mean_hours(row["seconds"], row["n"]),
        p50_hours=_hours(row["p50"]),
        p90_hours=_hours(row["p90"]),
        p95_hours=_hours(row["p95"]),
    )


# A duration in hours as percentile_cont takes it (double precision), the same way in
# the scan and in the bucketed lookups so that both give the same answer; date_part, not
# a numeric extract and division, which cost a third of a 30 days' report.
_HOURS = "date_part('epoch', {}) / 3600"
# The durations each measure is about, from the cases ``c`` in scope: assignment to
# first contact, and receipt to closing by category.
_FIRST_CONTACT = "c.first_contact_at - c.assigned_at"
_FIRST_CONTACT_CASES = "c.first_contact_at >= c.assigned_at"
# The same cases, in words the partial index cases_first_contact_time does not match: a
# range of days then reads its cases from cases_received, not that whole index (the
# planner, unable to see how many of its entries the range keeps, took it at 10^6: 290 ms).
_FIRST_CONTACT_CASES_IN_RANGE = f"{_FIRST_CONTACT} >= interval '0'"
_TO_CLOSE = "c.closed_at - c.received_at"
_CLOSED_CASES = "c.closed_at IS NOT NULL"


async def response_times(conn: DbConnection, filters: Filters) -> ResponseTimes:
    """Both measures on one connection; the API reads each on a connection of its own at
    the same time (they are independent: a transaction each either way)."""
    return ResponseTimes(
        first_contact=await first_contact_times(conn, filters),
        to_close_by_category=await close_times(conn, filters),
    )


async def first_contact_times(conn: DbConnection, filters: Filters) -> Percentiles:
    """Assignment to first contact with the customer. Over every day, from the counts per
    duration bucket of the rollups and, of each percentile, the two values it lies
    between, read from the index of the durations (``cases_first_contact_time``) at their
    rank within their bucket; over a range of days, from the cases."""
    async with _reading(conn, filters):
        if not await _rollups_answer(conn, filters):
            params: list[Any] = []
            where = filters.where(params)
            return _percentiles(
                await conn.fetchrow(
                    f"""SELECT {_PERCENTILES} FROM (
                            SELECT extract(epoch FROM {_FIRST_CONTACT}) AS seconds,
                                   {_HOURS.format(_FIRST_CONTACT)} AS x
                            FROM cases c WHERE {where} AND {_FIRST_CONTACT_CASES_IN_RANGE}
                        ) t""",  # noqa: S608
                    *params,
                )
            )
        params = []
        scope = filters.scope(params, "r")
        # The sum of seconds in a query of its own: a numeric per bucket would cost more
        # to add up and send than everything else.
        histogram = percentiles.histograms(
            await conn.fetch(
                f"""SELECT false AS is_total, bucket, sum(cases) AS n, NULL::numeric AS seconds
                    FROM first_contact_times r WHERE {scope} GROUP BY bucket
                    UNION ALL
                    SELECT true, NULL, NULL, sum(seconds) FROM first_contact_times r
                    WHERE {scope}
                    ORDER BY bucket""",  # noqa: S608
                *params,
            )
        ).get("", percentiles.Histogram())
        values = await _ranked(conn, filters, _FIRST_CONTACT, _FIRST_CONTACT_CASES, {"": histogram})
    return _figures(histogram, values.get("", {}))


async def close_times(conn: DbConnection, filters: Filters) -> dict[str, Percentiles]:
    """Receipt to closing, by category: as ``first_contact_times`` (``close_times``,
    ``cases_close_time``)."""
    async with _reading(conn, filters):
        if not await _rollups_answer(conn, filters):
            params: list[Any] = []
            where = filters.where(params)
            rows = await conn.fetch(
                f"""SELECT category, {_PERCENTILES} FROM (
                        SELECT coalesce(c.category, 'unknown') AS category,
                               extract(epoch FROM {_TO_CLOSE}) AS seconds,
                               {_HOURS.format(_TO_CLOSE)} AS x
                        FROM cases c WHERE {where} AND {_CLOSED_CASES}
                    ) t GROUP BY category ORDER BY category""",  # noqa: S608
                *params,
            )
            return {row["category"]: _percentiles(row) for row in rows}
        params = []
        scope = filters.scope(params, "r")
        histograms = percentiles.histograms(
            await conn.fetch(
                f"""SELECT false AS is_total, category, bucket, sum(cases) AS n,
                           NULL::numeric AS seconds
                    FROM close_times r WHERE {scope} GROUP BY category, bucket
                    UNION ALL
                    SELECT true, category, NULL, NULL, sum(seconds)
                    FROM close_times r WHERE {scope} GROUP BY category
                    ORDER BY category, bucket""",  # noqa: S608
                *params,
            ),
            key="category",
        )
        values = await _ranked(
            conn,
            filters,
            _TO_CLOSE,
            f"{_CLOSED_CASES} AND coalesce(c.category, 'unknown') = r.key",
            histograms,
        )
    return {
        category: _figures(histogram, values.get(category, {}))
        for category, histogram in histograms.items()
    }


def _figures(histogram: percentiles.Histogram, values: _Pairs) -> Percentiles:
    p50, p90, p95 = histogram.percentiles(values)
    return Percentiles(
        count=histogram.count,
        mean_hours=percentiles.mean_hours(histogram.seconds, histogram.count),
        p50_hours=_hours(p50),
        p90_hours=_hours(p90),
        p95_hours=_hours(p95),
    )


# (bucket, rank within it) → the durations of that rank and the next, in hours.
_Pairs = dict[tuple[int, int], tuple[float, ...]]


async def _ranked(
    conn: DbConnection,
    filters: Filters,
    duration: str,
    cases: str,
    histograms: dict[str, percentiles.Histogram],
) -> dict[str, _Pairs]:
    """For each histogram (by key) and each (bucket, rank) it wants, the duration of that
    rank within the bucket and the next, in hours as ``percentile_cont`` takes them."""
    wanted = [
        (key, bucket, rank)
        for key, histogram in histograms.items()
        for bucket, rank in sorted(histogram.wanted())
    ]
    if not wanted:
        return {}
    params: list[Any] = [
        [key for key, _, _ in wanted],
        [rollups.bucket_start(bucket) for _, bucket, _ in wanted],
        [rank for _, _, rank in wanted],
    ]
    where = filters.where(params)
    rows = await conn.fetch(
        f"""SELECT r.i, x.hours
            FROM unnest($1::text[], $2::interval[], $3::bigint[])
                WITH ORDINALITY AS r(key, start, skip, i)
            CROSS JOIN LATERAL (
                -- Hours of the two durations only: the rows skipped are not converted.
                SELECT {_HOURS.format("duration")} AS hours
                FROM (
                    SELECT {duration} AS duration FROM cases c
                    WHERE {where} AND {cases} AND {duration} >= r.start
                    ORDER BY {duration} OFFSET r.skip LIMIT 2
                ) ranked
            ) x
            ORDER BY r.i, x.hours""",  # noqa: S608
        *params,
    )
    values: dict[str, _Pairs] = {}
    for row in rows:
        key, bucket, rank = wanted[row["i"] - 1]
        pairs = values.setdefault(key, {})
        pairs[(bucket, rank)] = (*pairs.get((bucket, rank), ()), row["hours"])
    return values


# GROUPING(branch_id, department, assignee_id) of each grouping set: its dimension, column.
_SATISFACTION_GROUPING = {
    0b111: ("all", None),
    0b011: ("branch", "branch_id"),
    0b101: ("department", "department"),
    0b110: ("person", "assignee_id"),
}


async def satisfaction(conn: DbConnection, filters: Filters) -> SatisfactionReport:
    async with _reading(conn, filters):
        if await _rollups_answer(conn, filters):
            rows, rates = await _satisfaction_counts(conn, filters)
        else:
            rows, rates = await _satisfaction_scan(conn, filters)
    groups: dict[str, dict[str, ScoreStats]] = {}
    for row in rows:
        dimension, column = _SATISFACTION_GROUPING[row["grouping_set"]]
        key = row[column] if column else "all"
        if key is None or row["n"] == 0:  # the total of no feedback at all is no row
            continue
        groups.setdefault(dimension, {})[key] = ScoreStats(
            count=row["n"],
            mean=round(float(row["mean"]), 3),
            distribution={str(score): row[f"s{score}"] for score in range(1, 6)},
        )
    overall = groups.get("all", {}).get("all") or ScoreStats(
        count=0, mean=None, distribution={str(score): 0 for score in range(1, 6)}
    )
    return SatisfactionReport(
        overall=overall,
        by_branch=groups.get("branch", {}),
        by_department=groups.get("department", {}),
        by_person=groups.get("person", {}),
        reopen_rate=_ratio(rates["reopened"], rates["decided"]),
        not_upheld_rate=_ratio(rates["not_upheld"], rates["decided"]),
        return_visits_due=rates["visits_due"],
        return_visits_done=rates["visits_done"],
        return_visit_completion=_ratio(rates["visits_done"], rates["visits_due"]),
    )


# A feedback's score is the mean of its three marks; the report's mean is the numeric
# average of the scores (as avg() gives it), its distribution by the rounded score.
_SCORES = """GROUPING(branch_id, department, assignee_id) AS grouping_set,
    branch_id, department, assignee_id, coalesce(sum({n}), 0) AS n,
    sum({n} * score) / sum({n}) AS mean,
    coalesce(sum({n}) FILTER (WHERE round(score) = 1), 0) AS s1,
    coalesce(sum({n}) FILTER (WHERE round(score) = 2), 0) AS s2,
    coalesce(sum({n}) FILTER (WHERE round(score) = 3), 0) AS s3,
    coalesce(sum({n}) FILTER (WHERE round(score) = 4), 0) AS s4,
    coalesce(sum({n}) FILTER (WHERE round(score) = 5), 0) AS s5"""
_SCORE_GROUPS = "GROUP BY GROUPING SETS ((), (branch_id), (department), (assignee_id))"


async def _satisfaction_scan(conn: DbConnection, filters: Filters) -> tuple[Rows, Record]:
    params: list[Any] = []
    where = filters.where(params)
    rows = await conn.fetch(
        f"""SELECT {_SCORES.format(n=1)}
            FROM (
                SELECT (f.quality + f.attitude + f.speed) / 3.0 AS score, c.branch_id,
                       c.department, c.assignee_id
                FROM case_feedback f JOIN cases c USING (complaint_no) WHERE {where}
            ) scored
            {_SCORE_GROUPS}""",  # noqa: S608
        *params,
    )
    rates = await conn.fetchrow(
        f"""SELECT count(*) FILTER (WHERE c.decided_at IS NOT NULL) AS decided,
                   count(*) FILTER (WHERE c.reopened > 0) AS reopened,
                   count(*) FILTER (WHERE c.not_upheld) AS not_upheld,
                   (SELECT count(*) FROM case_return_visits_due d JOIN cases c USING
                        (complaint_no) WHERE {where}) AS visits_due,
                   (SELECT count(*) FROM case_return_visits v JOIN cases c USING
                        (complaint_no) WHERE {where}) AS visits_done
            FROM cases c WHERE {where}""",  # noqa: S608
        *params,
    )
    assert rates is not None
    return rows, rates


async def _satisfaction_counts(conn: DbConnection, filters: Filters) -> tuple[Rows, Record]:
    """From the rollups: the same numeric sums the scan makes (n times a score is the
    score added n times), so the same means."""
    params: list[Any] = []
    scope = filters.scope(params, "r")
    rows = await conn.fetch(
        f"""SELECT {_SCORES.format(n="feedback")}
            FROM (SELECT r.*, r.points / 3.0 AS score FROM feedback_scores r WHERE {scope}) s
            {_SCORE_GROUPS}""",  # noqa: S608
        *params,
    )
    rates = await conn.fetchrow(
        f"""SELECT coalesce(sum(decided), 0) AS decided,
                   coalesce(sum(reopened), 0) AS reopened,
                   coalesce(sum(not_upheld), 0) AS not_upheld,
                   (SELECT coalesce(sum(due), 0) FROM return_visit_counts r WHERE {scope})
                       AS visits_due,
                   (SELECT coalesce(sum(done), 0) FROM return_visit_counts r WHERE {scope})
                       AS visits_done
            FROM case_counts r WHERE {scope}""",  # noqa: S608
        *params,
    )
    assert rates is not None
    return rows, rates


async def complaint_rate(
    conn: DbConnection, filters: Filters, targets: dict[str, float]
) -> list[ComplaintRateRow]:
    """Complaints ÷ services delivered per branch, over the days the branch posted a figure
    for; ``targets``: each branch's pack target (hotel: under 1 %)."""
    params: list[Any] = []
    volume_range = ""
    if filters.date_from is not None:
        volume_range += f" AND v.day >= {bind_parameter(params, filters.date_from)}"
    if filters.date_to is not None:
        volume_range += f" AND v.day <= {bind_parameter(params, filters.date_to)}"
    async with _reading(conn, filters):
        # (branch_id, day) is the volumes' key: each case, or each day's count of the
        # rollup, meets at most one row.
        if await _rollups_answer(conn, filters):
            complaints = f"""SELECT d.branch_id, sum(d.cases) AS n
                FROM {filters.days_rollup} d JOIN service_volumes v
                    ON v.branch_id = d.branch_id AND v.day = d.received_day
                WHERE {filters.scope(params, "d")} GROUP BY d.branch_id"""  # noqa: S608
        else:
            complaints = f"""SELECT c.branch_id, count(*) AS n
                FROM cases c JOIN service_volumes v
                    ON v.branch_id = c.branch_id AND v.day = c.received_at::date {volume_range}
                WHERE {filters.where(params)} GROUP BY c.branch_id"""  # noqa: S608
        rows = await conn.fetch(
            f"""WITH volumes AS (
                    SELECT v.branch_id, sum(v.services) AS services FROM service_volumes v
                    WHERE true {volume_range} GROUP BY v.branch_id
                ), complaints AS ({complaints})
                SELECT v.branch_id, coalesce(k.n, 0) AS complaints, v.services
                FROM volumes v LEFT JOIN complaints k USING (branch_id)
                ORDER BY v.branch_id""",  # noqa: S608
            *params,
        )
    result = []
    for row in rows:
        if filters.branch_id is not None and row["branch_id"] != filters.branch_id:
            continue
        rate = row["complaints"] / row["services"] if row["services"] else None
        target = targets.get(row["branch_id"])
        result.append(
            ComplaintRateRow(
                branch_id=row["branch_id"],
                complaints=row["complaints"],
                services=row["services"],
                rate=round(rate, 6) if rate is not None else None,
                target=target,
                above_target=(rate >= target) if rate is not None and target else None,
            )
        )
    return result


async def daily(conn: DbConnection, filters: Filters, day: date) -> DailyReport:
    """The daily classification report (000 第一篇 十二 6): the day's complaints by
    category, with their severity and where they stand now."""
    scoped = Filters(**{**filters.__dict__, "date_from": day, "date_to": day})
    params: list[Any] = []
    where = scoped.where(params)
    async with _reading(conn, filters):
        rows = await conn.fetch(
            f"""SELECT coalesce(c.category, 'unknown') AS category, dimension, key, count(*) AS n
                FROM cases c,
                     LATERAL (VALUES ('all', 'all'), ('severity', c.severity),
                                     ('status', c.status)) AS d(dimension, key)
                WHERE {where} GROUP BY 1, 2, 3""",  # noqa: S608
            *params,
        )
    by_category: dict[str, DailyRow] = {}
    for row in rows:
        entry = by_category.setdefault(
            row["category"],
            DailyRow(category=row["category"], received=0, by_severity={}, by_status={}),
        )
        if row["dimension"] == "all":
            entry.received = row["n"]
        elif row["dimension"] == "severity":
            entry.by_severity[row["key"] or "unknown"] = row["n"]
        else:
            entry.by_status[row["key"]] = row["n"]
    ordered = sorted(by_category.values(), key=lambda r: (-r.received, r.category))
    return DailyReport(day=day.isoformat(), rows=ordered, total=sum(r.received for r in ordered))


async def weekly(conn: DbConnection, filters: Filters, week_start: date) -> WeeklyReport:
    """The weekly department summary, with the categories rising week over week."""
    # Each figure from its own index range; the departments listed are those with a case
    # received by the week's end (the day ranges are instants, as in Filters.where).
    params: list[Any] = []
    where = filters.where(params)
    start = bind_parameter(params, filters.start_of(week_start))
    end = bind_parameter(params, filters.start_of(week_start, days_later=7))
    async with _reading(conn, filters):
        departments = await conn.fetch(
            f"""WITH RECURSIVE known (department) AS (
                    -- The departments, one index probe each (a loose index scan), not a
                    -- pass over every case; unassigned cases (no department) below.
                    SELECT min(c.department) FROM cases c WHERE {where} AND c.received_at < {end}
                    UNION ALL
                    SELECT (SELECT min(c.department) FROM cases c
                            WHERE {where} AND c.received_at < {end}
                              AND c.department > k.department)
                    FROM known k WHERE k.department IS NOT NULL
                ), departments AS (
                    SELECT department FROM known WHERE department IS NOT NULL
                    UNION ALL
                    SELECT NULL WHERE EXISTS (
                        SELECT FROM cases c
                        WHERE {where} AND c.received_at < {end} AND c.department IS NULL)
                ), received AS (
                    SELECT c.department, count(*) AS n FROM cases c
                    WHERE {where} AND c.received_at >= {start} AND c.received_at < {end} GROUP BY 1
                ), closed AS (
                    SELECT c.department, count(*) AS n FROM cases c
                    WHERE {where} AND c.closed_at >= {start} AND c.closed_at < {end} GROUP BY 1
                ), still_open AS (
                    SELECT c.department, count(*) AS n FROM cases c
                    WHERE {where} AND c.status NOT IN ('closed', 'not_upheld')
                      AND c.received_at < {end}
                    GROUP BY 1
                ), breaches AS (
                    SELECT c.department, count(*) AS n
                    FROM case_clocks k JOIN cases c USING (complaint_no)
                    WHERE {where} AND k.state = 'breached' AND k.due_at >= {start}
                      AND k.due_at < {end}
                    GROUP BY 1
                )
                SELECT coalesce(d.department, 'unassigned') AS department,
                       coalesce(r.n, 0) AS received, coalesce(x.n, 0) AS closed,
                       coalesce(o.n, 0) AS open, coalesce(b.n, 0) AS breaches
                FROM departments d
                LEFT JOIN received r ON r.department IS NOT DISTINCT FROM d.department
                LEFT JOIN closed x ON x.department IS NOT DISTINCT FROM d.department
                LEFT JOIN still_open o ON o.department IS NOT DISTINCT FROM d.department
                LEFT JOIN breaches b ON b.department IS NOT DISTINCT FROM d.department
                ORDER BY 1""",  # noqa: S608
            *params,
        )
        trend_params: list[Any] = []
        where = filters.where(trend_params)
        previous = bind_parameter(trend_params, filters.start_of(week_start, days_later=-7))
        start = bind_parameter(trend_params, filters.start_of(week_start))
        end = bind_parameter(trend_params, filters.start_of(week_start, days_later=7))
        trend = await conn.fetch(
            f"""SELECT coalesce(c.category, 'unknown') AS category,
                       count(*) FILTER (WHERE c.received_at >= {start}) AS this_week,
                       count(*) FILTER (WHERE c.received_at < {start}) AS last_week
                FROM cases c
                WHERE {where} AND c.received_at >= {previous} AND c.received_at < {end}
                GROUP BY 1 ORDER BY 1""",  # noqa: S608
            *trend_params,
        )
    return WeeklyReport(
        week_start=week_start.isoformat(),
        departments=[DepartmentWeek(**dict(row)) for row in departments],
        trend=sorted(
            (
                CategoryTrend(
                    category=row["category"],
                    this_week=row["this_week"],
                    last_week=row["last_week"],
                    rising=row["this_week"] > row["last_week"],
                )
                for row in trend
            ),
            key=lambda t: (not t.rising, -(t.this_week - t.last_week), t.category),
        ),
    )


_RESPONSIBLE = "coalesce(c.responsible_department, 'unattributed')"


@dataclass(frozen=True)
class MonthlyPage:
    """Which of the month's cases a monthly report lists: ``limit`` of them, those after
    ``after`` (closed_at, complaint_no: the report's order) when given; None: all."""

    limit: int | None = None
    after: tuple[datetime, str] | None = None


async def monthly(
    conn: DbConnection, filters: Filters, month: date, page: MonthlyPage | None = None
) -> MonthlyReport:
    """客诉案件统计表 (000 第二篇 9(九), 9(六)): the month's closed cases, who was
    responsible, and what they cost; due by the 10th of the next month. The totals count
    every case of the month; the rows are one ``page`` of them."""
    report, rows = await monthly_records(conn, filters, month, page or MonthlyPage())
    return report.model_copy(update={"rows": [MonthlyRow(**dict(row)) for row in rows]})


async def monthly_records(
    conn: DbConnection, filters: Filters, month: date, page: MonthlyPage
) -> tuple[MonthlyReport, Rows]:
    """The monthly report without its rows, and its rows as the database gives them: a
    whole month's CSV file writes tens of thousands straight from them."""
    first = month.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    params: list[Any] = []
    where = filters.where(params)
    closed = filters.days_between("c.closed_at", first, following - timedelta(days=1), params)
    cases = f"{where} AND c.status = 'closed' AND {' AND '.join(closed)}"
    async with _reading(conn, filters):
        # Each case's compensation is on its row (migration 009): one index range.
        totals = await conn.fetch(
            f"""SELECT GROUPING({_RESPONSIBLE}) = 1 AS is_total, {_RESPONSIBLE} AS department,
                       count(*) AS cases, coalesce(sum(c.loss), 0)::float8 AS loss,
                       coalesce(sum(c.compensation), 0)::float8 AS compensation
                FROM cases c WHERE {cases}
                GROUP BY GROUPING SETS (({_RESPONSIBLE}), ())""",  # noqa: S608
            *params,
        )
        listed = cases
        if page.after is not None:
            after_at, after_no = (bind_parameter(params, value) for value in page.after)
            listed += f" AND (c.closed_at, c.complaint_no) > ({after_at}, {after_no})"
        limit = "" if page.limit is None else f"LIMIT {bind_parameter(params, page.limit + 1)}"
        rows = await conn.fetch(
            f"""SELECT c.complaint_no, c.branch_id, c.category, c.closed_at,
                       c.responsible_department, c.share::float8 AS share,
                       coalesce(c.loss, 0)::float8 AS loss,
                       coalesce(c.compensation, 0)::float8 AS compensation,
                       coalesce(c.currency, 'CNY') AS currency
                FROM cases c WHERE {listed}
                ORDER BY c.closed_at, c.complaint_no {limit}""",  # noqa: S608
            *params,
        )
    more = page.limit is not None and len(rows) > page.limit
    rows = rows[: page.limit]
    last = rows[-1] if more else None
    total = next(row for row in totals if row["is_total"])
    count = total["cases"]
    report = MonthlyReport(
        month=first.strftime("%Y-%m"),
        due_by=following.replace(day=10).isoformat(),
        closed=count,
        rows=[],
        next_after=f"{last['closed_at'].isoformat()}|{last['complaint_no']}" if last else None,
        by_department=sorted(
            (
                MonthlyDepartment(
                    department=row["department"],
                    cases=row["cases"],
                    ratio=round(row["cases"] / count, 4),
                    loss=round(row["loss"], 2),
                    compensation=round(row["compensation"], 2),
                )
                for row in totals
                if not row["is_total"]
            ),
            key=lambda d: (-d.cases, d.department),
        ),
        loss_total=round(total["loss"], 2),
        compensation_total=round(total["compensation"], 2),
    )
    return report, rows


async def late_cases(conn: DbConnection, filters: Filters, limit: int = 50) -> list[LateCase]:
    """Open cases past a deadline: a breached clock, or a running one past due; for each,
    its clock due first. The most overdue come first (overdue hours to two places, then
    case number); only those that can make the first ``limit`` leave the database: a case
    due more than 0.01 h after the ``limit``-th most overdue rounds below it."""
    params: list[Any] = []
    where = filters.where(params)
    last = bind_parameter(params, limit - 1)
    async with _reading(conn, filters):
        # A case's earliest breached clock is on its row (migration 011); the clocks
        # running past due are few, read by due time. Each case keeps its clock due first.
        rows = await conn.fetch(
            f"""WITH late AS (
                    SELECT DISTINCT ON (c.complaint_no) c.complaint_no, c.branch_id,
                           c.category, c.status, c.assignee_name, k.clock, k.due_at
                    FROM (
                        SELECT c.complaint_no, c.breached_clock AS clock,
                               c.breached_due_at AS due_at
                        FROM cases c
                        WHERE {where} AND c.status NOT IN ('closed', 'not_upheld')
                          AND c.breached_due_at IS NOT NULL
                        UNION ALL
                        SELECT k.complaint_no, k.name, k.due_at FROM case_clocks k
                        WHERE k.state IN ('running', 'paused') AND k.due_at < now()
                    ) k JOIN cases c USING (complaint_no)
                    WHERE {where} AND c.status NOT IN ('closed', 'not_upheld')
                    ORDER BY c.complaint_no, k.due_at, k.clock
                )
                SELECT *, extract(epoch FROM now() - due_at) / 3600 AS overdue_hours FROM late
                WHERE due_at <= coalesce(
                    (SELECT due_at FROM late ORDER BY due_at OFFSET {last} LIMIT 1)
                        + interval '37 seconds',
                    'infinity')
                ORDER BY complaint_no""",  # noqa: S608
            *params,
        )
    late = [
        LateCase(**{**dict(row), "overdue_hours": round(float(row["overdue_hours"]), 2)})
        for row in rows
    ]
    return sorted(late, key=lambda case: -case.overdue_hours)[:limit]
