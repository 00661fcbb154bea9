from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import fast_depends.utils
import pytest
from faststream.kafka import KafkaBroker

from shared.consumer import (
    POISON_ATTEMPTS,
    EventHandler,
    batch_transaction,
    subscribe,
    subscribe_events,
)
from shared.contracts import Event, decode_event, encode_event
from shared.db import DbConnection
from shared.kafka_admin import ensure_topics
from shared.topics import Topic
from tests.contracts.evolution import evolved_contract, v1_document
from tests.contracts.golden import golden_samples
from tests.support.infra import Infra
from tests.support.intake import wait_for
from tests.support.kafka import read_records


def _assigned(complaint_no: str) -> Event:
    document = {**golden_samples()["ComplaintAssigned"], "complaint_no": complaint_no}
    document["event_id"] = str(uuid.uuid4())
    event = decode_event(json.dumps(document).encode())
    assert event is not None
    return event


async def _subscribed_broker(infra: Infra, handle: EventHandler) -> tuple[KafkaBroker, Topic]:
    """A started broker feeding a fresh one-partition topic to ``handle``."""
    topic = Topic(f"test.{uuid.uuid4().hex[:10]}", 1, "test", "consumer test")
    await ensure_topics(infra.kafka_bootstrap_servers, {topic.name: 1, topic.dead_letter: 1})
    broker = KafkaBroker(infra.kafka_bootstrap_servers)
    subscribe_events(
        broker, [topic], group_id=f"g-{uuid.uuid4().hex[:6]}", handle=handle, retry_delay=0.01
    )
    await broker.start()
    return broker, topic


async def test_poison_and_garbage_go_to_the_dead_letter_topic_and_the_partition_flows_on(
    infra: Infra,
) -> None:
    handled: list[str] = []
    attempts: dict[str, int] = {}
    done = asyncio.Event()

    async def handle(event: Event) -> None:
        attempts[event.complaint_no] = attempts.get(event.complaint_no, 0) + 1
        if event.complaint_no == "261122666":
            raise ValueError("this event breaks the handler")
        handled.append(event.complaint_no)
        if event.complaint_no == "261122003":
            done.set()

    broker, topic = await _subscribed_broker(infra, handle)
    try:
        await broker.publish(encode_event(_assigned("261122001")), topic=topic.name, key=b"1")
        # A body its content-type belies: FastStream's own decoding would choke on it.
        await broker.publish(
            b"{not json",
            topic=topic.name,
            key=b"x",
            headers={"content-type": "application/json"},
        )
        await broker.publish(encode_event(_assigned("261122666")), topic=topic.name, key=b"6")
        await broker.publish(
            json.dumps({"event_type": "SomethingFromTheFuture"}).encode(), topic=topic.name
        )
        await broker.publish(encode_event(_assigned("261122003")), topic=topic.name, key=b"3")
        await asyncio.wait_for(done.wait(), 30)
    finally:
        await broker.stop()

    assert handled == ["261122001", "261122003"]
    assert attempts["261122666"] == POISON_ATTEMPTS
    dead = await read_records(infra.kafka_bootstrap_servers, topic.dead_letter, expected=2)
    assert len(dead) == 2
    garbage, poison = dead
    assert garbage.value == b"{not json"
    garbage_headers = {k: v.decode() for k, v in garbage.headers}
    assert garbage_headers["dlq.original_topic"] == topic.name
    assert garbage_headers["dlq.original_partition"] == "0"
    assert garbage_headers["dlq.original_offset"] == "1"
    assert "not JSON" in garbage_headers["dlq.error"]
    poison_headers = {k: v.decode() for k, v in poison.headers}
    assert poison_headers["dlq.original_offset"] == "2"
    assert "ValueError: this event breaks the handler" in poison_headers["dlq.error"]


async def test_an_unreachable_database_redelivers_instead_of_losing(infra: Infra) -> None:
    calls = 0
    done = asyncio.Event()

    async def handle(event: Event) -> None:
        nonlocal calls
        calls += 1
        if calls <= 5:
            raise ConnectionRefusedError("database down")
        done.set()

    broker, topic = await _subscribed_broker(infra, handle)
    try:
        await broker.publish(encode_event(_assigned("261122001")), topic=topic.name, key=b"1")
        await asyncio.wait_for(done.wait(), 30)
    finally:
        await broker.stop()
    assert calls == 6
    assert (
        await read_records(infra.kafka_bootstrap_servers, topic.dead_letter, expected=0, timeout=1)
        == []
    )


