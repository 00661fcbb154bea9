"""Intake running in the test's process, against the real broker and database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import yaml

from services.intake.app import build_app
from services.intake.settings import IntakeSettings
from shared.settings import REPO_ROOT
from shared.topics import Topics
from tests.support.auth import admin_headers


@asynccontextmanager
async def running_intake(
    database_url: str,
    bootstrap: str,
    topics: Topics,
    packs_dir: Path | None = None,
    **overrides: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    settings: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": bootstrap,
        "complaints_topic_namespace": topics.namespace,
        **overrides,
    }
    if packs_dir is not None:
        settings["policy_packs_dir"] = packs_dir
    app = build_app(IntakeSettings(**settings))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://intake",
            timeout=30,
            headers=admin_headers(),
        ) as client,
    ):
        yield client


def hotel_with_branches(folder: Path, count: int) -> list[str]:
    """A copy of the hotel pack with ``count`` more branches; their ids."""
    pack = yaml.safe_load((REPO_ROOT / "policy-packs" / "hotel.yaml").read_text(encoding="utf-8"))
    ids = [f"hotel-b{index:02d}" for index in range(1, count + 1)]
    pack["branches"] += [
        {"id": branch, "name": {"zh": f"分店{branch[-2:]}", "en": f"Branch {branch[-2:]}"}}
        for branch in ids
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hotel.yaml").write_text(yaml.safe_dump(pack, allow_unicode=True), encoding="utf-8")
    return ids


async def wait_for(condition: Any, timeout: float = 60.0, interval: float = 0.2) -> None:
    """Poll an async ``condition`` until it is true, failing after ``timeout`` seconds.

    A table or column that does not exist yet (the service is still migrating: a poll
    between two of its migrations sees the first's table without the second's column)
    counts as not yet.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        with contextlib.suppress(asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError):
            if await condition():
                return
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
