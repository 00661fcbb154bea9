"""The public shapes of reporting's HTTP API: branch systems and dashboards code against these."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class Backlog(BaseModel):
    open: int = Field(description="Cases not closed (not-upheld cases count as closed).")
    by_age: dict[str, int] = Field(description="Open cases by age: <1d, 1-3d, 3-7d, >7d.")
    oldest_hours: float | None


class Summary(BaseModel):
    as_of: datetime | None = Field(description="The moment the counts stand at; none: now.")
    total: int
    by_status: dict[str, int]
    by_category: dict[str, int]
    by_branch: dict[str, int]
    by_pack: dict[str, int] = {}
    by_department: dict[str, int] = {}
    by_channel: dict[str, int] = {}
    by_day: dict[str, int] = Field(default={}, description="Received per day (YYYY-MM-DD).")
    backlog: Backlog | None = None


class ClockStats(BaseModel):
    clock: str
    stopped: int = Field(description="Clocks that ended: met or breached.")
    met: int
    breached: int
    on_time_rate: float | None = Field(description="met ÷ (met + breached); none if none ended.")
    running: int
    overdue: int = Field(description="Running or paused now, and past due.")


class SlaReport(BaseModel):
    clocks: list[ClockStats]
    breaches: int
    escalations_by_level: dict[str, int]


class Percentiles(BaseModel):
    count: int
    mean_hours: float | None
    p50_hours: float | None
    p90_hours: float | None
    p95_hours: float | None


class ResponseTimes(BaseModel):
    first_contact: Percentiles = Field(
        description="From assignment to the first contact with the customer (002 九): the "
        "first acknowledgement, decision, on-the-spot answer or not-upheld answer."
    )
    to_close_by_category: dict[str, Percentiles]


class ScoreStats(BaseModel):
    count: int
    mean: float | None = Field(description="Mean of quality, attitude and speed, 1–5.")
    distribution: dict[str, int] = Field(description="Feedback count by rounded mean score.")


class SatisfactionReport(BaseModel):
    overall: ScoreStats
    by_branch: dict[str, ScoreStats]
    by_department: dict[str, ScoreStats]
    by_person: dict[str, ScoreStats]
    reopen_rate: float | None = Field(description="Cases reopened ÷ cases decided.")
    not_upheld_rate: float | None = Field(description="Not-upheld ÷ cases decided.")
    return_visits_due: int
    return_visits_done: int
    return_visit_completion: float | None


class ComplaintRateRow(BaseModel):
    branch_id: str
    complaints: int
    services: int
    rate: float | None = Field(description="complaints ÷ services.")
    target: float | None = Field(description="The pack's target, e.g. hotel < 0.01.")
    above_target: bool | None


class DailyRow(BaseModel):
    category: str
    received: int
    by_severity: dict[str, int]
    by_status: dict[str, int]


class DailyReport(BaseModel):
    """The daily classification report: what came in that day, by category."""

    day: str
    rows: list[DailyRow]
    total: int


class DepartmentWeek(BaseModel):
    department: str
    received: int
    closed: int
    open: int
    breaches: int


class CategoryTrend(BaseModel):
    category: str
    this_week: int
    last_week: int
    rising: bool


class WeeklyReport(BaseModel):
    """The weekly department summary, with the categories rising week over week (倾向性问题)."""

    week_start: str
    departments: list[DepartmentWeek]
    trend: list[CategoryTrend]


class MonthlyRow(BaseModel):
    complaint_no: str
    branch_id: str
    category: str | None
    closed_at: datetime
    responsible_department: str | None
    share: float | None
    loss: float
    compensation: float
    currency: str


class MonthlyDepartment(BaseModel):
    department: str
    cases: int
    ratio: float = Field(description="Share of the month's closed cases.")
    loss: float
    compensation: float


class MonthlyReport(BaseModel):
    """客诉案件统计表: last month's closed cases with responsibility, loss and compensation."""

    month: str
    due_by: str = Field(description="The 10th of the following month.")
    closed: int
    rows: list[MonthlyRow] = Field(
        description="The month's cases in the order closed (then by number): a page of "
        "them, ``limit`` at most."
    )
    next_after: str | None = Field(
        default=None,
        description="More cases follow: pass this as ``after`` for the next page.",
    )
    by_department: list[MonthlyDepartment]
    loss_total: float
    compensation_total: float


