"""The rollups' upkeep from Python: the lock their writers share, recounting them, and
the duration buckets of the response times (migration 008 keeps them with triggers)."""

from __future__ import annotations

from datetime import timedelta

from shared.db import DbConnection

# Taken exclusively, per schema, by every transaction that writes rows the rollups count
# (projections.EventBatch.apply) and by a recount: a case's change and its clocks' changes
# then each see the other's latest rows, and the deltas add up. Two 32-bit keys: a space
# apart from SWAP_LOCK's.
ROLLUP_LOCK = 0x524F4C4C
_LOCK = "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))"
# Below this many seconds a bucket is one second wide; above, 16 buckets per doubling.
_LINEAR = 32
_PER_DOUBLING = 16


async def lock(conn: DbConnection) -> None:
    """Take the rollup lock until the transaction ends."""
    await conn.execute(_LOCK, ROLLUP_LOCK)


async def refresh(conn: DbConnection, zone: str) -> None:
    """Recount every rollup from the projections, days in ``zone``, and the cases' derived
    columns (migrations 009 and 011), in a transaction."""
    await lock(conn)
    await conn.execute("SELECT refresh_rollups($1)", zone)
    await conn.execute("SELECT count_compensation(NULL)")
    await conn.execute("SELECT count_breaches(NULL)")


async def use_zone(conn: DbConnection, zone: str) -> None:
    """Recount the rollups if their days are another time zone's than ``zone``."""
    async with conn.transaction():
        if await conn.fetchval("SELECT zone FROM rollup_zone") != zone:
            await refresh(conn, zone)


def bucket_start(bucket: int) -> timedelta:
    """The shortest duration in ``bucket`` (SQL ``duration_bucket``); for bucket -1, the
    negative durations, one shorter than any two timestamps make."""
    if bucket < 0:
        return timedelta.min
    if bucket < _LINEAR:
        return timedelta(seconds=bucket)
    shift = bucket // _PER_DOUBLING - 1
    return timedelta(seconds=(bucket - shift * _PER_DOUBLING) << shift)
