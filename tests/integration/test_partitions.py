"""Growing a topic's partitions against the real broker: refused while any group lags or
anything is still written, done once the topic is drained and quiet."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.partitions import Broker, PartitionChangeRefusedError, grow, main, show
from shared.topics import Topic, Topics
from tests.support.infra import Infra


async def _produce(bootstrap: str, topic: str, count: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for index in range(count):
            await producer.send_and_wait(topic, b"{}", key=f"26112300{index}".encode())
    finally:
        await producer.stop()


@asynccontextmanager
async def _writing(bootstrap: str, topic: str) -> AsyncIterator[None]:
    """A producer writing to ``topic`` from before the block until after it."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    stop = asyncio.Event()

    async def write() -> None:
        while not stop.is_set():
            await producer.send_and_wait(topic, b"{}", key=b"261123999")
            await asyncio.sleep(0.05)

    try:
        await producer.send_and_wait(topic, b"{}", key=b"261123999")
        task = asyncio.create_task(write())
        try:
            yield
        finally:
            stop.set()
            await task
    finally:
        await producer.stop()


async def _commit(bootstrap: str, group: str, topic: Topic, *, leave_behind: int) -> None:
    """Commit the group at the end of every partition but ``leave_behind`` records short."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        tps = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        ends = await consumer.end_offsets(tps)
        offsets = {tp: end for tp, end in ends.items() if end}
        first = max(offsets, key=lambda tp: offsets[tp])
        offsets[first] -= leave_behind
        consumer.assign(tps)
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


async def test_a_topic_grows_only_once_drained_and_quiet(infra: Infra, topics: Topics) -> None:
    bootstrap, topic = infra.kafka_bootstrap_servers, topics.routing.name
    group = f"t-group-{uuid.uuid4().hex[:8]}"
    await _produce(bootstrap, topic, 20)
    await _commit(bootstrap, group, topics.routing, leave_behind=3)
    async with Broker(bootstrap) as broker:
        with pytest.raises(
            PartitionChangeRefusedError, match=rf"not drained: {group} \(3 behind\)"
        ):
            await grow(broker, topic, 12, settle_seconds=0.1, force=False)

        await _commit(bootstrap, group, topics.routing, leave_behind=0)
        # Writing before the watch starts and until it ends, however slow the machine:
        # a fixed burst could land wholly before the watch, or after it.
        async with _writing(bootstrap, topic):
            with pytest.raises(PartitionChangeRefusedError, match="still being written"):
                await grow(broker, topic, 12, settle_seconds=1.0, force=False)
        await _commit(bootstrap, group, topics.routing, leave_behind=0)

        grown = await grow(broker, topic, 12, settle_seconds=0.5, force=False)
        assert grown.partitions == 12
        assert grown.lag_by_group == {group: 0}
        with pytest.raises(PartitionChangeRefusedError, match="only adds partitions"):
            await grow(broker, topic, 12, settle_seconds=0, force=True)
        listed = {state.name: state.partitions for state in await show(broker, topics.namespace)}
    assert listed[topic] == 12
    assert listed[topics.intake.name] == topics.intake.partitions


async def test_force_grows_a_lagging_topic_and_the_command_explains_refusals(
    infra: Infra,
    topics: Topics,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bootstrap, topic = infra.kafka_bootstrap_servers, topics.sla.name
    await _produce(bootstrap, topic, 10)
    await _commit(bootstrap, f"t-group-{uuid.uuid4().hex[:8]}", topics.sla, leave_behind=2)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
    monkeypatch.setenv("COMPLAINTS_TOPIC_NAMESPACE", topics.namespace)

    refused = await asyncio.to_thread(main, ["grow", "sla", "8", "--settle-seconds", "0"])
    assert refused == 2
    assert "not drained" in capsys.readouterr().err
    assert await asyncio.to_thread(main, ["grow", "nowhere", "8"]) == 2
    assert "no topic 'nowhere'" in capsys.readouterr().err

    forced = await asyncio.to_thread(main, ["grow", "sla", "8", "--settle-seconds", "0", "--force"])
    assert forced == 0
    assert '"partitions": 8' in capsys.readouterr().out


async def test_topics_keep_their_events_for_good(infra: Infra, topics: Topics) -> None:
    """Reporting rebuilds from the topics, and the seeds keep records: no retention limit."""
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap_servers)
    await admin.start()
    try:
        resources = [ConfigResource(ConfigResourceType.TOPIC, topics.intake.name)]
        [response] = await admin.describe_configs(resources)
    finally:
        await admin.close()
    entries = {entry[0]: entry[1] for entry in response.resources[0][4]}
    assert entries["retention.ms"] == "-1"
