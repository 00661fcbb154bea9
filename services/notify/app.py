"""Notify: the customer-service voice. Tells customers their complaint was received.

A notification is recorded (status ``sending``) and committed before anything
is sent; the send's outcome is then recorded with its event in one transaction.
A redelivered event finds its notification key taken and sends nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from faststream import FastStream

from services.notify import store
from services.notify.email import TRANSIENT_SMTP_ERRORS, EmailSender, SmtpSender
from services.notify.settings import NotifySettings
from services.notify.templates import render
from shared.consumer import subscribe_events
from shared.consumer_app import PoolHolder, consumer_app, new_broker
from shared.contracts import ComplaintReceived, Event, NotificationFailed, NotificationSent
from shared.inbox import first_delivery
from shared.logging import configure_logging
from shared.outbox import enqueue
from shared.policy import LivePacks
from shared.redact import mask_email
from shared.topics import Topics

SCHEMA = "notify"
MIGRATIONS = Path(__file__).parent / "migrations"
PUBLISHES = ("notify",)
SUBSCRIBES_TO = ("intake",)
ACKNOWLEDGEMENT = "acknowledgement"

log = structlog.get_logger("notify")


def notification_key(source_event_id: uuid.UUID, recipient: str, template: str) -> str:
    return f"{source_event_id}/{recipient.lower()}/{template}"


def build_app(settings: NotifySettings, sender: EmailSender | None = None) -> FastStream:
    configure_logging("notify", settings.log_level)
    packs = LivePacks(settings.policy_packs_dir)
    mailer: EmailSender = sender or SmtpSender(settings)
    topics = Topics.in_namespace(settings.complaints_topic_namespace)
    holder = PoolHolder()
    broker = new_broker(settings, "notify")

    async def send_with_retries(message: EmailMessage) -> tuple[int, str | None]:
        """Attempts made, and the last error if every attempt failed."""
        error: str | None = None
        for attempt in range(1, settings.send_attempts + 1):
            try:
                await mailer.send(message)
                return attempt, None
            except TRANSIENT_SMTP_ERRORS as exc:
                error = f"{type(exc).__name__}: {exc}"
                log.warning("e-mail send failed", attempt=attempt, error=error)
                await asyncio.sleep(0.5 * 2 ** (attempt - 1))
        return settings.send_attempts, error

    async def on_intake_event(event: Event) -> None:
        if not isinstance(event, ComplaintReceived) or event.customer.email is None:
            return
        recipient = str(event.customer.email)
        language = event.customer.language.value
        key = notification_key(event.event_id, recipient, ACKNOWLEDGEMENT)
        notification_id = uuid.uuid5(uuid.NAMESPACE_URL, key)
        masked = mask_email(recipient)
        about: dict[str, Any] = {
            "notification_id": notification_id,
            "channel": "email",
            "recipient_masked": masked,
            "template": ACKNOWLEDGEMENT,
        }
        async with holder.pool.acquire() as conn, conn.transaction():
            if not await first_delivery(conn, event) or not await store.record_pending(
                conn,
                notification_id=notification_id,
                key=key,
                complaint_no=event.complaint_no,
                recipient_masked=masked,
                template=ACKNOWLEDGEMENT,
                language=language,
            ):
                return
        found = packs.current.for_branch(event.branch_id)
        timezone = ZoneInfo(found[1].timezone if found else "Asia/Shanghai")
        rendered = render(
            ACKNOWLEDGEMENT,
            language,
            complaint_no=event.complaint_no,
            customer_name=event.customer.name,
            received_local=event.received_at.astimezone(timezone).strftime("%Y-%m-%d %H:%M"),
        )
        message = EmailMessage()
        message["From"] = settings.mail_from
        message["To"] = recipient
        message["Subject"] = rendered.subject
        message["Message-ID"] = make_msgid(idstring=str(notification_id), domain="complaints.local")
        message["X-Complaint-No"] = event.complaint_no
        message.set_content(rendered.body)

        attempts, error = await send_with_retries(message)
        async with holder.pool.acquire() as conn, conn.transaction():
            outcome: NotificationSent | NotificationFailed
            if error is None:
                outcome = NotificationSent.caused_by(
                    event, producer="notify", **about, language=language, sent_at=datetime.now(UTC)
                )
            else:
                outcome = NotificationFailed.caused_by(
                    event, producer="notify", **about, reason=error, attempts=attempts
                )
            await store.record_outcome(conn, notification_id, attempts=attempts, error=error)
            await enqueue(conn, topics.notify.name, outcome)
        log.info("acknowledgement " + ("sent" if error is None else "failed"), attempts=attempts)

    subscribe_events(broker, [topics.intake], group_id="notify", handle=on_intake_event)
    return consumer_app(broker, settings, SCHEMA, MIGRATIONS, holder, with_relay=True, packs=packs)
