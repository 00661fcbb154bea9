"""Creating the platform's topics with their partition counts.

    python -m shared.kafka_admin [--replication-factor 3] [--min-insync-replicas 2]

creates the topics of ``COMPLAINTS_TOPIC_NAMESPACE`` on ``KAFKA_BOOTSTRAP_SERVERS``, sized
by ``COMPLAINTS_TOPIC_PARTITIONS``, as the Kafka user the ``KAFKA_SASL_*`` settings name (the
administrator's, in production: the services' own users may not create topics). It is
idempotent: existing topics keep their replication and configuration. It never adds
partitions to an existing topic, which could reorder a complaint's events while the
platform runs: it fails, naming them, and ``python -m shared.partitions`` grows them safely.

Topics are created with unlimited retention: they are the platform's event log, which
reporting rebuilds its projections from, and the seeds keep records for good.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from shared.kafka_security import PLAINTEXT, KafkaSecurity, KafkaSecurityError
from shared.settings import ServiceSettings
from shared.topics import all_topic_partitions, partition_counts

ResultT = TypeVar("ResultT")
# Kafka's default would delete events after seven days.
EVENT_LOG_CONFIGS = {"retention.ms": "-1"}


class TopicsTooSmallError(ValueError):
    """Topics exist with fewer partitions than asked for, and were not grown."""


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
    admin: AIOKafkaAdminClient,
    wanted: dict[str, int],
    replication_factor: int,
    topic_configs: Mapping[str, str],
    grow: bool,
) -> tuple[int, int]:
    described = await admin.describe_topics()
    existing = {
        str(topic["topic"]): len(topic["partitions"])
        for topic in described
        if topic["error_code"] == 0
    }
    missing = [
        NewTopic(name, count, replication_factor, topic_configs=dict(topic_configs))
        for name, count in wanted.items()
        if name not in existing
    ]
    if missing:
        response = await admin.create_topics(missing)
        for name, code, *rest in response.topic_errors:
            if code and code != TopicAlreadyExistsError.errno:
                raise for_code(code)(f"could not create topic {name}: {rest[0] if rest else ''}")
    short = {name: count for name, count in wanted.items() if existing.get(name, count) < count}
    if short and not grow:
        sizes = ", ".join(f"{n} ({existing[n]} < {c})" for n, c in sorted(short.items()))
        raise TopicsTooSmallError(
            f"topics with fewer partitions than asked for: {sizes}; grow them with "
            "`python -m shared.partitions grow` (docs/operations.md, 'Adding partitions')"
        )
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
    topic_configs: Mapping[str, str] | None = None,
    grow: bool = True,
    wait_seconds: float = 60.0,
    security: KafkaSecurity = PLAINTEXT,
) -> tuple[int, int]:
    """Create missing topics and, with ``grow``, grow those with too few partitions (the
    development stacks and the tests, before any service runs): (created, grown).

    ``topic_configs`` (``{"min.insync.replicas": "2"}``) apply, with unlimited retention, to
    the topics created now; existing topics keep theirs."""
    wanted = wanted if wanted is not None else all_topic_partitions()
    configs = {**EVENT_LOG_CONFIGS, **(topic_configs or {})}

    async def ensure(admin: AIOKafkaAdminClient) -> tuple[int, int]:
        return await _ensure_once(admin, wanted, replication_factor, configs, grow)

    counts = await _with_admin(bootstrap_servers, ensure, wait_seconds, security)
    await _with_admin(bootstrap_servers, _warm_up_group_coordinator, wait_seconds, security)
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--replication-factor", type=int, default=1, help="replicas of each new topic (1)"
    )
    parser.add_argument(
        "--min-insync-replicas",
        type=int,
        help="min.insync.replicas of each new topic (default: the brokers' setting)",
    )
    parser.add_argument("--wait-seconds", type=float, default=60.0, help="for the brokers (60)")
    args = parser.parse_args(argv)
    if args.replication_factor < 1:
        parser.error("--replication-factor must be at least 1")
    configs = {}
    if args.min_insync_replicas is not None:
        # With acks=all a write needs this many replicas in sync: more than there are
        # replicas, and no write could ever succeed.
        if not 1 <= args.min_insync_replicas <= args.replication_factor:
            parser.error("--min-insync-replicas must be between 1 and --replication-factor")
        configs["min.insync.replicas"] = str(args.min_insync_replicas)
    settings = ServiceSettings()
    try:
        security = KafkaSecurity.from_settings(settings)
        sizes = partition_counts(os.environ.get("COMPLAINTS_TOPIC_PARTITIONS", ""))
        created, grown = asyncio.run(
            ensure_topics(
                settings.kafka_bootstrap_servers,
                all_topic_partitions(settings.complaints_topic_namespace, sizes),
                replication_factor=args.replication_factor,
                topic_configs=configs,
                grow=False,
                wait_seconds=args.wait_seconds,
                security=security,
            )
        )
    except (KafkaSecurityError, ValueError) as exc:
        print(f"topics: {exc}", file=sys.stderr)
        return 2
    print(
        json.dumps(
            {"namespace": settings.complaints_topic_namespace, "created": created, "grown": grown}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
