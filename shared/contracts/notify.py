"""Events produced by notify, on topic ``complaints.notify``: each notification's life.

queued → sent → delivered (where the provider reports delivery), or failed, or
unconfirmed (the provider may have taken it and cannot be asked: a person checks).
Recipients travel masked: the case file shows who was told without exposing
contact details to every consumer of the topic.
"""

from __future__ import annotations

import uuid
from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field

from shared.contracts.base import Event

NotificationChannel = Literal["email", "sms", "webhook"]


class NotificationEvent(Event):
    """What every notification event says about the message."""

    notification_id: uuid.UUID
    channel: NotificationChannel
    recipient_masked: str
    template: str
    to_customer: bool = Field(
        default=False, description="The customer is the recipient: the case timeline shows it."
    )


class NotificationQueued(NotificationEvent):
    """A rule matched: the message is recorded and waits for its send (quiet hours, backoff)."""

    EVENT_TYPE: ClassVar[str] = "NotificationQueued"
    event_type: Literal["NotificationQueued"] = "NotificationQueued"

    rule: str
    language: str
    not_before: AwareDatetime = Field(description="Held until then, e.g. by quiet hours.")
    segments: int | None = Field(
        default=None, description="SMS only: how many segments the text takes (1 unless split)."
    )


class NotificationSent(NotificationEvent):
    """A message reached its provider (SMTP server, SMS gateway, webhook) for delivery."""

    EVENT_TYPE: ClassVar[str] = "NotificationSent"
    event_type: Literal["NotificationSent"] = "NotificationSent"

    language: str
    sent_at: AwareDatetime
    provider: str | None = None
    provider_message_id: str | None = None
    attempts: int = Field(default=1, ge=1)
    segments: int | None = None


class NotificationDelivered(NotificationEvent):
    """The provider reported the message delivered to the handset."""

    EVENT_TYPE: ClassVar[str] = "NotificationDelivered"
    event_type: Literal["NotificationDelivered"] = "NotificationDelivered"

    provider: str
    delivered_at: AwareDatetime


class NotificationFailed(NotificationEvent):
    """A message could not be sent (a permanent refusal, or every attempt failed)."""

    EVENT_TYPE: ClassVar[str] = "NotificationFailed"
    event_type: Literal["NotificationFailed"] = "NotificationFailed"

    reason: str
    attempts: int
    dead_lettered: bool = Field(
        default=False,
        description="Attempts ran out: the message waits in notify's dead letters for a requeue.",
    )


class NotificationUnconfirmed(NotificationEvent):
    """The provider may have taken the message and cannot be asked (SMTP after the data was
    sent, with no reply): it is not resent blindly; a person checks and resolves it."""

    EVENT_TYPE: ClassVar[str] = "NotificationUnconfirmed"
    event_type: Literal["NotificationUnconfirmed"] = "NotificationUnconfirmed"

    reason: str
