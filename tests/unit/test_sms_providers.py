"""The SMS adapters and the webhook sender against the local fake of each provider's API.

The fake (deploy/local/sms_sink.py) runs in-process on a free port. It verifies the
providers' signatures and credentials with code of its own, and fails on request, so
these tests see each adapter classify every way a send can end.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from deploy.local.sms_sink import create_app
from services.notify.channels import twilio as twilio_module
from services.notify.channels.aliyun import AliyunSmsProvider, signature
from services.notify.channels.base import (
    NotSentError,
    OutcomeUnknownError,
    ProviderState,
    RejectedError,
    SmsMessage,
    SmsProvider,
)
from services.notify.channels.gateway import GatewaySmsProvider
from services.notify.channels.twilio import TwilioSmsProvider
from services.notify.channels.webhook import WebhookSender, sign
from tests.support.processes import free_port

ALIYUN_KEY_ID = "test-access-key"
ALIYUN_SECRET = "test-access-secret"
TWILIO_SID = "ACtest000000000000000000000000000"
TWILIO_TOKEN = "test-twilio-token"
TWILIO_FROM = "+15005550006"
WEBHOOK_SECRET = "test-webhook-secret"
GATEWAY_TOKEN = "test-gateway-token"
TEMPLATE_CODES = {"acknowledgement": "SMS_100001", "resolution": "SMS_100002"}
# Short, so that the "timeout" fault is quick to see; the fake holds its answer longer.
TIMEOUT = 0.5


@dataclass
class Sink:
    url: str
    directory: Path
    client: httpx.AsyncClient

    async def messages(self, provider: str | None = None) -> list[dict[str, Any]]:
        params = {"provider": provider} if provider else None
        response = await self.client.get(f"{self.url}/_sink/messages", params=params)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found

    async def fault(self, provider: str, mode: str, count: int = 1) -> None:
        wanted = {"provider": provider, "mode": mode, "count": count}
        response = await self.client.post(f"{self.url}/_sink/faults", json=wanted)
        response.raise_for_status()

    async def reset(self) -> None:
        (await self.client.delete(f"{self.url}/_sink/messages")).raise_for_status()
        (await self.client.delete(f"{self.url}/_sink/faults")).raise_for_status()


@pytest.fixture(scope="module")
def sink_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    directory = tmp_path_factory.mktemp("sms")
    app = create_app(
        directory,
        aliyun_secret=ALIYUN_SECRET,
        twilio_sid=TWILIO_SID,
        twilio_token=TWILIO_TOKEN,
        webhook_secret=WEBHOOK_SECRET,
        aliyun_access_key_id=ALIYUN_KEY_ID,
        gateway_token=GATEWAY_TOKEN,
        fault_delay=10 * TIMEOUT,
    )
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    # Its own thread and loop: uvicorn leaves signal handling alone off the main thread.
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "the sink did not start"
        assert time.monotonic() < deadline, "the sink did not start in time"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", directory
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
async def sink(sink_url: tuple[str, Path]) -> AsyncIterator[Sink]:
    url, directory = sink_url
    async with httpx.AsyncClient() as client:
        yield Sink(url, directory, client)


@pytest.fixture(autouse=True)
async def clean(sink: Sink) -> None:
    await sink.reset()


def sms(
    to: str = "+8613800138000",
    template: str = "acknowledgement",
    params: dict[str, str] | None = None,
    created_at: datetime | None = None,
) -> SmsMessage:
    reference = str(uuid.uuid4())
    return SmsMessage(
        to=to,
        # Unique per message, as a rendered notification names its complaint.
        text=f"您的投诉 {reference[:8]} 已受理。Complaint {reference[:8]} received.",
        template=template,
        language="zh",
        params=params if params is not None else {"number": reference[:8]},
        reference=reference,
        created_at=created_at or datetime.now(UTC),
    )


def aliyun(
    sink: Sink, *, key_id: str = ALIYUN_KEY_ID, secret: str = ALIYUN_SECRET
) -> AliyunSmsProvider:
    return AliyunSmsProvider(
        access_key_id=key_id,
        access_key_secret=secret,
        sign_name="投诉服务",
        template_codes=TEMPLATE_CODES,
        endpoint=f"{sink.url}/",
        timeout=TIMEOUT,
    )


def twilio(
    sink: Sink, *, token: str = TWILIO_TOKEN, service: str | None = None
) -> TwilioSmsProvider:
    return TwilioSmsProvider(
        account_sid=TWILIO_SID,
        auth_token=token,
        from_number=None if service else TWILIO_FROM,
        messaging_service_sid=service,
        api_base=sink.url,
        timeout=TIMEOUT,
    )


def gateway(sink: Sink, *, token: str = GATEWAY_TOKEN, **options: Any) -> GatewaySmsProvider:
    return GatewaySmsProvider(
        f"{sink.url}/gateway/send",
        auth_header="Authorization",
        auth_value=f"Bearer {token}",
        timeout=TIMEOUT,
        **options,
    )


async def deliver(name: str, sink: Sink, message: SmsMessage, *, url: str | None = None) -> None:
    """Hand a message to the named channel once, as the delivery worker does."""
    base = url or sink.url
    if name == "webhook":
        async with aclosing(WebhookSender(WEBHOOK_SECRET, timeout=TIMEOUT)) as sender:
            payload = {"reference": message.reference, "text": message.text}
            await sender.post(f"{base}/webhooks/ops", payload, message.reference)
        return
    target = Sink(base, sink.directory, sink.client)
    factories: dict[str, Callable[[Sink], SmsProvider]] = {
        "aliyun": aliyun,
        "twilio": twilio,
        "gateway": gateway,
    }
    async with aclosing(factories[name](target)) as provider:
        await provider.send(message)


# --- Every channel: the same classification ------------------------------------------

CHANNELS = ["aliyun", "twilio", "gateway", "webhook"]


@pytest.mark.parametrize("name", CHANNELS)
@pytest.mark.parametrize("mode", ["http429", "http503"])
async def test_a_refusal_before_taking_it_is_not_sent(sink: Sink, name: str, mode: str) -> None:
    await sink.fault(name, mode)
    message = sms()
    with pytest.raises(NotSentError):
        await deliver(name, sink, message)
    assert await sink.messages() == []
    # The fault was for one request: trying again later works, once.
    await deliver(name, sink, message)
    assert len(await sink.messages(name)) == 1


@pytest.mark.parametrize("name", CHANNELS)
async def test_a_closed_port_is_not_sent(sink: Sink, name: str) -> None:
    with pytest.raises(NotSentError):
        await deliver(name, sink, sms(), url=f"http://127.0.0.1:{free_port()}")


@pytest.mark.parametrize("name", ["aliyun", "twilio"])
@pytest.mark.parametrize("mode", ["http500", "timeout"])
async def test_an_ambiguous_failure_is_unknown_and_the_lookup_finds_it(
    sink: Sink, name: str, mode: str
) -> None:
    await sink.fault(name, mode)
    message = sms(to="+8613800138000" if name == "aliyun" else "+14155550123")
    started = time.monotonic()
    with pytest.raises(OutcomeUnknownError):
        await deliver(name, sink, message)
    assert time.monotonic() - started < 4 * TIMEOUT
    taken = await sink.messages(name)
    assert len(taken) == 1
    assert taken[0]["reference" if name == "aliyun" else "text"] == (
        message.reference if name == "aliyun" else message.text
    )
    provider = aliyun(sink) if name == "aliyun" else twilio(sink)
    async with aclosing(provider):
        found = await provider.lookup(message, None)
        # The message it was not asked about stays not found.
        other = await provider.lookup(sms(to=message.to), None)
    assert found.state is ProviderState.DELIVERED
    if name == "twilio":
        assert found.provider_id == taken[0]["id"]
    assert other.state is ProviderState.NOT_FOUND


@pytest.mark.parametrize("name", ["gateway", "webhook"])
@pytest.mark.parametrize("mode", ["http500", "timeout"])
async def test_an_ambiguous_failure_is_settled_by_resending_under_the_same_key(
    sink: Sink, name: str, mode: str
) -> None:
    await sink.fault(name, mode)
    message = sms()
    with pytest.raises(OutcomeUnknownError):
        await deliver(name, sink, message)
    first = await sink.messages(name)
    assert len(first) == 1
    assert first[0]["reference"] == message.reference
    await deliver(name, sink, message)
    assert await sink.messages(name) == first


async def test_a_fault_for_every_provider(sink: Sink) -> None:
    await sink.fault("*", "http503", count=2)
    with pytest.raises(NotSentError):
        await deliver("twilio", sink, sms(to="+14155550123"))
    with pytest.raises(NotSentError):
        await deliver("gateway", sink, sms())
    await deliver("gateway", sink, sms())
    assert len(await sink.messages()) == 1


# --- Aliyun ----------------------------------------------------------------------------


def test_the_aliyun_signature_matches_the_documented_example() -> None:
    # Aliyun's worked example ("HTTP protocol and signature", SMS API 2017-05-25), a GET.
    params = {
        "AccessKeyId": "testId",
        "Action": "SendSms",
        "Format": "XML",
        "OutId": "123",
        "PhoneNumbers": "15300000001",
        "RegionId": "cn-hangzhou",
        "SignName": "阿里云短信测试专用",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
        "SignatureVersion": "1.0",
        "TemplateCode": "SMS_71390007",
        "TemplateParam": '{"customer":"test"}',
        "Timestamp": "2017-07-12T02:42:19Z",
        "Version": "2017-05-25",
    }
    assert signature("GET", params, "testSecret") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


async def test_aliyun_sends_the_registered_template_and_the_fake_records_it(sink: Sink) -> None:
    long_name = "甲" * 40
    message = sms(params={"number": "261122001", "name": long_name})
    async with aclosing(aliyun(sink)) as provider:
        biz_id = await provider.send(message)
    [taken] = await sink.messages("aliyun")
    assert taken["id"] == biz_id
    assert taken["to"] == "13800138000"  # mainland: no +86
    assert taken["template_code"] == "SMS_100001"
    assert taken["params"] == {"number": "261122001", "name": "甲" * 35}
    assert taken["sign_name"] == "投诉服务"
    assert taken["reference"] == message.reference
    assert taken["text"].startswith("SMS_100001 ")
    journal = (sink.directory / "messages.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(journal[-1]) == taken


async def test_aliyun_sends_other_countries_in_the_00_form(sink: Sink) -> None:
    async with aclosing(aliyun(sink)) as provider:
        await provider.send(sms(to="+85291234567"))
    [taken] = await sink.messages("aliyun")
    assert taken["to"] == "0085291234567"


@pytest.mark.parametrize(
    ("key_id", "secret", "code"),
    [
        (ALIYUN_KEY_ID, "not-the-secret", "SignatureDoesNotMatch"),
        ("unknown-key", ALIYUN_SECRET, "InvalidAccessKeyId.NotFound"),
    ],
)
async def test_aliyun_wrong_credentials_are_rejected(
    sink: Sink, key_id: str, secret: str, code: str
) -> None:
    async with aclosing(aliyun(sink, key_id=key_id, secret=secret)) as provider:
        with pytest.raises(RejectedError, match=code):
            await provider.send(sms())
        # Asking needs the same credentials: the lookup cannot be made, which is not "absent".
        with pytest.raises(NotSentError, match=code):
            await provider.lookup(sms(), None)
    assert await sink.messages() == []


async def test_aliyun_rejects_a_template_it_has_no_code_for(sink: Sink) -> None:
    async with aclosing(aliyun(sink)) as provider:
        with pytest.raises(RejectedError, match="'survey'"):
            await provider.send(sms(template="survey"))
    assert await sink.messages() == []


async def test_aliyun_rejects_an_illegal_number(sink: Sink) -> None:
    async with aclosing(aliyun(sink)) as provider:
        with pytest.raises(RejectedError, match=r"isv\.MOBILE_NUMBER_ILLEGAL"):
            await provider.send(sms(to="+86123"))
    assert await sink.messages() == []


@pytest.mark.parametrize(
    ("to", "state", "detail"),
    [
        ("+8613800138000", ProviderState.DELIVERED, "DELIVERED"),
        ("+8613800139999", ProviderState.ACCEPTED, None),
        ("+8613800130000", ProviderState.FAILED, "MOBILE_NOT_ON_SERVICE"),
    ],
)
async def test_aliyun_lookup_reports_the_send_status(
    sink: Sink, to: str, state: ProviderState, detail: str | None
) -> None:
    message = sms(to=to)
    async with aclosing(aliyun(sink)) as provider:
        biz_id = await provider.send(message)
        by_reference = await provider.lookup(message, None)
        by_biz_id = await provider.lookup(message, biz_id)
    assert (by_reference.state, by_reference.detail) == (state, detail)
    assert (by_biz_id.state, by_biz_id.provider_id) == (state, biz_id)


async def test_aliyun_lookup_asks_every_day_since_the_first_attempt(sink: Sink) -> None:
    # First tried two days ago, taken today: the lookup must not stop at the first day.
    message = sms(created_at=datetime.now(UTC) - timedelta(days=2))
    async with aclosing(aliyun(sink)) as provider:
        await provider.send(message)
        found = await provider.lookup(message, None)
    assert found.state is ProviderState.DELIVERED


async def test_aliyun_lookup_of_a_message_never_sent_is_not_found(sink: Sink) -> None:
    async with aclosing(aliyun(sink)) as provider:
        await provider.send(sms())  # another message to the same number
        found = await provider.lookup(sms(), None)
    assert found.state is ProviderState.NOT_FOUND


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (200, {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发流控"}, NotSentError),
        (400, {"Code": "Throttling.User", "Message": "flow control"}, NotSentError),
        (200, {"Code": "isv.SMS_TEMPLATE_ILLEGAL", "Message": "模板不合法"}, RejectedError),
        (200, {"Code": "OK", "Message": "OK"}, OutcomeUnknownError),
        (502, {"Code": "BadGateway"}, OutcomeUnknownError),
        (200, "<html>proxy</html>", OutcomeUnknownError),
    ],
)
async def test_aliyun_answers_the_fake_does_not_give(
    status: int, body: Any, error: type[Exception]
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    provider = AliyunSmsProvider(
        access_key_id=ALIYUN_KEY_ID,
        access_key_secret=ALIYUN_SECRET,
        sign_name="投诉服务",
        template_codes=TEMPLATE_CODES,
        endpoint="https://dysmsapi.example/",
        client=client,
    )
    async with aclosing(provider):
        with pytest.raises(error):
            await provider.send(sms())
    assert client.is_closed


# --- Twilio ----------------------------------------------------------------------------


async def test_twilio_creates_a_message_and_fetches_it_by_sid(sink: Sink) -> None:
    message = sms(to="+14155550123")
    async with aclosing(twilio(sink)) as provider:
        sid = await provider.send(message)
        found = await provider.lookup(message, sid)
        unknown = await provider.lookup(message, "SM" + "0" * 32)
    assert sid.startswith("SM")
    [taken] = await sink.messages("twilio")
    assert (taken["id"], taken["to"], taken["text"], taken["from"]) == (
        sid,
        "+14155550123",
        message.text,
        TWILIO_FROM,
    )
    assert (found.state, found.provider_id) == (ProviderState.DELIVERED, sid)
    assert unknown.state is ProviderState.NOT_FOUND


async def test_twilio_sends_through_a_messaging_service_when_configured(sink: Sink) -> None:
    service = "MG" + "1" * 32
    async with aclosing(twilio(sink, service=service)) as provider:
        await provider.send(sms(to="+14155550123"))
    [taken] = await sink.messages("twilio")
    assert taken["from"] == service


@pytest.mark.parametrize(
    ("to", "state", "detail"),
    [
        ("+14155559999", ProviderState.ACCEPTED, "sent"),
        ("+14155550000", ProviderState.FAILED, "undelivered 30003"),
    ],
)
async def test_twilio_lookup_maps_the_status(
    sink: Sink, to: str, state: ProviderState, detail: str
) -> None:
    message = sms(to=to)
    async with aclosing(twilio(sink)) as provider:
        await provider.send(message)
        found = await provider.lookup(message, None)
    assert (found.state, found.detail) == (state, detail)


async def test_twilio_lookup_follows_the_pages(sink: Sink, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(twilio_module, "PAGE_SIZE", 2)
    oldest, *others = [sms(to="+14155550123") for _ in range(5)]
    async with aclosing(twilio(sink)) as provider:
        for message in (oldest, *others):
            await provider.send(message)
        # Newest first, two a page: the oldest is on the third page.
        found = await provider.lookup(oldest, None)
    assert found.state is ProviderState.DELIVERED
    taken = {m["text"]: m["id"] for m in await sink.messages("twilio")}
    assert found.provider_id == taken[oldest.text]


async def test_twilio_wrong_token_is_rejected(sink: Sink) -> None:
    async with aclosing(twilio(sink, token="wrong")) as provider:
        with pytest.raises(RejectedError, match="20003"):
            await provider.send(sms(to="+14155550123"))
        with pytest.raises(NotSentError):
            await provider.lookup(sms(to="+14155550123"), None)
    assert await sink.messages() == []


async def test_twilio_rejects_a_bad_number_without_repeating_it(sink: Sink) -> None:
    async with aclosing(twilio(sink)) as provider:
        with pytest.raises(RejectedError, match="21211") as raised:
            await provider.send(sms(to="+861380013800012345678"))
    assert "13800138" not in str(raised.value)
    assert await sink.messages() == []


def test_twilio_needs_a_sender() -> None:
    with pytest.raises(ValueError, match="from_number"):
        TwilioSmsProvider(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN)


# --- Generic gateway -------------------------------------------------------------------


async def test_the_gateway_sends_json_with_the_idempotency_key(sink: Sink) -> None:
    message = sms()
    async with aclosing(gateway(sink)) as provider:
        provider_id = await provider.send(message)
        with pytest.raises(NotSentError, match="cannot be asked"):
            await provider.lookup(message, provider_id)
    [taken] = await sink.messages("gateway")
    assert (taken["id"], taken["to"], taken["text"], taken["reference"]) == (
        provider_id,
        message.to,
        message.text,
        message.reference,
    )


async def test_the_gateway_resends_under_the_same_key_get_the_first_answer(sink: Sink) -> None:
    message = sms()
    async with aclosing(gateway(sink)) as provider:
        first = await provider.send(message)
        again = await provider.send(message)
    assert again == first
    assert len(await sink.messages("gateway")) == 1


async def test_the_gateway_with_a_wrong_token_is_rejected(sink: Sink) -> None:
    async with aclosing(gateway(sink, token="wrong")) as provider:
        with pytest.raises(RejectedError, match="401"):
            await provider.send(sms())
    assert await sink.messages() == []


async def test_the_gateway_body_template_and_id_key_are_configurable(sink: Sink) -> None:
    template = (
        '{"to": {{ to|tojson }}, "text": {{ ("[" ~ template ~ "/" ~ language ~ "] " ~ text)'
        '|tojson }}, "number": {{ params.number|tojson }}}'
    )
    message = sms()
    async with aclosing(gateway(sink, body_template=template, id_key="message_id")) as provider:
        # The fake answers {"id": ...}: without the configured key, the reference stands in.
        provider_id = await provider.send(message)
    assert provider_id == message.reference
    [taken] = await sink.messages("gateway")
    assert taken["text"] == f"[acknowledgement/zh] {message.text}"


@pytest.mark.parametrize(
    "template",
    [
        '{"to": "{{ to }}", "text": "{{ text }}"}',  # breaks on a quote in the text
        '{"to": {{ to|tojson }}',
        '{"to": {{ recipient|tojson }}}',
        "{{ to|tojson ",
    ],
)
def test_a_gateway_template_that_cannot_make_json_stops_start_up(template: str) -> None:
    with pytest.raises(ValueError, match="template"):
        GatewaySmsProvider("http://127.0.0.1:9/gateway/send", body_template=template)


# --- Webhooks --------------------------------------------------------------------------


async def test_a_webhook_post_is_signed_and_received(sink: Sink) -> None:
    payload = {"complaint_no": "261122001", "text": "已受理"}
    async with aclosing(WebhookSender(WEBHOOK_SECRET, timeout=TIMEOUT)) as sender:
        await sender.post(f"{sink.url}/webhooks/front-desk", payload, "ref-1")
    [taken] = await sink.messages("webhook")
    assert (taken["to"], taken["reference"], taken["payload"]) == ("front-desk", "ref-1", payload)


async def test_a_webhook_signed_with_another_secret_is_rejected(sink: Sink) -> None:
    async with aclosing(WebhookSender("another-secret", timeout=TIMEOUT)) as sender:
        with pytest.raises(RejectedError, match="401"):
            await sender.post(f"{sink.url}/webhooks/front-desk", {"a": 1}, "ref-2")
    assert await sink.messages() == []


async def test_the_receiver_refuses_a_tampered_or_stale_post(sink: Sink) -> None:
    body = b'{"complaint_no":"261122001"}'
    now = str(int(time.time()))
    stale = str(int(time.time()) - 3600)
    attempts = [
        (now, sign(WEBHOOK_SECRET, now, body), body.replace(b"001", b"002")),
        (stale, sign(WEBHOOK_SECRET, stale, body), body),
    ]
    async with httpx.AsyncClient() as client:
        for timestamp, signature_header, sent in attempts:
            response = await client.post(
                f"{sink.url}/webhooks/front-desk",
                content=sent,
                headers={
                    "Idempotency-Key": "ref-3",
                    "X-Complaints-Timestamp": timestamp,
                    "X-Complaints-Signature": signature_header,
                },
            )
            assert response.status_code == 401
    assert await sink.messages() == []


# --- The fake's own endpoints ----------------------------------------------------------


async def test_the_sink_refuses_an_unknown_fault(sink: Sink) -> None:
    async with httpx.AsyncClient() as client:
        for wanted in (
            {"provider": "sendgrid", "mode": "http500", "count": 1},
            {"provider": "twilio", "mode": "http418", "count": 1},
            {"provider": "twilio", "mode": "http500", "count": 0},
        ):
            response = await client.post(f"{sink.url}/_sink/faults", json=wanted)
            assert response.status_code == 400
        health = await client.get(f"{sink.url}/_sink/health")
    assert health.json() == {"status": "ok"}
