"""Notify against the real broker and database, a real SMTP server and the fake SMS
providers: the right message to the right person, in their language, exactly once."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import asyncpg
import pytest
import yaml
from aiokafka import AIOKafkaProducer
from aiosmtpd.smtp import SMTP, Envelope, Session

from services.notify.app import MIGRATIONS as NOTIFY_MIGRATIONS
from services.notify.app import build_app, sms_provider
from services.notify.channels.email import SmtpSender
from services.notify.channels.webhook import WebhookSender
from services.notify.delivery import Channels, DeliveryWorker, OutcomeCounters
from services.notify.requeue import requeue
from services.notify.settings import NotifySettings
from services.notify.store import Notification, queue
from shared.contracts import Event, decode_event
from shared.db import apply_migrations, create_pool
from shared.metrics import ServiceMetrics
from shared.policy import load_packs
from shared.topics import Topics
from tests.contracts.golden import golden_samples
from tests.support.infra import Infra
from tests.support.intake import wait_for
from tests.support.kafka import read_records
from tests.support.processes import REPO, free_port
from tests.support.services import running
from tests.support.sinks import MailSink, SmsSink, mail_sink, sms_sink
from tests.support.tcp_proxy import TcpProxy

PACKS = load_packs(REPO / "policy-packs")


def notify_settings(
    infra: Infra, database_url: str, topics: Topics, mail: MailSink, sms: SmsSink, **extra: Any
) -> NotifySettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": infra.kafka_bootstrap_servers,
        "complaints_topic_namespace": topics.namespace,
        "smtp_port": mail.port,
        "sms_gateway_url": f"{sms.url}/gateway/send",
        "aliyun_sms_endpoint": f"{sms.url}/",
        "twilio_api_base": sms.url,
        "twilio_from": "+15005550006",
        "webhook_base_url": f"{sms.url}/webhooks",
        "survey_base_url": "https://complaints.example/intake",
        "poll_seconds": 0.1,
        "lease_seconds": 3.0,
        "reconcile_after_seconds": 0.3,
        "retry_base_seconds": 0.2,
        "retry_cap_seconds": 2.0,
        "status_check_seconds": 0.3,
        "sms_timeout": 1.0,
        "webhook_timeout": 1.0,
        "smtp_timeout": 2.0,
        "rate_limit_email": 2000.0,
        "rate_limit_sms": 2000.0,
        **extra,
    }
    return NotifySettings(**values)


@asynccontextmanager
async def sinks(tmp_path: Path) -> AsyncIterator[tuple[MailSink, SmsSink]]:
    async with mail_sink() as mail, sms_sink(tmp_path / "sms") as sms:
        yield mail, sms


class Publisher:
    def __init__(self, producer: AIOKafkaProducer, topics: Topics) -> None:
        self._producer = producer
        self._topics = topics

    async def publish(self, role: str, event: Event) -> None:
        topic = getattr(self._topics, role).name
        await self._producer.send_and_wait(
            topic, event.model_dump_json().encode(), key=event.complaint_no.encode()
        )


@asynccontextmanager
async def publisher(infra: Infra, topics: Topics) -> AsyncIterator[Publisher]:
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        yield Publisher(producer, topics)
    finally:
        await producer.stop()


def event_of(event_type: str, complaint_no: str, branch_id: str, **fields: Any) -> Event:
    sample = golden_samples()[event_type]
    document = {
        **sample,
        "event_id": str(uuid.uuid4()),
        "occurred_at": datetime.now(UTC).isoformat(),
        "complaint_no": complaint_no,
        "branch_id": branch_id,
        **fields,
    }
    event = decode_event(json.dumps(document, default=str).encode())
    assert event is not None
    return event


# Numbers drawn at random from 10^4 repeated within a test now and then (20 drawn: about
# one test in fifty), and a repeated number is two complaints with one phone: a "doubled"
# SMS. Consecutive from a random start, they never repeat within a run.
_NEXT_NO = itertools.count(random.randrange(10**4))


def new_complaint_no() -> str:
    return f"26112{next(_NEXT_NO) % 10**4:04d}"


async def statuses(database_url: str, complaint_no: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            """SELECT status, count(*) AS n FROM notify.notifications
               WHERE complaint_no = $1 GROUP BY status""",
            complaint_no,
        )
    finally:
        await conn.close()
    return {row["status"]: row["n"] for row in rows}


def settled(
    database_url: str, complaint_no: str, count: int
) -> Callable[[], Coroutine[Any, Any, bool]]:
    async def check() -> bool:
        found = await statuses(database_url, complaint_no)
        open_ = sum(n for s, n in found.items() if s in ("queued", "sending", "handing_over"))
        return sum(found.values()) >= count and open_ == 0

    return check


@pytest.mark.parametrize("pack_name", sorted(PACKS.packs))
async def test_each_packs_rules_reach_the_right_people_in_their_language(
    infra: Infra, database_url: str, topics: Topics, tmp_path: Path, pack_name: str
) -> None:
    pack = PACKS.require(pack_name)
    branch = pack.branches[0].id
    category = pack.categories[0].code
    staff = pack.staff[0]
    complaint_no = new_complaint_no()
    customer = {
        **golden_samples()["ComplaintReceived"]["customer"],
        "language": "en",
        "email": f"customer-{complaint_no}@example.com",
        "phone": "13800138000",
    }
    async with sinks(tmp_path) as (mail, sms), publisher(infra, topics) as kafka:
        app = build_app(notify_settings(infra, database_url, topics, mail, sms))
        async with running(app):
            received = event_of(
                "ComplaintReceived",
                complaint_no,
                branch,
                pack=pack_name,
                category=category,
                severity="urgent",  # not held by quiet hours whatever the hour
                customer=customer,
            )
            assigned = event_of(
                "ComplaintAssigned",
                complaint_no,
                branch,
                pack=pack_name,
                department=staff.department,
                assignee={"staff_id": staff.id, "name": staff.name},
                previous_assignee=None,
                also_notify=[],
            )
            decided = event_of("DecisionCommunicated", complaint_no, branch)
            await kafka.publish("intake", received)
            await kafka.publish("routing", assigned)
            await kafka.publish("intake", decided)
            await wait_for(lambda: _customer_heard(mail, complaint_no, 2), timeout=60)
            await wait_for(settled(database_url, complaint_no, 3), timeout=60)

        messages = mail.for_complaint(complaint_no)
        to_customer = mail.to(customer["email"])
        # The acknowledgement and the decision, in English, with the number and survey link.
        assert len(to_customer) == 2, [m["Subject"] for m in to_customer]
        bodies = [m.get_body(("plain",)).get_content() for m in to_customer]  # type: ignore[union-attr]
        assert all(
            complaint_no in m["Subject"] or complaint_no in b
            for m, b in zip(to_customer, bodies, strict=True)
        )
        assert any("https://complaints.example/intake/survey/" in b for b in bodies)
        assert not any(_has_cjk(str(m["Subject"])) for m in to_customer)
        for message in to_customer:
            assert message["From"].addresses[0].addr_spec == "customer-service@complaints.local"
            html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
            assert html.lstrip().startswith("<")  # the HTML alternative is there
        # The assignee heard of the assignment, in their own language.
        if staff.email is not None and any(
            r.event == "ComplaintAssigned" and "assignee" in r.to and "email" in r.channels
            for r in pack.notifications
        ):
            assert mail.to(str(staff.email)), f"{staff.id} was not told of the assignment"
        # Every e-mail was sent once: the sink's count equals notify's.
        found = await statuses(database_url, complaint_no)
        sent_email = await _count(database_url, complaint_no, "email")
        assert len(messages) == sent_email
        assert len({m["Message-ID"] for m in messages}) == len(messages)
        assert found.get("failed", 0) == 0
        # The customer's SMS went to the gateway in E.164, each once.
        texts = [m for m in await sms.messages() if m.get("to") == "+8613800138000"]
        sms_rows = await _count(database_url, complaint_no, "sms", customer=True)
        assert (
            len([t for t in texts if complaint_no in json.dumps(t, ensure_ascii=False)]) == sms_rows
        )


async def _customer_heard(mail: MailSink, complaint_no: str, count: int) -> bool:
    return (
        len([m for m in mail.for_complaint(complaint_no) if "customer-" in str(m["To"])]) >= count
    )


async def _count(
    database_url: str, complaint_no: str, channel: str, *, customer: bool | None = None
) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(
            await conn.fetchval(
                """SELECT count(*) FROM notify.notifications
                   WHERE complaint_no = $1 AND channel = $2 AND status IN ('sent', 'delivered')
                     AND ($3::boolean IS NULL OR to_customer = $3)""",
                complaint_no,
                channel,
                customer,
            )
        )
    finally:
        await conn.close()


def _has_cjk(text: str) -> bool:
    return any("\u4e00" <= c <= "\u9fff" for c in text)


def aliyun_codes() -> dict[str, str]:
    names = sorted({rule.template for pack in PACKS.packs.values() for rule in pack.notifications})
    return {name: f"SMS_{200000 + index}" for index, name in enumerate(names)}


async def publish_complaints(
    kafka: Publisher, branch: str, numbers: list[str], severity: str = "urgent"
) -> None:
    for index, complaint_no in enumerate(numbers):
        customer = {
            **golden_samples()["ComplaintReceived"]["customer"],
            "email": f"c{complaint_no}@example.com",
            "phone": phone_of(complaint_no),
        }
        await kafka.publish(
            "intake",
            event_of(
                "ComplaintReceived",
                complaint_no,
                branch,
                severity=severity,
                customer=customer,
                sequence=1 + index % 1,
            ),
        )


def phone_of(complaint_no: str) -> str:
    return f"+86139{int(complaint_no) % 10**8:08d}"


async def all_settled(database_url: str, numbers: list[str], per_complaint: int) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            """SELECT count(*) AS total,
                      count(*) FILTER (WHERE status IN ('queued', 'sending', 'handing_over'))
                          AS open
               FROM notify.notifications WHERE complaint_no = ANY($1::text[])""",
            numbers,
        )
    finally:
        await conn.close()
    assert row is not None
    return bool(row["total"] >= per_complaint * len(numbers) and row["open"] == 0)


def hotel_messages_per_complaint() -> int:
    """An urgent hotel complaint with the customer's e-mail and phone: acknowledgement by
    e-mail and SMS, and the front-office supervisor's e-mail."""
    return 3


