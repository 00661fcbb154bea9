"""Subscribing a service to an event topic with bounded retries and a dead-letter topic.

Offsets are committed only after a message is handled (FastStream's
``NACK_ON_ERROR``: on an exception the consumer seeks back and the message is
delivered again). What is raised decides the fate of a message:

- bytes that are not a valid message, and messages a handler rejects
  (``RejectedMessageError``), go to the dead-letter topic at once;
- the database or broker being unreachable is retried without limit, with
  backoff, because the message is fine and nothing may be lost;
- any other error is retried a few times in place, then dead-lettered, so one
  poison message never blocks its partition.

The dead letter carries the original topic, partition, offset, consumer group
and error in its headers, and the original bytes as its body.

Messages arrive in batches (up to ``BATCH_RECORDS`` per poll). Given a pool, a
batch is handled in one database transaction: handlers that open theirs with
``batch_transaction`` join it, so a burst costs one commit instead of one per
event (and a ``handle_many`` handler takes the whole batch in one call). If any
message of the batch fails, the batch is rolled back and its messages are handled
again one at a time, each in its own transaction, where the rules above pick out
the culprit. What must happen only once a handler's work is kept (a metric counted)
waits for the commit with ``after_commit``.

Each message is handled in a span that continues its producer's trace
(shared/tracing.py), so what the handler publishes carries the trace on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

import asyncpg
import structlog
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage

from shared.contracts import Event, RejectedMessageError, decode_event
from shared.db import DbConnection, is_connection_error
from shared.topics import DEAD_LETTER_SUFFIX, Topic, consumer_group
from shared.tracing import handling

log = structlog.get_logger(__name__)

EventHandler = Callable[[Event], Awaitable[None]]

POISON_ATTEMPTS = 3
# Large enough that a burst costs few commits, small enough that a batch replayed
# one by one after a failure stays quick.
BATCH_RECORDS = 500

_batch_connection: ContextVar[DbConnection | None] = ContextVar("batch_connection", default=None)
_on_commit: ContextVar[list[Callable[[], None]] | None] = ContextVar("on_commit", default=None)

# Kafka's max.poll.interval.ms, unless the broker's service set its own (new_broker): the
# subscriber is declared where the settings are not at hand.
DEFAULT_MAX_POLL_INTERVAL_MS = 300_000
_max_poll_interval_ms: WeakKeyDictionary[KafkaBroker, int] = WeakKeyDictionary()


def limit_poll_interval(broker: KafkaBroker, milliseconds: int) -> None:
    """The max.poll.interval.ms of the consumers ``subscribe`` declares on ``broker``."""
    _max_poll_interval_ms[broker] = milliseconds


@asynccontextmanager
async def batch_transaction(pool: asyncpg.Pool) -> AsyncIterator[DbConnection]:
    """The transaction of the batch being handled, or a new one of its own outside a batch."""
    shared = _batch_connection.get()
    if shared is not None:
        yield shared
        return
    actions: list[Callable[[], None]] = []
    token = _on_commit.set(actions)
    try:
        async with pool.acquire() as conn, conn.transaction():
            yield conn
    finally:
        _on_commit.reset(token)
    _run(actions)


def after_commit(action: Callable[[], None]) -> None:
    """Run ``action`` once the ``batch_transaction`` it is called in (the batch's, inside
    one) has committed; never for one rolled back, which a batch handled again one
    message at a time would otherwise count twice."""
    actions = _on_commit.get()
    if actions is None:
        raise RuntimeError("after_commit is for work inside a batch_transaction")
    actions.append(action)


def _run(actions: list[Callable[[], None]]) -> None:
    for action in actions:
        action()


MessageT = TypeVar("MessageT")


def _is_transient(exc: BaseException) -> bool:
    return is_connection_error(exc) or isinstance(exc, KafkaConnectionError | KafkaTimeoutError)


async def _dead_letter(
    broker: KafkaBroker, group_id: str, record: ConsumerRecord[bytes, bytes], error: str
) -> None:
    # The message's own headers go along, so that a replay (shared/dlq_replay.py) sends
    # it back as it was.
    headers = {
        **{
            key: value.decode("utf-8", "replace")
            for key, value in record.headers
            if not key.startswith("dlq.")
        },
        "dlq.original_topic": record.topic,
        "dlq.original_partition": str(record.partition),
        "dlq.original_offset": str(record.offset),
        "dlq.consumer_group": group_id,
        "dlq.error": error[:2000],
    }
    await broker.publish(
        record.value or b"",
        topic=record.topic + DEAD_LETTER_SUFFIX,
        key=record.key,
        headers=headers,
    )
    log.error(
        "message dead-lettered",
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        error=error[:500],
    )


async def _raw_records(msg: StreamMessage[Any]) -> tuple[ConsumerRecord[bytes, bytes], ...]:
    """FastStream's decoder in place of its own, which would parse each body as JSON
    before we do: twice the work, and its errors on hostile bytes (a 5,000-digit number,
    a body its content-type header belies) would fail every delivery of the batch before
    our decoder could dead-letter the message, stopping the partition for good. The
    batch's records become the handler's body: a ``KafkaMessage`` parameter instead would
    be resolved in a worker thread on every batch (fast_depends runs its sync ``use`` so),
    5-14 % of a consumer's CPU (BENCHMARKS.md, 2026-11-23)."""
    records = msg.raw_message
    return records if isinstance(records, tuple) else (records,)


