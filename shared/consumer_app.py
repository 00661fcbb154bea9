"""The composition of a consumer service: a FastStream app whose lifespan owns the database."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

from shared.consumer import batch_transaction, limit_poll_interval
from shared.db import DbConnection
from shared.kafka_security import KafkaSecurity
from shared.metrics import ServiceMetrics
from shared.ops import OpsEndpoints, OpsServer
from shared.policy import LivePacks
from shared.runtime import service_database, start_when_reachable, watching
from shared.settings import ServiceSettings
from shared.watchdog import RESTART_EXIT_CODE, restart_requested, watchdog


class PoolHolder:
    """Gives handlers the pool that the app's lifespan opens."""

    def __init__(self) -> None:
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the service has not started")
        return self._pool

    @property
    def attached(self) -> asyncpg.Pool | None:
        """The pool, or None while the service starts or stops."""
        return self._pool

    def attach(self, pool: asyncpg.Pool | None) -> None:
        self._pool = pool

    def transaction(self) -> AbstractAsyncContextManager[DbConnection]:
        """A handler's transaction: the batch's when it runs inside one (``subscribe``)."""
        return batch_transaction(self.pool)


def new_broker(settings: ServiceSettings, service: str, metrics: ServiceMetrics) -> KafkaBroker:
    # Dead letters are the one thing a consumer publishes directly: same guarantees as the relay.
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=service,
        acks="all",
        enable_idempotence=True,
        graceful_timeout=15.0,
        logger=logging.getLogger(f"{service}.kafka"),
        # FastStream's "Received" and "Processed" lines name no topic, message or complaint
        # and were half of every consumer's log: DEBUG. A handler's exception stays ERROR.
        log_level=logging.DEBUG,
        security=KafkaSecurity.from_settings(settings).faststream(),
        # Traces (shared/tracing.py) and FastStream's consumer and publisher metrics.
        middlewares=(KafkaTelemetryMiddleware(), metrics.broker_middleware()),
    )
    limit_poll_interval(broker, settings.kafka_max_poll_interval_ms)
    return broker


class ConsumerApp(FastStream):
    """Starts its broker as intake and reporting do (``start_when_reachable``): a service
    started while Kafka is away waits for it instead of exiting, which left a consumer
    restarted during a broker outage dead (found by reliability/faults.py). And, as they
    do (``consuming``), it ends for a restart when one of its consumers stops for good
    (shared/watchdog.py)."""

    def __init__(self, broker: KafkaBroker, ops: OpsServer, **options: Any) -> None:
        super().__init__(broker, **options)
        self._kafka = broker
        self._ops = ops

    @property
    def ops_port(self) -> int | None:
        """The port of the ops endpoints once they listen (``OPS_PORT=0`` takes any)."""
        return self._ops.port

    async def _start_broker(self) -> None:
        await start_when_reachable(self._kafka)

    async def run(
        self,
        log_level: int = logging.INFO,
        run_extra_options: dict[str, Any] | None = None,
        sleep_time: float = 0.1,
    ) -> None:
        async with watchdog(self._kafka, stop=self.exit):
            await super().run(log_level, run_extra_options, sleep_time)
        if restart_requested():
            raise SystemExit(RESTART_EXIT_CODE)


def consumer_app(
    broker: KafkaBroker,
    settings: ServiceSettings,
    schema: str,
    migrations: Path,
    holder: PoolHolder,
    metrics: ServiceMetrics,
    *,
    ops_port: int,
    with_relay: bool,
    packs: LivePacks | None = None,
    background: Callable[[], AbstractAsyncContextManager[None]] | None = None,
) -> ConsumerApp:
    """``background`` runs beside the consumers once the database is ready (sla's timers).
    ``ops_port`` is the service's port for its ops endpoints unless ``OPS_PORT`` says
    otherwise."""
    ops = OpsServer(
        OpsEndpoints(metrics, broker, lambda: holder.attached, outbox=with_relay),
        settings.ops_host,
        ops_port if settings.ops_port is None else settings.ops_port,
    )

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        # The ops endpoints first: while the database is awaited, /health answers and
        # /ready says what is missing.
        async with (
            ops.serving(),
            service_database(settings, schema, migrations, with_relay=with_relay) as pool,
            watching(packs),
        ):
            holder.attach(pool)
            async with background() if background else contextlib.nullcontext():
                yield
            holder.attach(None)

    return ConsumerApp(broker, ops, lifespan=lifespan, logger=logging.getLogger(f"{schema}.app"))
