"""Notify killed with SIGKILL while it sends, under duplicated events: every message is
delivered once, counted at the real SMTP server and the SMS gateway."""

from __future__ import annotations

import json
import random
import signal
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer

from shared.topics import Topics
from tests.contracts.golden import golden_samples
from tests.support.infra import Infra
from tests.support.intake import wait_for
from tests.support.processes import Platform, platform_env
from tests.support.sinks import mail_sink, sms_sink

COMPLAINTS = 750
DUPLICATES = 250  # 1,000 events in all
PER_COMPLAINT = 3  # acknowledgement by e-mail and SMS, the front-office supervisor's e-mail
KILLS_AT = (0.15, 0.4, 0.65)  # of the messages sent


async def _progress(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT status, count(*) AS n FROM notify.notifications GROUP BY status"
        )
    except asyncpg.UndefinedTableError:
        return {}
    finally:
        await conn.close()
    return {row["status"]: row["n"] for row in rows}


async def _unconfirmed(database_url: str) -> set[tuple[str, str]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            """SELECT complaint_no, address FROM notify.notifications
               WHERE status = 'unconfirmed'"""
        )
    finally:
        await conn.close()
    return {(row["complaint_no"], row["address"]) for row in rows}


async def test_notify_killed_mid_way_delivers_each_message_once(
    infra: Infra, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    numbers = [f"2611{index:05d}" for index in range(COMPLAINTS)]
    events = []
    for complaint_no in numbers:
        document = {
            **golden_samples()["ComplaintReceived"],
            "event_id": str(uuid.uuid4()),
            "occurred_at": datetime.now(UTC).isoformat(),
            "complaint_no": complaint_no,
            "severity": "urgent",  # not held by quiet hours, whatever the hour of the run
            "customer": {
                **golden_samples()["ComplaintReceived"]["customer"],
                "email": f"c{complaint_no}@example.com",
                "phone": f"+86139{int(complaint_no):08d}",
            },
        }
        events.append((complaint_no, json.dumps(document).encode()))
    rng = random.Random(7)
    stream = events + rng.sample(events, DUPLICATES)
    rng.shuffle(stream)
    expected = COMPLAINTS * PER_COMPLAINT

    async with mail_sink() as mail, sms_sink(tmp_path / "sms") as sms:
        env = platform_env(
            DATABASE_URL=database_url,
            KAFKA_BOOTSTRAP_SERVERS=infra.kafka_bootstrap_servers,
            COMPLAINTS_TOPIC_NAMESPACE=topics.namespace,
            SMTP_PORT=str(mail.port),
            SMS_GATEWAY_URL=f"{sms.url}/gateway/send",
            POLL_SECONDS="0.1",
            LEASE_SECONDS="3",
            RECONCILE_AFTER_SECONDS="0.5",
            RETRY_BASE_SECONDS="0.2",
            LOG_LEVEL="WARNING",
            RATE_LIMIT_EMAIL="2000",
            RATE_LIMIT_SMS="2000",
        )
        platform = Platform(env, tmp_path)
        platform.start("notify", "-m", "services.notify")
        producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap_servers, acks="all")
        await producer.start()
        kills = 0
        try:
            for complaint_no, raw in stream:
                await producer.send(topics.intake.name, raw, key=complaint_no.encode())
            await producer.flush()
            for point in KILLS_AT:

                async def reached(point: float = point) -> bool:
                    progress = await _progress(database_url)
                    return progress.get("sent", 0) >= point * expected

                await wait_for(reached, timeout=120, interval=0.05)
                platform.processes["notify"].send_signal(signal.SIGKILL)
                platform.processes["notify"].wait()
                kills += 1
                platform.start("notify", "-m", "services.notify")

            async def settled() -> bool:
                progress = await _progress(database_url)
                done = sum(n for s, n in progress.items() if s in ("sent", "unconfirmed"))
                return done == expected

            await wait_for(settled, timeout=180)
        finally:
            await producer.stop()
            platform.stop()

        progress = await _progress(database_url)
        unconfirmed = await _unconfirmed(database_url)
        print(f"kills={kills} progress={progress} unconfirmed={len(unconfirmed)}")
        assert kills == len(KILLS_AT)
        assert set(progress) <= {"sent", "unconfirmed"}, progress
        # SMS: the gateway is asked under the same key after a crash; exactly once each.
        taken = await sms.messages("gateway")
        by_phone: dict[str, int] = {}
        for message in taken:
            by_phone[message["to"]] = by_phone.get(message["to"], 0) + 1
        assert len(by_phone) == COMPLAINTS
        assert set(by_phone.values()) == {1}
        # E-mail: never twice. Exactly once, except a message whose data had gone when the
        # process died: SMTP cannot be asked, so it is reported unconfirmed, not resent.
        received: dict[tuple[str, str], int] = {}
        for message in mail.messages:
            key = (str(message["X-Complaint-No"]), str(message["To"]))
            received[key] = received.get(key, 0) + 1
        assert max(received.values()) == 1
        for complaint_no in numbers:
            for address in (f"c{complaint_no}@example.com", "fo-supervisor@hotel.example"):
                if (complaint_no, address) not in unconfirmed:
                    assert received.get((complaint_no, address)) == 1, (complaint_no, address)
        # A kill can catch at most the sends in flight at that moment.
        assert len(unconfirmed) <= kills * 32
