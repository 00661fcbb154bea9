"""Kafka delivers at least once; each effect of an event must still happen once."""

from __future__ import annotations

import asyncio
import json
import uuid
from email.message import EmailMessage

import asyncpg
from aiokafka import AIOKafkaProducer

from services.notify.app import build_app as build_notify
from services.notify.settings import NotifySettings
from services.routing.app import build_app as build_routing
from services.sla.app import build_app as build_sla
from shared.settings import ServiceSettings
from shared.topics import Topics
from tests.contracts.golden import golden_samples
from tests.support.infra import Infra
from tests.support.kafka import read_records


class RecordingSender:
    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []

    async def send(self, message: EmailMessage) -> None:
        self.sent.append(message)


async def _counts(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        queries = {
            "assignments": "SELECT count(*) FROM routing.assignments",
            "routing_outbox": "SELECT count(*) FROM routing.outbox",
            "clocks": "SELECT count(*) FROM sla.clocks",
            "sla_outbox": "SELECT count(*) FROM sla.outbox",
            "notifications_sent": "SELECT count(*) FROM notify.notifications WHERE status = 'sent'",
            "notify_outbox": "SELECT count(*) FROM notify.outbox",
        }
        counts = {}
        for name, sql in queries.items():
            try:
                counts[name] = int(await conn.fetchval(sql))
            except asyncpg.UndefinedTableError:
                counts[name] = 0
        return counts
    finally:
        await conn.close()


async def test_a_redelivered_complaint_is_assigned_clocked_and_acknowledged_once(
    infra: Infra, database_url: str, topics: Topics
) -> None:
    common = {
        "database_url": database_url,
        "kafka_bootstrap_servers": infra.kafka_bootstrap_servers,
        "complaints_topic_namespace": topics.namespace,
    }
    sender = RecordingSender()
    apps = [
        build_routing(ServiceSettings(**common)),
        build_sla(ServiceSettings(**common)),
        build_notify(NotifySettings(**common), sender=sender),
    ]
    runs = [asyncio.create_task(app.run()) for app in apps]
    complaint_no = f"2611229{uuid.uuid4().int % 10**5:05d}"
    event = {**golden_samples()["ComplaintReceived"], "complaint_no": complaint_no}
    raw = json.dumps(event).encode()
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap_servers)
    await producer.start()
    once = {
        "assignments": 1,
        "routing_outbox": 1,
        "clocks": 1,
        "sla_outbox": 1,
        "notifications_sent": 1,
        "notify_outbox": 1,
    }
    try:
        for _ in range(3):
            await producer.send_and_wait(topics.intake.name, raw, key=complaint_no.encode())
        for _ in range(150):
            if await _counts(database_url) == once:
                break
            await asyncio.sleep(0.2)
        # A late redelivery, after the effects are committed, changes nothing either.
        await producer.send_and_wait(topics.intake.name, raw, key=complaint_no.encode())
        await asyncio.sleep(3)
        assert await _counts(database_url) == once
        assert len(sender.sent) == 1
        assert complaint_no in sender.sent[0]["Subject"]
        # Duplicates were skipped by the inbox, not rejected by a constraint and dead-lettered.
        dead = await read_records(
            infra.kafka_bootstrap_servers, topics.intake.dead_letter, expected=0, timeout=1
        )
        assert [r for r in dead if r.key == complaint_no.encode()] == []
    finally:
        await producer.stop()
        for app in apps:
            app.exit()
        await asyncio.gather(*runs)
