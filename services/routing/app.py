"""Routing: assigns every received complaint to a department and a person."""

from __future__ import annotations

from pathlib import Path

import structlog
from faststream import FastStream

from services.routing import store
from services.routing.domain import decide
from shared.consumer import subscribe_events
from shared.consumer_app import PoolHolder, consumer_app, new_broker
from shared.contracts import ComplaintAssigned, ComplaintReceived, Event
from shared.contracts.routing import Assignee
from shared.inbox import first_delivery
from shared.logging import configure_logging
from shared.outbox import enqueue
from shared.policy import load_packs
from shared.settings import ServiceSettings
from shared.topics import Topics

SCHEMA = "routing"
MIGRATIONS = Path(__file__).parent / "migrations"
PUBLISHES = ("routing",)
SUBSCRIBES_TO = ("intake",)

log = structlog.get_logger("routing")


def build_app(settings: ServiceSettings) -> FastStream:
    configure_logging("routing", settings.log_level)
    packs = load_packs(settings.policy_packs_dir)
    topics = Topics.in_namespace(settings.complaints_topic_namespace)
    holder = PoolHolder()
    broker = new_broker(settings, "routing")

    async def on_intake_event(event: Event) -> None:
        if not isinstance(event, ComplaintReceived):
            return
        pack = packs.require(event.pack)
        decision = decide(pack, event.category)
        assigned = ComplaintAssigned.caused_by(
            event,
            producer="routing",
            department=decision.department,
            assignee=Assignee(staff_id=decision.assignee_id, name=decision.assignee_name),
            rule=decision.rule,
            pack=pack.pack,
            pack_version=pack.version,
        )
        async with holder.pool.acquire() as conn, conn.transaction():
            if not await first_delivery(conn, event):
                return
            await store.record_assignment(conn, event, decision, pack)
            await enqueue(conn, topics.routing.name, assigned)
        log.info("complaint assigned", department=decision.department, rule=decision.rule)

    subscribe_events(broker, [topics.intake], group_id="routing", handle=on_intake_event)
    return consumer_app(broker, settings, SCHEMA, MIGRATIONS, holder, with_relay=True)
