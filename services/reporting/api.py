"""The public shapes of reporting's HTTP API: branch systems and dashboards code against these."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class Summary(BaseModel):
    total: int
    by_status: dict[str, int]
    by_category: dict[str, int]
    by_branch: dict[str, int]


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
