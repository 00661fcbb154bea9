"""Twilio Programmable Messaging (REST API 2010-04-01): create a Message, fetch or list them.

Twilio takes no idempotency key on create, so an unknown outcome is reconciled by
looking the message up: by its sid when the create answered, otherwise by listing the
messages sent to the number since the first attempt's day.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from services.notify.channels.base import (
    Lookup,
    NotSentError,
    OutcomeUnknownError,
    ProviderState,
    SmsMessage,
)
from services.notify.channels.gateway import NOT_SENT_TRANSPORT_ERRORS, raise_for_status

API_BASE = "https://api.twilio.com"
PAGE_SIZE = 100
STATES = {
    "queued": ProviderState.ACCEPTED,
    "accepted": ProviderState.ACCEPTED,
    "scheduled": ProviderState.ACCEPTED,
    "sending": ProviderState.ACCEPTED,
    "sent": ProviderState.ACCEPTED,
    "delivered": ProviderState.DELIVERED,
    "read": ProviderState.DELIVERED,
    "failed": ProviderState.FAILED,
    "undelivered": ProviderState.FAILED,
    "canceled": ProviderState.FAILED,
}
# Of several messages matching one notification (taken twice), the furthest along counts.
_RANK = {ProviderState.DELIVERED: 0, ProviderState.ACCEPTED: 1, ProviderState.FAILED: 2}


class TwilioSmsProvider:
    name = "twilio"
    deduplicates = False
    can_look_up = True

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        api_base: str = API_BASE,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if from_number is None and messaging_service_sid is None:
            raise ValueError("Twilio needs a from_number or a messaging_service_sid")
        self._sender = (
            {"MessagingServiceSid": messaging_service_sid}
            if messaging_service_sid is not None
            else {"From": str(from_number)}
        )
        self._base_url = api_base.rstrip("/")
        self._messages_url = f"{self._base_url}/2010-04-01/Accounts/{account_sid}/Messages"
        self._auth = httpx.BasicAuth(account_sid, auth_token)
        self._timeout = timeout
        self._client = client or httpx.AsyncClient()

    async def send(self, message: SmsMessage) -> str:
        form = {"To": message.to, **self._sender, "Body": message.text}
        try:
            response = await self._client.post(
                f"{self._messages_url}.json", data=form, auth=self._auth, timeout=self._timeout
            )
        except NOT_SENT_TRANSPORT_ERRORS as error:
            raise NotSentError(f"twilio: not reached ({type(error).__name__})") from error
        except httpx.HTTPError as error:
            raise OutcomeUnknownError(f"twilio: no answer ({type(error).__name__})") from error
        raise_for_status("twilio", response)
        try:
            sid = response.json()["sid"]
        except (ValueError, KeyError, TypeError):
            sid = None
        if not isinstance(sid, str) or not sid:
            # A 2xx says it was created; without its sid, the listing settles it.
            raise OutcomeUnknownError(f"twilio: HTTP {response.status_code} without a sid")
        return sid

    async def lookup(self, message: SmsMessage, provider_id: str | None) -> Lookup:
        if provider_id:
            url = f"{self._messages_url}/{provider_id}.json"
            response = await self._get(url, None, missing_ok=True)
            if response.status_code == 404:
                return Lookup(ProviderState.NOT_FOUND)
            return _as_lookup(_json_object(response))
        # Twilio keeps no reference of ours on a message. The text is rendered per
        # notification (it names the complaint), so an exact match on the body, to this
        # number, is ours. Filtering by DateSent would miss a message still queued (it has
        # no send date yet), so the list (newest first) is read back to the first attempt.
        cutoff = message.created_at - timedelta(hours=1)
        page_url: str | None = f"{self._messages_url}.json"
        params: dict[str, str] | None = {"To": message.to, "PageSize": str(PAGE_SIZE)}
        ours: list[Lookup] = []
        while page_url is not None:
            page = _json_object(await self._get(page_url, params, missing_ok=False))
            found_messages = [m for m in page.get("messages") or [] if isinstance(m, dict)]
            ours += [
                _as_lookup(found) for found in found_messages if found.get("body") == message.text
            ]
            next_page = page.get("next_page_uri")
            if next_page and not any(_created(found) < cutoff for found in found_messages):
                # The next page's URI carries every filter already.
                page_url, params = f"{self._base_url}{next_page}", None
            else:
                page_url = None
        if not ours:
            return Lookup(ProviderState.NOT_FOUND)
        return min(ours, key=lambda found: _RANK[found.state])

    async def _get(
        self, url: str, params: Mapping[str, str] | None, *, missing_ok: bool
    ) -> httpx.Response:
        try:
            response = await self._client.get(
                url, params=params, auth=self._auth, timeout=self._timeout
            )
        except httpx.HTTPError as error:
            raise NotSentError(f"twilio: cannot be asked ({type(error).__name__})") from error
        if not response.is_success and not (missing_ok and response.status_code == 404):
            raise NotSentError(f"twilio: cannot be asked (HTTP {response.status_code})")
        return response

    async def aclose(self) -> None:
        await self._client.aclose()


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise NotSentError(f"twilio: cannot be asked (HTTP {response.status_code}, not JSON)")
    return answer


def _created(message: Mapping[str, Any]) -> datetime:
    try:
        return parsedate_to_datetime(str(message.get("date_created")))
    except (TypeError, ValueError):
        return datetime.max.replace(tzinfo=UTC)  # undated: keep reading


def _as_lookup(resource: Mapping[str, Any]) -> Lookup:
    status = str(resource.get("status") or "")
    # It exists, so it was taken, whatever an unexpected status says about delivery.
    state = STATES.get(status, ProviderState.ACCEPTED)
    error_code = resource.get("error_code")
    detail = f"{status} {error_code}" if error_code else status or None
    sid = resource.get("sid")
    return Lookup(state, sid if isinstance(sid, str) else None, detail)
