"""SIGTERM in the middle of a backlog: the service stops consuming, commits the offsets of
what it finished, and exits within its graceful timeout without an error; a restart takes
up exactly where it stopped.

The same exactness holds after kill -9 in all but a narrow window (between a batch's
database commit and its offset commit), because each batch's effects and inbox entries
commit in one transaction; test_routing_instances.py and the fault harness kill. What
this test adds is the orderly exit: in time, with code 0 (or uvicorn's re-raised SIGTERM),
no traceback, and nothing processed left uncommitted."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from pathlib import Path

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from shared.topics import Topics, consumer_group
from tests.integration.test_routing import produce, received
from tests.support.db import scalar
from tests.support.infra import Infra
from tests.support.intake import wait_for
from tests.support.kafka import read_records
from tests.support.processes import Platform, platform_env

BACKLOG = 1500
GRACEFUL_TIMEOUT = 15  # shared/consumer_app.py: the broker's graceful_timeout


async def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


async def test_sigterm_drains_and_commits_what_was_done_and_a_restart_resumes_exactly(
    infra: Infra, database_url: str, topics: Topics, tmp_path: Path
) -> None:
    bootstrap = infra.kafka_bootstrap_servers
    await produce(
        bootstrap,
        topics.intake.name,
        [received(f"26112{index:05d}", "facilities") for index in range(BACKLOG)],
    )
    platform = Platform(
        platform_env(
            KAFKA_BOOTSTRAP_SERVERS=bootstrap,
            DATABASE_URL=database_url,
            COMPLAINTS_TOPIC_NAMESPACE=topics.namespace,
        ),
        tmp_path,
    )
    processed = "SELECT count(*) FROM routing.processed_events"
    try:
        platform.start("routing", "-m", "services.routing")

        async def under_way() -> bool:
            return await scalar(database_url, processed) >= 100

        await wait_for(under_way, timeout=120, interval=0.05)
        stopping = time.monotonic()
        platform.processes["routing"].send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(platform.processes["routing"].wait, GRACEFUL_TIMEOUT + 15)
        took = time.monotonic() - stopping
        done_at_stop = await scalar(database_url, processed)
        group = consumer_group(topics.namespace, "routing")
        committed = await _committed(bootstrap, group, topics.intake.name)
        log = platform.log("routing")
    finally:
        platform.stop()

    assert code in (0, -signal.SIGTERM), log
    assert took < GRACEFUL_TIMEOUT + 5, took  # the timeout, plus the interpreter's exit
    assert done_at_stop < BACKLOG, "the backlog was gone before the signal: nothing to drain"
    assert "Traceback" not in log, log

    # Exactly the events below each partition's committed offset have their effect recorded:
    # nothing done is left uncommitted (it would run again), nothing committed is undone.
    records = await read_records(bootstrap, topics.intake.name, expected=BACKLOG)
    below = {
        uuid.UUID(json.loads(r.value)["event_id"])
        for r in records
        if r.offset < committed.get(r.partition, 0)
    }
    conn = await asyncpg.connect(database_url)
    try:
        recorded = {
            row["event_id"]
            for row in await conn.fetch("SELECT event_id FROM routing.processed_events")
        }
    finally:
        await conn.close()
    assert recorded == below
    assert len(recorded) == done_at_stop

    restarted = Platform(platform.env, tmp_path / "restart")
    (tmp_path / "restart").mkdir()
    restarted.start("routing", "-m", "services.routing")
    try:

        async def all_assigned() -> bool:
            return await scalar(database_url, "SELECT count(*) FROM routing.assignments") >= BACKLOG

        await wait_for(all_assigned, timeout=180)
        await asyncio.sleep(2)
    finally:
        restarted.stop()
    assert await scalar(database_url, "SELECT count(*) FROM routing.assignments") == BACKLOG
    assert await scalar(database_url, processed) == BACKLOG
