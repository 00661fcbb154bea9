"""Creating the platform's topics with their partition counts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from shared.kafka_security import PLAINTEXT, KafkaSecurity
from shared.topics import all_topic_partitions

ResultT = TypeVar("ResultT")


async def _with_admin(
    bootstrap_servers: str,
    action: Callable[[AIOKafkaAdminClient], Awaitable[ResultT]],
    wait_seconds: float,
    security: KafkaSecurity = PLAINTEXT,
) -> ResultT:
    """Run ``action`` with a fresh admin client, retrying while a just-started broker
    has no metadata or group coordinator yet."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    while True:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap_servers,
            request_timeout_ms=10_000,
            **security.client_options(),
        )
        try:
            await admin.start()
            return await action(admin)
        except (KafkaError, OSError):
            if loop.time() > deadline:
                raise
        finally:
            await admin.close()
        await asyncio.sleep(1.0)


async def _ensure_once(
    admin: AIOKafkaAdminClient, wanted: dict[str, int], replication_factor: int
) -> tuple[int, int]:
    described = await admin.describe_topics()
    existing = {
        str(topic["topic"]): len(topic["partitions"])
        for topic in described
        if topic["error_code"] == 0
    }
    missing = [
        NewTopic(name, count, replication_factor)
        for name, count in wanted.items()
        if name not in existing
    ]
    if missing:
        response = await admin.create_topics(missing)
        for name, code, *rest in response.topic_errors:
            if code and code != TopicAlreadyExistsError.errno:
                raise for_code(code)(f"could not create topic {name}: {rest[0] if rest else ''}")
    short = {name: count for name, count in wanted.items() if existing.get(name, count) < count}
    if short:
        await admin.create_partitions({n: NewPartitions(c) for n, c in short.items()})
    return len(missing), len(short)


async def _warm_up_group_coordinator(admin: AIOKafkaAdminClient) -> None:
    # Consumer groups need __consumer_offsets, which the broker creates on the first
    # coordinator lookup: do it now so the first consumer does not wait for it.
    await admin.find_coordinator("complaints-warm-up")


async def ensure_topics(
    bootstrap_servers: str,
    wanted: dict[str, int] | None = None,
    *,
    replication_factor: int = 1,
    wait_seconds: float = 60.0,
    security: KafkaSecurity = PLAINTEXT,
) -> tuple[int, int]:
    """Create missing topics and grow those with too few partitions: (created, grown)."""
    wanted = wanted if wanted is not None else all_topic_partitions()

    async def ensure(admin: AIOKafkaAdminClient) -> tuple[int, int]:
        return await _ensure_once(admin, wanted, replication_factor)

    counts = await _with_admin(bootstrap_servers, ensure, wait_seconds, security)
    await _with_admin(bootstrap_servers, _warm_up_group_coordinator, wait_seconds, security)
    return counts
