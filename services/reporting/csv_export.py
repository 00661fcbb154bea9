"""Each report as one CSV table, for spreadsheets: nested figures become rows or columns."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from asyncpg import Record
from pydantic import BaseModel

from services.reporting.api import (
    ComplaintRateRow,
    DailyReport,
    LateCase,
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

Row = dict[str, Any]


def to_csv(rows: Sequence[Row]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [name for name in row if name not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def monthly_csv(report: MonthlyReport, cases: Sequence[Record]) -> str:
    """The monthly report's CSV, as ``to_csv(rows_of(report))`` with ``cases`` for its rows,
    written from the records themselves (their columns MonthlyRow's, in order): a whole
    month is tens of thousands of cases, and making each a model to dump it again took
    most of a second at 10^6."""
    case_columns = ["section", *MonthlyRow.model_fields]
    rest = rows_of(report.model_copy(update={"rows": []}))
    columns = list(case_columns) if cases else []
    for row in rest:
        columns += [name for name in row if name not in columns]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    padding = ("",) * (len(columns) - len(case_columns))
    closed_at = case_columns.index("closed_at")
    for case in cases:
        values = ["case", *case, *padding]
        values[closed_at] = _json_time(values[closed_at])
        writer.writerow(values)
    csv.DictWriter(out, fieldnames=columns, lineterminator="\n").writerows(rest)
    return out.getvalue()


def _json_time(value: datetime) -> str:
    """A time as a model's JSON dump gives it: in UTC, ending in Z."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def rows_of(report: BaseModel | Sequence[BaseModel]) -> list[Row]:
    if isinstance(report, Summary):
        return _summary(report)
    if isinstance(report, SlaReport):
        return [
            *(clock.model_dump() for clock in report.clocks),
            *(
                {"clock": f"escalations at level {level}", "stopped": n}
                for level, n in report.escalations_by_level.items()
            ),
        ]
    if isinstance(report, ResponseTimes):
        return [
            {"measure": "first_contact", "category": "", **_percentiles(report.first_contact)},
            *(
                {"measure": "to_close", "category": category, **_percentiles(figures)}
                for category, figures in report.to_close_by_category.items()
            ),
        ]
    if isinstance(report, SatisfactionReport):
        return _satisfaction(report)
    if isinstance(report, DailyReport):
        return [
            {
                "day": report.day,
                "category": row.category,
                "received": row.received,
                **{f"severity:{k}": v for k, v in sorted(row.by_severity.items())},
                **{f"status:{k}": v for k, v in sorted(row.by_status.items())},
            }
            for row in report.rows
        ]
    if isinstance(report, WeeklyReport):
        return [
            *({"section": "department", **d.model_dump()} for d in report.departments),
            *({"section": "trend", **t.model_dump()} for t in report.trend),
        ]
    if isinstance(report, MonthlyReport):
        return [
            *({"section": "case", **row.model_dump(mode="json")} for row in report.rows),
            *({"section": "department", **d.model_dump()} for d in report.by_department),
            {
                "section": "total",
                "loss": report.loss_total,
                "compensation": report.compensation_total,
            },
        ]
    if isinstance(report, Sequence) and all(
        isinstance(r, ComplaintRateRow | LateCase) for r in report
    ):
        return [r.model_dump(mode="json") for r in report]
    raise TypeError(f"no CSV form for {type(report).__name__}")


def _summary(report: Summary) -> list[Row]:
    rows: list[Row] = [{"dimension": "total", "key": "", "count": report.total}]
    for dimension in ("status", "category", "branch", "pack", "department", "channel", "day"):
        counts: dict[str, int] = getattr(report, f"by_{dimension}")
        rows += [{"dimension": dimension, "key": k, "count": n} for k, n in counts.items()]
    if report.backlog is not None:
        rows.append({"dimension": "backlog", "key": "open", "count": report.backlog.open})
        rows += [
            {"dimension": "backlog_age", "key": k, "count": n}
            for k, n in report.backlog.by_age.items()
        ]
    return rows


def _percentiles(figures: Percentiles) -> Row:
    return figures.model_dump()


def _satisfaction(report: SatisfactionReport) -> list[Row]:
    def scored(dimension: str, key: str, stats: ScoreStats) -> Row:
        return {
            "dimension": dimension,
            "key": key,
            "count": stats.count,
            "mean": stats.mean,
            **{f"score_{k}": v for k, v in stats.distribution.items()},
        }

    rows = [scored("overall", "", report.overall)]
    for dimension in ("branch", "department", "person"):
        groups: dict[str, ScoreStats] = getattr(report, f"by_{dimension}")
        rows += [scored(dimension, key, stats) for key, stats in groups.items()]
    rows += [
        {"dimension": "rate", "key": "reopen", "mean": report.reopen_rate},
        {"dimension": "rate", "key": "not_upheld", "mean": report.not_upheld_rate},
        {
            "dimension": "rate",
            "key": "return_visit_completion",
            "mean": report.return_visit_completion,
        },
    ]
    return rows
