"""A development stand-in for the SMS providers and webhook receivers: nothing leaves.

Why: the notify service speaks to Aliyun SMS, Twilio, a generic HTTP gateway and
webhook receivers, and in development and tests we want to see what it sent, prove its
signatures are right and make the providers fail on purpose, without an account, an
internet connection or any chance of texting a real customer. One HTTP server fakes the
subset of each public API that the adapters use:

- Aliyun SMS (dysmsapi 2017-05-25, RPC): ``POST /`` with form or query params, Actions
  SendSms and QuerySendDetails. The HMAC-SHA1 signature is verified with the configured
  AccessKeySecret (SignatureDoesNotMatch when wrong), as are AccessKeyId, Timestamp
  (15 minutes) and SignatureNonce (used once). One number per SendSms.
- Twilio (2010-04-01): ``POST /2010-04-01/Accounts/{sid}/Messages.json`` (create),
  ``GET .../Messages/{sid}.json`` (fetch), ``GET .../Messages.json`` (list; To, From,
  DateSent, DateSent<, DateSent>, PageSize, Page). HTTP Basic auth is checked.
- Generic gateway: ``POST /gateway/send`` with a JSON body holding ``to`` and ``text``;
  de-duplicates on Idempotency-Key (a repeat gets the first answer, nothing is recorded).
  With a gateway token configured it also wants ``Authorization: Bearer <token>``.
- Webhook receiver: ``POST /webhooks/{name}`` checks X-Complaints-Signature (HMAC-SHA256
  of "<X-Complaints-Timestamp>.<body>", 5 minutes of tolerance) and de-duplicates on
  Idempotency-Key.

Every message taken is kept in memory and appended as one JSON line to
<dir>/messages.jsonl (default dir: <repo>/.local/sms): provider, id, to, text (for
Aliyun: the TemplateCode and its params), reference (Aliyun's OutId, the idempotency
key), time. Delivery is decided by the number, like a provider's test numbers: numbers
ending 0000 are undeliverable, numbers ending 9999 never report, all others deliver.

For tests and operators:

- ``GET /_sink/health``; ``GET /_sink/messages[?provider=NAME]``; ``DELETE
  /_sink/messages`` (forgets everything taken; messages.jsonl stays as a log).
- ``POST /_sink/faults`` {"provider": "aliyun|twilio|gateway|webhook|*", "mode":
  "http500|timeout|http503|http429", "count": N}: the next N requests to that provider
  fail so. ``timeout`` takes the message, then answers only after the fault delay or
  when the client hangs up: the provider took it but the answer never came.
  ``http500`` takes it too, then fails: an ambiguous 500. ``http503`` and ``http429``
  refuse before taking anything. ``DELETE /_sink/faults`` clears pending faults.
- ``PUT /_sink/latency`` {"seconds": 0.05}: every provider request takes that long, a
  slow provider (for measuring how notify scales out).

    python deploy/local/sms_sink.py [--host 127.0.0.1] [--port 8026] [--dir PATH]

Credentials default to the development ones the notify service also defaults to, and
come from SMS_SINK_* variables or arguments when set (see --help). The log shows one
line per message with the number masked: logs must not carry customer numbers. Stops
cleanly, with exit status 0, on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode
from zoneinfo import ZoneInfo

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from shared.redact import mask_phone

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = REPO_ROOT / ".local" / "sms"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8026
DEV_ALIYUN_ACCESS_KEY_ID = "dev-access-key"
DEV_ALIYUN_SECRET = "dev-access-secret"  # noqa: S105 - a development credential by design
DEV_TWILIO_SID = "ACdev0000000000000000000000000000"
DEV_TWILIO_TOKEN = "dev-twilio-token"  # noqa: S105 - a development credential by design
DEV_WEBHOOK_SECRET = "dev-webhook-secret"  # noqa: S105 - a development credential by design
# Longer than any client's timeout, so a "timeout" fault is one.
DEFAULT_FAULT_DELAY = 60.0

PROVIDERS = ("aliyun", "twilio", "gateway", "webhook")
FAULT_MODES = ("http500", "timeout", "http503", "http429")
ALIYUN_VERSION = "2017-05-25"
ALIYUN_TIMESTAMP_TOLERANCE = timedelta(minutes=15)
ALIYUN_PARAM_LIMIT = 35
ALIYUN_NUMBER = re.compile(r"1[3-9]\d{9}|00[1-9]\d{6,14}")
ALIYUN_TEMPLATE_CODE = re.compile(r"SMS_\d+")
TWILIO_NUMBER = re.compile(r"\+[1-9]\d{1,14}")
TWILIO_BODY_LIMIT = 1600
WEBHOOK_TOLERANCE_SECONDS = 300
SHANGHAI = ZoneInfo("Asia/Shanghai")

log = logging.getLogger("sms_sink")


def fate(number: str) -> str:
    """What the handset does with a message: delivered, failed or pending."""
    if number.endswith("0000"):
        return "failed"
    if number.endswith("9999"):
        return "pending"
    return "delivered"


def same(given: str, expected: str) -> bool:
    """Compare secrets in constant time; as bytes, since a header may hold any character."""
    return hmac.compare_digest(given.encode(), expected.encode())


def aliyun_encode(value: str) -> str:
    return quote(value, safe="~")


def aliyun_signature(params: dict[str, str], secret: str) -> str:
    """Written from Aliyun's RPC signature document, apart from the adapter's, so that each
    checks the other."""
    pairs = sorted((k, v) for k, v in params.items() if k != "Signature")
    canonical = "&".join(f"{aliyun_encode(k)}={aliyun_encode(v)}" for k, v in pairs)
    to_sign = "POST&%2F&" + aliyun_encode(canonical)
    mac = hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def twilio_date(moment: datetime) -> str:
    """RFC 2822, as Twilio writes dates: Thu, 30 Jul 2015 20:12:31 +0000."""
    return format_datetime(moment.astimezone(UTC))


@dataclass
class Fault:
    mode: str
    remaining: int


@dataclass
class SinkState:
    directory: Path
    messages: list[dict[str, Any]] = field(default_factory=list)
    faults: dict[str, Fault] = field(default_factory=dict)
    # (provider, idempotency key) -> the first answer's status and body.
    answers: dict[tuple[str, str], tuple[int, dict[str, Any]]] = field(default_factory=dict)
    aliyun_nonces: set[str] = field(default_factory=set)
    latency: float = 0.0  # seconds every provider request takes: a slow provider

    def record(self, entry: dict[str, Any]) -> None:
        self.messages.append(entry)
        with (self.directory / "messages.jsonl").open("a", encoding="utf-8") as journal:
            journal.write(json.dumps(entry, ensure_ascii=False) + "\n")
        log.info("%s took %s for %s", entry["provider"], entry["id"], mask_phone(entry["to"]))

    def take_fault(self, provider: str) -> str | None:
        for key in (provider, "*"):
            fault = self.faults.get(key)
            if fault is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    del self.faults[key]
                return fault.mode
        return None

    def clear(self) -> None:
        self.messages.clear()
        self.answers.clear()


def new_entry(
    provider: str, message_id: str, to: str, text: str, reference: str | None
) -> dict[str, Any]:
    return {
        "provider": provider,
        "id": message_id,
        "to": to,
        "text": text,
        "reference": reference,
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }


def fault_answer(provider: str, mode: str) -> JSONResponse:
    status = {"http500": 500, "http503": 503, "http429": 429}[mode]
    body: dict[str, Any]
    if provider == "aliyun":
        code = {500: "InternalError", 503: "ServiceUnavailable", 429: "Throttling.User"}[status]
        body = {"Code": code, "Message": f"injected {mode}", "RequestId": str(uuid.uuid4())}
    elif provider == "twilio":
        body = {"code": 20000 + status, "message": f"injected {mode}", "status": status}
    else:
        body = {"error": f"injected {mode}"}
    return JSONResponse(body, status_code=status)


async def answer_late(request: Request, seconds: float) -> None:
    """Hold the answer until the client gives up (or the delay ends)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            # With the body read, the server's next message is the client hanging up.
            while (await request.receive())["type"] != "http.disconnect":
                pass


