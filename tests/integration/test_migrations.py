from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from shared.db import apply_migrations
from shared.db.migrations import MigrationError


def _write(folder: Path, name: str, sql: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(sql, encoding="utf-8")


async def test_each_file_applies_once_even_with_instances_racing(
    database_url: str, tmp_path: Path
) -> None:
    _write(tmp_path, "001_things.sql", "CREATE TABLE things (id int PRIMARY KEY);")
    _write(tmp_path, "002_more.sql", "INSERT INTO things VALUES (1);")
    results = await asyncio.gather(
        *(apply_migrations(database_url, "svc", tmp_path) for _ in range(4))
    )
    applied = [name for result in results for name in result]
    assert sorted(applied) == [
        "shared/001_outbox_and_inbox.sql",
        "svc/001_things.sql",
        "svc/002_more.sql",
    ]
    assert await apply_migrations(database_url, "svc", tmp_path) == []
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM svc.things") == 1
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'svc'"
        )
        assert {"things", "outbox", "processed_events", "schema_migrations"} <= {
            t["table_name"] for t in tables
        }
    finally:
        await conn.close()


async def test_a_failing_file_leaves_nothing_half_applied(
    database_url: str, tmp_path: Path
) -> None:
    _write(tmp_path, "001_ok.sql", "CREATE TABLE ok (id int);")
    _write(tmp_path, "002_bad.sql", "CREATE TABLE half (id int); SELECT no_such_function();")
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await apply_migrations(database_url, "svc", tmp_path)
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT to_regclass('svc.half')") is None
        assert await conn.fetchval("SELECT to_regclass('svc.ok')") is not None
    finally:
        await conn.close()


async def test_badly_named_files_are_refused(database_url: str, tmp_path: Path) -> None:
    _write(tmp_path, "first.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match="001_create_things"):
        await apply_migrations(database_url, "svc", tmp_path)