@pytest.mark.parametrize("provider", ["gateway", "aliyun", "twilio"])
async def test_provider_500s_timeouts_and_refusals_are_retried_and_never_doubled(
    infra: Infra, database_url: str, topics: Topics, tmp_path: Path, provider: str
) -> None:
    numbers = [new_complaint_no() for _ in range(20)]
    async with sinks(tmp_path) as (mail, sms), publisher(infra, topics) as kafka:
        # The dangerous ones first: the provider takes the message but the answer is lost.
        for mode, count in (("http500", 3), ("timeout", 3), ("http503", 2), ("http429", 2)):
            await sms.fault(provider, mode, count)
        mail.refuse_next = 3
        settings = notify_settings(
            infra,
            database_url,
            topics,
            mail,
            sms,
            sms_provider=provider,
            aliyun_template_codes=aliyun_codes(),
        )
        async with running(build_app(settings)):
            await publish_complaints(kafka, "hotel-demo", numbers)
            await wait_for(
                lambda: all_settled(database_url, numbers, hotel_messages_per_complaint()),
                timeout=90,
            )
            if provider != "gateway":
                # Aliyun and Twilio report delivery; notify asks until they do.
                await wait_for(lambda: _all_sms_delivered(database_url, len(numbers)), timeout=30)
        taken = await sms.messages(provider)
        for complaint_no in numbers:
            # Aliyun takes mainland numbers without +86: compare the 11 national digits.
            to_phone = [m for m in taken if m["to"][-11:] == phone_of(complaint_no)[-11:]]
            assert len(to_phone) == 1, (complaint_no, to_phone)
            assert len(mail.to(f"c{complaint_no}@example.com")) == 1
        assert len(mail.messages) == 2 * len(numbers)
    found = await _status_totals(database_url)
    assert set(found) <= {"sent", "delivered"}, found
    assert sum(found.values()) == hotel_messages_per_complaint() * len(numbers)
    # The faults were met: refused sends were tried again.
    assert await _retried(database_url, "sms") >= 1
    assert await _retried(database_url, "email") >= 1
    # Each notification's life was published once: queued, sent, delivered where reported.
    records = await read_records(
        infra.kafka_bootstrap_servers,
        topics.notify.name,
        expected=2 * sum(found.values()),
        timeout=30,
    )
    kinds: dict[tuple[str, str], int] = {}
    for record in records:
        document = json.loads(record.value)
        key = (document["notification_id"], document["event_type"])
        kinds[key] = kinds.get(key, 0) + 1
    assert set(kinds.values()) == {1}
    queued = {n for n, kind in kinds if kind == "NotificationQueued"}
    sent = {n for n, kind in kinds if kind == "NotificationSent"}
    assert len(queued) == sum(found.values())
    assert sent == queued
    delivered = {n for n, kind in kinds if kind == "NotificationDelivered"}
    assert len(delivered) == found.get("delivered", 0)


