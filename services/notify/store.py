"""Notify's table: every notification, recorded before it is sent."""

from __future__ import annotations

import uuid

from shared.db import DbConnection


async def record_pending(
    conn: DbConnection,
    *,
    notification_id: uuid.UUID,
    key: str,
    complaint_no: str,
    recipient_masked: str,
    template: str,
    language: str,
) -> bool:
    """False when a notification with this key exists already: it must not be sent again."""
    status: str = await conn.execute(
        """INSERT INTO notifications (notification_id, notification_key, complaint_no, channel,
               recipient_masked, template, language, status)
           VALUES ($1, $2, $3, 'email', $4, $5, $6, 'sending')
           ON CONFLICT (notification_key) DO NOTHING""",
        notification_id,
        key,
        complaint_no,
        recipient_masked,
        template,
        language,
    )
    return status == "INSERT 0 1"


async def record_outcome(
    conn: DbConnection, notification_id: uuid.UUID, *, attempts: int, error: str | None
) -> None:
    await conn.execute(
        """UPDATE notifications
           SET status = $2, attempts = $3, last_error = $4,
               sent_at = CASE WHEN $2 = 'sent' THEN now() END
           WHERE notification_id = $1""",
        notification_id,
        "sent" if error is None else "failed",
        attempts,
        error,
    )
