"""Events produced by intake, on topic ``complaints.intake``: the case life cycle.

Every event about a case carries the case's status after it, a per-complaint
``sequence`` (1 for ``ComplaintReceived``) that orders intake's events, and the
handling ``round`` (2 and up after the customer reopened it).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field, field_validator

from shared.contracts.base import Event
from shared.contracts.submissions import (
    Attachment,
    Channel,
    Confidentiality,
    Customer,
    CustomerType,
    Language,
    Money,
    Product,
    Region,
    Severity,
)

__all__ = [
    "Attachment",
    "CaseEvent",
    "CaseStatus",
    "Channel",
    "CompensationRecorded",
    "ComplaintAcknowledged",
    "ComplaintAnsweredOnSpot",
    "ComplaintAssignmentRecorded",
    "ComplaintClosed",
    "ComplaintEscalated",
    "ComplaintNotUpheld",
    "ComplaintPutOnHold",
    "ComplaintReceived",
    "ComplaintReopened",
    "ComplaintResolved",
    "ComplaintResumed",
    "Confidentiality",
    "Customer",
    "CustomerType",
    "DecisionCommunicated",
    "FeedbackReceived",
    "InvestigationStarted",
    "Language",
    "NoteAdded",
    "Product",
    "ProjectDelivered",
    "ReassignmentApproved",
    "Region",
    "RepairedProductDelivered",
    "ReturnVisitRecorded",
    "Severity",
]


class CaseStatus(StrEnum):
    """Where a case stands (ISO 10002 stages and the seeds' flow, complaint-rules §1)."""

    RECEIVED = "received"
    ACKNOWLEDGED = "acknowledged"
    ASSIGNED = "assigned"
    INVESTIGATING = "investigating"
    ON_HOLD = "on_hold"
    ESCALATED = "escalated"
    REPLIED = "replied"
    ANSWERED_ON_SPOT = "answered_on_spot"
    NOT_UPHELD = "not_upheld"
    FEEDBACK_RECEIVED = "feedback_received"
    RESOLVED = "resolved"
    RETURN_VISITED = "return_visited"
    REOPENED = "reopened"
    CLOSED = "closed"


class CaseEvent(Event):
    """Fields every intake event about a case carries."""

    status: CaseStatus = Field(description="The case's status after this event.")
    previous_status: CaseStatus | None = None
    sequence: int = Field(ge=1, description="Orders intake's events of one complaint.")
    round: int = Field(default=1, ge=1, description="Handling round; grows on each reopening.")
    actor: str | None = Field(default=None, description="Staff id, 'customer' or 'system'.")
    note: str | None = None


class ComplaintReceived(CaseEvent):
    """A complaint was accepted, numbered and durably recorded."""

    EVENT_TYPE: ClassVar[str] = "ComplaintReceived"
    event_type: Literal["ComplaintReceived"] = "ComplaintReceived"

    received_at: AwareDatetime
    pack: str
    pack_version: str
    channel: Channel
    customer: Customer
    event_time: AwareDatetime | None = None
    event_place: str | None = None
    description: str
    customer_request: str | None = None
    category: str
    severity: Severity
    region: Region
    product: Product | None = None
    attachments: tuple[Attachment, ...] = ()
    first_contact_staff: str | None = Field(
        default=None, description="The first-responsible person (首问负责制), the case's owner."
    )
    submission_id: str | None = None
    confidentiality: Confidentiality = Field(
        default=Confidentiality.DEPARTMENT,
        description="Who may read the customer's record (seed 004); events from before "
        "the field, and submissions that did not say, read as department.",
    )

    @field_validator("confidentiality", mode="before")
    @classmethod
    def _unsaid_is_department(cls, value: object) -> object:
        return Confidentiality.DEPARTMENT if value is None else value


class ComplaintAcknowledged(CaseEvent):
    """Customer service confirmed receipt to the customer."""

    EVENT_TYPE: ClassVar[str] = "ComplaintAcknowledged"
    event_type: Literal["ComplaintAcknowledged"] = "ComplaintAcknowledged"


class ComplaintAssignmentRecorded(CaseEvent):
    """Intake took note of routing's assignment; the case is in its handler's hands."""

    EVENT_TYPE: ClassVar[str] = "ComplaintAssignmentRecorded"
    event_type: Literal["ComplaintAssignmentRecorded"] = "ComplaintAssignmentRecorded"

    department: str
    assignee_id: str | None


class InvestigationStarted(CaseEvent):
    EVENT_TYPE: ClassVar[str] = "InvestigationStarted"
    event_type: Literal["InvestigationStarted"] = "InvestigationStarted"


class NoteAdded(CaseEvent):
    EVENT_TYPE: ClassVar[str] = "NoteAdded"
    event_type: Literal["NoteAdded"] = "NoteAdded"


class DecisionCommunicated(CaseEvent):
    """The handling opinion was told to the customer (答复/知会处理意见)."""

    EVENT_TYPE: ClassVar[str] = "DecisionCommunicated"
    event_type: Literal["DecisionCommunicated"] = "DecisionCommunicated"

    decision: str
    feedback_token: str = Field(description="Goes into the satisfaction-survey link.")


class ComplaintAnsweredOnSpot(CaseEvent):
    """A grievance answered at once (抱怨类, 004 篇二 4.2.3.1); still numbered and recorded."""

    EVENT_TYPE: ClassVar[str] = "ComplaintAnsweredOnSpot"
    event_type: Literal["ComplaintAnsweredOnSpot"] = "ComplaintAnsweredOnSpot"

    answer: str
    feedback_token: str


class ComplaintNotUpheld(CaseEvent):
    """The complaint was found not to stand (投诉不成立) and answered politely."""

    EVENT_TYPE: ClassVar[str] = "ComplaintNotUpheld"
    event_type: Literal["ComplaintNotUpheld"] = "ComplaintNotUpheld"

    reason: str
    feedback_token: str


class ComplaintEscalated(CaseEvent):
    EVENT_TYPE: ClassVar[str] = "ComplaintEscalated"
    event_type: Literal["ComplaintEscalated"] = "ComplaintEscalated"

    reason: str
    escalated_to: str | None = None


class ComplaintPutOnHold(CaseEvent):
    """Handling waits, for the customer or for parts; deadline clocks pause."""

    EVENT_TYPE: ClassVar[str] = "ComplaintPutOnHold"
    event_type: Literal["ComplaintPutOnHold"] = "ComplaintPutOnHold"

    reason: Literal["waiting_for_customer", "awaiting_parts", "other"]


class ComplaintResumed(CaseEvent):
    EVENT_TYPE: ClassVar[str] = "ComplaintResumed"
    event_type: Literal["ComplaintResumed"] = "ComplaintResumed"


class ComplaintResolved(CaseEvent):
    EVENT_TYPE: ClassVar[str] = "ComplaintResolved"
    event_type: Literal["ComplaintResolved"] = "ComplaintResolved"

    resolution: str


class FeedbackReceived(CaseEvent):
    """The customer's evaluation (002 八); an unsatisfied one reopens the case."""

    EVENT_TYPE: ClassVar[str] = "FeedbackReceived"
    event_type: Literal["FeedbackReceived"] = "FeedbackReceived"

    quality: int = Field(ge=1, le=5)
    attitude: int = Field(ge=1, le=5)
    speed: int = Field(ge=1, le=5)
    comment: str | None = None
    satisfied: bool


class ReturnVisitRecorded(CaseEvent):
    """A return visit (回访) took place; an unsatisfied customer reopens the case."""

    EVENT_TYPE: ClassVar[str] = "ReturnVisitRecorded"
    event_type: Literal["ReturnVisitRecorded"] = "ReturnVisitRecorded"

    method: Literal["phone", "on_site", "email", "sms", "wechat"]
    outcome: str
    satisfied: bool


class CompensationRecorded(CaseEvent):
    """Compensation and loss, with the responsible department's share (000 第二篇 9(六))."""

    EVENT_TYPE: ClassVar[str] = "CompensationRecorded"
    event_type: Literal["CompensationRecorded"] = "CompensationRecorded"

    compensation_amount: Money
    loss_amount: Money
    currency: str = "CNY"
    responsible_department: str
    share: Decimal = Field(
        ge=0, le=1, max_digits=5, decimal_places=4, description="The department's share."
    )


class ReassignmentApproved(CaseEvent):
    """An approver agreed to move the case to another person; routing carries it out."""

    EVENT_TYPE: ClassVar[str] = "ReassignmentApproved"
    event_type: Literal["ReassignmentApproved"] = "ReassignmentApproved"

    approver: str
    to_department: str
    to_assignee: str
    previous_assignee: str | None
    reason: str


class RepairedProductDelivered(CaseEvent):
    """The repaired or replaced product was delivered to the customer."""

    EVENT_TYPE: ClassVar[str] = "RepairedProductDelivered"
    event_type: Literal["RepairedProductDelivered"] = "RepairedProductDelivered"

    delivered_at: AwareDatetime
    delivery_note: str | None = None


class ProjectDelivered(CaseEvent):
    """A project for the customer was delivered: its return visits begin (000 第四篇 五)."""

    EVENT_TYPE: ClassVar[str] = "ProjectDelivered"
    event_type: Literal["ProjectDelivered"] = "ProjectDelivered"

    delivered_at: AwareDatetime
    project: str


class ComplaintReopened(CaseEvent):
    """Handling starts again, linked to the earlier round, until the customer is satisfied."""

    EVENT_TYPE: ClassVar[str] = "ComplaintReopened"
    event_type: Literal["ComplaintReopened"] = "ComplaintReopened"

    reason: str


class ComplaintClosed(CaseEvent):
    EVENT_TYPE: ClassVar[str] = "ComplaintClosed"
    event_type: Literal["ComplaintClosed"] = "ComplaintClosed"


class ServiceVolumeRecorded(Event):
    """A branch's count of services delivered on a day (its complaint rate's denominator).

    Not about one complaint: its key (``complaint_no``) is ``<branch_id>/<day>``, so a
    day's figures stay in order; the latest stands.
    """

    EVENT_TYPE: ClassVar[str] = "ServiceVolumeRecorded"
    event_type: Literal["ServiceVolumeRecorded"] = "ServiceVolumeRecorded"

    day: date
    services: int = Field(ge=0)