async def _all_sms_delivered(database_url: str, count: int) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        delivered = await conn.fetchval(
            """SELECT count(*) FROM notify.notifications
               WHERE channel = 'sms' AND status = 'delivered'"""
        )
    finally:
        await conn.close()
    return int(delivered) == count


async def _retried(database_url: str, channel: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM notify.notifications WHERE channel = $1 AND attempts > 1",
                channel,
            )
        )
    finally:
        await conn.close()


async def _status_totals(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT status, count(*) AS n FROM notify.notifications GROUP BY status"
        )
    finally:
        await conn.close()
    return {row["status"]: row["n"] for row in rows}


async def test_a_provider_and_the_mail_server_down_for_a_minute_lose_and_double_nothing(
    infra: Infra, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    before, during = (
        [new_complaint_no() for _ in range(10)],
        [new_complaint_no() for _ in range(20)],
    )
    async with sinks(tmp_path) as (mail, sms), publisher(infra, topics) as kafka:
        sms_port = int(sms.url.rsplit(":", 1)[1])
        sms_proxy, smtp_proxy = TcpProxy("127.0.0.1", sms_port), TcpProxy("127.0.0.1", mail.port)
        await sms_proxy.start()
        await smtp_proxy.start()
        settings = notify_settings(
            infra,
            database_url,
            topics,
            mail,
            sms,
            smtp_port=smtp_proxy.port,
            sms_gateway_url=f"http://127.0.0.1:{sms_proxy.port}/gateway/send",
            retry_cap_seconds=5.0,
            send_attempts=60,
        )
        async with running(build_app(settings)):
            await publish_complaints(kafka, "hotel-demo", before)
            await wait_for(lambda: all_settled(database_url, before, 3), timeout=60)
            await sms_proxy.cut()
            await smtp_proxy.cut()
            await publish_complaints(kafka, "hotel-demo", during)
            await asyncio.sleep(60)
            # Nothing of the outage's messages went, and nothing was given up on.
            totals = await _status_totals(database_url)
            assert totals.get("sent") == 30, totals
            assert "dead" not in totals, totals
            await sms_proxy.start()
            await smtp_proxy.start()
            await wait_for(lambda: all_settled(database_url, during, 3), timeout=90)
        taken = await sms.messages("gateway")
        for complaint_no in before + during:
            assert len([m for m in taken if m["to"] == phone_of(complaint_no)]) == 1
            assert len(mail.to(f"c{complaint_no}@example.com")) == 1
        assert len(taken) == 30
        assert len(mail.messages) == 60
    found = await _status_totals(database_url)
    assert found == {"sent": 90}, found
    # The outage was met: the sends during it were tried many times, and waited.
    assert await _retried(database_url, "sms") >= 20


def night_zone(now: datetime) -> str:
    """A fixed-offset zone where it is now between 23:00 and midnight: quiet hours."""
    offset = (23 - now.hour) % 24
    if offset > 14:
        offset -= 24
    # Etc/GMT-8 is UTC+8: the sign is inverted (POSIX).
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


def hotel_with_night_branch(folder: Path, zone: str) -> Path:
    pack = yaml.safe_load((REPO / "policy-packs" / "hotel.yaml").read_text(encoding="utf-8"))
    pack["branches"].append(
        {"id": "hotel-night", "name": {"zh": "夜间店", "en": "Night branch"}, "timezone": zone}
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hotel.yaml").write_text(yaml.safe_dump(pack, allow_unicode=True), encoding="utf-8")
    (folder / "templates").symlink_to(REPO / "policy-packs" / "templates")
    return folder


async def test_customer_sms_waits_out_quiet_hours_unless_the_case_is_urgent(
    infra: Infra, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    zone = night_zone(now)
    packs_dir = hotel_with_night_branch(tmp_path / "packs", zone)
    normal, urgent = new_complaint_no(), new_complaint_no()
    async with sinks(tmp_path) as (mail, sms), publisher(infra, topics) as kafka:
        settings = notify_settings(
            infra, database_url, topics, mail, sms, policy_packs_dir=packs_dir
        )
        async with running(build_app(settings)):
            await publish_complaints(kafka, "hotel-night", [normal], severity="normal")
            await publish_complaints(kafka, "hotel-night", [urgent], severity="urgent")
            await wait_for(lambda: all_settled(database_url, [urgent], 3), timeout=60)

            async def normal_emails_sent() -> bool:
                return len(mail.to(f"c{normal}@example.com")) == 1

            await wait_for(normal_emails_sent, timeout=30)
            await asyncio.sleep(1.0)  # time enough for a wrongly released SMS to go
        taken = [m["to"] for m in await sms.messages("gateway")]
    assert phone_of(urgent) in taken
    assert phone_of(normal) not in taken
    conn = await asyncpg.connect(database_url)
    try:
        held = await conn.fetchrow(
            """SELECT status, not_before FROM notify.notifications
               WHERE complaint_no = $1 AND channel = 'sms'""",
            normal,
        )
    finally:
        await conn.close()
    assert held is not None
    assert held["status"] == "queued"
    morning = held["not_before"].astimezone(ZoneInfo(zone))
    assert (morning.hour, morning.minute) == (8, 0)
    assert timedelta(0) < held["not_before"] - now < timedelta(hours=10)


async def test_a_major_fault_is_posted_once_to_the_ops_chat_bot_signed(
    infra: Infra, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    complaint_no = new_complaint_no()
    pack = PACKS.require("it-services")
    async with sinks(tmp_path) as (mail, sms), publisher(infra, topics) as kafka:
        await sms.fault("webhook", "http500", 1)  # the bot's first answer is lost
        async with running(build_app(notify_settings(infra, database_url, topics, mail, sms))):
            event = event_of(
                "ComplaintReceived",
                complaint_no,
                pack.branches[0].id,
                pack="it-services",
                category=pack.categories[0].code,
                severity="major",
            )
            await kafka.publish("intake", event)
            await kafka.publish("intake", event)  # a duplicate changes nothing

            async def posted() -> bool:
                return bool(await sms.messages("webhook"))

            await wait_for(posted, timeout=30)
            await wait_for(settled(database_url, complaint_no, 1), timeout=30)
        posts = await sms.messages("webhook")
    # The sink takes only correctly signed posts, and one per Idempotency-Key.
    assert len(posts) == 1
    assert posts[0]["to"] == "it-ops-bot"
    assert complaint_no in posts[0]["text"]


async def test_attempts_run_out_into_the_dead_letters_and_a_requeue_sends_once(
    infra: Infra, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    complaint_no = new_complaint_no()
    async with sinks(tmp_path) as (mail, sms), publisher(infra, topics) as kafka:
        down = notify_settings(
            infra,
            database_url,
            topics,
            mail,
            sms,
            sms_gateway_url=f"http://127.0.0.1:{free_port()}/gateway/send",  # nobody there
            send_attempts=2,
        )
        async with running(build_app(down)):
            await publish_complaints(kafka, "hotel-demo", [complaint_no])
            await wait_for(settled(database_url, complaint_no, 3), timeout=30)
        assert (await statuses(database_url, complaint_no)).get("dead") == 1
        records = await read_records(
            infra.kafka_bootstrap_servers, topics.notify.name, expected=6, timeout=20
        )
        failed = [json.loads(r.value) for r in records if b"NotificationFailed" in r.value]
        assert [(f["channel"], f["dead_lettered"], f["attempts"]) for f in failed] == [
            ("sms", True, 2)
        ]

        assert await requeue(down, None) == 1
        up = notify_settings(infra, database_url, topics, mail, sms)
        async with running(build_app(up)):
            await wait_for(settled(database_url, complaint_no, 3), timeout=30)
        assert (await statuses(database_url, complaint_no)) == {"sent": 3}
        assert [m["to"] for m in await sms.messages("gateway")] == [phone_of(complaint_no)]


async def test_sms_are_sent_no_faster_than_the_channels_rate_limit(
    infra: Infra, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    numbers = [new_complaint_no() for _ in range(15)]
    async with sinks(tmp_path) as (mail, sms), publisher(infra, topics) as kafka:
        limited = notify_settings(infra, database_url, topics, mail, sms, rate_limit_sms=5.0)
        async with running(build_app(limited)):
            await publish_complaints(kafka, "hotel-demo", numbers)
            await wait_for(lambda: all_settled(database_url, numbers, 3), timeout=60)
    conn = await asyncpg.connect(database_url)
    try:
        sent = await conn.fetchval(
            """SELECT array_agg(extract(epoch FROM sent_at) ORDER BY sent_at)
               FROM notify.notifications WHERE channel = 'sms'"""
        )
    finally:
        await conn.close()
    # 5 a second with bursts of 5: any 10 sends in a row start at least 1 s apart. sent_at
    # is taken when the provider has answered, so its jitter under load (and the first
    # sends' new connections) is allowed for; unlimited, the 15 go within ~0.1 s.
    assert len(sent) == 15
    assert min(float(sent[i + 9] - sent[i]) for i in range(6)) >= 0.7


async def test_an_email_whose_reply_never_comes_is_reported_unconfirmed_not_sent_twice(
    infra: Infra, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    complaint_no = new_complaint_no()
    async with sinks(tmp_path) as (mail, sms), publisher(infra, topics) as kafka:
        mail.silent_next = 1  # the first e-mail is taken, and its 250 never arrives
        settings = notify_settings(
            infra, database_url, topics, mail, sms, smtp_timeout=1.0, send_concurrency=1
        )
        async with running(build_app(settings)):
            await publish_complaints(kafka, "hotel-demo", [complaint_no])
            await wait_for(settled(database_url, complaint_no, 3), timeout=30)
            await asyncio.sleep(1.0)
        found = await statuses(database_url, complaint_no)
        assert found == {"unconfirmed": 1, "sent": 2}, found
        # The server has each message once: the unconfirmed one was not resent.
        assert len(mail.messages) == 2
        assert len({(m["X-Complaint-No"], str(m["To"])) for m in mail.messages}) == 2
    records = await read_records(
        infra.kafka_bootstrap_servers, topics.notify.name, expected=6, timeout=20
    )
    kinds = [json.loads(r.value)["event_type"] for r in records]
    assert kinds.count("NotificationUnconfirmed") == 1


async def test_an_assignment_read_before_its_complaint_waits_for_it_and_is_then_told(
    infra: Infra, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    complaint_no = new_complaint_no()
    assigned = event_of(
        "ComplaintAssigned",
        complaint_no,
        "hotel-demo",
        assignee={"staff_id": "eng-manager", "name": "周强"},
        previous_assignee=None,
        also_notify=[],
    )
    async with sinks(tmp_path) as (mail, sms), publisher(infra, topics) as kafka:
        async with running(build_app(notify_settings(infra, database_url, topics, mail, sms))):
            await kafka.publish("routing", assigned)

            async def parked() -> bool:
                conn = await asyncpg.connect(database_url)
                try:
                    return bool(await conn.fetchval("SELECT count(*) FROM notify.parked_events"))
                finally:
                    await conn.close()

            await wait_for(parked, timeout=30)
            await publish_complaints(kafka, "hotel-demo", [complaint_no])

            async def assignee_told() -> bool:
                return bool(mail.to("eng-manager@hotel.example"))

            await wait_for(assignee_told, timeout=30)
            assert not await parked()
        (told,) = mail.to("eng-manager@hotel.example")
        assert complaint_no in str(told["Subject"]) + told.get_body(("plain",)).get_content()  # type: ignore[union-attr]


async def test_an_email_accepted_as_the_database_goes_away_is_recorded_sent_when_it_returns(
    infra: Infra, database_url: str, topics: Topics, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RELIABILITY.md, finding 4: the SMTP server's 250 came, then PostgreSQL vanished for
    notify (every connection dropped, new ones refused) before `sent` could be written.
    The outcome is known: it is written once the database answers, not left to the
    reconciler, which could only report the e-mail unconfirmed."""
    complaint_no = new_complaint_no()
    database = urlsplit(database_url)
    proxy = TcpProxy(database.hostname or "127.0.0.1", database.port or 5432)
    await proxy.start()
    user = database.netloc.rpartition("@")[0]
    through_proxy = urlunsplit(database._replace(netloc=f"{user}@127.0.0.1:{proxy.port}"))
    outage: list[asyncio.Task[None]] = []

    async def back_in(seconds: float) -> None:
        await asyncio.sleep(seconds)
        await proxy.start()

    original_send = SmtpSender.send

    async def send_then_lose_the_database(
        sender: SmtpSender, message: Message, before_data: Callable[[], Awaitable[None]]
    ) -> str:
        message_id = await original_send(sender, message, before_data)
        if not outage:  # the server has taken the first e-mail and answered 250
            await proxy.cut()
            outage.append(asyncio.create_task(back_in(1.5)))
        return message_id

    monkeypatch.setattr(SmtpSender, "send", send_then_lose_the_database)
    try:
        async with sinks(tmp_path) as (mail, sms), publisher(infra, topics) as kafka:
            # A lease well beyond the outage: the outcome must be written by the sender, not
            # raced by the reconciler.
            settings = notify_settings(
                infra, through_proxy, topics, mail, sms, lease_seconds=10.0, send_concurrency=1
            )
            async with running(build_app(settings)):
                await publish_complaints(kafka, "hotel-demo", [complaint_no])
                await wait_for(settled(database_url, complaint_no, 3), timeout=60)
                # While the relay, back from its own backoff, publishes what was recorded.
                records = await read_records(
                    infra.kafka_bootstrap_servers, topics.notify.name, expected=6, timeout=30
                )
            await asyncio.gather(*outage)
            assert outage, "the database never went away"
            assert await statuses(database_url, complaint_no) == {"sent": 3}
            assert len(mail.messages) == 2
            assert len({str(m["To"]) for m in mail.messages}) == 2
    finally:
        for task in outage:
            task.cancel()
        await asyncio.gather(*outage, return_exceptions=True)
        await proxy.cut()
    documents = [json.loads(r.value) for r in records]
    # A NotificationSent for each notification. The cut may catch the relay between
    # publishing a record and marking it published, and it publishes it again after: the
    # same event under the same id (uuid5 of notification and status), which consumers
    # skip (shared/outbox.py).
    sent = {d["event_id"] for d in documents if d["event_type"] == "NotificationSent"}
    assert len(sent) == 3, sent
    assert not [d for d in documents if d["event_type"] == "NotificationUnconfirmed"]


@dataclass
class StallingMailSink(MailSink):
    """A server that answers RCPT only once ``resume`` is set (stalling a sender past its
    lease) and takes the data only once ``deliver`` is (holding it in `handing_over`)."""

    resume: asyncio.Event = field(default_factory=asyncio.Event)
    deliver: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle_RCPT(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        await self.resume.wait()
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        await self.deliver.wait()
        return await super().handle_DATA(server, session, envelope)


async def test_a_sender_that_resumes_while_its_email_is_reconciled_is_not_requeued(
    infra: Infra, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RELIABILITY.md, finding 5: the reconciler reads an expired e-mail as `sending`; its
    sender, stalled at RCPT past the lease, resumes and moves it to `handing_over` (the
    data goes out) before the reconciler decides. Requeued from there, it would go twice."""
    await apply_migrations(database_url, "notify", NOTIFY_MIGRATIONS)
    sink = StallingMailSink()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(sink, enable_SMTPUTF8=True, decode_data=False), "127.0.0.1", 0
    )
    settings = NotifySettings(database_url=database_url, lease_seconds=1.0, smtp_timeout=30.0)
    email = SmtpSender(
        host="127.0.0.1",
        port=server.sockets[0].getsockname()[1],
        start_tls=False,
        username=None,
        password=None,
        timeout=settings.smtp_timeout,
    )
    sms = sms_provider(settings)
    webhook = WebhookSender(secret="unused", timeout=1.0)
    channels = Channels(email=email, sms=sms, webhook=webhook, webhook_url=str)
    pool = await create_pool(database_url, "notify")
    worker = DeliveryWorker(
        pool, settings, channels, "t.notify", OutcomeCounters.counted_in(ServiceMetrics("notify"))
    )
    n = _email_to_queue()
    try:
        async with pool.acquire() as conn:
            assert await queue(conn, n, datetime.now(UTC))
        assert await worker.send_due() == 1  # claimed: `sending`, the SMTP server stalls
        await asyncio.sleep(settings.lease_seconds + 0.2)

        async def row_status() -> str:
            async with pool.acquire() as conn:
                status: str = await conn.fetchval(
                    "SELECT status FROM notifications WHERE notification_id = $1",
                    n.notification_id,
                )
            return status

        read_status = worker._status_of

        async def read_then_sender_resumes(notification_id: uuid.UUID) -> str:
            status = await read_status(notification_id)
            sink.resume.set()

            async def handing_over() -> bool:
                return await row_status() == "handing_over"

            await wait_for(handing_over, timeout=10)
            return status

        monkeypatch.setattr(worker, "_status_of", read_then_sender_resumes)
        assert await worker.reconcile() == 1
        assert await row_status() == "handing_over", "requeued while its data was going out"
        sink.deliver.set()
        await asyncio.wait_for(asyncio.gather(*worker._in_flight), timeout=10)
        assert await row_status() == "sent"
        assert len(sink.messages) == 1
        async with pool.acquire() as conn:
            payloads = await conn.fetch("SELECT payload FROM outbox")
        assert [json.loads(p["payload"])["event_type"] for p in payloads] == ["NotificationSent"]
        assert await worker.send_due() == 0
    finally:
        sink.resume.set()
        sink.deliver.set()
        for task in worker._in_flight:
            task.cancel()
        await asyncio.gather(*worker._in_flight, return_exceptions=True)
        await worker._outcomes.close()
        email.close()
        await sms.aclose()
        await webhook.aclose()
        await pool.close()
        server.close()
        await server.wait_closed()


def _email_to_queue() -> Notification:
    notification_id = uuid.uuid4()
    return Notification(
        notification_id=notification_id,
        notification_key=f"test:{notification_id}",
        complaint_no=new_complaint_no(),
        branch_id="hotel-demo",
        correlation_id=str(uuid.uuid4()),
        source_event_id=uuid.uuid4(),
        channel="email",
        rule="acknowledge",
        template="acknowledgement",
        language="en",
        address="guest@example.com",
        recipient_masked="g***@example.com",
        to_customer=True,
        subject="We have your complaint",
        body_text="We have your complaint.",
        body_html="<p>We have your complaint.</p>",
        sms_text=None,
        params={},
        segments=None,
    )
