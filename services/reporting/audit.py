"""The audit trail of customer-record reads (seed 004 篇三 第四章) in ``record_reads``:
reporting's own case-file reads, intake's from the record-reads topic, and the listing
auditors page through, newest first."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Literal, NamedTuple

from services.reporting.api import RecordRead, RecordReads
from services.reporting.reports import bind_parameter
from shared.contracts.audit import CustomerRecordRead
from shared.db import DbConnection

Outcome = Literal["read", "refused"]


class ReadEntry(NamedTuple):
    """A row of ``record_reads``."""

    event_id: uuid.UUID
    read_at: datetime
    service: str
    reader: str
    reader_roles: tuple[str, ...]
    reason: str
    outcome: Outcome
    contacts_shown: bool
    complaint_no: str
    branch_id: str

    @classmethod
    def of(cls, event: CustomerRecordRead) -> ReadEntry:
        return cls(
            event_id=event.event_id,
            read_at=event.occurred_at,
            service=event.service,
            reader=event.reader,
            reader_roles=event.reader_roles,
            reason=event.reason,
            outcome=event.outcome,
            contacts_shown=event.contacts_shown,
            complaint_no=event.complaint_no,
            branch_id=event.branch_id,
        )


# Each entry once, by event id: an event delivered again, or applied again after a
# rebuild carried the trail over, adds nothing. The roles travel joined by commas
# (unnest would flatten an array of arrays; a role holds no comma).
_INSERT = """
INSERT INTO record_reads (event_id, read_at, service, reader, reader_roles, reason, outcome,
    contacts_shown, complaint_no, branch_id)
SELECT u.event_id, u.read_at, u.service, u.reader, string_to_array(u.roles, ','), u.reason,
       u.outcome, u.contacts_shown, u.complaint_no, u.branch_id
FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::text[], $8::bool[], $9::text[], $10::text[])
    AS u(event_id, read_at, service, reader, roles, reason, outcome, contacts_shown,
         complaint_no, branch_id)
ON CONFLICT (event_id) DO NOTHING"""


_ROLES = ReadEntry._fields.index("reader_roles")


async def record(conn: DbConnection, entries: Sequence[ReadEntry]) -> None:
    if entries:
        columns: list[tuple[Any, ...]] = list(zip(*entries, strict=True))
        columns[_ROLES] = tuple(",".join(roles) for roles in columns[_ROLES])
        await conn.execute(_INSERT, *columns)


@dataclass(frozen=True)
class ReadsQuery:
    """Which entries an auditor lists: ``branches`` None for every branch; ``since``
    inclusive, ``until`` exclusive; ``after`` the previous page's last (read_at, event_id)."""

    limit: int
    branches: list[str] | None = None
    complaint_no: str | None = None
    reader: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after: tuple[datetime, uuid.UUID] | None = None


async def record_reads(conn: DbConnection, query: ReadsQuery) -> RecordReads:
    """A page of the trail, newest first (ties by event id), and where the next begins."""
    params: list[Any] = []
    bind = partial(bind_parameter, params)
    clauses = ["true"]
    if query.branches is not None:
        clauses.append(f"branch_id = ANY({bind(query.branches)}::text[])")
    if query.complaint_no is not None:
        clauses.append(f"complaint_no = {bind(query.complaint_no)}")
    if query.reader is not None:
        clauses.append(f"reader = {bind(query.reader)}")
    if query.since is not None:
        clauses.append(f"read_at >= {bind(query.since)}")
    if query.until is not None:
        clauses.append(f"read_at < {bind(query.until)}")
    if query.after is not None:
        read_at, event_id = query.after
        clauses.append(f"(read_at, event_id) < ({bind(read_at)}, {bind(event_id)})")
    rows = await conn.fetch(
        f"""SELECT event_id, read_at, service, reader, reader_roles, reason, outcome,
                   contacts_shown, complaint_no, branch_id
            FROM record_reads WHERE {" AND ".join(clauses)}
            ORDER BY read_at DESC, event_id DESC LIMIT {bind(query.limit + 1)}""",  # noqa: S608 -- bound values
        *params,
    )
    more = len(rows) > query.limit
    listed = [RecordRead(**dict(row)) for row in rows[: query.limit]]
    last = listed[-1] if more else None
    return RecordReads(
        reads=listed,
        next_after=f"{last.read_at.isoformat()}|{last.event_id}" if last else None,
    )
