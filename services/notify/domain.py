"""Who hears of what: the pack's notification rules applied to an event. Pure: no I/O.

Notify keeps its own copy of each case's facts (from the events it has seen), because
later events (a decision, a breached clock) do not repeat the customer's contact
details or the assignee.
"""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from shared.contracts import (
    ComplaintAssigned,
    ComplaintReceived,
    EscalationRaised,
    Event,
)
from shared.contracts.intake import (
    ComplaintAnsweredOnSpot,
    ComplaintAssignmentRecorded,
    ComplaintEscalated,
    ComplaintNotUpheld,
    ComplaintReopened,
    DecisionCommunicated,
    FeedbackReceived,
    ReassignmentApproved,
)
from shared.contracts.sla import ClockBreached, ClockEvent, ClockWarning, ReturnVisitDue
from shared.contracts.submissions import Channel, CustomerType, Region, Severity
from shared.deadlines import first_due
from shared.policy import NotificationRule, PolicyPack, QuietHours, Staff

ChannelName = Literal["email", "sms", "webhook"]
_NOTIFICATION_NAMESPACE = uuid.UUID("0d7f0e2c-8b7a-4f4e-b0a4-3f6e2b9c5a17")
# GSM 03.38 basic character set, plus the extension table (each of those takes two septets).
_GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = "^{}\\[~]|€\f"


class CaseFacts(BaseModel):
    """What notify knows of a case: kept in its own schema, updated by each event."""

    model_config = ConfigDict(frozen=True)

    complaint_no: str
    branch_id: str
    pack: str
    received_at: datetime
    customer_name: str
    customer_phone: str | None
    customer_email: str | None
    customer_language: Literal["zh", "en"]
    category: str
    severity: Severity
    channel: Channel
    customer_type: CustomerType
    region: Region
    description: str
    customer_request: str | None = None
    owner: str | None = None
    department: str | None = None
    assignee: str | None = None
    promised_reply_at: datetime | None = None

    @property
    def urgent(self) -> bool:
        return self.severity in (Severity.URGENT, Severity.MAJOR)


@dataclass(frozen=True)
class Recipient:
    key: str  # customer, staff:<id> or webhook:<name>: one message per key, channel, template
    name: str
    language: Literal["zh", "en"]
    email: str | None = None
    phone: str | None = None
    webhook: str | None = None

    @property
    def is_customer(self) -> bool:
        return self.key == "customer"

    def address(self, channel: ChannelName) -> str | None:
        if channel == "email":
            return self.email
        if channel == "sms":
            return to_e164(self.phone) if self.phone else None
        return self.webhook


@dataclass(frozen=True)
class PlannedMessage:
    rule: str
    template: str
    channel: ChannelName
    recipient: Recipient
    address: str


def facts_from(event: ComplaintReceived, pack: PolicyPack) -> CaseFacts:
    customer = event.customer
    return CaseFacts(
        complaint_no=event.complaint_no,
        branch_id=event.branch_id,
        pack=event.pack,
        received_at=event.received_at,
        customer_name=customer.name,
        customer_phone=customer.phone,
        customer_email=str(customer.email) if customer.email else None,
        customer_language="en" if customer.language.value == "en" else "zh",
        category=event.category,
        severity=event.severity,
        channel=event.channel,
        customer_type=customer.type,
        region=event.region,
        description=event.description,
        customer_request=event.customer_request,
        owner=event.first_contact_staff,
        promised_reply_at=promised_reply(pack, event),
    )


def promised_reply(pack: PolicyPack, event: ComplaintReceived) -> datetime | None:
    """The earliest deadline the complaint starts on arrival, return visits aside: the
    time by which the customer is promised an answer."""
    dues = [
        first_due(rule, event.received_at, pack.working_time(rule.calendar))
        for rule in pack.clocks
        if rule.starts_on == "ComplaintReceived"
        and not rule.return_visit
        and not rule.recurrence
        and rule.matches(event.category, event.customer.type, event.severity, event.region)
    ]
    return min(dues, default=None)


def updated(case: CaseFacts, event: Event) -> CaseFacts:
    """The case after ``event``: who has it now."""
    if isinstance(event, ComplaintAssigned):
        return case.model_copy(
            update={
                "department": event.department,
                "assignee": event.assignee.staff_id if event.assignee else case.assignee,
            }
        )
    if isinstance(event, ComplaintAssignmentRecorded) and event.assignee_id is not None:
        return case.model_copy(
            update={"department": event.department, "assignee": event.assignee_id}
        )
    return case


def rule_applies(rule: NotificationRule, case: CaseFacts, event: Event) -> bool:
    return rule.event == event.event_type and rule.when.matches(
        category=case.category,
        severity=case.severity,
        channel=case.channel,
        customer_type=case.customer_type,
        region=case.region,
        text=f"{case.description}\n{case.customer_request or ''}",
    )


