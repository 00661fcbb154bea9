"""Creating the platform's topics with their partition counts."""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from shared.topics import all_topic_partitions


async def ensure_topics(
    bootstrap_servers: str,
    wanted: dict[str, int] | None = None,
    *,
    replication_factor: int = 1,
    attempts: int = 20,
) -> dict[str, int]:
    """Create missing topics and grow ones with too few partitions; returns the final counts."""
    wanted = wanted if wanted is not None else all_topic_partitions()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    for attempt in range(attempts):
        try:
            await admin.start()
            break
        except KafkaConnectionError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5)
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=count, replication_factor=replication_factor)
            for name, count in wanted.items()
            if name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process created them between our list and create
        described = await admin.describe_topics(list(wanted))
        counts = {d["topic"]: len(d["partitions"]) for d in described}
        grow = {
            name: NewPartitions(total_count=count)
            for name, count in wanted.items()
            if counts.get(name, count) < count
        }
        if grow:
            await admin.create_partitions(grow)
            counts.update({name: p.total_count for name, p in grow.items()})
        return counts
    finally:
        await admin.close()
