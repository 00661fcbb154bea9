"""Rebuild every projection from the topics, from offset 0, and swap it in live.

    python -m services.reporting.rebuild

1. A fresh schema gets reporting's migrations; every event on the topics reporting
   reads, from the beginning to the current end, is applied to it.
2. Under an exclusive lock that live projecting takes shared (so the consumer pauses for
   a moment and the API keeps answering from the old tables), the events that arrived
   meanwhile are applied too, then the old schema is dropped and the new one takes its
   name, in one transaction.
3. The consumer goes on where its group's offsets are; what it re-reads is skipped by the
   new schema's inbox, which the rebuild filled.

Undecodable records (they went to the dead-letter topic when first read) are skipped.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.reporting.app import MIGRATIONS, SCHEMA, SUBSCRIBES_TO
from services.reporting.projections import SWAP_LOCK, apply_event
from services.reporting.settings import ReportingSettings
from shared.contracts import RejectedMessageError, decode_event
from shared.db import apply_migrations
from shared.logging import configure_logging
from shared.topics import Topics

BATCH = 500
log = structlog.get_logger("reporting.rebuild")


@dataclass(frozen=True)
class Rebuilt:
    events: int
    skipped: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def rebuild(settings: ReportingSettings) -> Rebuilt:
    started = time.monotonic()
    fresh = f"{SCHEMA}_rebuild_{int(time.time())}"
    await apply_migrations(settings.database_url, fresh, MIGRATIONS)
    topics = Topics.in_namespace(settings.complaints_topic_namespace)
    names = [topics.by_role(role).name for role in SUBSCRIBES_TO]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    target = await asyncpg.connect(settings.database_url, server_settings={"search_path": fresh})
    swap = await asyncpg.connect(settings.database_url)
    try:
        partitions = await _partitions(settings.kafka_bootstrap_servers, names)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        applied, skipped = await _apply_until_end(consumer, partitions, target)
        async with swap.transaction():
            # Live projecting holds this shared: from here it waits until the swap is done.
            await swap.execute("SELECT pg_advisory_xact_lock($1)", SWAP_LOCK)
            more, more_skipped = await _apply_until_end(consumer, partitions, target)
            applied, skipped = applied + more, skipped + more_skipped
            await swap.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
            await swap.execute(f"ALTER SCHEMA {fresh} RENAME TO {SCHEMA}")
    except BaseException:
        await swap.execute(f"DROP SCHEMA IF EXISTS {fresh} CASCADE")
        raise
    finally:
        await consumer.stop()
        await target.close()
        await swap.close()
    result = Rebuilt(applied, skipped, time.monotonic() - started)
    log.info(
        "projections rebuilt",
        events=result.events,
        skipped=result.skipped,
        events_per_second=round(result.per_second),
    )
    return result


async def _partitions(bootstrap: str, names: list[str]) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    return [
        TopicPartition(str(topic["topic"]), int(partition["partition"]))
        for topic in described
        if topic["error_code"] == 0
        for partition in topic["partitions"]
    ]


async def _apply_until_end(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], target: asyncpg.Connection
) -> tuple[int, int]:
    """Apply every record up to the partitions' end offsets as they are now."""
    ends = await consumer.end_offsets(partitions)
    applied = skipped = 0

    async def behind() -> bool:
        for partition in partitions:
            if await consumer.position(partition) < ends[partition]:
                return True
        return False

    while await behind():
        batches = await consumer.getmany(*partitions, timeout_ms=1000, max_records=BATCH)
        async with target.transaction():
            for records in batches.values():
                for record in records:
                    # Records past the end fetched along are applied too: they are events.
                    if record.value is None:
                        continue
                    try:
                        event = decode_event(record.value)
                    except RejectedMessageError:
                        skipped += 1
                        continue
                    if event is None:
                        skipped += 1
                        continue
                    if await apply_event(target, event):
                        applied += 1
    return applied, skipped


def main() -> int:
    settings = ReportingSettings()
    configure_logging("reporting", settings.log_level)
    result = asyncio.run(rebuild(settings))
    print(
        f"rebuilt the reporting projections from {result.events} events "
        f"({result.skipped} skipped) in {result.seconds:.1f} s, "
        f"{result.per_second:.0f} events/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