@dataclass(frozen=True)
class Plan:
    messages: list[PlannedMessage]
    # (rule, recipient, channel) the rules name but no address exists for: logged, so a
    # missing phone number is noticed rather than silently skipped.
    unreachable: list[tuple[str, str, str]]


def plan_for(pack: PolicyPack, case: CaseFacts, event: Event) -> Plan:
    """Every message the pack's rules ask for on ``event``: one per recipient, channel and
    template, however many rules name the same person."""
    planned: dict[tuple[str, str, str], PlannedMessage] = {}
    missing: list[tuple[str, str, str]] = []
    for rule in pack.notifications:
        if not rule_applies(rule, case, event):
            continue
        for channel in rule.channels:
            for recipient in _recipients(pack, case, event, rule.to, channel):
                address = recipient.address(channel)
                if address is None:
                    missing.append((rule.id, recipient.key, channel))
                    continue
                key = (recipient.key, channel, rule.template)
                planned.setdefault(
                    key, PlannedMessage(rule.id, rule.template, channel, recipient, address)
                )
    return Plan(list(planned.values()), missing)


def _recipients(
    pack: PolicyPack,
    case: CaseFacts,
    event: Event,
    targets: tuple[str, ...],
    channel: ChannelName,
) -> list[Recipient]:
    found: dict[str, Recipient] = {}
    for target in targets:
        for recipient in _resolve(pack, case, event, target, channel):
            found.setdefault(recipient.key, recipient)
    return list(found.values())


def _resolve(
    pack: PolicyPack, case: CaseFacts, event: Event, target: str, channel: ChannelName
) -> list[Recipient]:
    if target == "customer":
        if channel == "webhook":
            return []
        return [
            Recipient(
                key="customer",
                name=case.customer_name,
                language=case.customer_language,
                email=case.customer_email,
                phone=case.customer_phone,
            )
        ]
    return [
        recipient
        for staff_or_department in _people(pack, case, event, target)
        for recipient in _staff_or_webhook(pack, staff_or_department, channel)
    ]


def _people(pack: PolicyPack, case: CaseFacts, event: Event, target: str) -> list[str]:
    """Staff ids or department codes a rule's ``to`` entry stands for on this event."""
    assignee = _assignee(case, event)
    match target:
        case "assignee":
            return [assignee] if assignee else []
        case "previous_assignee":
            if isinstance(event, ComplaintAssigned) and event.previous_assignee:
                return [event.previous_assignee.staff_id]
            if isinstance(event, ReassignmentApproved) and event.previous_assignee:
                return [event.previous_assignee]
            return []
        case "owner":
            owner = case.owner or assignee
            return [owner] if owner else []
        case "supervisor":
            return _supervisor(pack, assignee, case.department)
        case "also_notify":
            return list(event.also_notify) if isinstance(event, ComplaintAssigned) else []
        case "escalated_to":
            if isinstance(event, EscalationRaised):
                return list(event.to)
            if isinstance(event, ComplaintEscalated) and event.escalated_to:
                return [event.escalated_to]
            return []
        case _:
            return [target]


def _assignee(case: CaseFacts, event: Event) -> str | None:
    if isinstance(event, ComplaintAssigned):
        return event.assignee.staff_id if event.assignee else None
    return case.assignee


def _supervisor(pack: PolicyPack, assignee: str | None, department: str | None) -> list[str]:
    member = _member(pack, assignee)
    if member is not None and member.supervisor is not None:
        return [member.supervisor]
    code = member.department if member is not None else department
    if code is None or not pack.has_department(code):
        return []
    head = pack.department(code).head
    return [head] if head != assignee else []


def _member(pack: PolicyPack, staff_id: str | None) -> Staff | None:
    return next((s for s in pack.staff if s.id == staff_id), None)


def _staff_or_webhook(pack: PolicyPack, target: str, channel: ChannelName) -> list[Recipient]:
    member = _member(pack, target)
    if member is None and not pack.has_department(target):
        return []  # a staff id from an older pack version: nobody left to tell
    if channel == "webhook":
        code = member.department if member is not None else target
        department = pack.department(code)
        if department.webhook is None:
            return []
        return [
            Recipient(
                key=f"webhook:{department.webhook}",
                name=department.name.zh,
                language="zh",
                webhook=department.webhook,
            )
        ]
    if member is None:
        member = _member(pack, pack.department(target).head)
        assert member is not None  # the pack's validation: every head is staff
    return [
        Recipient(
            key=f"staff:{member.id}",
            name=member.name,
            language=member.language,
            email=str(member.email) if member.email else None,
            phone=member.phone,
        )
    ]


