"""What every channel adapter promises: send once, say clearly how a send ended, look it up.

An adapter never retries by itself. It raises one of three errors and the
delivery worker decides:

- ``NotSentError``: the provider certainly did not take the message (connection
  refused, HTTP 429, 503 before processing). Safe to try again later.
- ``RejectedError``: the provider will never take it (bad number, bad
  credentials, unknown template). Retrying is pointless; the message fails.
- ``OutcomeUnknownError``: the request may have been taken (a timeout after the
  request was written, a 500). Never retried blindly: the worker reconciles,
  by ``lookup`` where the provider can be asked, or by resending under the same
  idempotency key where the provider de-duplicates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class NotSentError(Exception):
    """The provider certainly did not take the message; try again later."""


class RejectedError(Exception):
    """The provider will never take this message."""


class OutcomeUnknownError(Exception):
    """The provider may or may not have taken the message."""


@dataclass(frozen=True)
class SmsMessage:
    to: str  # E.164, e.g. +8613800138000
    text: str
    template: str  # the platform's template name, e.g. acknowledgement
    language: str  # zh or en
    params: Mapping[str, str]  # for providers that only send templates registered with them
    reference: str  # the notification id: the idempotency key or out-id at the provider
    created_at: datetime  # first attempt: bounds a lookup by date


class ProviderState(StrEnum):
    NOT_FOUND = "not_found"  # the provider has no such message: it was never taken
    ACCEPTED = "accepted"  # taken, delivery not yet reported
    DELIVERED = "delivered"  # the handset confirmed delivery
    FAILED = "failed"  # taken, then not delivered (undeliverable number, carrier refusal)


@dataclass(frozen=True)
class Lookup:
    state: ProviderState
    provider_id: str | None = None
    detail: str | None = None


class SmsProvider(Protocol):
    name: str
    # The provider drops a second request with the same reference: resending is safe.
    deduplicates: bool
    # ``lookup`` can find a message by our reference (or its provider id).
    can_look_up: bool

    async def send(self, message: SmsMessage) -> str:
        """Hand the message over; the provider's message id."""
        ...

    async def lookup(self, message: SmsMessage, provider_id: str | None) -> Lookup:
        """Where the message stands at the provider. Raises NotSentError if it cannot be asked."""
        ...

    async def aclose(self) -> None: ...