async def _batched_broker(
    infra: Infra,
    pool: asyncpg.Pool,
    handle: EventHandler,
    events: list[Event],
    handle_many: Callable[[list[Event]], Awaitable[None]] | None = None,
) -> tuple[KafkaBroker, Topic]:
    """``events`` already on a fresh topic when a batching consumer starts, so they
    arrive together."""
    topic = Topic(f"test.{uuid.uuid4().hex[:10]}", 1, "test", "consumer test")
    await ensure_topics(infra.kafka_bootstrap_servers, {topic.name: 1, topic.dead_letter: 1})
    broker = KafkaBroker(infra.kafka_bootstrap_servers)
    await broker.connect()
    for event in events:
        await broker.publish(encode_event(event), topic=topic.name, key=b"k")
    subscribe_events(
        broker,
        [topic],
        group_id=f"g-{uuid.uuid4().hex[:6]}",
        handle=handle,
        pool=lambda: pool,
        handle_many=handle_many,
        retry_delay=0.01,
    )
    await broker.start()
    return broker, topic


async def _consume_into_effects(
    infra: Infra, pool: asyncpg.Pool, events: list[Event], poison: str | None = None
) -> Topic:
    """A batching consumer records each event in ``effects`` (and fails on ``poison``
    after writing); returns once the last event is handled."""
    await pool.execute(
        "CREATE TABLE effects (complaint_no text, txid bigint DEFAULT txid_current())"
    )
    done = asyncio.Event()

    async def handle(event: Event) -> None:
        async with batch_transaction(pool) as conn:
            await conn.execute("INSERT INTO effects (complaint_no) VALUES ($1)", event.complaint_no)
            if event.complaint_no == poison:
                raise ValueError("this event breaks the handler")
        if event.complaint_no == events[-1].complaint_no:
            done.set()

    broker, topic = await _batched_broker(infra, pool, handle, events)
    try:
        await asyncio.wait_for(done.wait(), 30)
        await asyncio.sleep(0.5)
    finally:
        await broker.stop()
    return topic


async def test_a_batch_of_events_commits_in_one_transaction(
    infra: Infra, database_url: str
) -> None:
    events = [_assigned(f"2611220{i:02d}") for i in range(60)]
    async with asyncpg.create_pool(database_url, min_size=1, max_size=2) as pool:
        await _consume_into_effects(infra, pool, events)
        rows = await pool.fetch("SELECT complaint_no, txid FROM effects")
    assert sorted(r["complaint_no"] for r in rows) == sorted(e.complaint_no for e in events)
    # Kafka may split the backlog over a few polls, but never one per event.
    assert len({r["txid"] for r in rows}) <= 5


async def test_a_failing_event_rolls_its_batch_back_and_the_rest_commit_once(
    infra: Infra, database_url: str
) -> None:
    events = [_assigned(f"2611220{i:02d}") for i in range(40)]
    poison = events[17].complaint_no
    async with asyncpg.create_pool(database_url, min_size=1, max_size=2) as pool:
        topic = await _consume_into_effects(infra, pool, events, poison)
        rows = await pool.fetch("SELECT complaint_no FROM effects ORDER BY complaint_no")
    assert [r["complaint_no"] for r in rows] == sorted(
        e.complaint_no for e in events if e.complaint_no != poison
    )
    dead = await read_records(infra.kafka_bootstrap_servers, topic.dead_letter, expected=1)
    assert [record.value for record in dead] == [encode_event(events[17])]


async def test_a_batch_handler_takes_the_batch_at_once_and_a_failure_goes_one_by_one(
    infra: Infra, database_url: str
) -> None:
    events = [_assigned(f"2611220{i:02d}") for i in range(50)]
    poison = events[31].complaint_no
    batch_sizes: list[int] = []
    one_by_one: list[str] = []
    done = asyncio.Event()

    async def record(conn: DbConnection, event: Event) -> None:
        await conn.execute("INSERT INTO effects (complaint_no) VALUES ($1)", event.complaint_no)
        if event.complaint_no == poison:
            raise ValueError("this event breaks the handler")
        if event.complaint_no == events[-1].complaint_no:
            done.set()

    async def handle_many(batch: list[Event]) -> None:
        batch_sizes.append(len(batch))
        async with batch_transaction(pool) as conn:
            for event in batch:
                await record(conn, event)

    async def handle(event: Event) -> None:
        one_by_one.append(event.complaint_no)
        async with batch_transaction(pool) as conn:
            await record(conn, event)

    async with asyncpg.create_pool(database_url, min_size=1, max_size=2) as pool:
        await pool.execute("CREATE TABLE effects (complaint_no text)")
        broker, topic = await _batched_broker(infra, pool, handle, events, handle_many)
        try:
            await asyncio.wait_for(done.wait(), 30)
            await asyncio.sleep(0.5)
        finally:
            await broker.stop()
        rows = await pool.fetch("SELECT complaint_no FROM effects ORDER BY complaint_no")
    assert [r["complaint_no"] for r in rows] == sorted(
        e.complaint_no for e in events if e.complaint_no != poison
    )
    assert max(batch_sizes) > 1  # whole batches reached the batch handler
    assert poison in one_by_one  # its batch was replayed one event at a time
    dead = await read_records(infra.kafka_bootstrap_servers, topic.dead_letter, expected=1)
    assert [record.value for record in dead] == [encode_event(events[31])]


