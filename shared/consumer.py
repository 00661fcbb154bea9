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
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import structlog
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.message import StreamMessage

from shared.contracts import Event, RejectedMessageError, decode_event
from shared.db import is_connection_error
from shared.topics import DEAD_LETTER_SUFFIX, Topic

log = structlog.get_logger(__name__)

EventHandler = Callable[[Event], Awaitable[None]]

POISON_ATTEMPTS = 3

MessageT = TypeVar("MessageT")


def _is_transient(exc: BaseException) -> bool:
    return is_connection_error(exc) or isinstance(exc, KafkaConnectionError | KafkaTimeoutError)


async def _dead_letter(broker: KafkaBroker, group_id: str, msg: KafkaMessage, error: str) -> None:
    record = msg.raw_message
    assert not isinstance(record, tuple)
    headers = {
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


def _raw_body(msg: StreamMessage[Any]) -> bytes:
    # FastStream would parse JSON itself; we decode, so that bad bytes can be dead-lettered.
    body: bytes = msg.body
    return body


def subscribe(
    broker: KafkaBroker,
    topics: Sequence[Topic],
    *,
    group_id: str,
    decode: Callable[[bytes], MessageT | None],
    handle: Callable[[MessageT], Awaitable[None]],
    log_context: Callable[[MessageT], dict[str, str]],
    retry_delay: float = 0.5,
) -> None:
    """Feed every message on ``topics`` that ``decode`` accepts to ``handle``.

    ``decode`` returns None for a message that is not this service's business, and
    raises ``RejectedMessageError`` (as may ``handle``) for one that never will be
    processable. One consumer in ``group_id`` reads all the topics, so a service joins
    its group once.
    """

    async def on_message(body: bytes, msg: KafkaMessage) -> None:
        try:
            message = decode(body)
        except RejectedMessageError as exc:
            await _dead_letter(broker, group_id, msg, str(exc))
            return
        if message is None:
            return
        with structlog.contextvars.bound_contextvars(**log_context(message)):
            for attempt in range(1, POISON_ATTEMPTS + 1):
                try:
                    await handle(message)
                    return
                except RejectedMessageError as exc:
                    await _dead_letter(broker, group_id, msg, str(exc))
                    return
                except Exception as exc:
                    if _is_transient(exc):
                        log.warning("infrastructure unavailable, redelivering", error=repr(exc))
                        await asyncio.sleep(retry_delay)
                        raise
                    log.warning("handler failed", attempt=attempt, error=repr(exc))
                    if attempt == POISON_ATTEMPTS:
                        await _dead_letter(broker, group_id, msg, f"{type(exc).__name__}: {exc}")
                        return
                    await asyncio.sleep(retry_delay * attempt)

    broker.subscriber(
        *(topic.name for topic in topics),
        decoder=_raw_body,
        group_id=group_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title=f"{group_id}:" + ",".join(topic.name for topic in topics),
    )(on_message)


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
    retry_delay: float = 0.5,
) -> None:
    """Feed every platform event on ``topics`` to ``handle``; unknown event types are skipped."""
    subscribe(
        broker,
        topics,
        group_id=group_id,
        decode=decode_event,
        handle=handle,
        log_context=_event_context,
        retry_delay=retry_delay,
    )
