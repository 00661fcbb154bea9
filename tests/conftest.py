from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from shared.db.urls import with_database
from shared.kafka_admin import ensure_topics
from shared.topics import Topics, all_topic_partitions
from tests.support.auth import credentials
from tests.support.infra import Infra, chosen_kind, provide


def pytest_configure(config: pytest.Config) -> None:
    # Before any test module builds a service: they read their credentials' paths from
    # the environment.
    credentials()
    # Services started by the tests, in their process or as processes of their own, put
    # their ops endpoints on free ports: several run at once, beside `make run`'s.
    os.environ.setdefault("OPS_PORT", "0")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.path)
        if "/integration/" in path:
            item.add_marker(pytest.mark.integration)
        elif "/e2e/" in path:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    with provide(chosen_kind()) as provided:
        yield provided


@pytest.fixture
async def topics(infra: Infra) -> Topics:
    """A namespace of the platform's topics for one test, so tests never see each other's."""
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    await ensure_topics(infra.kafka_bootstrap_servers, all_topic_partitions(namespace))
    return Topics.in_namespace(namespace)


@pytest.fixture
async def database_url(infra: Infra) -> AsyncIterator[str]:
    """A new, empty database for one test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(infra.database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield with_database(infra.database_url, name)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()
