"""Read-side queries over the projections."""

from __future__ import annotations

import json
from typing import Any

from asyncpg import Record

from services.reporting.api import (
    AssigneeView,
    AssignmentView,
    CaseFile,
    ClockView,
    CompensationView,
    EscalationView,
    FeedbackView,
    NotificationView,
    ReturnVisitView,
    TimelineEntry,
)
from shared.db import DbConnection


async def case_row(conn: DbConnection, complaint_no: str) -> Record | None:
    """The case's row: what access to it turns on, and the head of its file."""
    return await conn.fetchrow("SELECT * FROM cases WHERE complaint_no = $1", complaint_no)


async def case_file(conn: DbConnection, case: Record) -> CaseFile:
    """The file of the case whose row is ``case``."""
    complaint_no = case["complaint_no"]
    clocks = await conn.fetch(
        """SELECT clock_id, name, rule, state, started_at, due_at, target_seconds, calendar,
                  round, return_visit, stopped_at,
                  paused_seconds + CASE WHEN paused_at IS NULL THEN 0
                      ELSE extract(epoch FROM now() - paused_at)::int END AS paused_seconds,
                  CASE WHEN stopped_at IS NOT NULL THEN NULL
                       ELSE extract(epoch FROM due_at - coalesce(paused_at, now()))::int
                  END AS remaining_seconds
           FROM case_clocks WHERE complaint_no = $1 ORDER BY round, due_at, name""",
        complaint_no,
    )
    notifications = await conn.fetch(
        "SELECT * FROM case_notifications WHERE complaint_no = $1 ORDER BY occurred_at",
        complaint_no,
    )
    timeline = await conn.fetch(
        "SELECT * FROM case_timeline WHERE complaint_no = $1 ORDER BY occurred_at, event_id",
        complaint_no,
    )

    async def rows(sql: str) -> list[dict[str, Any]]:
        return [dict(row) for row in await conn.fetch(sql, complaint_no)]

    feedback = await rows(
        """SELECT round, quality, attitude, speed, satisfied, comment, occurred_at
           FROM case_feedback WHERE complaint_no = $1 ORDER BY occurred_at"""
    )
    visits = await rows(
        """SELECT method, outcome, satisfied, occurred_at FROM case_return_visits
           WHERE complaint_no = $1 ORDER BY occurred_at"""
    )
    compensation = await rows(
        """SELECT compensation::float8 AS compensation, loss::float8 AS loss, currency,
                  responsible_department, share::float8 AS share, occurred_at
           FROM case_compensation WHERE complaint_no = $1 ORDER BY occurred_at"""
    )
    escalations = await rows(
        """SELECT level, reason, source, occurred_at FROM case_escalations
           WHERE complaint_no = $1 ORDER BY occurred_at"""
    )
    assignment = None
    if case["department"] is not None:
        assignee = (
            AssigneeView(staff_id=case["assignee_id"], name=case["assignee_name"])
            if case["assignee_id"]
            else None
        )
        assignment = AssignmentView(
            department=case["department"], assignee=assignee, assigned_at=case["assigned_at"]
        )
    return CaseFile(
        complaint_no=case["complaint_no"],
        status=case["status"],
        branch_id=case["branch_id"],
        pack=case["pack"],
        category=case["category"],
        channel=case["channel"],
        severity=case["severity"],
        region=case["region"],
        customer_type=case["customer_type"],
        first_contact_staff=case["first_contact_staff"],
        received_at=case["received_at"],
        assignment=assignment,
        clocks=[ClockView(**dict(row)) for row in clocks],
        notifications=[
            NotificationView(**{k: v for k, v in dict(row).items() if k != "complaint_no"})
            for row in notifications
        ],
        timeline=[
            TimelineEntry(
                event_id=row["event_id"],
                event_type=row["event_type"],
                producer=row["producer"],
                occurred_at=row["occurred_at"],
                details=json.loads(row["details"]),
            )
            for row in timeline
        ],
        round=case["round"],
        closed_at=case["closed_at"],
        feedback=[FeedbackView(**row) for row in feedback],
        return_visits=[ReturnVisitView(**row) for row in visits],
        compensation=[CompensationView(**row) for row in compensation],
        escalations=[EscalationView(**row) for row in escalations],
    )
