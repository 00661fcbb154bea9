"""The sla service's table: every deadline clock and its state."""

from __future__ import annotations

from services.sla.domain import PlannedClock
from shared.contracts import ComplaintReceived
from shared.db import DbConnection
from shared.policy import PolicyPack


async def start_clock(
    conn: DbConnection, event: ComplaintReceived, clock: PlannedClock, pack: PolicyPack
) -> None:
    await conn.execute(
        """INSERT INTO clocks (clock_id, complaint_no, branch_id, name, rule, state, started_at,
               due_at, target_seconds, pack, pack_version)
           VALUES ($1, $2, $3, $4, $5, 'running', $6, $7, $8, $9, $10)""",
        clock.clock_id,
        event.complaint_no,
        event.branch_id,
        clock.name,
        clock.rule,
        clock.started_at,
        clock.due_at,
        clock.target_seconds,
        pack.pack,
        pack.version,
    )
