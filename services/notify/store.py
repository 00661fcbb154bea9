"""Notify's tables: the cases it addresses, parked events, and every notification.

A notification row is written before anything is sent, and its unique key (source
event, channel, recipient, template) means a replayed event can never queue it again.
Status changes are conditional on the status (and attempt) the caller saw, so an
instance whose lease ran out cannot overwrite what the reconciler decided.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from services.notify.domain import CaseFacts
from shared.contracts import Event, decode_event
from shared.db import DbConnection

_COLUMNS = """notification_id, notification_key, complaint_no, branch_id, correlation_id,
    source_event_id, channel, rule, template, language, address, recipient_masked,
    to_customer, subject, body_text, body_html, sms_text, params, segments, status,
    attempts, first_attempt_at, provider, provider_message_id, status_checks"""


@dataclass(frozen=True)
class Notification:
    notification_id: uuid.UUID
    notification_key: str
    complaint_no: str
    branch_id: str
    correlation_id: str
    source_event_id: uuid.UUID
    channel: str
    rule: str
    template: str
    language: str
    address: str
    recipient_masked: str
    to_customer: bool
    subject: str
    body_text: str
    body_html: str
    sms_text: str | None
    params: dict[str, str]
    segments: int | None
    status: str = "queued"
    attempts: int = 0
    first_attempt_at: datetime | None = None
    provider: str | None = None
    provider_message_id: str | None = None
    status_checks: int = 0

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Notification:
        values = dict(row)
        values["params"] = json.loads(values["params"]) if values["params"] else {}
        return cls(**values)


async def load_case(conn: DbConnection, complaint_no: str) -> CaseFacts | None:
    facts = await conn.fetchval("SELECT facts FROM cases WHERE complaint_no = $1", complaint_no)
    return CaseFacts.model_validate_json(facts) if facts is not None else None


async def save_case(conn: DbConnection, case: CaseFacts) -> None:
    await conn.execute(
        """INSERT INTO cases (complaint_no, facts) VALUES ($1, $2)
           ON CONFLICT (complaint_no) DO UPDATE SET facts = EXCLUDED.facts, updated_at = now()""",
        case.complaint_no,
        case.model_dump_json(),
    )


async def park(conn: DbConnection, event: Event) -> None:
    await conn.execute(
        """INSERT INTO parked_events (event_id, complaint_no, occurred_at, body)
           VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING""",
        event.event_id,
        event.complaint_no,
        event.occurred_at,
        event.model_dump_json(),
    )


async def take_parked(conn: DbConnection, complaint_no: str) -> list[Event]:
    rows = await conn.fetch(
        "DELETE FROM parked_events WHERE complaint_no = $1 RETURNING occurred_at, body",
        complaint_no,
    )
    ordered = sorted(rows, key=lambda row: row["occurred_at"])
    events = [decode_event(row["body"].encode()) for row in ordered]
    return [event for event in events if event is not None]


async def queue(conn: DbConnection, notification: Notification, not_before: datetime) -> bool:
    """False when the key is taken: this message was queued before and must not be again."""
    n = notification
    status: str = await conn.execute(
        """INSERT INTO notifications (notification_id, notification_key, complaint_no, branch_id,
               correlation_id, source_event_id, channel, rule, template, language, address,
               recipient_masked, to_customer, subject, body_text, body_html, sms_text, params,
               segments, status, not_before)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                   $18, $19, 'queued', $20)
           ON CONFLICT (notification_key) DO NOTHING""",
        n.notification_id,
        n.notification_key,
        n.complaint_no,
        n.branch_id,
        n.correlation_id,
        n.source_event_id,
        n.channel,
        n.rule,
        n.template,
        n.language,
        n.address,
        n.recipient_masked,
        n.to_customer,
        n.subject,
        n.body_text,
        n.body_html,
        n.sms_text,
        json.dumps(dict(n.params)),
        n.segments,
        not_before,
    )
    return status == "INSERT 0 1"


async def claim_due(
    conn: DbConnection, quotas: dict[str, int], lease_seconds: float
) -> list[Notification]:
    """Take due notifications, at most ``quotas[channel]`` of each channel: each attempt is
    counted before it is made."""
    wanted = {channel: quota for channel, quota in quotas.items() if quota > 0}
    if not wanted:
        return []
    rows = await conn.fetch(
        f"""UPDATE notifications n
            SET status = 'sending', attempts = n.attempts + 1,
                first_attempt_at = coalesce(n.first_attempt_at, now()),
                lease_until = now() + make_interval(secs => $3), updated_at = now()
            FROM (SELECT d.notification_id
                  FROM unnest($1::text[], $2::int[]) AS q (channel, quota)
                  CROSS JOIN LATERAL (
                      SELECT notification_id FROM notifications
                      WHERE status = 'queued' AND channel = q.channel AND not_before <= now()
                      ORDER BY not_before LIMIT q.quota FOR UPDATE SKIP LOCKED) d) due
            WHERE n.notification_id = due.notification_id
            RETURNING {_prefixed("n")}""",  # noqa: S608 -- a constant column list
        list(wanted),
        list(wanted.values()),
        lease_seconds,
    )
    return [Notification.from_row(row) for row in rows]


async def claim_expired(conn: DbConnection, limit: int, lease_seconds: float) -> list[Notification]:
    """Sends whose lease ran out: their sender died or could not learn the outcome."""
    rows = await conn.fetch(
        f"""UPDATE notifications n
            SET lease_until = now() + make_interval(secs => $2), updated_at = now()
            FROM (SELECT notification_id FROM notifications
                  WHERE status IN ('sending', 'handing_over') AND lease_until < now()
                  ORDER BY lease_until LIMIT $1 FOR UPDATE SKIP LOCKED) late
            WHERE n.notification_id = late.notification_id
            RETURNING {_prefixed("n")}""",  # noqa: S608 -- a constant column list
        limit,
        lease_seconds,
    )
    return [Notification.from_row(row) for row in rows]


async def claim_status_checks(
    conn: DbConnection, limit: int, recheck_seconds: float
) -> list[Notification]:
    rows = await conn.fetch(
        f"""UPDATE notifications n
            SET next_status_check = now() + make_interval(secs => $2),
                status_checks = n.status_checks + 1
            FROM (SELECT notification_id FROM notifications
                  WHERE status = 'sent' AND next_status_check <= now()
                  ORDER BY next_status_check LIMIT $1 FOR UPDATE SKIP LOCKED) due
            WHERE n.notification_id = due.notification_id
            RETURNING {_prefixed("n")}""",  # noqa: S608 -- a constant column list
        limit,
        recheck_seconds,
    )
    return [Notification.from_row(row) for row in rows]


def _prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{column.strip()}" for column in _COLUMNS.split(","))


async def move(
    conn: DbConnection,
    notification_id: uuid.UUID,
    *,
    from_statuses: tuple[str, ...],
    to_status: str,
    attempt: int | None = None,
    **fields: Any,
) -> bool:
    """Change status (and ``fields``) only if the row is still in one of ``from_statuses``
    and, given ``attempt``, still on that attempt: what is learnt or decided about one
    attempt (late, after a lease ran out) must not land on the next one, which a claim
    may have put in the same status meanwhile."""
    assignments = "".join(f", {name} = ${i}" for i, name in enumerate(fields, start=5))
    status: str = await conn.execute(
        f"""UPDATE notifications SET status = $2, updated_at = now(){assignments}
            WHERE notification_id = $1 AND status = ANY($3::text[])
              AND ($4::integer IS NULL OR attempts = $4)""",  # noqa: S608
        notification_id,
        to_status,
        list(from_statuses),
        attempt,
        *fields.values(),
    )
    return status == "UPDATE 1"


async def requeue_dead(conn: DbConnection, notification_ids: list[uuid.UUID] | None) -> int:
    """Give dead letters a fresh set of attempts, all of them or the ones named."""
    status: str = await conn.execute(
        """UPDATE notifications
           SET status = 'queued', attempts = 0, not_before = now(), last_error = NULL,
               updated_at = now()
           WHERE status = 'dead' AND ($1::uuid[] IS NULL OR notification_id = ANY($1::uuid[]))""",
        notification_ids,
    )
    return int(status.split()[-1])
