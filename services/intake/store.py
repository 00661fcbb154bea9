"""Intake's tables: the complaint register, the yearly counter, submissions, case history,
and the audit trail of customer-record reads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.contracts import CaseEvent, ComplaintReceived
from shared.contracts.audit import CustomerRecordRead
from shared.contracts.intake import CaseStatus, Confidentiality
from shared.db import DbConnection

# What the history keeps of an event beyond its own columns: the payload.
_NOT_DETAILS = set(CaseEvent.model_fields) - {"note"}


@dataclass(frozen=True)
class CaseRow:
    complaint_no: str
    branch_id: str
    pack: str
    status: CaseStatus
    held_from: CaseStatus | None
    round: int
    sequence: int
    correlation_id: str
    department: str | None
    assignee_id: str | None
    confidentiality: Confidentiality


@dataclass(frozen=True)
class Submission:
    fingerprint: str
    complaint_no: str


async def next_ordinal(conn: DbConnection, year: int) -> int:
    ordinal: int = await conn.fetchval(
        """INSERT INTO complaint_counters (year, last_ordinal) VALUES ($1, 1)
           ON CONFLICT (year) DO UPDATE SET last_ordinal = complaint_counters.last_ordinal + 1
           RETURNING last_ordinal""",
        year,
    )
    return ordinal


async def find_submission(
    conn: DbConnection, branch_id: str, submission_id: str
) -> Submission | None:
    row = await conn.fetchrow(
        """SELECT fingerprint, complaint_no FROM submissions
           WHERE branch_id = $1 AND submission_id = $2""",
        branch_id,
        submission_id,
    )
    return Submission(row["fingerprint"], row["complaint_no"]) if row else None


async def claim_submission(
    conn: DbConnection, branch_id: str, submission_id: str, fingerprint: str, complaint_no: str
) -> bool:
    """False when another transaction claimed the id first."""
    status: str = await conn.execute(
        """INSERT INTO submissions (branch_id, submission_id, fingerprint, complaint_no)
           VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
        branch_id,
        submission_id,
        fingerprint,
        complaint_no,
    )
    return status == "INSERT 0 1"


async def insert_complaint(
    conn: DbConnection, event: ComplaintReceived, *, year: int, ordinal: int
) -> None:
    await conn.execute(
        """INSERT INTO complaints (complaint_no, year, ordinal, branch_id, pack, pack_version,
               channel, customer, description, customer_request, category, severity, region,
               first_contact_staff, status, received_at, correlation_id, event_time,
               event_place, product, attachments, submission_id, confidentiality)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                   $18, $19, $20, $21, $22, $23)""",
        event.complaint_no,
        year,
        ordinal,
        event.branch_id,
        event.pack,
        event.pack_version,
        event.channel.value,
        event.customer.model_dump_json(),
        event.description,
        event.customer_request,
        event.category,
        event.severity.value,
        event.region.value,
        event.first_contact_staff,
        event.status.value,
        event.received_at,
        event.correlation_id,
        event.event_time,
        event.event_place,
        event.product.model_dump_json() if event.product else None,
        json.dumps([a.model_dump(mode="json") for a in event.attachments]),
        event.submission_id,
        event.confidentiality.value,
    )


async def lock_case(conn: DbConnection, complaint_no: str) -> CaseRow | None:
    """The case, locked until the transaction ends so actions on it are serialised."""
    row = await conn.fetchrow(
        """SELECT complaint_no, branch_id, pack, status, held_from, round, sequence,
                  correlation_id, department, assignee_id, confidentiality
           FROM complaints WHERE complaint_no = $1 FOR UPDATE""",
        complaint_no,
    )
    if row is None:
        return None
    return CaseRow(
        complaint_no=row["complaint_no"],
        branch_id=row["branch_id"],
        pack=row["pack"],
        status=CaseStatus(row["status"]),
        held_from=CaseStatus(row["held_from"]) if row["held_from"] else None,
        round=row["round"],
        sequence=row["sequence"],
        correlation_id=row["correlation_id"],
        department=row["department"],
        assignee_id=row["assignee_id"],
        confidentiality=Confidentiality(row["confidentiality"]),
    )


async def update_case(
    conn: DbConnection,
    complaint_no: str,
    *,
    status: CaseStatus,
    held_from: CaseStatus | None,
    round: int,
    sequence: int,
    assignment: tuple[str, str | None] | None = None,
) -> None:
    await conn.execute(
        """UPDATE complaints SET status = $2, held_from = $3, round = $4, sequence = $5,
               department = COALESCE($6, department),
               assignee_id = CASE WHEN $6::text IS NULL THEN assignee_id ELSE $7 END,
               updated_at = now()
           WHERE complaint_no = $1""",
        complaint_no,
        status.value,
        held_from.value if held_from else None,
        round,
        sequence,
        assignment[0] if assignment else None,
        assignment[1] if assignment else None,
    )


async def append_history(conn: DbConnection, event: CaseEvent) -> None:
    details = event.model_dump(mode="json", exclude=_NOT_DETAILS)
    await conn.execute(
        """INSERT INTO case_history (complaint_no, sequence, event_id, event_type, status,
               previous_status, round, actor, details, occurred_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
        event.complaint_no,
        event.sequence,
        event.event_id,
        event.event_type,
        event.status.value,
        event.previous_status.value if event.previous_status else None,
        event.round,
        event.actor,
        json.dumps(details, ensure_ascii=False),
        event.occurred_at,
    )


async def case_view(conn: DbConnection, complaint_no: str) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM complaints WHERE complaint_no = $1", complaint_no)
    if row is None:
        return None
    history = await conn.fetch(
        """SELECT sequence, event_id, event_type, status, previous_status, round, actor,
                  details, occurred_at
           FROM case_history WHERE complaint_no = $1 ORDER BY sequence""",
        complaint_no,
    )
    view = dict(row)
    for column in ("customer", "product", "attachments"):
        if view[column] is not None:
            view[column] = json.loads(view[column])
    view["history"] = [{**dict(h), "details": json.loads(h["details"])} for h in history]
    return view


async def record_read(conn: DbConnection, read: CustomerRecordRead) -> None:
    await conn.execute(
        """INSERT INTO record_reads (event_id, complaint_no, branch_id, reader, reader_roles,
               reason, outcome, contacts_shown, correlation_id, read_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
        read.event_id,
        read.complaint_no,
        read.branch_id,
        read.reader,
        list(read.reader_roles),
        read.reason,
        read.outcome,
        read.contacts_shown,
        read.correlation_id,
        read.occurred_at,
    )
