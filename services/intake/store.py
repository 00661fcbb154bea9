"""Intake's tables: the complaint register and the yearly counter."""

from __future__ import annotations

from shared.contracts import ComplaintReceived
from shared.db import DbConnection


async def next_ordinal(conn: DbConnection, year: int) -> int:
    ordinal: int = await conn.fetchval(
        """INSERT INTO complaint_counters (year, last_ordinal) VALUES ($1, 1)
           ON CONFLICT (year) DO UPDATE SET last_ordinal = complaint_counters.last_ordinal + 1
           RETURNING last_ordinal""",
        year,
    )
    return ordinal


async def insert_complaint(
    conn: DbConnection, event: ComplaintReceived, *, year: int, ordinal: int
) -> None:
    await conn.execute(
        """INSERT INTO complaints (complaint_no, year, ordinal, branch_id, pack, pack_version,
               channel, customer, description, customer_request, category, severity, region,
               first_contact_staff, status, received_at, correlation_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'received',
                   $15, $16)""",
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
        event.received_at,
        event.correlation_id,
    )
