"""Replaying a dead-letter topic after a fix: the messages go back as they were, once."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from faststream.kafka import KafkaBroker

from shared.consumer import subscribe_events
from shared.contracts import Event, decode_event, encode_event
from shared.dlq_replay import main, replay
from shared.kafka_admin import ensure_topics
from shared.topics import Topic
from tests.contracts.golden import golden_samples
from tests.support.infra import Infra
from tests.support.kafka import read_records


def _assigned(complaint_no: str) -> Event:
    document = {
        **golden_samples()["ComplaintAssigned"],
        "complaint_no": complaint_no,
        "event_id": str(uuid.uuid4()),
    }
    event = decode_event(json.dumps(document).encode())
    assert event is not None
    return event


async def test_a_fixed_handler_gets_its_dead_letters_back_once(infra: Infra) -> None:
    bootstrap = infra.kafka_bootstrap_servers
    topic = Topic(f"test.{uuid.uuid4().hex[:10]}", 2, "test", "replay test")
    await ensure_topics(bootstrap, {topic.name: 2, topic.dead_letter: 1})
    handled: list[str] = []
    broken = True
    progress = asyncio.Event()

    async def handle(event: Event) -> None:
        if broken and event.complaint_no == "261122002":
            raise ValueError("a bug in this handler")
        handled.append(event.complaint_no)
        progress.set()

    async def until(condition: object, seconds: float = 30) -> None:
        async with asyncio.timeout(seconds):
            while not condition():  # type: ignore[operator]
                progress.clear()
                await progress.wait()

    broker = KafkaBroker(bootstrap)
    subscribe_events(
        broker, [topic], group_id=f"g-{uuid.uuid4().hex[:6]}", handle=handle, retry_delay=0.01
    )
    await broker.start()
    try:
        poison = _assigned("261122002")
        await broker.publish(encode_event(_assigned("261122001")), topic=topic.name, key=b"1")
        await broker.publish(
            encode_event(poison), topic=topic.name, key=poison.key, headers=poison.headers()
        )
        await broker.publish(b"{not json", topic=topic.name, key=b"x")
        await broker.publish(encode_event(_assigned("261122003")), topic=topic.name, key=b"3")
        await until(lambda: {"261122001", "261122003"} <= set(handled))
        assert len(await read_records(bootstrap, topic.dead_letter, expected=2)) == 2

        looked = await replay(bootstrap, topic.dead_letter, dry_run=True)
        assert looked["would_replay"] == {topic.name: 2}, looked
        assert "replayed" not in looked

        broken = False  # the fix is deployed
        summary = await replay(bootstrap, topic.dead_letter, error_contains="a bug in this")
        await until(lambda: "261122002" in handled)
        again = await replay(bootstrap, topic.dead_letter)
    finally:
        await broker.stop()

    assert summary["replayed"] == {topic.name: 1}
    assert summary["passed_over"] == {topic.name: 1}  # the garbage: no fix helps it
    assert again["replayed"] == {}  # the group remembers where the last replay stopped
    assert handled.count("261122002") == 1
    back = [r for r in await read_records(bootstrap, topic.name, expected=5) if r.key == poison.key]
    assert len(back) == 2  # sent, and replayed once
    assert back[1].value == back[0].value
    headers = dict(back[1].headers)
    assert headers["event_type"] == b"ComplaintAssigned"
    assert not [key for key in headers if key.startswith("dlq.")]


async def test_only_a_dead_letter_topic_can_be_replayed(infra: Infra) -> None:
    with pytest.raises(ValueError, match="not a dead-letter topic"):
        await replay(infra.kafka_bootstrap_servers, "complaints.routing")
    with pytest.raises(ValueError, match="no topic"):
        await replay(infra.kafka_bootstrap_servers, f"test.{uuid.uuid4().hex[:10]}.dlq")


def test_the_command_refuses_what_is_not_a_dead_letter_topic(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["complaints.routing"]) == 2
    assert "not a dead-letter topic" in capsys.readouterr().err
