"""Give dead-lettered notifications a fresh set of attempts, after the cause is fixed.

    python -m services.notify.requeue            # every dead letter
    python -m services.notify.requeue ID [ID …]  # just these notification ids

A notification lands in the dead letters when its attempts ran out on errors that
said it was certainly not sent (a provider down for longer than the backoff lasts).
Requeuing cannot send twice: the send path and its reconciliation are unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid

from services.notify.app import SCHEMA
from services.notify.planning import WAKE_CHANNEL
from services.notify.settings import NotifySettings
from services.notify.store import requeue_dead
from shared.db.pool import create_pool


async def requeue(settings: NotifySettings, ids: list[uuid.UUID] | None) -> int:
    pool = await create_pool(settings.database_url, SCHEMA, max_size=1)
    try:
        async with pool.acquire() as conn:
            count = await requeue_dead(conn, ids)
            await conn.execute("SELECT pg_notify($1, '')", WAKE_CHANNEL)
            return count
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ids", nargs="*", type=uuid.UUID, help="notification ids (default: all)")
    args = parser.parse_args(argv)
    count = asyncio.run(requeue(NotifySettings(), args.ids or None))
    print(f"requeued {count} dead-lettered notification(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
