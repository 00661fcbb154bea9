"""Replay a dead-letter topic into the topics its messages came from, after a fix.

    python -m shared.dlq_replay complaints.routing.dlq [--error TEXT] [--dry-run]

Reads the dead-letter topic from where the last replay of it stopped (the consumer group
``dlq-replay.<topic>``; the beginning the first time) up to its end as of the start, so
that a message that fails again and is dead-lettered anew waits for the next replay
instead of going round in a loop. Each message goes back to ``dlq.original_topic`` with
its key, its own headers and its bytes as they were; the ``dlq.*`` headers stay behind.
Offsets are committed only after the producer has the broker's acknowledgement, so a
replay that dies half-way sends some messages twice, never none: every consumer skips an
event it has processed (its inbox) and intake a submission id it has numbered.

``--error`` replays only the messages whose ``dlq.error`` contains the text; the others
are passed over for good (the group's offset moves past them), so the option is for a
fix that only some of the messages needed. ``--dry-run`` counts, by original topic and
error, and commits nothing. The summary is printed as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord

from shared.kafka_security import PLAINTEXT, KafkaSecurity
from shared.settings import ServiceSettings
from shared.topics import DEAD_LETTER_SUFFIX

ORIGINAL_TOPIC = "dlq.original_topic"


@dataclass
class Replay:
    topic: str
    dry_run: bool = False
    error_contains: str | None = None
    replayed: Counter[str] = field(default_factory=Counter)
    passed_over: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def destination(self, record: ConsumerRecord[bytes, bytes]) -> str | None:
        """Where ``record`` goes back to; None to pass it over."""
        headers = dict(record.headers)
        original: str = headers.get(ORIGINAL_TOPIC, b"").decode("utf-8", "replace")
        error = headers.get("dlq.error", b"").decode("utf-8", "replace")
        self.errors[error[:120]] += 1
        # Only back where it came from: a dead letter never goes to another dead-letter
        # topic or to a topic this one does not serve.
        if original + DEAD_LETTER_SUFFIX != self.topic:
            self.passed_over[original or "(no original topic)"] += 1
            return None
        if self.error_contains is not None and self.error_contains not in error:
            self.passed_over[original] += 1
            return None
        return original

    def summary(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "would_replay" if self.dry_run else "replayed": dict(self.replayed),
            "passed_over": dict(self.passed_over),
            "errors": dict(self.errors.most_common(20)),
        }


async def _partitions(
    bootstrap_servers: str, topic: str, security: KafkaSecurity = PLAINTEXT
) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **security.client_options())
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"] or not described["partitions"]:
        raise ValueError(f"no topic {topic}")
    return sorted(partition["partition"] for partition in described["partitions"])


def restored_headers(record: ConsumerRecord[bytes, bytes]) -> list[tuple[str, bytes]]:
    return [(key, value) for key, value in record.headers if not key.startswith("dlq.")]


async def replay(
    bootstrap_servers: str,
    topic: str,
    *,
    error_contains: str | None = None,
    dry_run: bool = False,
    security: KafkaSecurity = PLAINTEXT,
) -> dict[str, Any]:
    if not topic.endswith(DEAD_LETTER_SUFFIX):
        raise ValueError(f"{topic} is not a dead-letter topic (…{DEAD_LETTER_SUFFIX})")
    state = Replay(topic, dry_run, error_contains)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=f"dlq-replay.{topic}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        **security.client_options(),
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        **security.client_options(),
    )
    await consumer.start()
    await producer.start()
    try:
        partitions = [
            TopicPartition(topic, p) for p in await _partitions(bootstrap_servers, topic, security)
        ]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        for partition in partitions:
            if await consumer.committed(partition) is None:
                await consumer.seek_to_beginning(partition)
        next_offset = {p: await consumer.position(p) for p in partitions}
        pending = {p for p in partitions if next_offset[p] < ends[p]}
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=1000)
            sends = []
            for partition, records in batches.items():
                for record in records:
                    if record.offset >= ends[partition]:
                        break
                    original = state.destination(record)
                    if original is not None:
                        state.replayed[original] += 1
                        if not dry_run:
                            sends.append(
                                await producer.send(
                                    original,
                                    record.value,
                                    key=record.key,
                                    headers=restored_headers(record),
                                )
                            )
                    next_offset[partition] = record.offset + 1
            await asyncio.gather(*sends)  # the broker has them all before offsets move
            if batches and not dry_run:
                await consumer.commit({p: next_offset[p] for p in batches})
            # The position also passes records the reader never sees (transaction markers).
            pending = {
                p
                for p in pending
                if next_offset[p] < ends[p] and await consumer.position(p) < ends[p]
            }
    finally:
        await producer.stop()
        await consumer.stop()
    return state.summary()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("topic", help="the dead-letter topic, e.g. complaints.routing.dlq")
    parser.add_argument("--error", help="replay only messages whose dlq.error contains this")
    parser.add_argument("--dry-run", action="store_true", help="count, send and commit nothing")
    args = parser.parse_args(argv)
    settings = ServiceSettings()
    try:
        summary = asyncio.run(
            replay(
                settings.kafka_bootstrap_servers,
                args.topic,
                error_contains=args.error,
                dry_run=args.dry_run,
                security=KafkaSecurity.from_settings(settings),
            )
        )
    except ValueError as exc:
        print(f"dlq_replay: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
