"""Routing's tables: assignments and each person's open cases."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass

from services.routing.domain import Decision
from shared.contracts import ComplaintReceived
from shared.db import DbConnection
from shared.policy import PolicyPack


async def lock_department(conn: DbConnection, pack: str, department: str) -> None:
    """Serialise decisions for one department across instances until the transaction ends."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock($1)", zlib.crc32(f"routing/{pack}/{department}".encode())
    )


async def loads(conn: DbConnection, pack: str, staff_ids: list[str]) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT staff_id, open_cases FROM staff_load WHERE pack = $1 AND staff_id = ANY($2)",
        pack,
        staff_ids,
    )
    return {row["staff_id"]: row["open_cases"] for row in rows}


async def _change_load(conn: DbConnection, pack: str, staff_id: str, delta: int) -> None:
    await conn.execute(
        """INSERT INTO staff_load (pack, staff_id, open_cases) VALUES ($1, $2, GREATEST($3, 0))
           ON CONFLICT (pack, staff_id)
           DO UPDATE SET open_cases = GREATEST(staff_load.open_cases + $3, 0)""",
        pack,
        staff_id,
        delta,
    )


async def record_assignment(
    conn: DbConnection, event: ComplaintReceived, decision: Decision, pack: PolicyPack
) -> None:
    await conn.execute(
        """INSERT INTO assignments (complaint_no, branch_id, department, assignee_id, rule,
               pack, pack_version, also_notify, candidates, reason, correlation_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
        event.complaint_no,
        event.branch_id,
        decision.department,
        decision.assignee_id,
        decision.rule,
        pack.pack,
        pack.version,
        list(decision.also_notify),
        json.dumps([c.__dict__ for c in decision.candidates]),
        decision.reason,
        event.correlation_id,
    )
    await _change_load(conn, pack.pack, decision.assignee_id, +1)


async def set_open(conn: DbConnection, complaint_no: str, *, open_now: bool) -> None:
    """The case finished (or came back): the assignee's load follows, once."""
    row = await conn.fetchrow(
        """UPDATE assignments SET open = $2 WHERE complaint_no = $1 AND open <> $2
           RETURNING pack, assignee_id""",
        complaint_no,
        open_now,
    )
    if row is not None and row["assignee_id"] is not None:
        await _change_load(conn, row["pack"], row["assignee_id"], +1 if open_now else -1)


@dataclass(frozen=True)
class Current:
    pack: str
    department: str
    assignee_id: str | None
    branch_id: str
    correlation_id: str | None
    open: bool


async def current(conn: DbConnection, complaint_no: str) -> Current | None:
    """The complaint's assignment, locked for the rest of the transaction."""
    row = await conn.fetchrow(
        """SELECT pack, department, assignee_id, branch_id, correlation_id, open
           FROM assignments WHERE complaint_no = $1 FOR UPDATE""",
        complaint_no,
    )
    if row is None:
        return None
    return Current(
        pack=row["pack"],
        department=row["department"],
        assignee_id=row["assignee_id"],
        branch_id=row["branch_id"],
        correlation_id=row["correlation_id"],
        open=row["open"],
    )


async def open_cases_of_the_away(
    conn: DbConnection, pack: str, away: list[str], staff: list[str]
) -> list[str]:
    """Open cases whose assignee is away or no longer on the pack's staff."""
    rows = await conn.fetch(
        """SELECT complaint_no FROM assignments
           WHERE pack = $1 AND open
             AND (assignee_id = ANY($2::text[]) OR NOT (assignee_id = ANY($3::text[])))
           ORDER BY complaint_no""",
        pack,
        away,
        staff,
    )
    return [row["complaint_no"] for row in rows]


async def move(
    conn: DbConnection,
    complaint_no: str,
    *,
    department: str,
    assignee_id: str,
    rule: str,
    reason: str,
    pack_version: str,
) -> None:
    """Hand the case to someone else; an open case's load moves with it."""
    row = await conn.fetchrow(
        """WITH before AS (
               SELECT assignee_id, open, pack FROM assignments WHERE complaint_no = $1
           )
           UPDATE assignments SET department = $2, assignee_id = $3, rule = $4, reason = $5,
                  pack_version = $6, candidates = '[]'::jsonb, assigned_at = now()
           WHERE complaint_no = $1
           RETURNING (SELECT assignee_id FROM before) AS previous, open, pack""",
        complaint_no,
        department,
        assignee_id,
        rule,
        reason,
        pack_version,
    )
    if row is None or not row["open"]:
        return
    if row["previous"] is not None:
        await _change_load(conn, row["pack"], row["previous"], -1)
    await _change_load(conn, row["pack"], assignee_id, +1)
