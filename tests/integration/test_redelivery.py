"""Kafka delivers at least once; each effect of an event must still happen once."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

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
from tests.support.intake import wait_for
from tests.support.kafka import read_records
from tests.support.services import running
from tests.support.sinks import mail_sink


async def _counts(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        queries = {
            "assignments": "SELECT count(*) FROM routing.assignments",
            "routing_outbox": "SELECT count(*) FROM routing.outbox",
            "clocks": "SELECT count(*) FROM sla.clocks",
            "sla_outbox": "SELECT count(*) FROM sla.outbox",
            "notifications": "SELECT count(*) FROM notify.notifications",
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
    complaint_no = f"2611229{uuid.uuid4().int % 10**5:05d}"
    customer = {**golden_samples()["ComplaintReceived"]["customer"], "phone": None}
    # Received now: with the sample's fixed time, later in the day a warning timer of
    # the clock would already be due and add an event of its own.
    now = datetime.now(UTC).isoformat()
    event = {
        **golden_samples()["ComplaintReceived"],
        "complaint_no": complaint_no,
        "customer": customer,
        "occurred_at": now,
        "received_at": now,
    }
    raw = json.dumps(event).encode()
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap_servers)
    async with mail_sink() as mail:
        apps = [
            build_routing(ServiceSettings(**common)),
            build_sla(ServiceSettings(**common)),
            build_notify(NotifySettings(**common, smtp_port=mail.port, poll_seconds=0.1)),
        ]
        await producer.start()
        try:
            async with running(*apps):
                for _ in range(3):
                    await producer.send_and_wait(topics.intake.name, raw, key=complaint_no.encode())
                await wait_for(lambda: _settled(database_url), timeout=30)
                settled = await _counts(database_url)
                # A late redelivery, after the effects are committed, changes nothing either.
                await producer.send_and_wait(topics.intake.name, raw, key=complaint_no.encode())
                await asyncio.sleep(3)
                assert await _counts(database_url) == settled
        finally:
            await producer.stop()
    assert {k: settled[k] for k in ONCE} == ONCE
    # The customer's acknowledgement went once; every e-mail went once.
    to_customer = mail.to(str(customer["email"]))
    assert len(to_customer) == 1
    assert complaint_no in str(to_customer[0]["Subject"])
    assert len(mail.messages) == settled["notifications_sent"]
    assert len({m["Message-ID"] for m in mail.messages}) == len(mail.messages)
    # Duplicates were skipped by the inbox, not rejected by a constraint and dead-lettered.
    dead = await read_records(
        infra.kafka_bootstrap_servers, topics.intake.dead_letter, expected=0, timeout=1
    )
    assert [r for r in dead if r.key == complaint_no.encode()] == []


ONCE = {"assignments": 1, "routing_outbox": 1, "clocks": 1, "sla_outbox": 1}


async def _settled(database_url: str) -> bool:
    """Every effect done, and nothing more coming: notify also hears routing's and sla's
    events, which arrive after intake's, so the counts must hold still for a while."""
    counts = await _counts(database_url)
    if not (
        all(counts[k] == v for k, v in ONCE.items())
        and counts["notifications"] > 0
        and counts["notifications_sent"] == counts["notifications"]
    ):
        return False
    await asyncio.sleep(2)
    return await _counts(database_url) == counts
