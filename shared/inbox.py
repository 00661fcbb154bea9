"""Idempotent consumption: remember each event id in the transaction of its effect."""

from __future__ import annotations

from shared.contracts import Event
from shared.db import DbConnection


async def first_delivery(conn: DbConnection, event: Event) -> bool:
    """Record ``event`` as processed; False when it already was (a redelivery to skip).

    Call inside the transaction that applies the event's effect, so the record and
    the effect commit or roll back together.
    """
    status: str = await conn.execute(
        """INSERT INTO processed_events (event_id, event_type) VALUES ($1, $2)
           ON CONFLICT (event_id) DO NOTHING""",
        event.event_id,
        event.event_type,
    )
    return status == "INSERT 0 1"
