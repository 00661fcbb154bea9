"""The shapes of intake's HTTP API, with the examples its OpenAPI document shows."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.intake.lifecycle import Action
from shared.contracts.intake import CaseStatus
from shared.contracts.submissions import (
    Channel,
    Confidentiality,
    CustomerType,
    Identifier,
    Language,
    Money,
    Region,
    Severity,
    ShortText,
    Text,
)

SUBMISSION_EXAMPLE: dict[str, Any] = {
    "branch_id": "hotel-demo",
    "channel": "phone",
    "customer": {
        "name": "张伟",
        "phone": "+86 138 0013 8000",
        "email": "zhang.wei@example.com",
        "type": "in_house_guest",
        "language": "zh",
    },
    "event_time": "2026-11-22T08:30:00+08:00",
    "event_place": "1208 房间",
    "description": "房间空调不制冷，已报修两次。",
    "customer_request": "今晚前修好或换房",
    "category": "facilities",
    "severity": "normal",
    "region": "domestic",
    "first_contact_staff": "fo-agent",
}


class ComplaintAccepted(BaseModel):
    complaint_no: str
    status: CaseStatus
    received_at: datetime
    correlation_id: str


class Problem(BaseModel):
    detail: str


class ActionRefused(BaseModel):
    detail: str
    status: CaseStatus
    allowed_actions: list[Action]


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    actor: Identifier | None = Field(
        default=None,
        description="The staff member taking the action: you, by default. Only an "
        "administrator names someone else, to enter an action on their behalf.",
    )
    note: ShortText | None = None


def _examples(**fields: Any) -> ConfigDict:
    return ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [fields]},
    )


class Acknowledge(_Action):
    model_config = _examples(note="已电话告知客户受理编号")


class StartInvestigation(_Action):
    model_config = _examples()


class AddNote(_Action):
    model_config = _examples(note="客户要求下午三点后联系")
    note: ShortText


class Escalate(_Action):
    model_config = _examples(reason="超出部门权限", escalated_to="general-manager")
    reason: ShortText
    escalated_to: Identifier | None = None


class Hold(_Action):
    model_config = _examples(reason="waiting_for_customer")
    reason: Literal["waiting_for_customer", "awaiting_parts", "other"]


class Resume(_Action):
    model_config = _examples()


class CommunicateDecision(_Action):
    model_config = _examples(decision="已更换压缩机，并赠送一晚房费。")
    decision: Text


class AnswerOnSpot(_Action):
    model_config = _examples(answer="已当面解释并致歉，客户接受。")
    answer: Text


class MarkNotUpheld(_Action):
    model_config = _examples(reason="经核查，账单金额正确，已向客户说明。")
    reason: Text


class Resolve(_Action):
    model_config = _examples(resolution="维修完成，客户确认制冷正常。")
    resolution: Text


class RecordReturnVisit(_Action):
    model_config = _examples(method="phone", outcome="客户表示满意", satisfied=True)
    method: Literal["phone", "on_site", "email", "sms", "wechat"]
    outcome: Text
    satisfied: bool


class RecordCompensation(_Action):
    model_config = _examples(
        compensation_amount="300.00",
        loss_amount="1200.00",
        currency="CNY",
        responsible_department="engineering",
        share="0.6",
    )
    compensation_amount: Money
    loss_amount: Money
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    responsible_department: Identifier
    share: Decimal = Field(ge=0, le=1, max_digits=5, decimal_places=4)


class Reassign(_Action):
    model_config = _examples(
        approver="fo-supervisor", to_assignee="eng-manager", reason="需要工程部现场处理"
    )
    approver: Identifier = Field(description="Staff allowed to approve reassignments.")
    to_assignee: Identifier
    to_department: Identifier | None = Field(
        default=None, description="Defaults to the new assignee's department."
    )
    reason: ShortText


class RecordDelivery(_Action):
    model_config = _examples(
        delivered_at="2026-11-25T15:00:00+08:00", delivery_note="送货单 D-1182"
    )
    delivered_at: AwareDatetime
    delivery_note: ShortText | None = None


class RecordProjectDelivery(_Action):
    model_config = _examples(delivered_at="2026-11-20T10:00:00+08:00", project="OA 系统二期")
    delivered_at: AwareDatetime
    project: ShortText


class Close(_Action):
    model_config = _examples()


class Reopen(_Action):
    model_config = _examples(reason="客户来电表示问题再次出现")
    reason: ShortText


class Feedback(BaseModel):
    """The customer's evaluation, sent by the satisfaction-survey link."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {"token": "3f1c…", "quality": 5, "attitude": 4, "speed": 4, "comment": "谢谢"}
            ]
        },
    )

    token: str = Field(min_length=1, max_length=100, description="From the survey link.")
    quality: int = Field(ge=1, le=5)
    attitude: int = Field(ge=1, le=5)
    speed: int = Field(ge=1, le=5)
    comment: ShortText | None = None

    @property
    def satisfied(self) -> bool:
        """A score of 2 or less on anything counts as not satisfied (002 八)."""
        return min(self.quality, self.attitude, self.speed) >= 3


class ActionApplied(BaseModel):
    complaint_no: str
    status: CaseStatus
    round: int
    sequence: int
    events: list[str]
    allowed_actions: list[Action]


class HistoryEntry(BaseModel):
    sequence: int
    event_id: uuid.UUID
    event_type: str
    status: CaseStatus
    previous_status: CaseStatus | None
    round: int
    actor: str | None
    details: dict[str, Any]
    occurred_at: datetime


class CaseView(BaseModel):
    """Intake's record of a case, with its whole append-only history."""

    complaint_no: str
    branch_id: str
    pack: str
    pack_version: str
    channel: str
    customer: dict[str, Any] = Field(
        description="Phone and e-mail masked unless you contact the customer: the branch, "
        "agents and supervisors see them in clear."
    )
    event_time: datetime | None
    event_place: str | None
    description: str
    customer_request: str | None
    category: str
    severity: str
    region: str
    product: dict[str, Any] | None
    attachments: list[dict[str, Any]]
    first_contact_staff: str | None = Field(description="The case's owner (首问负责制).")
    department: str | None
    assignee_id: str | None
    status: CaseStatus
    round: int
    confidentiality: Confidentiality = Field(
        description="Who may read the customer's record (seed 004)."
    )
    received_at: datetime
    updated_at: datetime
    submission_id: str | None
    correlation_id: str
    allowed_actions: list[Action]
    history: list[HistoryEntry]


class LabelView(BaseModel):
    zh: str
    en: str


class CategoryView(BaseModel):
    code: str
    label: LabelView


class BranchForm(BaseModel):
    """What a branch system needs to build its complaint form."""

    branch_id: str
    name: LabelView
    timezone: str
    pack: str
    pack_version: str
    categories: list[CategoryView]
    channels: list[Channel]
    customer_types: list[CustomerType]
    severities: list[Severity]
    regions: list[Region]
    languages: list[Language]


class ServiceVolumeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"services": 412}]})

    services: int = Field(ge=0, le=100_000_000, description="Services delivered that day.")


class ServiceVolume(BaseModel):
    branch_id: str
    day: date
    services: int
    changed: bool = Field(description="False when the day already had this figure.")