async def with_faults(
    state: SinkState,
    provider: str,
    request: Request,
    handle: Callable[[], Awaitable[JSONResponse]],
    fault_delay: float,
) -> JSONResponse:
    """Run a provider handler under the next pending fault, if any."""
    if state.latency:
        await asyncio.sleep(state.latency)
    mode = state.take_fault(provider)
    if mode in ("http503", "http429"):
        return fault_answer(provider, mode)
    response = await handle()
    if mode == "http500":
        return fault_answer(provider, mode)
    if mode == "timeout":
        await answer_late(request, fault_delay)
    return response


async def params_of(request: Request) -> dict[str, str]:
    """Query and form parameters together, as Aliyun's RPC endpoint takes either."""
    params = dict(request.query_params)
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        params.update(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
    return params


def aliyun_error(code: str, message: str, status: int = 200) -> JSONResponse:
    # Business errors (isv.*) come back with HTTP 200; request errors with a 4xx.
    return JSONResponse(
        {"Code": code, "Message": message, "RequestId": str(uuid.uuid4()).upper()},
        status_code=status,
    )


def twilio_error(code: int, message: str, status: int) -> JSONResponse:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return JSONResponse(body, status_code=status)


def create_app(
    state_dir: Path,
    *,
    aliyun_secret: str,
    twilio_sid: str,
    twilio_token: str,
    webhook_secret: str,
    aliyun_access_key_id: str = DEV_ALIYUN_ACCESS_KEY_ID,
    gateway_token: str | None = None,
    fault_delay: float = DEFAULT_FAULT_DELAY,
) -> FastAPI:
    state_dir.mkdir(parents=True, exist_ok=True)
    state = SinkState(state_dir)
    app = FastAPI(title="SMS sink", docs_url=None, redoc_url=None, openapi_url=None)
    twilio_messages: dict[str, dict[str, Any]] = {}

    # --- Aliyun -------------------------------------------------------------------------

    def aliyun_check(params: dict[str, str]) -> JSONResponse | None:
        """The common parameters and the signature; None when the request may proceed."""
        required = ("AccessKeyId", "Action", "Signature", "SignatureNonce", "Timestamp", "Version")
        missing = [name for name in required if not params.get(name)]
        if missing:
            return aliyun_error(f"Missing{missing[0]}", f"{missing[0]} is mandatory.", 400)
        if params["AccessKeyId"] != aliyun_access_key_id:
            return aliyun_error(
                "InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404
            )
        if params.get("SignatureMethod") != "HMAC-SHA1" or params.get("SignatureVersion") != "1.0":
            return aliyun_error("InvalidSignatureMethod", "Use HMAC-SHA1, version 1.0.", 400)
        try:
            sent_at = datetime.strptime(params["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(
                tzinfo=UTC
            )
        except ValueError:
            return aliyun_error("InvalidTimeStamp.Format", "Timestamp is not ISO8601 UTC.", 400)
        if abs(datetime.now(UTC) - sent_at) > ALIYUN_TIMESTAMP_TOLERANCE:
            return aliyun_error("InvalidTimeStamp.Expired", "Timestamp is too far from now.", 400)
        expected = aliyun_signature(params, aliyun_secret)
        if not same(params["Signature"], expected):
            return aliyun_error(
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation.",
                400,
            )
        if params["SignatureNonce"] in state.aliyun_nonces:
            return aliyun_error(
                "SignatureNonceUsed", "Specified signature nonce was used already.", 400
            )
        state.aliyun_nonces.add(params["SignatureNonce"])
        if params["Version"] != ALIYUN_VERSION:
            return aliyun_error(
                "InvalidVersion", f"Specified version {params['Version']} is not valid.", 400
            )
        return None

    def aliyun_send(params: dict[str, str]) -> JSONResponse:
        number = params.get("PhoneNumbers", "")
        if not ALIYUN_NUMBER.fullmatch(number):
            return aliyun_error("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        if not params.get("SignName"):
            return aliyun_error("isv.SMS_SIGNATURE_ILLEGAL", "签名不合法")
        code = params.get("TemplateCode", "")
        if not ALIYUN_TEMPLATE_CODE.fullmatch(code):
            return aliyun_error("isv.SMS_TEMPLATE_ILLEGAL", "模板不合法")
        try:
            variables = json.loads(params.get("TemplateParam") or "{}")
        except ValueError:
            return aliyun_error("isv.INVALID_JSON_PARAM", "JSON参数不合法")
        if not isinstance(variables, dict) or not all(
            isinstance(v, str) for v in variables.values()
        ):
            return aliyun_error("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        if any(len(v) > ALIYUN_PARAM_LIMIT for v in variables.values()):
            return aliyun_error("isv.PARAM_LENGTH_LIMIT", "参数超出长度限制")
        biz_id = f"{secrets.randbelow(10**18):018d}^0"
        text = f"{code} {json.dumps(variables, ensure_ascii=False, sort_keys=True)}"
        entry = new_entry("aliyun", biz_id, number, text, params.get("OutId") or None)
        entry.update(template_code=code, params=variables, sign_name=params["SignName"])
        state.record(entry)
        return JSONResponse(
            {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": str(uuid.uuid4()).upper()}
        )

    def aliyun_query(params: dict[str, str]) -> JSONResponse:
        number = params.get("PhoneNumber", "")
        if not ALIYUN_NUMBER.fullmatch(number):
            return aliyun_error("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        send_date = params.get("SendDate", "")
        try:
            page_size = int(params.get("PageSize", ""))
            page = int(params.get("CurrentPage", ""))
        except ValueError:
            return aliyun_error("isv.INVALID_PARAMETERS", "PageSize and CurrentPage are numbers")
        if not re.fullmatch(r"\d{8}", send_date) or not 1 <= page_size <= 50 or page < 1:
            return aliyun_error("isv.INVALID_PARAMETERS", "参数异常")
        biz_id = params.get("BizId")
        matching = [
            entry
            for entry in state.messages
            if entry["provider"] == "aliyun"
            and entry["to"] == number
            and datetime.fromisoformat(entry["time"]).astimezone(SHANGHAI).strftime("%Y%m%d")
            == send_date
            and (not biz_id or entry["id"] == biz_id)
        ]
        shown = matching[(page - 1) * page_size : page * page_size]
        return JSONResponse(
            {
                "Code": "OK",
                "Message": "OK",
                "RequestId": str(uuid.uuid4()).upper(),
                "TotalCount": len(matching),
                "SmsSendDetailDTOs": {"SmsSendDetailDTO": [aliyun_detail(e) for e in shown]},
            }
        )

    @app.post("/")
    async def aliyun(request: Request) -> JSONResponse:
        params = await params_of(request)

        async def handle() -> JSONResponse:
            refused = aliyun_check(params)
            if refused is not None:
                return refused
            if params["Action"] == "SendSms":
                return aliyun_send(params)
            if params["Action"] == "QuerySendDetails":
                return aliyun_query(params)
            return aliyun_error("InvalidAction.NotFound", "Specified api is not found.", 404)

        return await with_faults(state, "aliyun", request, handle, fault_delay)

    # --- Twilio -------------------------------------------------------------------------

    def twilio_refusal(request: Request, account_sid: str) -> JSONResponse | None:
        username, password = basic_auth(request.headers.get("authorization", ""))
        if not (same(username, twilio_sid) and same(password, twilio_token)):
            return twilio_error(20003, "Authenticate", 401)
        if account_sid != twilio_sid:
            return twilio_error(
                20404, f"The requested resource {request.url.path} was not found", 404
            )
        return None

    def twilio_resource(message: dict[str, Any]) -> dict[str, Any]:
        """The message as a later read shows it: the handset has answered by now."""
        shown = dict(message)
        if shown["status"] in ("queued", "accepted"):
            outcome = fate(shown["to"])
            shown["status"] = {
                "delivered": "delivered",
                "failed": "undelivered",
                "pending": "sent",
            }[outcome]
            if outcome == "failed":
                shown["error_code"] = 30003
                shown["error_message"] = "Unreachable destination handset"
        return shown

    @app.post("/2010-04-01/Accounts/{account_sid}/Messages.json")
    async def twilio_create(account_sid: str, request: Request) -> JSONResponse:
        form = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))

        async def handle() -> JSONResponse:
            refused = twilio_refusal(request, account_sid)
            if refused is not None:
                return refused
            to = form.get("To", "")
            if not TWILIO_NUMBER.fullmatch(to):
                return twilio_error(21211, f"Invalid 'To' Phone Number: {to}", 400)
            service = form.get("MessagingServiceSid")
            sender = form.get("From")
            if not sender and not service:
                return twilio_error(21603, "A 'From' phone number is required.", 400)
            body = form.get("Body", "")
            if not body:
                return twilio_error(21602, "Message body is required.", 400)
            if len(body) > TWILIO_BODY_LIMIT:
                return twilio_error(
                    21617, "The concatenated message body exceeds the 1600 character limit.", 400
                )
            sid = "SM" + uuid.uuid4().hex
            now = datetime.now(UTC)
            message = {
                "sid": sid,
                "account_sid": twilio_sid,
                "messaging_service_sid": service,
                "to": to,
                "from": sender,
                "body": body,
                "status": "accepted" if service else "queued",
                "direction": "outbound-api",
                "num_segments": str(max(1, -(-len(body) // 153))),
                "error_code": None,
                "error_message": None,
                "price": None,
                "api_version": "2010-04-01",
                "date_created": twilio_date(now),
                "date_updated": twilio_date(now),
                "date_sent": twilio_date(now),
                "uri": f"/2010-04-01/Accounts/{twilio_sid}/Messages/{sid}.json",
            }
            twilio_messages[sid] = message
            state.record(new_entry("twilio", sid, to, body, None) | {"from": sender or service})
            return JSONResponse(message, status_code=201)

        return await with_faults(state, "twilio", request, handle, fault_delay)

    @app.get("/2010-04-01/Accounts/{account_sid}/Messages/{message_sid}.json")
    async def twilio_fetch(account_sid: str, message_sid: str, request: Request) -> JSONResponse:
        async def handle() -> JSONResponse:
            refused = twilio_refusal(request, account_sid)
            if refused is not None:
                return refused
            message = twilio_messages.get(message_sid)
            if message is None:
                return twilio_error(
                    20404, f"The requested resource {request.url.path} was not found", 404
                )
            return JSONResponse(twilio_resource(message))

        return await with_faults(state, "twilio", request, handle, fault_delay)

    @app.get("/2010-04-01/Accounts/{account_sid}/Messages.json")
    async def twilio_list(account_sid: str, request: Request) -> JSONResponse:
        async def handle() -> JSONResponse:
            refused = twilio_refusal(request, account_sid)
            if refused is not None:
                return refused
            query = request.query_params
            try:
                page_size = min(int(query.get("PageSize", "50")), 1000)
                page = int(query.get("Page", "0"))
            except ValueError:
                return twilio_error(20001, "PageSize and Page are numbers", 400)
            shown = [
                twilio_resource(m)
                for m in reversed(twilio_messages.values())  # newest first, as Twilio lists
                if twilio_listed(m, query)
            ]
            base = request.url.path
            filters = {k: v for k, v in query.items() if k not in ("Page", "PageSize")}

            def page_uri(number: int) -> str:
                return f"{base}?{urlencode({**filters, 'PageSize': page_size, 'Page': number})}"

            has_next = (page + 1) * page_size < len(shown)
            return JSONResponse(
                {
                    "messages": shown[page * page_size : (page + 1) * page_size],
                    "page": page,
                    "page_size": page_size,
                    "uri": page_uri(page),
                    "first_page_uri": page_uri(0),
                    "next_page_uri": page_uri(page + 1) if has_next else None,
                    "previous_page_uri": page_uri(page - 1) if page > 0 else None,
                }
            )

        return await with_faults(state, "twilio", request, handle, fault_delay)

    # --- Generic gateway and webhooks ---------------------------------------------------

    @app.post("/gateway/send")
    async def gateway(request: Request) -> JSONResponse:
        raw = await request.body()

        async def handle() -> JSONResponse:
            if gateway_token is not None and not same(
                request.headers.get("authorization", ""), f"Bearer {gateway_token}"
            ):
                return JSONResponse({"error": "unauthorized"}, status_code=401)
            key = request.headers.get("idempotency-key")
            if not key:
                return JSONResponse({"error": "Idempotency-Key is required"}, status_code=400)
            first = state.answers.get(("gateway", key))
            if first is not None:
                return JSONResponse(
                    first[1], status_code=first[0], headers={"Idempotent-Replayed": "true"}
                )
            try:
                body = json.loads(raw)
            except ValueError:
                return JSONResponse({"error": "the body is not JSON"}, status_code=400)
            if not isinstance(body, dict) or not all(
                isinstance(body.get(k), str) for k in ("to", "text")
            ):
                return JSONResponse({"error": "to and text are required strings"}, status_code=422)
            message_id = "gw-" + uuid.uuid4().hex
            state.record(new_entry("gateway", message_id, body["to"], body["text"], key))
            answer = {"id": message_id, "status": "accepted"}
            state.answers["gateway", key] = (200, answer)
            return JSONResponse(answer)

        return await with_faults(state, "gateway", request, handle, fault_delay)

    @app.post("/webhooks/{name}")
    async def webhook(name: str, request: Request) -> JSONResponse:
        raw = await request.body()

        async def handle() -> JSONResponse:
            timestamp = request.headers.get("x-complaints-timestamp", "")
            signature = request.headers.get("x-complaints-signature", "")
            if (
                not timestamp.isdigit()
                or abs(time.time() - int(timestamp)) > WEBHOOK_TOLERANCE_SECONDS
            ):
                return JSONResponse({"error": "missing or stale timestamp"}, status_code=401)
            if not same(signature, webhook_signature(webhook_secret, timestamp, raw)):
                return JSONResponse({"error": "bad signature"}, status_code=401)
            key = request.headers.get("idempotency-key")
            if not key:
                return JSONResponse({"error": "Idempotency-Key is required"}, status_code=400)
            first = state.answers.get(("webhook", key))
            if first is not None:
                return JSONResponse(
                    first[1], status_code=first[0], headers={"Idempotent-Replayed": "true"}
                )
            try:
                payload = json.loads(raw)
            except ValueError:
                return JSONResponse({"error": "the body is not JSON"}, status_code=400)
            delivery_id = "wh-" + uuid.uuid4().hex
            text = raw.decode("utf-8", errors="replace")
            state.record(new_entry("webhook", delivery_id, name, text, key) | {"payload": payload})
            answer = {"received": True, "id": delivery_id}
            state.answers["webhook", key] = (200, answer)
            return JSONResponse(answer)

        return await with_faults(state, "webhook", request, handle, fault_delay)

    # --- Tests and operators ------------------------------------------------------------

    @app.get("/_sink/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/_sink/messages")
    async def messages(provider: str | None = None) -> list[dict[str, Any]]:
        return [m for m in state.messages if provider is None or m["provider"] == provider]

    @app.delete("/_sink/messages")
    async def forget_messages() -> dict[str, int]:
        forgotten = len(state.messages)
        state.clear()
        twilio_messages.clear()
        return {"forgotten": forgotten}

    @app.post("/_sink/faults")
    async def add_fault(request: Request) -> JSONResponse:
        try:
            wanted = json.loads(await request.body())
            provider, mode, count = wanted["provider"], wanted["mode"], int(wanted.get("count", 1))
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "want JSON {provider, mode, count}"}, status_code=400)
        if provider not in (*PROVIDERS, "*") or mode not in FAULT_MODES or count < 1:
            wanted_help = (
                f"provider in {[*PROVIDERS, '*']}, mode in {list(FAULT_MODES)}, count >= 1"
            )
            return JSONResponse({"error": wanted_help}, status_code=400)
        state.faults[provider] = Fault(mode, count)
        return JSONResponse({"provider": provider, "mode": mode, "count": count})

    @app.put("/_sink/latency")
    async def set_latency(request: Request) -> JSONResponse:
        try:
            seconds = float(json.loads(await request.body())["seconds"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "want JSON {seconds}"}, status_code=400)
        if not 0 <= seconds <= 60:
            return JSONResponse({"error": "seconds from 0 to 60"}, status_code=400)
        state.latency = seconds
        return JSONResponse({"seconds": seconds})

    @app.delete("/_sink/faults")
    async def clear_faults() -> dict[str, int]:
        cleared = len(state.faults)
        state.faults.clear()
        return {"cleared": cleared}

    return app


def aliyun_detail(entry: dict[str, Any]) -> dict[str, Any]:
    sent = datetime.fromisoformat(entry["time"]).astimezone(SHANGHAI)
    outcome = fate(entry["to"])
    status, err_code = {
        "pending": (1, ""),
        "failed": (2, "MOBILE_NOT_ON_SERVICE"),
        "delivered": (3, "DELIVERED"),
    }[outcome]
    return {
        "PhoneNum": entry["to"],
        "SendStatus": status,
        "ErrCode": err_code,
        "TemplateCode": entry["template_code"],
        "Content": entry["text"],
        "SendDate": sent.strftime("%Y-%m-%d %H:%M:%S"),
        "ReceiveDate": "" if outcome == "pending" else sent.strftime("%Y-%m-%d %H:%M:%S"),
        "OutId": entry["reference"] or "",
    }


def basic_auth(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    return username, password


def twilio_listed(message: dict[str, Any], query: Mapping[str, str]) -> bool:
    """Twilio's list filters: To, From, and DateSent exactly, on or before, or on or after."""
    if "To" in query and message["to"] != query["To"]:
        return False
    if "From" in query and message["from"] != query["From"]:
        return False
    sent = datetime.strptime(message["date_sent"], "%a, %d %b %Y %H:%M:%S %z").date().isoformat()
    return (
        query.get("DateSent", sent) == sent
        and query.get("DateSent<", sent) >= sent
        and query.get("DateSent>", sent) <= sent
    )


class SinkServer(uvicorn.Server):
    """uvicorn, stopped by our own signal handlers: uvicorn's re-raise the signal after
    shutting down, which would end the process by that signal instead of with status 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.stop)
        try:
            yield
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    def stop(self) -> None:
        log.info("shutting down")
        self.should_exit = True


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description="Development SMS and webhook sink.")
    parser.add_argument("--host", default=env("SMS_SINK_HOST") or DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=None, help=f"default {DEFAULT_PORT}")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where messages.jsonl goes")
    parser.add_argument(
        "--aliyun-access-key-id",
        default=env("SMS_SINK_ALIYUN_ACCESS_KEY_ID") or DEV_ALIYUN_ACCESS_KEY_ID,
    )
    parser.add_argument(
        "--aliyun-secret", default=env("SMS_SINK_ALIYUN_ACCESS_KEY_SECRET") or DEV_ALIYUN_SECRET
    )
    parser.add_argument(
        "--twilio-sid", default=env("SMS_SINK_TWILIO_ACCOUNT_SID") or DEV_TWILIO_SID
    )
    parser.add_argument(
        "--twilio-token", default=env("SMS_SINK_TWILIO_AUTH_TOKEN") or DEV_TWILIO_TOKEN
    )
    parser.add_argument(
        "--webhook-secret", default=env("SMS_SINK_WEBHOOK_SECRET") or DEV_WEBHOOK_SECRET
    )
    parser.add_argument(
        "--gateway-token",
        default=env("SMS_SINK_GATEWAY_TOKEN") or None,
        help="require Authorization: Bearer <token> at /gateway/send (default: none)",
    )
    parser.add_argument(
        "--fault-delay",
        type=float,
        default=DEFAULT_FAULT_DELAY,
        help="seconds a 'timeout' fault holds its answer",
    )
    args = parser.parse_args(argv)
    if args.port is None:
        raw = env("SMS_SINK_PORT") or str(DEFAULT_PORT)
        if not raw.isdigit():
            parser.error(f"SMS_SINK_PORT={raw!r} is not a port number")
        args.port = int(raw)
    return args


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    directory = args.dir.resolve()
    try:
        app = create_app(
            directory,
            aliyun_secret=args.aliyun_secret,
            twilio_sid=args.twilio_sid,
            twilio_token=args.twilio_token,
            webhook_secret=args.webhook_secret,
            aliyun_access_key_id=args.aliyun_access_key_id,
            gateway_token=args.gateway_token,
            fault_delay=args.fault_delay,
        )
    except OSError as error:
        log.error("cannot create the message folder %s: %s", directory, error)
        return 1
    # No access log: Twilio's list URL carries the customer's number in its query.
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    log.info("recording messages in %s", directory)
    try:
        asyncio.run(SinkServer(config).serve())
    except SystemExit as exit_:
        # uvicorn exits with a status of its own when it cannot start; it has logged why.
        return int(exit_.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