class LateCase(BaseModel):
    complaint_no: str
    branch_id: str
    category: str | None
    status: str
    assignee_name: str | None
    clock: str
    due_at: datetime
    overdue_hours: float


class Dashboard(BaseModel):
    """Everything the dashboard at / shows, in one read."""

    generated_at: datetime
    summary: Summary
    sla: SlaReport
    satisfaction: SatisfactionReport
    late_cases: list[LateCase]


class AssigneeView(BaseModel):
    staff_id: str
    name: str | None


class AssignmentView(BaseModel):
    department: str
    assignee: AssigneeView | None
    assigned_at: datetime


class ClockView(BaseModel):
    clock_id: uuid.UUID
    name: str
    rule: str
    state: str = Field(description="running, paused, met or breached.")
    started_at: datetime
    due_at: datetime
    target_seconds: int
    calendar: str = Field(description="elapsed or working: how target_seconds counts.")
    round: int
    return_visit: bool
    paused_seconds: int = Field(description="Wall-clock seconds paused so far.")
    remaining_seconds: int | None = Field(
        description="Wall-clock seconds until due (negative: overdue); none once stopped."
    )
    stopped_at: datetime | None


class NotificationView(BaseModel):
    notification_id: uuid.UUID
    channel: str
    recipient_masked: str
    template: str
    status: str = Field(description="queued, sent, delivered, failed or unconfirmed.")
    occurred_at: datetime
    reason: str | None
    to_customer: bool
    dead_lettered: bool


class TimelineEntry(BaseModel):
    event_id: uuid.UUID
    event_type: str
    producer: str
    occurred_at: datetime
    details: dict[str, Any]


class FeedbackView(BaseModel):
    round: int
    quality: int
    attitude: int
    speed: int
    satisfied: bool
    comment: str | None
    occurred_at: datetime


class ReturnVisitView(BaseModel):
    method: str
    outcome: str
    satisfied: bool
    occurred_at: datetime


class CompensationView(BaseModel):
    compensation: float
    loss: float
    currency: str
    responsible_department: str
    share: float
    occurred_at: datetime


class EscalationView(BaseModel):
    level: int | None = Field(description="The ladder's rung (sla); none when staff escalated.")
    reason: str
    source: str = Field(description="sla (the ladder) or intake (a staff action).")
    occurred_at: datetime


class CaseFile(BaseModel):
    complaint_no: str
    status: str
    branch_id: str
    pack: str | None
    category: str | None
    channel: str | None
    severity: str | None
    region: str | None
    customer_type: str | None
    first_contact_staff: str | None
    received_at: datetime | None
    assignment: AssignmentView | None
    clocks: list[ClockView]
    notifications: list[NotificationView]
    timeline: list[TimelineEntry]
    round: int = 1
    closed_at: datetime | None = None
    feedback: list[FeedbackView] = []
    return_visits: list[ReturnVisitView] = []
    compensation: list[CompensationView] = []
    escalations: list[EscalationView] = []


class RecordRead(BaseModel):
    """One read, or refusal, of a complaint's customer record (seed 004 篇三 第四章)."""

    event_id: uuid.UUID
    read_at: datetime
    service: str = Field(description="The service that served or refused it.")
    reader: str = Field(description="'staff:<id>' or 'branch:<branch id>'.")
    reader_roles: list[str]
    reason: str = Field(description="Why, as the reader gave it (X-Access-Reason).")
    outcome: Literal["read", "refused"]
    contacts_shown: bool = Field(description="Whether phone and e-mail were shown in clear.")
    complaint_no: str
    branch_id: str


class RecordReads(BaseModel):
    """The audit trail of customer-record reads, newest first, a page at a time."""

    reads: list[RecordRead] = Field(description="``limit`` at most.")
    next_after: str | None = Field(
        default=None,
        description="More reads follow: pass this as ``after`` for the next page.",
    )
