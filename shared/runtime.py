"""What every service does at start-up and shutdown: migrate, pool, relay."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import asyncpg
import structlog
from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker

from shared.db import apply_migrations, create_pool, is_connection_error
from shared.kafka_security import KafkaSecurity
from shared.outbox import OutboxRelay
from shared.policy import LivePacks
from shared.settings import ServiceSettings
from shared.tasks import in_background
from shared.watchdog import terminate_gracefully, watchdog

log = structlog.get_logger(__name__)


async def migrate_when_reachable(
    settings: ServiceSettings, schema: str, migrations: Path, *, wait_seconds: float = 60.0
) -> None:
    """Apply migrations, waiting for the database to come up for at most ``wait_seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    while True:
        try:
            applied = await apply_migrations(settings.database_url, schema, migrations)
        except Exception as exc:
            if not is_connection_error(exc) or loop.time() > deadline:
                raise
            log.warning("database not reachable yet", error=repr(exc))
            await asyncio.sleep(1.0)
        else:
            if applied:
                log.info("migrations applied", schema=schema, files=applied)
            return


@asynccontextmanager
async def service_database(
    settings: ServiceSettings, schema: str, migrations: Path, *, with_relay: bool
) -> AsyncIterator[asyncpg.Pool]:
    """Migrated schema, a pool on it and, for producers, the outbox relay."""
    await migrate_when_reachable(settings, schema, migrations)
    pool = await create_pool(settings.database_url, schema, max_size=settings.db_pool_max_size)
    relay = None
    if with_relay:
        relay = OutboxRelay(
            dsn=settings.database_url,
            schema=schema,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            retention=timedelta(hours=settings.outbox_retention_hours),
            security=KafkaSecurity.from_settings(settings),
        )
        relay.start()
    settle_heap()
    try:
        yield pool
    finally:
        gc.unfreeze()  # a service started and stopped inside a test run leaves nothing kept
        if relay is not None:
            await relay.stop()
        await pool.close()


def settle_heap() -> None:
    """Once a service has started, what it has built (modules, models, its app) lives as
    long as the process: moved out of the garbage collector's generations, it is no longer
    walked by every full collection. Those walks took 30 ms at a time in reporting, once
    every dozen reports: the p99 of its fast reports (docs/performance.md)."""
    gc.collect()
    gc.freeze()


async def start_when_reachable(broker: KafkaBroker, *, max_backoff: float = 5.0) -> None:
    """Start the broker's consumers, retrying while Kafka is unreachable.

    Run it as a task so that a service with an HTTP side keeps answering (and intake
    keeps accepting into its outbox) while the broker is down.
    """
    backoff = 0.5
    while True:
        try:
            await broker.start()
            return
        except (KafkaError, OSError) as exc:
            log.warning("kafka not reachable yet", error=repr(exc), retry_in=backoff)
            with contextlib.suppress(Exception):
                await broker.stop()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff)


@asynccontextmanager
async def consuming(broker: KafkaBroker) -> AsyncIterator[None]:
    """Consumers running in the background for the duration of the block.

    Should one stop for good, the process shuts down as on SIGTERM and ends for a restart
    (shared/watchdog.py; ``shared.http.serve`` gives it the exit code).
    """
    starting = asyncio.create_task(start_when_reachable(broker))
    try:
        async with watchdog(broker, stop=terminate_gracefully):
            yield
    finally:
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        await broker.stop()


@asynccontextmanager
async def watching(packs: LivePacks | None) -> AsyncIterator[None]:
    """Policy packs reloaded from their folder while the block runs."""
    if packs is None:
        yield
        return
    async with in_background(packs.watch()):
        yield
