"""Signed webhook posts to a receiver's URL, and the check a receiver makes.

Every post carries ``Idempotency-Key`` (the notification id), ``X-Complaints-Timestamp``
(unix seconds) and ``X-Complaints-Signature: sha256=<hex>``, the HMAC-SHA256 with the
shared secret of ``f"{timestamp}.{raw body}"``, as Stripe and Slack sign theirs. Signing
the timestamp with the body lets a receiver refuse a replayed old post. Receivers are
documented to de-duplicate on Idempotency-Key, so an unknown outcome is reconciled by
posting again under the same key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

import httpx

from services.notify.channels.base import NotSentError, OutcomeUnknownError
from services.notify.channels.gateway import NOT_SENT_TRANSPORT_ERRORS, raise_for_status

SIGNATURE_PREFIX = "sha256="


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Complaints-Signature value for this timestamp and raw body."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    tolerance_seconds: float,
    now: float,
) -> bool:
    """True when the signature is the secret's over this exact body and the time is recent."""
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent_at) > tolerance_seconds:
        return False
    # As bytes: a header may hold characters compare_digest refuses in a str.
    return hmac.compare_digest(sign(secret, timestamp, body).encode(), signature.encode())


class WebhookSender:
    def __init__(
        self, secret: str, *, timeout: float = 10.0, client: httpx.AsyncClient | None = None
    ) -> None:
        self._secret = secret
        self._timeout = timeout
        self._client = client or httpx.AsyncClient()

    async def post(self, url: str, payload: Mapping[str, Any], reference: str) -> None:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": reference,
            "X-Complaints-Timestamp": timestamp,
            "X-Complaints-Signature": sign(self._secret, timestamp, body),
        }
        try:
            response = await self._client.post(
                url, content=body, headers=headers, timeout=self._timeout
            )
        except NOT_SENT_TRANSPORT_ERRORS as error:
            raise NotSentError(f"webhook: not reached ({type(error).__name__})") from error
        except httpx.HTTPError as error:
            raise OutcomeUnknownError(f"webhook: no answer ({type(error).__name__})") from error
        raise_for_status("webhook", response)

    async def aclose(self) -> None:
        await self._client.aclose()