async def test_events_stored_before_a_contract_changed_reach_the_handler_upcast(
    infra: Infra,
) -> None:
    """Written by a v1 producer, on the topic since, read by a consumer built for v3."""
    received: list[Event] = []
    done = asyncio.Event()

    async def handle(event: Event) -> None:
        received.append(event)
        if len(received) == 2:
            done.set()

    with evolved_contract():
        broker, topic = await _subscribed_broker(infra, handle)
        try:
            await broker.publish(json.dumps(v1_document()).encode(), topic=topic.name, key=b"1")
            await broker.publish(
                json.dumps(v1_document(schema_version=3, weight_grams=7)).encode(),
                topic=topic.name,
                key=b"1",
            )
            await asyncio.wait_for(done.wait(), 30)
        finally:
            await broker.stop()

    assert [(e.schema_version, e.model_dump().get("weight_grams")) for e in received] == [
        (3, 2500),
        (3, 7),
    ]


async def test_a_decoder_that_fails_unexpectedly_dead_letters_instead_of_stopping(
    infra: Infra,
) -> None:
    """A bug in a decoder, not a rejection: retrying the same bytes cannot help."""
    topic = Topic(f"test.{uuid.uuid4().hex[:10]}", 1, "test", "consumer test")
    await ensure_topics(infra.kafka_bootstrap_servers, {topic.name: 1, topic.dead_letter: 1})
    handled: list[str] = []
    done = asyncio.Event()

    def decode(raw: bytes) -> str:
        if raw.startswith(b"bug"):
            raise KeyError("a decoder's own mistake")
        return raw.decode()

    async def handle(message: str) -> None:
        handled.append(message)
        if message == "last":
            done.set()

    broker = KafkaBroker(infra.kafka_bootstrap_servers)
    subscribe(
        broker,
        [topic],
        group_id=f"g-{uuid.uuid4().hex[:6]}",
        decode=decode,
        handle=handle,
        log_context=lambda message: {},
        retry_delay=0.01,
    )
    await broker.start()
    try:
        for raw in (b"first", b"bug in here", b"last"):
            await broker.publish(raw, topic=topic.name, key=b"k")
        await asyncio.wait_for(done.wait(), 30)
    finally:
        await broker.stop()

    assert handled == ["first", "last"]
    (dead,) = await read_records(infra.kafka_bootstrap_servers, topic.dead_letter, expected=1)
    assert dead.value == b"bug in here"
    headers = {k: v.decode() for k, v in dead.headers}
    assert headers["dlq.original_offset"] == "1"
    assert "undecodable: KeyError" in headers["dlq.error"]


async def test_a_batch_reaches_its_handler_without_a_worker_thread(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fast_depends resolves a sync parameter (a ``KafkaMessage`` context) in a worker
    thread; the batch handler takes its records as its body instead, so no batch pays
    that hop (BENCHMARKS.md, 2026-11-23)."""
    hops: list[object] = []
    in_threadpool = fast_depends.utils.run_in_threadpool

    async def counted(func: Callable[..., object], *args: object, **kwargs: object) -> object:
        hops.append(func)
        return await in_threadpool(func, *args, **kwargs)

    monkeypatch.setattr(fast_depends.utils, "run_in_threadpool", counted)
    handled: list[str] = []

    async def handle(event: Event) -> None:
        handled.append(event.complaint_no)

    broker, topic = await _subscribed_broker(infra, handle)
    try:
        for number in ("261122101", "261122102"):
            await broker.publish(encode_event(_assigned(number)), topic=topic.name, key=b"k")

        async def both() -> bool:
            return len(handled) == 2

        await wait_for(both, timeout=30)
    finally:
        await broker.stop()
    assert handled == ["261122101", "261122102"]
    assert hops == []
