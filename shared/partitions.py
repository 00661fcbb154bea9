"""Adding partitions to a topic without breaking any complaint's order.

    python -m shared.partitions show [--namespace NS]
    python -m shared.partitions grow intake 12 [--namespace NS] [--settle-seconds 5] [--force]

Every topic is keyed by complaint number (or branch id), and Kafka sends a key to the
partition its hash picks among the topic's partitions: adding partitions moves most keys.
A complaint whose earlier events wait unread in its old partition while its later ones go
to a new partition could be processed out of order. So ``grow`` refuses unless the topic
is drained and quiet: every consumer group reading it has committed up to the end of every
partition, and nothing was written to it during ``--settle-seconds``. Stop the topic's
producer first (for ``intake``: intake's outbox relay, i.e. scale intake to 0; the
procedure is in docs/operations.md), grow, start it again. Partition counts can only grow.

``show`` lists every topic of the namespace with its partitions, its end offsets and each
consumer group's lag. Both read the broker and its security from the services' settings
(``KAFKA_BOOTSTRAP_SERVERS``, ``KAFKA_SECURITY_PROTOCOL``, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

from shared.kafka_security import PLAINTEXT, KafkaSecurity
from shared.settings import ServiceSettings
from shared.topics import DEFAULT_NAMESPACE, Topics


class PartitionChangeRefusedError(ValueError):
    """Growing the topic now could reorder a complaint's events; the message says why."""


@dataclass(frozen=True)
class TopicState:
    name: str
    end_offsets: dict[int, int]
    lag_by_group: dict[str, int]

    @property
    def partitions(self) -> int:
        return len(self.end_offsets)


def lag(
    end_offsets: Mapping[int, int], committed: Mapping[int, int], start: Mapping[int, int]
) -> int:
    """Records a group has yet to commit past: a partition it never committed on counts
    from the first record still held."""
    return sum(
        max(0, end - committed.get(partition, start.get(partition, 0)))
        for partition, end in end_offsets.items()
    )


def refusal(before: TopicState, after: TopicState, wanted: int) -> str | None:
    """Why growing the topic from ``after`` to ``wanted`` partitions is not safe yet, if it
    is not: pure, so the rule is tested without a broker."""
    if wanted <= after.partitions:
        return (
            f"{after.name} has {after.partitions} partitions; Kafka only adds partitions, "
            f"so ask for more than {after.partitions}"
        )
    if after.end_offsets != before.end_offsets:
        written = sum(after.end_offsets.values()) - sum(before.end_offsets.values())
        return (
            f"{after.name} is still being written to ({written} records while watching): "
            "stop its producer first"
        )
    behind = {group: count for group, count in after.lag_by_group.items() if count}
    if behind:
        groups = ", ".join(f"{group} ({count} behind)" for group, count in sorted(behind.items()))
        return f"{after.name} is not drained: {groups}; let them catch up first"
    return None


class Broker:
    def __init__(self, bootstrap_servers: str, security: KafkaSecurity = PLAINTEXT) -> None:
        options = security.client_options()
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **options)
        self._reader = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers, enable_auto_commit=False, **options
        )

    async def __aenter__(self) -> Broker:
        await self._admin.start()
        await self._reader.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._reader.stop()
        await self._admin.close()

    async def state(self, topic: str) -> TopicState:
        described = await self._admin.describe_topics([topic])
        if not described or described[0]["error_code"] or not described[0]["partitions"]:
            raise PartitionChangeRefusedError(f"no topic {topic} on the broker")
        tps = [TopicPartition(topic, p["partition"]) for p in described[0]["partitions"]]
        ends = {tp.partition: int(o) for tp, o in (await self._reader.end_offsets(tps)).items()}
        starts = {
            tp.partition: int(o) for tp, o in (await self._reader.beginning_offsets(tps)).items()
        }
        lags: dict[str, int] = {}
        for group, *_ in await self._admin.list_consumer_groups():
            committed = {
                tp.partition: meta.offset
                for tp, meta in (await self._admin.list_consumer_group_offsets(group)).items()
                if tp.topic == topic and meta.offset >= 0
            }
            if committed:
                lags[str(group)] = lag(ends, committed, starts)
        return TopicState(topic, ends, lags)

    async def grow(self, topic: str, count: int) -> None:
        await self._admin.create_partitions({topic: NewPartitions(count)})


def topic_name(role_or_name: str, namespace: str) -> str:
    topics = Topics.in_namespace(namespace)
    names = {topic.role: topic.name for topic in topics.all()}
    if role_or_name in names.values():
        return role_or_name
    if role_or_name in names:
        return names[role_or_name]
    raise PartitionChangeRefusedError(
        f"no topic {role_or_name!r}: one of {', '.join(sorted(names))} (or a full name)"
    )


async def grow(
    broker: Broker, topic: str, wanted: int, *, settle_seconds: float, force: bool
) -> TopicState:
    before = await broker.state(topic)
    await asyncio.sleep(settle_seconds)
    after = await broker.state(topic)
    reason = refusal(before, after, wanted)
    if reason and not (force and wanted > after.partitions):
        raise PartitionChangeRefusedError(reason)
    await broker.grow(topic, wanted)
    return await broker.state(topic)


async def show(broker: Broker, namespace: str) -> list[TopicState]:
    return [await broker.state(topic.name) for topic in Topics.in_namespace(namespace).all()]


def _as_json(state: TopicState) -> dict[str, object]:
    return {
        "topic": state.name,
        "partitions": state.partitions,
        "records_written": sum(state.end_offsets.values()),
        "lag_by_group": state.lag_by_group,
    }


async def _run(args: argparse.Namespace) -> object:
    settings = ServiceSettings()
    security = KafkaSecurity.from_settings(settings)
    namespace = args.namespace or settings.complaints_topic_namespace
    topic = topic_name(args.topic, namespace) if args.command == "grow" else None
    async with Broker(settings.kafka_bootstrap_servers, security) as broker:
        if topic is None:
            return [_as_json(state) for state in await show(broker, namespace)]
        state = await grow(
            broker, topic, args.partitions, settle_seconds=args.settle_seconds, force=args.force
        )
        return _as_json(state)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--namespace", help=f"topic namespace (default: the setting, {DEFAULT_NAMESPACE})"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("show", help="partitions, records and each group's lag, per topic")
    growing = commands.add_parser("grow", help="add partitions to a drained, quiet topic")
    growing.add_argument("topic", help="a topic's role (intake, routing, ...) or full name")
    growing.add_argument("partitions", type=int, help="the new partition count")
    growing.add_argument(
        "--settle-seconds",
        type=float,
        default=5.0,
        help="how long nothing may be written to the topic before it grows",
    )
    growing.add_argument(
        "--force",
        action="store_true",
        help="grow although the topic is not drained or quiet (a complaint's events may be "
        "processed out of order)",
    )
    args = parser.parse_args(argv)
    try:
        result = asyncio.run(_run(args))
    except PartitionChangeRefusedError as exc:
        print(f"partitions: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
