"""Reading what really reached the database."""

from __future__ import annotations

import asyncpg


async def scalar(database_url: str, sql: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()