def subscribe(
    broker: KafkaBroker,
    topics: Sequence[Topic],
    *,
    group_id: str,
    decode: Callable[[bytes], MessageT | None],
    handle: Callable[[MessageT], Awaitable[None]],
    log_context: Callable[[MessageT], dict[str, str]],
    pool: Callable[[], asyncpg.Pool] | None = None,
    handle_many: Callable[[list[MessageT]], Awaitable[None]] | None = None,
    retry_delay: float = 0.5,
) -> None:
    """Feed every message on ``topics`` that ``decode`` accepts to ``handle``.

    ``decode`` returns None for a message that is not this service's business, and
    raises ``RejectedMessageError`` (as may ``handle``) for one that never will be
    processable. One consumer in ``group_id`` reads all the topics, so a service joins
    its group once. With ``pool``, each batch shares one transaction (see the module's
    note); ``handle`` must then open its transaction with ``batch_transaction``, as must
    ``handle_many``, which, when given, takes a whole batch at once in its transaction
    (cheaper for a handler that can fold many messages into a few statements); a batch
    that fails is still handled again one message at a time, by ``handle``.

    ``group_id`` is the service's group name; outside the default namespace the group
    joined carries the topics' namespace (``consumer_group``).
    """
    [namespace] = {topic.namespace for topic in topics}
    group_id = consumer_group(namespace, group_id)

    async def handle_alone(record: ConsumerRecord[bytes, bytes], message: MessageT) -> None:
        with (
            handling(record.topic, record.headers),
            structlog.contextvars.bound_contextvars(**log_context(message)),
        ):
            for attempt in range(1, POISON_ATTEMPTS + 1):
                try:
                    await handle(message)
                    return
                except RejectedMessageError as exc:
                    await _dead_letter(broker, group_id, record, str(exc))
                    return
                except Exception as exc:
                    if _is_transient(exc):
                        log.warning("infrastructure unavailable, redelivering", error=repr(exc))
                        await asyncio.sleep(retry_delay)
                        raise
                    log.warning("handler failed", attempt=attempt, error=repr(exc))
                    if attempt == POISON_ATTEMPTS:
                        await _dead_letter(broker, group_id, record, f"{type(exc).__name__}: {exc}")
                        return
                    await asyncio.sleep(retry_delay * attempt)

    async def handle_together(
        database: asyncpg.Pool, batch: list[tuple[ConsumerRecord[bytes, bytes], MessageT]]
    ) -> bool:
        """True when the whole batch committed; False when it must go one by one."""
        actions: list[Callable[[], None]] = []
        try:
            async with database.acquire() as conn, conn.transaction():
                tokens = _batch_connection.set(conn), _on_commit.set(actions)
                try:
                    if handle_many is not None:
                        await handle_many([message for _, message in batch])
                    else:
                        for record, message in batch:
                            with (
                                handling(record.topic, record.headers),
                                structlog.contextvars.bound_contextvars(**log_context(message)),
                            ):
                                await handle(message)
                finally:
                    _batch_connection.reset(tokens[0])
                    _on_commit.reset(tokens[1])
        except Exception as exc:
            if _is_transient(exc):
                log.warning("infrastructure unavailable, redelivering", error=repr(exc))
                await asyncio.sleep(retry_delay)
                raise
            log.info("batch failed, handling its messages one by one", error=repr(exc))
            return False
        _run(actions)
        return True

    async def on_batch(records: Any) -> None:
        batch: list[tuple[ConsumerRecord[bytes, bytes], MessageT]] = []
        for record in records:
            try:
                message = decode(record.value or b"")
            except RejectedMessageError as exc:
                await _dead_letter(broker, group_id, record, str(exc))
                continue
            # Decoding reads only the bytes, so no retry could succeed; raising would
            # redeliver the batch forever and stop the partition.
            except Exception as exc:
                log.error("decoder failed", error=repr(exc)[:300])
                await _dead_letter(broker, group_id, record, f"undecodable: {exc!r}"[:500])
                continue
            if message is not None:
                batch.append((record, message))
        if not batch:
            return
        if pool is not None and len(batch) > 1 and await handle_together(pool(), batch):
            return
        for record, message in batch:
            await handle_alone(record, message)

    broker.subscriber(
        *(topic.name for topic in topics),
        batch=True,
        max_records=BATCH_RECORDS,
        group_id=group_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        max_poll_interval_ms=_max_poll_interval_ms.get(broker, DEFAULT_MAX_POLL_INTERVAL_MS),
        decoder=_raw_records,
        title=f"{group_id}:" + ",".join(topic.name for topic in topics),
    )(on_batch)


def _event_context(event: Event) -> dict[str, str]:
    return {
        "complaint_no": event.complaint_no,
        "correlation_id": event.correlation_id,
        "event_type": event.event_type,
    }


def subscribe_events(
    broker: KafkaBroker,
    topics: Sequence[Topic],
    *,
    group_id: str,
    handle: EventHandler,
    pool: Callable[[], asyncpg.Pool] | None = None,
    handle_many: Callable[[list[Event]], Awaitable[None]] | None = None,
    retry_delay: float = 0.5,
) -> None:
    """Feed every platform event on ``topics`` to ``handle`` (or, a batch at a time, to
    ``handle_many``: see ``subscribe``); unknown event types are skipped."""
    subscribe(
        broker,
        topics,
        group_id=group_id,
        decode=decode_event,
        handle=handle,
        log_context=_event_context,
        pool=pool,
        handle_many=handle_many,
        retry_delay=retry_delay,
    )
