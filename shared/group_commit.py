"""Group commit: concurrent units of work share one transaction, and so one commit.

One at a time, each unit waits for its own commit (a WAL flush); intake's numbering even
holds a row lock across it, which capped intake at one complaint per flush. Instead, whatever
arrives while a transaction commits goes into the next one. A unit that fails (other
than by a refusal made before it writes anything) takes its batch down with it; the
batch is then run again one unit at a time, so one bad unit never costs the others
theirs. Each unit runs in its caller's context (``contextvars``): what it logs and the
trace it enqueues under are its caller's, not those of whoever started the committer.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import asyncpg

from shared.db import DbConnection

T = TypeVar("T")
Unit = Callable[[DbConnection], Coroutine[Any, Any, T]]


@dataclass
class _Waiting(Generic[T]):
    unit: Unit[T]
    alone: Callable[[], Coroutine[Any, Any, T]]
    done: asyncio.Future[T]
    context: contextvars.Context


class GroupCommit:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        refusals: tuple[type[Exception], ...] = (),
        most: int = 200,
    ) -> None:
        """``refusals`` are errors a unit raises before it writes anything: they fail that
        unit alone and the batch goes on."""
        self._pool = pool
        self._refusals = refusals
        self._most = most
        self._waiting: list[_Waiting[Any]] = []
        self._arrived = asyncio.Event()
        self._committer: asyncio.Task[None] | None = None

    async def run(self, unit: Unit[T], alone: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """``unit``'s result once committed with others; ``alone`` is the same work in a
        transaction of its own, for when the shared one fails."""
        if self._committer is None:
            self._committer = asyncio.create_task(
                self._commit_forever(), name="group-commit", context=contextvars.Context()
            )
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(unit, alone, done, contextvars.copy_context()))
        self._arrived.set()
        return await done

    async def close(self) -> None:
        if self._committer is not None:
            self._committer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._committer

    async def _commit_forever(self) -> None:
        while True:
            await self._arrived.wait()
            batch, self._waiting = self._waiting[: self._most], self._waiting[self._most :]
            if not self._waiting:
                self._arrived.clear()
            if len(batch) == 1 or not await self._together(batch):
                await asyncio.gather(*(self._alone(waiting) for waiting in batch))

    async def _together(self, batch: list[_Waiting[Any]]) -> bool:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                results = [await self._in_batch(conn, waiting) for waiting in batch]
        except Exception:
            return False
        for waiting, (result, refusal) in zip(batch, results, strict=True):
            if waiting.done.done():
                continue
            if refusal is not None:
                waiting.done.set_exception(refusal)
            else:
                waiting.done.set_result(result)
        return True

    async def _in_batch(
        self, conn: DbConnection, waiting: _Waiting[T]
    ) -> tuple[T | None, Exception | None]:
        try:
            return await asyncio.create_task(waiting.unit(conn), context=waiting.context), None
        except self._refusals as refusal:
            return None, refusal

    @staticmethod
    async def _alone(waiting: _Waiting[Any]) -> None:
        try:
            result = await asyncio.create_task(waiting.alone(), context=waiting.context)
        except Exception as exc:
            if not waiting.done.done():
                waiting.done.set_exception(exc)
        else:
            if not waiting.done.done():
                waiting.done.set_result(result)
