"""The shapes of intake's HTTP API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.intake import Channel, Customer, Region, Severity


class SubmitComplaint(BaseModel):
    """A complaint as a branch submits it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    branch_id: str = Field(min_length=1, max_length=100)
    channel: Channel
    customer: Customer
    description: str = Field(min_length=1, max_length=20_000)
    category: str = Field(min_length=1, max_length=100)
    severity: Severity = Severity.NORMAL
    region: Region = Region.DOMESTIC
    customer_request: str | None = Field(default=None, max_length=5_000)
    first_contact_staff: str | None = Field(default=None, max_length=100)


class ComplaintAccepted(BaseModel):
    complaint_no: str
    status: str
    received_at: datetime
    correlation_id: str


class Problem(BaseModel):
    detail: str
