from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable

import asyncpg

from shared.db import DbConnection
from shared.group_commit import GroupCommit, Unit


class RefusedError(Exception):
    pass


async def test_units_share_commits_and_a_failing_one_fails_alone(database_url: str) -> None:
    async with asyncpg.create_pool(database_url, min_size=1, max_size=4) as pool:
        await pool.execute("CREATE TABLE effects (n int, txid bigint DEFAULT txid_current())")
        group = GroupCommit(pool, refusals=(RefusedError,))

        def work(n: int) -> tuple[Unit[int], Callable[[], Awaitable[int]]]:
            async def unit(conn: DbConnection) -> int:
                if n == 7:
                    raise RefusedError("refused before writing")
                await conn.execute("INSERT INTO effects (n) VALUES ($1)", n)
                if n == 13:
                    raise ValueError("broke after writing")
                return n

            async def alone() -> int:
                async with pool.acquire() as conn, conn.transaction():
                    return await unit(conn)

            return unit, alone

        results = await asyncio.gather(
            *(group.run(*work(n)) for n in range(40)),
            return_exceptions=True,
        )
        await group.close()
        rows = await pool.fetch("SELECT n, txid FROM effects")
    assert isinstance(results[7], RefusedError)
    assert isinstance(results[13], ValueError)
    assert [r for i, r in enumerate(results) if i not in (7, 13)] == [
        n for n in range(40) if n not in (7, 13)
    ]
    # Every other unit committed exactly once; the broken one's write was rolled back.
    assert sorted(r["n"] for r in rows) == [n for n in range(40) if n not in (7, 13)]


async def test_units_arriving_together_commit_together(database_url: str) -> None:
    async with asyncpg.create_pool(database_url, min_size=1, max_size=4) as pool:
        await pool.execute("CREATE TABLE effects (n int, txid bigint DEFAULT txid_current())")
        group = GroupCommit(pool)

        def work(n: int) -> tuple[Unit[None], Callable[[], Awaitable[None]]]:
            async def unit(conn: DbConnection) -> None:
                await conn.execute("INSERT INTO effects (n) VALUES ($1)", n)

            async def alone() -> None:
                async with pool.acquire() as conn, conn.transaction():
                    await unit(conn)

            return unit, alone

        await asyncio.gather(*(group.run(*work(n)) for n in range(40)))
        await group.close()
        rows = await pool.fetch("SELECT n, txid FROM effects")
    assert sorted(r["n"] for r in rows) == list(range(40))
    assert len({r["txid"] for r in rows}) == 1


caller: contextvars.ContextVar[int] = contextvars.ContextVar("caller")


async def test_each_unit_runs_in_its_callers_context(database_url: str) -> None:
    # The trace context and the log context a unit enqueues and logs under are its
    # caller's, whoever's call started the committer, in a shared commit or alone.
    async with asyncpg.create_pool(database_url, min_size=1, max_size=4) as pool:
        group = GroupCommit(pool)

        async def seen(n: int) -> int:
            caller.set(n)

            async def unit(conn: DbConnection) -> int:
                await conn.execute("SELECT 1")
                if n == 3:
                    raise ValueError("takes the shared commit down: every unit runs alone")
                return caller.get()

            async def alone() -> int:
                return caller.get()

            return await group.run(unit, alone)

        first = await seen(100)  # the committer starts inside this caller's context
        together = await asyncio.gather(*(seen(n) for n in range(10)))
        await group.close()
    assert first == 100
    assert together == list(range(10))
