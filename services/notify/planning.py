"""From an event to queued notifications, in the transaction that consumes the event.

The case's facts are updated, the pack's rules say who hears what, each message is
rendered now (so a later pack edit cannot change a message already promised) and
queued with a NotificationQueued event. The delivery worker sends it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import structlog

from services.notify import store
from services.notify.domain import (
    CaseFacts,
    PlannedMessage,
    event_details,
    facts_from,
    notification_id,
    notification_key,
    plan_for,
    release_time,
    sms_segments,
    updated,
)
from services.notify.settings import NotifySettings
from services.notify.store import Notification
from services.notify.templates import Templates
from shared.contracts import ComplaintReceived, Event, NotificationQueued
from shared.db import DbConnection
from shared.outbox import enqueue
from shared.policy import NOTIFICATION_TRIGGERS, LivePacks, PolicyPack, PolicyPackError
from shared.redact import mask_email, mask_phone

# Besides the triggers, the events that change who a later message goes to.
RELEVANT = NOTIFICATION_TRIGGERS | {"ComplaintAssignmentRecorded", "ReassignmentApproved"}
WAKE_CHANNEL = "notify_queued"

log = structlog.get_logger("notify.planning")


class Planner:
    def __init__(
        self, packs: LivePacks, templates: Templates, settings: NotifySettings, topic: str
    ) -> None:
        self._packs = packs
        self._templates = templates
        self._settings = settings
        self._topic = topic

    async def consume(self, conn: DbConnection, event: Event) -> int:
        """Apply ``event`` (already known to be a first delivery); messages queued."""
        if isinstance(event, ComplaintReceived):
            found = self._packs.current.for_branch(event.branch_id)
            if found is None:
                log.warning("no pack for the branch: nobody to notify", branch=event.branch_id)
                return 0
            case = facts_from(event, found[0])
            await store.save_case(conn, case)
            queued = await self._queue_for(conn, case, event)
            for parked in await store.take_parked(conn, event.complaint_no):
                queued += await self._apply(conn, parked)
            return queued
        return await self._apply(conn, event)

    async def _apply(self, conn: DbConnection, event: Event) -> int:
        case = await store.load_case(conn, event.complaint_no)
        if case is None:
            # Its ComplaintReceived comes on another topic and has not been read yet.
            await store.park(conn, event)
            return 0
        after = updated(case, event)
        if after != case:
            await store.save_case(conn, after)
        return await self._queue_for(conn, after, event)

    async def _queue_for(self, conn: DbConnection, case: CaseFacts, event: Event) -> int:
        if event.event_type not in NOTIFICATION_TRIGGERS:
            return 0
        try:
            pack = self._packs.current.require(case.pack)
        except PolicyPackError:
            log.warning("the case's pack is gone: nobody to notify", pack=case.pack)
            return 0
        planned = plan_for(pack, case, event)
        for rule, recipient, channel in planned.unreachable:
            log.warning("no address: not notified", rule=rule, recipient=recipient, channel=channel)
        queued = 0
        now = datetime.now(UTC)
        for message in planned.messages:
            notification = self._render(pack, case, event, message)
            not_before = (
                release_time(
                    now,
                    self._timezone(pack, case),
                    pack.quiet_hours,
                    urgent=case.urgent,
                    to_customer=message.recipient.is_customer,
                )
                if message.channel == "sms"
                else now
            )
            if not await store.queue(conn, notification, not_before):
                continue
            await enqueue(
                conn,
                self._topic,
                NotificationQueued.caused_by(
                    event,
                    producer="notify",
                    event_id=uuid.uuid5(notification.notification_id, "queued"),
                    notification_id=notification.notification_id,
                    channel=notification.channel,
                    recipient_masked=notification.recipient_masked,
                    template=notification.template,
                    to_customer=notification.to_customer,
                    rule=notification.rule,
                    language=notification.language,
                    not_before=not_before,
                    segments=notification.segments,
                ),
            )
            if notification.segments is not None and notification.segments > 1:
                log.info(
                    "SMS splits into segments",
                    segments=notification.segments,
                    template=notification.template,
                )
            queued += 1
        if queued:
            await conn.execute("SELECT pg_notify($1, '')", WAKE_CHANNEL)
        return queued

    @staticmethod
    def _timezone(pack: PolicyPack, case: CaseFacts) -> str:
        branch = next((b for b in pack.branches if b.id == case.branch_id), None)
        return branch.timezone if branch else "Asia/Shanghai"

    def _render(
        self, pack: PolicyPack, case: CaseFacts, event: Event, message: PlannedMessage
    ) -> Notification:
        language = message.recipient.language
        context = self.context(pack, case, event, message)
        rendered = self._templates.render(pack.pack, message.template, language, context)
        key = notification_key(event.event_id, message)
        sms_text = rendered.sms if message.channel == "sms" else None
        if message.channel == "sms" and sms_text is None:
            sms_text = rendered.subject  # a rule sends by SMS a template written for e-mail
        masked = (
            mask_email(message.address)
            if message.channel == "email"
            else mask_phone(message.address)
            if message.channel == "sms"
            else message.address
        )
        params = {
            name: str(value)
            for name in (
                "complaint_no",
                "organisation",
                "branch",
                "promised_reply_local",
                "due_local",
                "survey_url",
            )
            if (value := context.get(name)) is not None
        }
        return Notification(
            notification_id=notification_id(key),
            notification_key=key,
            complaint_no=case.complaint_no,
            branch_id=case.branch_id,
            correlation_id=event.correlation_id,
            source_event_id=event.event_id,
            channel=message.channel,
            rule=message.rule,
            template=message.template,
            language=language,
            address=message.address,
            recipient_masked=masked,
            to_customer=message.recipient.is_customer,
            subject=rendered.subject,
            body_text=rendered.text,
            body_html=rendered.html,
            sms_text=sms_text,
            params=params,
            segments=sms_segments(sms_text) if sms_text is not None else None,
        )

    def context(
        self, pack: PolicyPack, case: CaseFacts, event: Event, message: PlannedMessage
    ) -> dict[str, Any]:
        language = message.recipient.language
        zone = ZoneInfo(self._timezone(pack, case))
        branch = next((b for b in pack.branches if b.id == case.branch_id), None)
        category = pack.category(case.category)
        assignee = next((s for s in pack.staff if s.id == case.assignee), None)
        department = (
            pack.department(case.department)
            if case.department and pack.has_department(case.department)
            else None
        )

        def local(moment: datetime | None) -> str | None:
            return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else None

        def label(text: Any) -> str:
            return str(getattr(text, language))

        details = event_details(event, pack, language)
        token = details.pop("survey_token")
        due_at = details.pop("due_at")
        base = self._settings.survey_base_url.rstrip("/")
        survey_url = (
            f"{base}/survey/{quote(case.complaint_no)}?"
            + urlencode({"token": token, "lang": case.customer_language})
            if token
            else None
        )
        return {
            "language": language,
            "organisation": label(pack.name),
            "branch": label(branch.name) if branch else case.branch_id,
            "complaint_no": case.complaint_no,
            "customer_name": case.customer_name,
            "recipient_name": message.recipient.name,
            "category": label(category.label) if category else case.category,
            "severity": case.severity.value,
            "received_local": local(case.received_at),
            "promised_reply_local": local(case.promised_reply_at),
            "description": case.description[:200],
            "assignee_name": assignee.name if assignee else None,
            "department": label(department.name) if department else None,
            "case_url": f"{self._settings.case_base_url.rstrip('/')}/v1/cases/{case.complaint_no}",
            "event": event.model_dump(mode="json"),
            "survey_url": survey_url,
            "due_local": local(due_at),
            **details,
        }
