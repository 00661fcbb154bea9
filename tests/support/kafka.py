"""Reading what really reached the broker."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from shared.kafka_admin import ensure_topics


async def new_topic(bootstrap: str, partitions: int = 3) -> str:
    name = f"test.{uuid.uuid4().hex[:10]}"
    await ensure_topics(bootstrap, {name: partitions})
    return name


async def read_records(
    bootstrap: str, topic: str, *, expected: int, timeout: float = 20.0
) -> list[ConsumerRecord]:  # type: ignore[type-arg]
    """Every record on ``topic`` once ``expected`` have arrived (or the timeout passed)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord] = []  # type: ignore[type-arg]
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(records) < expected and loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for batch in batches.values():
                records.extend(batch)
        # A short grace period shows up duplicates that arrive just after the expected ones.
        batches = await consumer.getmany(timeout_ms=500)
        for batch in batches.values():
            records.extend(batch)
    finally:
        await consumer.stop()
    return records
