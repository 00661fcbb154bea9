"""asyncpg pools confined to one service's schema."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# What handlers receive: a bare connection, or one borrowed from a pool.
DbConnection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


async def create_pool(dsn: str, schema: str, *, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections see only ``schema`` (and pg_catalog) by default.

    ``min_size=0`` lets a service start, and answer 503, while the database is down.
    """
    pool = await asyncpg.create_pool(
        dsn,
        min_size=0,
        max_size=max_size,
        server_settings={"search_path": schema, "application_name": f"complaints-{schema}"},
        timeout=5,
        command_timeout=30,
    )
    assert pool is not None
    return pool


def is_connection_error(exc: BaseException) -> bool:
    """True when the database could not be reached, as opposed to a bad statement or data."""
    return isinstance(
        exc,
        OSError
        | TimeoutError
        | asyncpg.exceptions.ConnectionDoesNotExistError
        | asyncpg.exceptions.CannotConnectNowError
        | asyncpg.exceptions.ConnectionFailureError
        | asyncpg.exceptions.TooManyConnectionsError
        | asyncpg.exceptions.AdminShutdownError
        | asyncpg.exceptions.InterfaceError,
    )
