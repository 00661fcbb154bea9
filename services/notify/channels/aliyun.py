"""Alibaba Cloud SMS (dysmsapi, API version 2017-05-25, RPC style): SendSms and QuerySendDetails.

Mainland carriers only deliver templates registered with, and approved by, Aliyun, so a
message goes out as a TemplateCode and its variables, never as free text. Aliyun has no
idempotency key: OutId carries our reference, and an unknown outcome is reconciled by
finding that OutId in QuerySendDetails.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx

from services.notify.channels.base import (
    Lookup,
    NotSentError,
    OutcomeUnknownError,
    ProviderState,
    RejectedError,
    SmsMessage,
)
from services.notify.channels.gateway import NOT_SENT_TRANSPORT_ERRORS
from shared.redact import redact_text

ENDPOINT = "https://dysmsapi.aliyuncs.com/"
API_VERSION = "2017-05-25"
# Aliyun refuses a template variable longer than this.
PARAM_VALUE_LIMIT = 35
PAGE_SIZE = 50
# SendDate in QuerySendDetails is a day in Beijing time.
SHANGHAI = ZoneInfo("Asia/Shanghai")
# Flow control refuses this request for now, not the message. Every other code that is
# not OK (isv.MOBILE_NUMBER_ILLEGAL, isv.SMS_TEMPLATE_ILLEGAL, isv.SMS_SIGNATURE_ILLEGAL,
# InvalidAccessKeyId.NotFound, SignatureDoesNotMatch, ...) is an answer that the message
# was not taken and will not be on a later try either.
NOT_SENT_CODES = frozenset({"isv.BUSINESS_LIMIT_CONTROL", "Throttling.User"})
SEND_STATUS = {
    1: ProviderState.ACCEPTED,
    2: ProviderState.FAILED,
    3: ProviderState.DELIVERED,
}
# Of several records of one reference (a message taken twice), the furthest along counts.
_RANK = {ProviderState.DELIVERED: 0, ProviderState.ACCEPTED: 1, ProviderState.FAILED: 2}


def percent_encode(value: str) -> str:
    """Aliyun's encoding: RFC 3986 unreserved characters stay, all else is %XX of its UTF-8."""
    return quote(value, safe="~")


def signature(method: str, params: Mapping[str, str], secret: str) -> str:
    """The RPC signature (SignatureMethod HMAC-SHA1, SignatureVersion 1.0) of every param."""
    canonical = "&".join(
        f"{percent_encode(key)}={percent_encode(value)}" for key, value in sorted(params.items())
    )
    string_to_sign = f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def aliyun_number(e164: str) -> str:
    """Mainland numbers without +86; any other country as 00, country code, number."""
    if e164.startswith("+86"):
        return e164[3:]
    if e164.startswith("+"):
        return f"00{e164[1:]}"
    return e164


