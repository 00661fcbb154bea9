"""deploy/local/backup.py for the tests, and what they read to check a backup and a restore."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterable
from functools import cache
from types import ModuleType
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.topics import Topic
from tests.support.processes import REPO


@cache
def backup_tool() -> ModuleType:
    """deploy/local is scripts, not a package: load the tool by its path."""
    path = REPO / "deploy" / "local" / "backup.py"
    spec = importlib.util.spec_from_file_location("complaints_backup", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("complaints_backup", module)  # its dataclasses look it up
    spec.loader.exec_module(module)
    return module


async def table_counts(database_url: str, schemas: Iterable[str]) -> dict[str, int]:
    """Rows of every table of ``schemas``, counted here rather than by the tool under test."""
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetch(
            """SELECT table_schema, table_name FROM information_schema.tables
               WHERE table_type = 'BASE TABLE' AND table_schema = ANY($1::text[])""",
            list(schemas),
        )
        return {
            f"{t['table_schema']}.{t['table_name']}": int(
                await conn.fetchval(
                    f'SELECT count(*) FROM "{t["table_schema"]}"."{t["table_name"]}"'
                )
            )
            for t in tables
        }
    finally:
        await conn.close()


async def committed_offsets(
    bootstrap: str, group: str, topics: Iterable[str]
) -> dict[str, dict[str, int]]:
    """The group's committed offsets on ``topics``, shaped as the manifest holds them."""
    wanted = set(topics)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        found = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    offsets: dict[str, dict[str, int]] = {topic: {} for topic in wanted}
    for tp, meta in found.items():
        if tp.topic in wanted and meta.offset >= 0:
            offsets[tp.topic][str(tp.partition)] = meta.offset
    return offsets


async def whole_topic(bootstrap: str, topic: Topic) -> list[dict[str, Any]]:
    """Every event on ``topic`` up to its end as of now, decoded as JSON."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        partitions = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        pending = {tp for tp in partitions if ends[tp] > 0}
        while pending:
            for tp, batch in (await consumer.getmany(*pending, timeout_ms=1000)).items():
                records.extend(r for r in batch if r.offset < ends[tp])
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return [json.loads(record.value or b"{}") for record in records]
