"""What a service's broker logs per message (shared/consumer_app.new_broker), on the real
broker: FastStream's "Received" and "Processed" lines, which name no topic, message or
complaint, only at DEBUG; a handler's exception at ERROR all the same."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest

from shared.consumer_app import new_broker
from shared.metrics import ServiceMetrics
from shared.settings import ServiceSettings
from tests.support.infra import Infra
from tests.support.intake import wait_for
from tests.support.kafka import new_topic


async def test_messages_log_at_debug_and_failures_at_error(
    infra: Infra, caplog: pytest.LogCaptureFixture
) -> None:
    topic = await new_topic(infra.kafka_bootstrap_servers, partitions=1)
    settings = ServiceSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers, database_url="postgresql://x"
    )
    broker = new_broker(settings, "logcheck", ServiceMetrics("logcheck"))
    handled: list[bytes] = []

    @broker.subscriber(topic, group_id=f"logcheck-{uuid.uuid4().hex}", auto_offset_reset="earliest")
    async def handle(body: bytes) -> None:
        handled.append(body)
        if body == b"boom":
            raise RuntimeError("cannot handle boom")

    async def both_handled() -> bool:
        return len(handled) == 2

    with caplog.at_level(logging.DEBUG, logger="logcheck.kafka"):
        await broker.start()
        try:
            await broker.publish(b"hello", topic=topic)
            await broker.publish(b"boom", topic=topic)
            await wait_for(both_handled, timeout=30)
            await asyncio.sleep(0.2)  # the "Processed" line follows the handler
        finally:
            await broker.stop()

    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "logcheck.kafka"]
    assert lines.count((logging.DEBUG, "Received")) == 2
    assert lines.count((logging.DEBUG, "Processed")) == 2
    loud = [line for line in lines if line[0] >= logging.INFO]
    # What stays at INFO is about the consumer (its partitions), not each message.
    assert not [line for line in loud if line[1] in ("Received", "Processed")]
    assert (logging.ERROR, "RuntimeError: cannot handle boom") in loud