def notification_key(event_id: uuid.UUID, message: PlannedMessage) -> str:
    """Source event, recipient, channel and template: one message, however often the event
    arrives."""
    return f"{event_id}/{message.channel}/{message.address.lower()}/{message.template}"


def notification_id(key: str) -> uuid.UUID:
    return uuid.uuid5(_NOTIFICATION_NAMESPACE, key)


_NON_DIGITS = re.compile(r"[\s\-().]")


def to_e164(phone: str, default_country: str = "86") -> str | None:
    """+<country><number>; a bare 11-digit mainland mobile (1xx…) gets +86. None when the
    number cannot be an SMS destination."""
    digits = _NON_DIGITS.sub("", phone)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    if digits.startswith("+"):
        number = digits[1:]
    elif len(digits) == 11 and digits.startswith("1") and default_country == "86":
        number = "86" + digits
    else:
        return None
    if not number.isdigit() or not 7 <= len(number) <= 15 or number.startswith("0"):
        return None
    return "+" + number


def is_gsm7(text: str) -> bool:
    return all(c in _GSM7_BASIC or c in _GSM7_EXTENSION for c in text)


def sms_segments(text: str) -> int:
    """How many SMS a text takes: 160 GSM-7 characters or 70 UCS-2 ones fit in one; a
    split message carries a header, leaving 153 or 67 per part."""
    if is_gsm7(text):
        units = sum(2 if c in _GSM7_EXTENSION else 1 for c in text)
        single, part = 160, 153
    else:
        # UCS-2 counts UTF-16 code units: an emoji takes two.
        units = len(text.encode("utf-16-le")) // 2
        single, part = 70, 67
    if units <= single:
        return 1
    return -(-units // part)


def release_time(
    now: datetime, timezone: str, quiet: QuietHours, *, urgent: bool, to_customer: bool
) -> datetime:
    """When a customer SMS may go: now, or the end of the branch's quiet hours (the
    messages wait until morning). Urgent cases and staff are not held."""
    if urgent or not to_customer:
        return now
    local = now.astimezone(ZoneInfo(timezone))
    clock = local.timetz().replace(tzinfo=None)
    if not _in_quiet(clock, quiet.start, quiet.end):
        return now
    day = local.date() if clock < quiet.end else local.date() + timedelta(days=1)
    morning = datetime.combine(day, quiet.end, tzinfo=ZoneInfo(timezone))
    return morning.astimezone(now.tzinfo)


def _in_quiet(clock: time, start: time, end: time) -> bool:
    if start <= end:
        return start <= clock < end
    return clock >= start or clock < end


def retry_delay(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter (AWS Architecture Blog, 2015): a crowd of
    failed sends spreads out instead of hammering the provider in step."""
    return rng.uniform(0, min(cap, base * 2 ** (attempt - 1)))


def event_details(event: Event, pack: PolicyPack, language: str) -> dict[str, Any]:
    """Template variables particular to the triggering event; every name is always present."""
    details: dict[str, Any] = dict.fromkeys(
        (
            "previous_assignee_name",
            "reason",
            "decision",
            "survey_token",
            "clock",
            "due_at",
            "percent",
            "escalated_to_name",
            "level",
            "satisfied",
            "quality",
            "attitude",
            "speed",
            "comment",
        )
    )
    if isinstance(event, ComplaintAssigned):
        previous = event.previous_assignee
        details.update(previous_assignee_name=previous.name if previous else None)
        details.update(reason=event.reason or None)
    elif isinstance(event, DecisionCommunicated):
        details.update(decision=event.decision, survey_token=event.feedback_token)
    elif isinstance(event, ComplaintAnsweredOnSpot):
        details.update(decision=event.answer, survey_token=event.feedback_token)
    elif isinstance(event, ComplaintNotUpheld):
        details.update(decision=event.reason, survey_token=event.feedback_token)
    elif isinstance(event, ComplaintEscalated):
        member = _member(pack, event.escalated_to)
        details.update(reason=event.reason, escalated_to_name=member.name if member else None)
    elif isinstance(event, EscalationRaised):
        details.update(level=event.level, reason=event.reason)
    elif isinstance(event, ComplaintReopened):
        details.update(reason=event.reason)
    elif isinstance(event, FeedbackReceived):
        details.update(
            satisfied=event.satisfied,
            quality=event.quality,
            attitude=event.attitude,
            speed=event.speed,
            comment=event.comment,
        )
    if isinstance(event, ClockEvent):
        details.update(clock=event.name)
        if isinstance(event, ClockWarning | ClockBreached | ReturnVisitDue):
            details.update(due_at=event.due_at)
        if isinstance(event, ClockWarning):
            details.update(percent=round(event.fraction * 100))
    return details
