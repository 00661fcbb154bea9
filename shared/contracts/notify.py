"""Events produced by notify, on topic ``complaints.notify``.

Recipients travel masked: the case file shows who was told without exposing
contact details to every consumer of the topic.
"""

from __future__ import annotations

import uuid
from typing import ClassVar, Literal

from pydantic import AwareDatetime

from shared.contracts.base import Event

NotificationChannel = Literal["email", "sms", "webhook"]


class NotificationSent(Event):
    """A message reached its provider (SMTP server, SMS gateway, webhook) for delivery."""

    EVENT_TYPE: ClassVar[str] = "NotificationSent"
    event_type: Literal["NotificationSent"] = "NotificationSent"

    notification_id: uuid.UUID
    channel: NotificationChannel
    recipient_masked: str
    template: str
    language: str
    sent_at: AwareDatetime


class NotificationFailed(Event):
    """A message could not be sent after every attempt."""

    EVENT_TYPE: ClassVar[str] = "NotificationFailed"
    event_type: Literal["NotificationFailed"] = "NotificationFailed"

    notification_id: uuid.UUID
    channel: NotificationChannel
    recipient_masked: str
    template: str
    reason: str
    attempts: int
