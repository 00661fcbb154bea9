"""A small migration runner: numbered SQL files, applied once, in order, per schema.

Every service schema first gets the shared plumbing tables (outbox, processed
events) from ``shared/db/migrations/``, then the service's own files. Each file
runs in its own transaction under an advisory lock, so several instances
starting at once apply each file exactly once.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import asyncpg

PLUMBING_DIR = Path(__file__).resolve().parent / "migrations"
_FILE_NAME = re.compile(r"^(\d{3,})_[a-z0-9_]+\.sql$")
_SCHEMA_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Migration:
    source: str
    version: int
    name: str
    sql: str


class MigrationError(RuntimeError):
    """A migration folder or file is malformed."""


def load_migrations(source: str, directory: Path) -> list[Migration]:
    migrations: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path}: name must look like 001_create_things.sql")
        migrations.append(
            Migration(source, int(match.group(1)), path.name, path.read_text(encoding="utf-8"))
        )
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{directory}: two files share a version number")
    return migrations


async def apply_migrations(dsn: str, schema: str, directory: Path) -> list[str]:
    """Bring ``schema`` up to date; returns the names of the files applied now."""
    if _SCHEMA_NAME.match(schema) is None:
        raise MigrationError(f"invalid schema name {schema!r}")
    pending = load_migrations("shared", PLUMBING_DIR) + load_migrations(schema, directory)
    conn = await asyncpg.connect(dsn, timeout=10)
    applied_now: list[str] = []
    try:
        lock_key = zlib.crc32(f"migrations:{schema}".encode())
        await conn.execute("SELECT pg_advisory_lock($1)", lock_key)
        try:
            # Only when missing: a service's own role may lack CREATE on the database,
            # and PostgreSQL checks that privilege even for IF NOT EXISTS (shared/db/roles.py).
            exists = await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema)
            if not exists:
                await conn.execute(f"CREATE SCHEMA {schema}")
            await conn.execute(f"SET search_path TO {schema}")
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       source text NOT NULL,
                       version integer NOT NULL,
                       name text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now(),
                       PRIMARY KEY (source, version))"""
            )
            done = {
                (row["source"], row["version"])
                for row in await conn.fetch("SELECT source, version FROM schema_migrations")
            }
            for migration in pending:
                if (migration.source, migration.version) in done:
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (source, version, name) VALUES ($1, $2, $3)",
                        migration.source,
                        migration.version,
                        migration.name,
                    )
                applied_now.append(f"{migration.source}/{migration.name}")
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", lock_key)
    finally:
        await conn.close()
    return applied_now
