"""A generic HTTP SMS gateway: one JSON POST per message, de-duplicated by the gateway.

Aggregators and in-house gateways differ in the shape of their JSON body but agree on
the rest, so the body is a Jinja2 template that must render to JSON. The gateway drops
a second request carrying the same idempotency key, so an unknown outcome is
reconciled by sending again under the same reference; there is nothing to look up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
import structlog
from jinja2 import Environment, StrictUndefined, TemplateError

from services.notify.channels.base import (
    Lookup,
    NotSentError,
    OutcomeUnknownError,
    RejectedError,
    SmsMessage,
)
from shared.redact import redact_text

DEFAULT_BODY_TEMPLATE = (
    '{"to": {{ to|tojson }}, "text": {{ text|tojson }}, "reference": {{ reference|tojson }}}'
)
# Failures where the request certainly never reached the gateway's application.
NOT_SENT_TRANSPORT_ERRORS = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)
_SAMPLE = {
    "to": "+8613800138000",
    "text": 'A "sample" text',
    "reference": "sample-reference",
    "template": "acknowledgement",
    "language": "zh",
    "params": {"number": "261122001"},
}

log = structlog.get_logger("notify.gateway")

# The body is JSON, not HTML: values go in through |tojson, and HTML escaping would
# corrupt any text that an operator's template puts in without it.
_ENVIRONMENT = Environment(undefined=StrictUndefined, autoescape=False)  # noqa: S701


class GatewaySmsProvider:
    name = "gateway"
    deduplicates = True
    can_look_up = False

    def __init__(
        self,
        url: str,
        *,
        auth_header: str | None = None,
        auth_value: str | None = None,
        body_template: str = DEFAULT_BODY_TEMPLATE,
        idempotency_header: str = "Idempotency-Key",
        id_key: str = "id",
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if (auth_header is None) != (auth_value is None):
            raise ValueError("auth_header and auth_value are given together or not at all")
        self._url = url
        self._headers = {"Content-Type": "application/json"}
        if auth_header is not None and auth_value is not None:
            self._headers[auth_header] = auth_value
        try:
            self._template = _ENVIRONMENT.from_string(body_template)
        except TemplateError as error:
            raise ValueError(f"the gateway body template does not parse: {error}") from error
        self._idempotency_header = idempotency_header
        self._id_key = id_key
        self._timeout = timeout
        self._client = client or httpx.AsyncClient()
        # A template that cannot make JSON should stop start-up, not the first customer SMS.
        self._render(_SAMPLE)

    def _render(self, values: Mapping[str, Any]) -> bytes:
        try:
            body = self._template.render(values)
            json.loads(body)
        # TypeError: |tojson of an undefined name, which StrictUndefined lets through.
        except (TemplateError, ValueError, TypeError) as error:
            raise ValueError(
                f"the gateway body template does not render to JSON: {error}"
            ) from error
        return body.encode("utf-8")

    async def send(self, message: SmsMessage) -> str:
        values = {
            "to": message.to,
            "text": message.text,
            "reference": message.reference,
            "template": message.template,
            "language": message.language,
            "params": dict(message.params),
        }
        try:
            body = self._render(values)
        except ValueError as error:
            raise RejectedError(f"gateway: {error}") from error
        headers = {**self._headers, self._idempotency_header: message.reference}
        try:
            response = await self._client.post(
                self._url, content=body, headers=headers, timeout=self._timeout
            )
        except NOT_SENT_TRANSPORT_ERRORS as error:
            raise NotSentError(f"gateway: not reached ({type(error).__name__})") from error
        except httpx.HTTPError as error:
            raise OutcomeUnknownError(f"gateway: no answer ({type(error).__name__})") from error
        raise_for_status("gateway", response)
        try:
            provider_id = response.json()[self._id_key]
        except (ValueError, KeyError, TypeError):
            # The gateway took it (2xx); its id only helps correlation, and the reference,
            # which the gateway de-duplicates on, identifies the message just as well.
            log.warning("gateway answer without an id", id_key=self._id_key)
            return message.reference
        return str(provider_id)

    async def lookup(self, message: SmsMessage, provider_id: str | None) -> Lookup:
        raise NotSentError("gateway: cannot be asked; resend under the same reference instead")

    async def aclose(self) -> None:
        await self._client.aclose()


def raise_for_status(provider: str, response: httpx.Response) -> None:
    """Classify a non-2xx answer from a plain HTTP receiver."""
    status = response.status_code
    if response.is_success:
        return
    detail = f"{provider}: HTTP {status} {redact_text(response.text[:200])}".rstrip()
    # 408 and 429 refuse the request before reading it; 503 says the service is not
    # taking requests at all. Any other 5xx may come after the message was processed.
    if status in (408, 429, 503):
        raise NotSentError(detail)
    if status >= 500:
        raise OutcomeUnknownError(detail)
    raise RejectedError(detail)
