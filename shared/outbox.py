"""Transactional outbox: write events with the state change, publish them after commit.

``enqueue`` runs inside the caller's transaction. ``OutboxRelay`` publishes
committed rows in id order with an idempotent producer (acks=all) and marks
them published. It wakes on the NOTIFY that the outbox trigger sends at commit,
and polls as a fallback. One relay per schema is active at a time (a session
advisory lock); others stand by, so a complaint's events keep their order.
A crash between send and mark re-sends; consumers skip the duplicate by event id.
A message enqueued inside a span (a request, a consumed message) keeps its trace context
(``traceparent``) in its headers, so the consumers continue the trace (shared/tracing.py).

Published rows are deleted once older than the retention: they are the broker's
to keep from then on, and left in place they would be most of a busy schema's
disk (about 30 rows per complaint across the services). A message enqueued again
after its row is gone goes out again; consumers skip it by event id as above.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
import zlib
from datetime import timedelta
from typing import Any, Protocol

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer

from shared.db import DbConnection
from shared.kafka_security import PLAINTEXT, KafkaSecurity
from shared.tracing import trace_headers

log = structlog.get_logger(__name__)


class Publishable(Protocol):
    """An event or other message the outbox can carry."""

    @property
    def event_id(self) -> uuid.UUID: ...

    @property
    def key(self) -> bytes: ...

    def headers(self) -> dict[str, str]: ...

    def model_dump_json(self) -> str: ...


async def enqueue(conn: DbConnection, topic: str, message: Publishable) -> None:
    """Add ``message`` to the outbox of the schema on ``conn``'s search path.

    A message whose id is already there is not added again, so deterministic ids make
    enqueueing idempotent.
    """
    await conn.execute(
        """INSERT INTO outbox (event_id, topic, key, payload, headers)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING""",
        message.event_id,
        topic,
        message.key,
        message.model_dump_json().encode(),
        json.dumps({**message.headers(), **trace_headers()}),
    )


async def enqueue_many(conn: DbConnection, topic: str, messages: list[Publishable]) -> None:
    """``enqueue`` for a batch, in one statement (cheaper for the database than a row
    at a time)."""
    if not messages:
        return
    traced = trace_headers()
    await conn.execute(
        """INSERT INTO outbox (event_id, topic, key, payload, headers)
           SELECT event_id, $2, key, payload, headers::jsonb
           FROM unnest($1::uuid[], $3::bytea[], $4::bytea[], $5::text[]) WITH ORDINALITY
               AS m (event_id, key, payload, headers, position)
           ORDER BY position  -- ids, and so publishing, in the order given
           ON CONFLICT (event_id) DO NOTHING""",
        [m.event_id for m in messages],
        topic,
        [m.key for m in messages],
        [m.model_dump_json().encode() for m in messages],
        [json.dumps({**m.headers(), **traced}) for m in messages],
    )


class OutboxRelay:
    """Publishes one schema's outbox to Kafka until stopped."""

    def __init__(
        self,
        *,
        dsn: str,
        schema: str,
        bootstrap_servers: str,
        poll_interval: float = 1.0,
        batch_size: int = 500,
        max_backoff: float = 5.0,
        retention: timedelta = timedelta(days=7),
        prune_every: float = 300.0,
        prune_batch: int = 10_000,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self._dsn = dsn
        self._schema = schema
        self._bootstrap_servers = bootstrap_servers
        self._security = security
        self._poll_interval = poll_interval
        self._batch_size = batch_size
        self._max_backoff = max_backoff
        self._retention = retention
        self._prune_every = prune_every
        self._prune_batch = prune_batch
        self._pruned_at = float("-inf")
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock_key = zlib.crc32(f"outbox-relay:{schema}".encode())

    def start(self) -> None:
        self._task = asyncio.create_task(self._run_forever(), name=f"outbox-relay-{self._schema}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run_forever(self) -> None:
        backoff = 0.2
        while True:
            try:
                await self._run_session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "outbox relay interrupted, retrying",
                    schema=self._schema,
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in=backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
            else:
                backoff = 0.2

    async def _run_session(self) -> None:
        conn = await asyncpg.connect(
            self._dsn, timeout=5, server_settings={"search_path": self._schema}
        )
        producer: AIOKafkaProducer | None = None
        try:
            await conn.add_listener(f"outbox_{self._schema}", self._on_notify)
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key):
                # Another instance's relay is active; stand by and try again.
                await asyncio.sleep(self._poll_interval)
                return
            producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap_servers,
                enable_idempotence=True,
                acks="all",
                linger_ms=2,
                request_timeout_ms=10_000,
                **self._security.client_options(),
            )
            await producer.start()
            log.info("outbox relay active", schema=self._schema)
            while True:
                self._wake.clear()
                published = await self._publish_batch(conn, producer)
                # One slice per round, between publishing: a first prune of a large
                # backlog never holds up the events waiting to go out.
                due = time.monotonic() - self._pruned_at >= self._prune_every
                if due and await self._prune_slice(conn) < self._prune_batch:
                    self._pruned_at = time.monotonic()
                if published < self._batch_size:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._poll_interval)
        finally:
            if producer is not None:
                with contextlib.suppress(Exception):
                    await producer.stop()
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    def _on_notify(self, *_args: Any) -> None:
        self._wake.set()

    async def _publish_batch(self, conn: DbConnection, producer: AIOKafkaProducer) -> int:
        rows = await conn.fetch(
            """SELECT id, topic, key, payload, headers FROM outbox
               WHERE published_at IS NULL ORDER BY id LIMIT $1""",
            self._batch_size,
        )
        if not rows:
            return 0
        deliveries = []
        for row in rows:
            headers = [(k, str(v).encode()) for k, v in json.loads(row["headers"]).items()]
            deliveries.append(
                await producer.send(
                    row["topic"], value=row["payload"], key=row["key"], headers=headers
                )
            )
        await asyncio.gather(*deliveries)
        await conn.execute(
            "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
            [row["id"] for row in rows],
        )
        log.debug("outbox published", schema=self._schema, count=len(rows))
        return len(rows)

    async def _prune_slice(self, conn: DbConnection) -> int:
        """Delete the expired rows among the oldest ``prune_batch``; how many went."""
        # Rows are published in id order, so the old ones are the lowest ids: a slice reads
        # the head of the table by its key instead of scanning a week of rows for a
        # publishing time that has no index.
        status = await conn.execute(
            """DELETE FROM outbox WHERE id IN (
                   SELECT id FROM outbox ORDER BY id LIMIT $2)
               AND published_at < now() - $1::interval""",
            self._retention,
            self._prune_batch,
        )
        deleted = int(status.split()[-1])
        if deleted:
            log.info("outbox pruned", schema=self._schema, deleted=deleted)
        return deleted