class AliyunSmsProvider:
    name = "aliyun"
    deduplicates = False
    can_look_up = True

    def __init__(
        self,
        *,
        access_key_id: str,
        access_key_secret: str,
        sign_name: str,
        template_codes: Mapping[str, str],
        endpoint: str = ENDPOINT,
        region_id: str = "cn-hangzhou",
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._access_key_id = access_key_id
        self._access_key_secret = access_key_secret
        self._sign_name = sign_name
        self._template_codes = dict(template_codes)
        self._endpoint = endpoint
        self._region_id = region_id
        self._timeout = timeout
        self._client = client or httpx.AsyncClient()

    async def send(self, message: SmsMessage) -> str:
        code = self._template_codes.get(message.template)
        if code is None:
            raise RejectedError(
                f"aliyun: template {message.template!r} has no registered TemplateCode"
            )
        variables = {key: value[:PARAM_VALUE_LIMIT] for key, value in message.params.items()}
        answer = await self._call(
            "SendSms",
            {
                "PhoneNumbers": aliyun_number(message.to),
                "SignName": self._sign_name,
                "TemplateCode": code,
                "TemplateParam": json.dumps(variables, ensure_ascii=False, separators=(",", ":")),
                "OutId": message.reference,
            },
        )
        biz_id = answer.get("BizId")
        if not isinstance(biz_id, str) or not biz_id:
            # Code OK says it was taken; without its id, lookup by OutId settles it.
            raise OutcomeUnknownError("aliyun SendSms: OK without a BizId")
        return biz_id

    async def lookup(self, message: SmsMessage, provider_id: str | None) -> Lookup:
        # A later attempt may have gone out after midnight in Beijing, so every day from
        # the first attempt to today is asked: missing it would mean sending twice.
        day = message.created_at.astimezone(SHANGHAI).date()
        last = max(day, datetime.now(SHANGHAI).date())
        while True:
            found = await self._find(message, provider_id, day)
            if found is not None:
                return found
            if day >= last:
                return Lookup(ProviderState.NOT_FOUND)
            day += timedelta(days=1)

    async def _find(self, message: SmsMessage, provider_id: str | None, day: date) -> Lookup | None:
        page = 1
        while True:
            params = {
                "PhoneNumber": aliyun_number(message.to),
                "SendDate": day.strftime("%Y%m%d"),
                "PageSize": str(PAGE_SIZE),
                "CurrentPage": str(page),
            }
            if provider_id:
                params["BizId"] = provider_id
            try:
                answer = await self._call("QuerySendDetails", params)
            except (RejectedError, OutcomeUnknownError) as error:
                raise NotSentError(f"aliyun: cannot be asked: {error}") from error
            details = (answer.get("SmsSendDetailDTOs") or {}).get("SmsSendDetailDTO") or []
            ours = [
                _as_lookup(detail, provider_id)
                for detail in details
                if isinstance(detail, dict) and detail.get("OutId") == message.reference
            ]
            if ours:
                return min(ours, key=lambda found: _RANK[found.state])
            if page * PAGE_SIZE >= int(answer.get("TotalCount") or 0):
                return None
            page += 1

    async def _call(self, action: str, params: Mapping[str, str]) -> dict[str, Any]:
        """One signed RPC call; the decoded answer when its Code is OK."""
        signed = {
            "AccessKeyId": self._access_key_id,
            "Action": action,
            "Format": "JSON",
            "RegionId": self._region_id,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": API_VERSION,
            **params,
        }
        signed["Signature"] = signature("POST", signed, self._access_key_secret)
        try:
            response = await self._client.post(self._endpoint, data=signed, timeout=self._timeout)
        except NOT_SENT_TRANSPORT_ERRORS as error:
            raise NotSentError(f"aliyun {action}: not reached ({type(error).__name__})") from error
        except httpx.HTTPError as error:
            raise OutcomeUnknownError(
                f"aliyun {action}: no answer ({type(error).__name__})"
            ) from error
        status = response.status_code
        if status in (429, 503):
            raise NotSentError(f"aliyun {action}: HTTP {status}")
        if status >= 500:
            raise OutcomeUnknownError(f"aliyun {action}: HTTP {status}")
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            if response.is_success:
                raise OutcomeUnknownError(f"aliyun {action}: HTTP {status}, unreadable answer")
            raise RejectedError(f"aliyun {action}: HTTP {status}, unreadable answer")
        code = answer.get("Code")
        if code == "OK":
            return answer
        detail = f"aliyun {action}: {code} {redact_text(str(answer.get('Message', '')))}"
        if code in NOT_SENT_CODES:
            raise NotSentError(detail)
        raise RejectedError(detail)

    async def aclose(self) -> None:
        await self._client.aclose()


def _as_lookup(detail: Mapping[str, Any], provider_id: str | None) -> Lookup:
    try:
        status = int(detail.get("SendStatus") or 0)
    except ValueError:
        status = 0
    # It is listed, so it was taken, whatever an unexpected status says about delivery.
    state = SEND_STATUS.get(status, ProviderState.ACCEPTED)
    return Lookup(state, provider_id, str(detail.get("ErrCode") or "") or None)
