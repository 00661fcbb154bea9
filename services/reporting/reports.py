"""The reports, read from the projections: the numbers managers run the business from.

Every report takes the same filters (branch, pack, department, a range of received days)
and counts only cases intake has recorded (events from other services can arrive first).
Days are calendar days in the reporting time zone (``REPORT_TIMEZONE``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

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

        def bind(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        clauses = [f"{alias}.received_at IS NOT NULL"]
        if self.branch_id is not None:
            clauses.append(f"{alias}.branch_id = {bind(self.branch_id)}")
        if self.pack is not None:
            clauses.append(f"{alias}.pack = {bind(self.pack)}")
        if self.department is not None:
            clauses.append(f"{alias}.department = {bind(self.department)}")
        if self.date_from is not None:
            clauses.append(f"{self.day(alias, params)} >= {bind(self.date_from)}")
        if self.date_to is not None:
            clauses.append(f"{self.day(alias, params)} <= {bind(self.date_to)}")
        return " AND ".join(clauses)

    def day(self, alias: str, params: list[Any], column: str = "received_at") -> str:
        params.append(self.timezone)
        return f"({alias}.{column} AT TIME ZONE ${len(params)})::date"


async def summary(conn: DbConnection, filters: Filters, as_of: datetime | None = None) -> Summary:
    """Counts by every dimension and the open backlog; ``as_of``: as they stood then."""
    params: list[Any] = []
    where = filters.where(params)
    moment = _bind(params, as_of or datetime.now(UTC))
    day = filters.day("c", params)
    # The status at ``moment``: intake's latest event then (its sequence orders them).
    status = (
        f"""(SELECT h.status FROM case_status_history h
             WHERE h.complaint_no = c.complaint_no AND h.occurred_at <= {moment}
             ORDER BY h.sequence DESC LIMIT 1)"""  # noqa: S608 -- moment is a parameter
        if as_of is not None
        else "c.status"
    )
    rows = await conn.fetch(
        f"""WITH chosen AS (
                SELECT c.*, {status} AS status_then, {day} AS received_day
                FROM cases c WHERE {where} AND c.received_at <= {moment}
            )
            SELECT dimension, key, count(*) AS n,
                   min(received_at) FILTER (WHERE is_open) AS oldest
            FROM chosen,
                 LATERAL (SELECT status_then NOT IN ('closed', 'not_upheld') AS is_open) o,
                 LATERAL (VALUES ('status', status_then), ('category', category),
                                 ('branch', branch_id), ('pack', pack),
                                 ('department', department), ('channel', channel),
                                 ('day', received_day::text),
                                 ('age', CASE WHEN NOT is_open THEN NULL
                                     WHEN received_at > {moment} - interval '1 day' THEN '<1d'
                                     WHEN received_at > {moment} - interval '3 days' THEN '1-3d'
                                     WHEN received_at > {moment} - interval '7 days' THEN '3-7d'
                                     ELSE '>7d' END),
                                 ('total', 'all')) AS d(dimension, key)
            WHERE status_then IS NOT NULL
            GROUP BY dimension, key""",  # noqa: S608 -- filters bind values as parameters
        *params,
    )
    counts: dict[str, dict[str, int]] = {}
    oldest: datetime | None = None
    for row in rows:
        if row["key"] is None and row["dimension"] != "age":
            counts.setdefault(row["dimension"], {})["unknown"] = row["n"]
        elif row["key"] is not None:
            counts.setdefault(row["dimension"], {})[row["key"]] = row["n"]
        if row["dimension"] == "total" and row["oldest"] is not None:
            oldest = row["oldest"]
    by_age = {name: counts.get("age", {}).get(name, 0) for name, _ in AGE_BUCKETS}
    reference = as_of or datetime.now(UTC)
    return Summary(
        as_of=as_of,
        total=counts.get("total", {}).get("all", 0),
        by_status=counts.get("status", {}),
        by_category=counts.get("category", {}),
        by_branch=counts.get("branch", {}),
        by_pack=counts.get("pack", {}),
        by_department=counts.get("department", {}),
        by_channel=counts.get("channel", {}),
        by_day=dict(sorted(counts.get("day", {}).items())),
        backlog=Backlog(
            open=sum(by_age.values()),
            by_age=by_age,
            oldest_hours=(
                round((reference - oldest).total_seconds() / 3600, 2) if oldest else None
            ),
        ),
    )


def _bind(params: list[Any], value: Any) -> str:
    params.append(value)
    return f"${len(params)}"


async def sla(conn: DbConnection, filters: Filters) -> SlaReport:
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


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


_PERCENTILES = """count(x) AS n, avg(x) AS mean,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY x) AS p50,
    percentile_cont(0.9) WITHIN GROUP (ORDER BY x) AS p90,
    percentile_cont(0.95) WITHIN GROUP (ORDER BY x) AS p95"""


def _percentiles(row: Any) -> Percentiles:
    def hours(value: float | None) -> float | None:
        return round(value, 3) if value is not None else None

    return Percentiles(
        count=row["n"],
        mean_hours=hours(row["mean"]),
        p50_hours=hours(row["p50"]),
        p90_hours=hours(row["p90"]),
        p95_hours=hours(row["p95"]),
    )


async def response_times(conn: DbConnection, filters: Filters) -> ResponseTimes:
    params: list[Any] = []
    where = filters.where(params)
    contact = await conn.fetchrow(
        f"""SELECT {_PERCENTILES} FROM (
                SELECT extract(epoch FROM c.first_contact_at - c.assigned_at) / 3600 AS x
                FROM cases c WHERE {where} AND c.first_contact_at IS NOT NULL
                  AND c.assigned_at IS NOT NULL AND c.first_contact_at >= c.assigned_at
            ) t""",  # noqa: S608
        *params,
    )
    to_close = await conn.fetch(
        f"""SELECT category, {_PERCENTILES} FROM (
                SELECT coalesce(c.category, 'unknown') AS category,
                       extract(epoch FROM c.closed_at - c.received_at) / 3600 AS x
                FROM cases c WHERE {where} AND c.closed_at IS NOT NULL
            ) t GROUP BY category ORDER BY category""",  # noqa: S608
        *params,
    )
    return ResponseTimes(
        first_contact=_percentiles(contact),
        to_close_by_category={row["category"]: _percentiles(row) for row in to_close},
    )


async def satisfaction(conn: DbConnection, filters: Filters) -> SatisfactionReport:
    params: list[Any] = []
    where = filters.where(params)
    rows = await conn.fetch(
        f"""SELECT dimension, key, count(*) AS n, avg(score) AS mean,
                   count(*) FILTER (WHERE round(score) = 1) AS s1,
                   count(*) FILTER (WHERE round(score) = 2) AS s2,
                   count(*) FILTER (WHERE round(score) = 3) AS s3,
                   count(*) FILTER (WHERE round(score) = 4) AS s4,
                   count(*) FILTER (WHERE round(score) = 5) AS s5
            FROM (
                SELECT (f.quality + f.attitude + f.speed) / 3.0 AS score, c.branch_id,
                       c.department, c.assignee_id
                FROM case_feedback f JOIN cases c USING (complaint_no) WHERE {where}
            ) scored,
            LATERAL (VALUES ('all', 'all'), ('branch', branch_id), ('department', department),
                            ('person', assignee_id)) AS d(dimension, key)
            WHERE key IS NOT NULL
            GROUP BY dimension, key""",  # noqa: S608
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
    groups: dict[str, dict[str, ScoreStats]] = {}
    for row in rows:
        groups.setdefault(row["dimension"], {})[row["key"]] = ScoreStats(
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


async def complaint_rate(
    conn: DbConnection, filters: Filters, targets: dict[str, float]
) -> list[ComplaintRateRow]:
    """Complaints ÷ services delivered per branch, over the days the branch posted a figure
    for; ``targets``: each branch's pack target (hotel: under 1 %)."""
    params: list[Any] = []
    where = filters.where(params)
    day = filters.day("c", params)
    volume_range = ""
    if filters.date_from is not None:
        volume_range += f" AND v.day >= {_bind(params, filters.date_from)}"
    if filters.date_to is not None:
        volume_range += f" AND v.day <= {_bind(params, filters.date_to)}"
    rows = await conn.fetch(
        f"""WITH volumes AS (
                SELECT v.branch_id, sum(v.services) AS services FROM service_volumes v
                WHERE true {volume_range} GROUP BY v.branch_id
            ), complaints AS (
                SELECT c.branch_id, count(*) AS n FROM cases c
                WHERE {where} AND {day} IN (SELECT v.day FROM service_volumes v
                                            WHERE v.branch_id = c.branch_id {volume_range})
                GROUP BY c.branch_id
            )
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
    week_end = week_start + timedelta(days=6)
    params: list[Any] = []
    where = filters.where(params)
    received_day = filters.day("c", params)
    closed_day = filters.day("c", params, column="closed_at")
    due_day = filters.day("k", params, column="due_at")
    start, end = _bind(params, week_start), _bind(params, week_end)
    departments = await conn.fetch(
        f"""SELECT coalesce(c.department, 'unassigned') AS department,
                   count(*) FILTER (WHERE {received_day} BETWEEN {start} AND {end}) AS received,
                   count(*) FILTER (WHERE {closed_day} BETWEEN {start} AND {end}) AS closed,
                   count(*) FILTER (WHERE c.status NOT IN ('closed', 'not_upheld')
                                    AND {received_day} <= {end}) AS open,
                   coalesce(sum(b.n), 0)::int AS breaches
            FROM cases c
            LEFT JOIN LATERAL (
                SELECT count(*) AS n FROM case_clocks k
                WHERE k.complaint_no = c.complaint_no AND k.state = 'breached'
                  AND {due_day} BETWEEN {start} AND {end}
            ) b ON true
            WHERE {where}
            GROUP BY c.department HAVING count(*) FILTER (WHERE {received_day} <= {end}) > 0
            ORDER BY 1""",  # noqa: S608
        *params,
    )
    params = []
    where = filters.where(params)
    received_day = filters.day("c", params)
    start, end = _bind(params, week_start), _bind(params, week_end)
    previous = _bind(params, week_start - timedelta(days=7))
    trend = await conn.fetch(
        f"""SELECT coalesce(c.category, 'unknown') AS category,
                   count(*) FILTER (WHERE {received_day} BETWEEN {start} AND {end}) AS this_week,
                   count(*) FILTER (WHERE {received_day} >= {previous}
                                    AND {received_day} < {start}) AS last_week
            FROM cases c WHERE {where} AND {received_day} BETWEEN {previous} AND {end}
            GROUP BY 1 ORDER BY 1""",  # noqa: S608
        *params,
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


async def monthly(conn: DbConnection, filters: Filters, month: date) -> MonthlyReport:
    """客诉案件统计表 (000 第二篇 9(九), 9(六)): the month's closed cases, who was
    responsible, and what they cost; due by the 10th of the next month."""
    first = month.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    params: list[Any] = []
    where = filters.where(params)
    closed_day = filters.day("c", params, column="closed_at")
    start, end = _bind(params, first), _bind(params, following)
    rows = await conn.fetch(
        f"""SELECT c.complaint_no, c.branch_id, c.category, c.closed_at,
                   m.responsible_department, m.share::float8 AS share,
                   coalesce(m.loss, 0)::float8 AS loss,
                   coalesce(m.compensation, 0)::float8 AS compensation,
                   coalesce(m.currency, 'CNY') AS currency
            FROM cases c
            LEFT JOIN LATERAL (
                SELECT responsible_department, share, currency,
                       sum(loss) OVER () AS loss, sum(compensation) OVER () AS compensation
                FROM case_compensation x WHERE x.complaint_no = c.complaint_no
                ORDER BY occurred_at DESC LIMIT 1
            ) m ON true
            WHERE {where} AND c.status = 'closed' AND {closed_day} >= {start}
              AND {closed_day} < {end}
            ORDER BY c.closed_at, c.complaint_no""",  # noqa: S608
        *params,
    )
    report_rows = [MonthlyRow(**dict(row)) for row in rows]
    departments: dict[str, MonthlyDepartment] = {}
    for row in report_rows:
        name = row.responsible_department or "unattributed"
        entry = departments.setdefault(
            name, MonthlyDepartment(department=name, cases=0, ratio=0, loss=0, compensation=0)
        )
        entry.cases += 1
        entry.loss = round(entry.loss + row.loss, 2)
        entry.compensation = round(entry.compensation + row.compensation, 2)
    for entry in departments.values():
        entry.ratio = round(entry.cases / len(report_rows), 4)
    return MonthlyReport(
        month=first.strftime("%Y-%m"),
        due_by=following.replace(day=10).isoformat(),
        closed=len(report_rows),
        rows=report_rows,
        by_department=sorted(departments.values(), key=lambda d: (-d.cases, d.department)),
        loss_total=round(sum(r.loss for r in report_rows), 2),
        compensation_total=round(sum(r.compensation for r in report_rows), 2),
    )


async def late_cases(conn: DbConnection, filters: Filters, limit: int = 50) -> list[LateCase]:
    """Open cases past a deadline: a breached clock, or a running one past due."""
    params: list[Any] = []
    where = filters.where(params)
    rows = await conn.fetch(
        f"""SELECT DISTINCT ON (c.complaint_no) c.complaint_no, c.branch_id, c.category,
                   c.status, c.assignee_name, k.name AS clock, k.due_at,
                   extract(epoch FROM now() - k.due_at) / 3600 AS overdue_hours
            FROM cases c JOIN case_clocks k USING (complaint_no)
            WHERE {where} AND c.status NOT IN ('closed', 'not_upheld')
              AND (k.state = 'breached' OR (k.state IN ('running', 'paused') AND k.due_at < now()))
            ORDER BY c.complaint_no, k.due_at""",  # noqa: S608
        *params,
    )
    late = [
        LateCase(**{**dict(row), "overdue_hours": round(float(row["overdue_hours"]), 2)})
        for row in rows
    ]
    return sorted(late, key=lambda case: -case.overdue_hours)[:limit]
