"""Services built and run inside the test's process, against the real broker and database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from faststream import FastStream

from shared.settings import ServiceSettings
from shared.topics import Topics
from tests.support.infra import Infra


def settings_for(infra: Infra, database_url: str, topics: Topics, **extra: Any) -> ServiceSettings:
    return ServiceSettings(
        database_url=database_url,
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        complaints_topic_namespace=topics.namespace,
        **extra,
    )


@asynccontextmanager
async def running(*apps: FastStream) -> AsyncIterator[None]:
    """The apps consume, and fire their timers, for the duration of the block."""
    runs = [asyncio.create_task(app.run()) for app in apps]
    try:
        yield
    finally:
        for app in apps:
            app.exit()
        await asyncio.gather(*runs)
