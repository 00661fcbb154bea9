from __future__ import annotations

import asyncio
import json
import socket
from datetime import timedelta
from pathlib import Path

import asyncpg

from shared.contracts import decode_event
from shared.db import apply_migrations
from shared.outbox import OutboxRelay, enqueue
from tests.contracts.golden import golden_samples
from tests.support.infra import Infra
from tests.support.kafka import new_topic, read_records

SCHEMA = "relaytest"


def _event(complaint_no: str):  # type: ignore[no-untyped-def]
    document = {**golden_samples()["ComplaintAssigned"], "complaint_no": complaint_no}
    del document["event_id"]
    event = decode_event(json.dumps(document).encode())
    assert event is not None
    return event


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _relay(database_url: str, bootstrap: str, poll_interval: float = 1.0) -> OutboxRelay:
    relay = OutboxRelay(
        dsn=database_url, schema=SCHEMA, bootstrap_servers=bootstrap, poll_interval=poll_interval
    )
    relay.start()
    return relay


async def _prepare(database_url: str, tmp_path: Path) -> asyncpg.Connection:
    await apply_migrations(database_url, SCHEMA, tmp_path)
    return await asyncpg.connect(database_url, server_settings={"search_path": SCHEMA})


async def test_committed_events_are_published_in_order_and_rolled_back_ones_never(
    infra: Infra, database_url: str, tmp_path: Path
) -> None:
    topic = await new_topic(infra.kafka_bootstrap_servers)
    conn = await _prepare(database_url, tmp_path)
    relay = _relay(database_url, infra.kafka_bootstrap_servers)
    try:
        events = [_event("261122001") for _ in range(5)]
        for event in events:
            async with conn.transaction():
                await enqueue(conn, topic, event)
        try:
            async with conn.transaction():
                await enqueue(conn, topic, _event("261122002"))
                raise RuntimeError("the state change failed")
        except RuntimeError:
            pass
        records = await read_records(infra.kafka_bootstrap_servers, topic, expected=5)
        assert [r.value for r in records] == [e.model_dump_json().encode() for e in events]
        assert {r.key for r in records} == {b"261122001"}
        headers = dict(records[0].headers)
        assert headers["event_type"] == b"ComplaintAssigned"
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0
    finally:
        await relay.stop()
        await conn.close()


async def test_events_wait_while_kafka_is_down_and_go_out_once_it_is_back(
    infra: Infra, database_url: str, tmp_path: Path
) -> None:
    topic = await new_topic(infra.kafka_bootstrap_servers)
    conn = await _prepare(database_url, tmp_path)
    unreachable = _relay(database_url, f"127.0.0.1:{_dead_port()}")
    try:
        async with conn.transaction():
            await enqueue(conn, topic, _event("261122003"))
        await asyncio.sleep(2)
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 1
    finally:
        await unreachable.stop()

    relay = _relay(database_url, infra.kafka_bootstrap_servers)
    try:
        records = await read_records(infra.kafka_bootstrap_servers, topic, expected=1)
        assert len(records) == 1
    finally:
        await relay.stop()
        await conn.close()


async def test_only_one_relay_per_schema_publishes(
    infra: Infra, database_url: str, tmp_path: Path
) -> None:
    topic = await new_topic(infra.kafka_bootstrap_servers)
    conn = await _prepare(database_url, tmp_path)
    relays = [_relay(database_url, infra.kafka_bootstrap_servers, 0.05) for _ in range(3)]
    try:
        for index in range(30):
            async with conn.transaction():
                await enqueue(conn, topic, _event(f"2611220{index:02d}"))
        records = await read_records(infra.kafka_bootstrap_servers, topic, expected=30)
        assert len(records) == 30
        assert len({r.value for r in records}) == 30
    finally:
        for relay in relays:
            await relay.stop()
        await conn.close()


async def test_published_rows_are_deleted_after_the_retention_and_no_others(
    infra: Infra, database_url: str, tmp_path: Path
) -> None:
    topic = await new_topic(infra.kafka_bootstrap_servers)
    conn = await _prepare(database_url, tmp_path)
    relay = _relay(database_url, infra.kafka_bootstrap_servers)
    try:
        for index in range(5):
            async with conn.transaction():
                await enqueue(conn, topic, _event(f"26112210{index}"))
        await read_records(infra.kafka_bootstrap_servers, topic, expected=5)
        await _wait_published(conn)
    finally:
        await relay.stop()
    ids = [r["id"] for r in await conn.fetch("SELECT id FROM outbox ORDER BY id")]
    await conn.execute(
        "UPDATE outbox SET published_at = now() - interval '8 days' WHERE id = ANY($1)", ids[:3]
    )
    async with conn.transaction():
        await enqueue(conn, topic, _event("261122109"))
    pruning = OutboxRelay(
        dsn=database_url,
        schema=SCHEMA,
        bootstrap_servers=infra.kafka_bootstrap_servers,
        retention=timedelta(days=7),
        prune_batch=2,  # more than one slice
    )
    pruning.start()
    try:
        for _ in range(100):
            if await conn.fetchval("SELECT count(*) FROM outbox") == 3:
                break
            await asyncio.sleep(0.1)
    finally:
        await pruning.stop()
        remaining = [r["id"] for r in await conn.fetch("SELECT id FROM outbox ORDER BY id")]
        await conn.close()
    assert remaining[:2] == ids[3:]
    assert len(remaining) == 3
    assert remaining[2] > ids[-1]  # the one enqueued since


async def _wait_published(conn: asyncpg.Connection) -> None:
    for _ in range(100):
        if not await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the relay did not mark its rows published")
