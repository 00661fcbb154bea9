"""Routing's table: the current assignment of each complaint."""

from __future__ import annotations

from services.routing.domain import Decision
from shared.contracts import ComplaintReceived
from shared.db import DbConnection
from shared.policy import PolicyPack


async def record_assignment(
    conn: DbConnection, event: ComplaintReceived, decision: Decision, pack: PolicyPack
) -> None:
    await conn.execute(
        """INSERT INTO assignments (complaint_no, branch_id, department, assignee_id, rule,
               pack, pack_version)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        event.complaint_no,
        event.branch_id,
        decision.department,
        decision.assignee_id,
        decision.rule,
        pack.pack,
        pack.version,
    )
