"""The public shapes of reporting's HTTP API: branch systems and dashboards code against these."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel


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
    state: str
    started_at: datetime
    due_at: datetime
    target_seconds: int


class NotificationView(BaseModel):
    notification_id: uuid.UUID
    channel: str
    recipient_masked: str
    template: str
    status: str
    occurred_at: datetime
    reason: str | None


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
