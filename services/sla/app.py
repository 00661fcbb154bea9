"""SLA: starts the deadline clocks a complaint's policy pack promises."""

from __future__ import annotations

from pathlib import Path

import structlog
from faststream import FastStream

from services.sla import store
from services.sla.domain import plan_clocks
from shared.consumer import subscribe_events
from shared.consumer_app import PoolHolder, consumer_app, new_broker
from shared.contracts import ClockStarted, ComplaintReceived, Event
from shared.inbox import first_delivery
from shared.logging import configure_logging
from shared.outbox import enqueue
from shared.policy import LivePacks
from shared.settings import ServiceSettings
from shared.topics import Topics

SCHEMA = "sla"
MIGRATIONS = Path(__file__).parent / "migrations"
PUBLISHES = ("sla",)
SUBSCRIBES_TO = ("intake",)

log = structlog.get_logger("sla")


def build_app(settings: ServiceSettings) -> FastStream:
    configure_logging("sla", settings.log_level)
    packs = LivePacks(settings.policy_packs_dir)
    topics = Topics.in_namespace(settings.complaints_topic_namespace)
    holder = PoolHolder()
    broker = new_broker(settings, "sla")

    async def on_intake_event(event: Event) -> None:
        if not isinstance(event, ComplaintReceived):
            return
        pack = packs.current.require(event.pack)
        clocks = plan_clocks(
            pack,
            complaint_no=event.complaint_no,
            category=event.category,
            customer_type=event.customer.type,
            severity=event.severity,
            region=event.region,
            received_at=event.received_at,
        )
        async with holder.pool.acquire() as conn, conn.transaction():
            if not await first_delivery(conn, event):
                return
            for clock in clocks:
                await store.start_clock(conn, event, clock, pack)
                started = ClockStarted.caused_by(
                    event,
                    producer="sla",
                    clock_id=clock.clock_id,
                    name=clock.name,
                    started_at=clock.started_at,
                    due_at=clock.due_at,
                    target_seconds=clock.target_seconds,
                    rule=clock.rule,
                    pack=pack.pack,
                    pack_version=pack.version,
                )
                await enqueue(conn, topics.sla.name, started)
        log.info("clocks started", clocks=[c.name for c in clocks])

    subscribe_events(broker, [topics.intake], group_id="sla", handle=on_intake_event)
    return consumer_app(broker, settings, SCHEMA, MIGRATIONS, holder, with_relay=True, packs=packs)
