"""Applying events to the reporting projections, one transaction per event."""

from __future__ import annotations

import json
from typing import Any

from shared.contracts import (
    CaseEvent,
    ClockBreached,
    ClockEvent,
    ClockPaused,
    ClockRecomputed,
    ClockResumed,
    ClockStarted,
    ClockStopped,
    ComplaintAssigned,
    ComplaintReceived,
    EscalationRaised,
    Event,
    NotificationEvent,
    NotificationFailed,
    NotificationUnconfirmed,
)
from shared.contracts.intake import (
    CompensationRecorded,
    ComplaintAcknowledged,
    ComplaintAnsweredOnSpot,
    ComplaintClosed,
    ComplaintEscalated,
    ComplaintNotUpheld,
    ComplaintReopened,
    DecisionCommunicated,
    FeedbackReceived,
    ReturnVisitRecorded,
    ServiceVolumeRecorded,
)
from shared.contracts.sla import ReturnVisitDue
from shared.db import DbConnection
from shared.inbox import first_delivery
from shared.redact import mask_email, mask_phone

_ENVELOPE_FIELDS = set(Event.model_fields)


def timeline_details(event: Event) -> dict[str, Any]:
    """What the case timeline shows of an event: its payload, contact details masked."""
    details: dict[str, Any] = event.model_dump(mode="json", exclude=_ENVELOPE_FIELDS)
    if isinstance(event, ComplaintReceived):
        customer = details["customer"]
        if event.customer.email is not None:
            customer["email"] = mask_email(str(event.customer.email))
        if event.customer.phone is not None:
            customer["phone"] = mask_phone(event.customer.phone)
    return details


CHANGED_CHANNEL = "reporting_changed"
# Live projecting holds this lock shared; a rebuild takes it exclusively to swap schemas.
SWAP_LOCK = 0x5245504F
_CONTACT = (
    ComplaintAcknowledged,
    DecisionCommunicated,
    ComplaintAnsweredOnSpot,
    ComplaintNotUpheld,
)
_DECISION = (DecisionCommunicated, ComplaintAnsweredOnSpot, ComplaintNotUpheld)


async def apply_event(conn: DbConnection, event: Event) -> bool:
    """Project ``event``; False if it had been projected before."""
    if not await first_delivery(conn, event):
        return False
    # Dashboards listening learn of the change when this transaction commits.
    await conn.execute("SELECT pg_notify($1, '')", CHANGED_CHANNEL)
    if isinstance(event, ServiceVolumeRecorded):
        await _service_volume(conn, event)
        return True
    await conn.execute(
        """INSERT INTO case_timeline (event_id, complaint_no, event_type, producer, occurred_at,
               details)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING""",
        event.event_id,
        event.complaint_no,
        event.event_type,
        event.producer,
        event.occurred_at,
        json.dumps(timeline_details(event), ensure_ascii=False),
    )
    if isinstance(event, CaseEvent):
        await _case_event(conn, event)
        await _case_milestones(conn, event)
    if isinstance(event, ComplaintReceived):
        await _received(conn, event)
    elif isinstance(event, ComplaintAssigned):
        await _assigned(conn, event)
    elif isinstance(event, ClockStarted):
        await _clock_started(conn, event)
    elif isinstance(event, ClockEvent):
        await _clock_changed(conn, event)
    elif isinstance(event, NotificationEvent):
        await _notification(conn, event)
    elif isinstance(event, EscalationRaised):
        await _escalation(conn, event, level=event.level, reason=event.reason, source="sla")
    return True


async def _case_milestones(conn: DbConnection, event: CaseEvent) -> None:
    """What the reports count: contacts, decisions, closing, feedback, visits, money."""
    await conn.execute(
        """INSERT INTO case_status_history (event_id, complaint_no, sequence, status, event_type,
               occurred_at)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING""",
        event.event_id,
        event.complaint_no,
        event.sequence,
        event.status.value,
        event.event_type,
        event.occurred_at,
    )
    if isinstance(event, _CONTACT):
        # LEAST ignores NULL: the earliest contact stands whatever the arrival order.
        await conn.execute(
            """UPDATE cases SET first_contact_at = LEAST(first_contact_at, $2)
               WHERE complaint_no = $1""",
            event.complaint_no,
            event.occurred_at,
        )
    if isinstance(event, _DECISION):
        await conn.execute(
            """UPDATE cases SET decided_at = LEAST(decided_at, $2), not_upheld = not_upheld OR $3
               WHERE complaint_no = $1""",
            event.complaint_no,
            event.occurred_at,
            isinstance(event, ComplaintNotUpheld),
        )
    if isinstance(event, ComplaintClosed):
        await conn.execute(
            "UPDATE cases SET closed_at = $2 WHERE complaint_no = $1",
            event.complaint_no,
            event.occurred_at,
        )
    elif isinstance(event, ComplaintReopened):
        await conn.execute(
            "UPDATE cases SET closed_at = NULL, reopened = reopened + 1 WHERE complaint_no = $1",
            event.complaint_no,
        )
    elif isinstance(event, FeedbackReceived):
        await conn.execute(
            """INSERT INTO case_feedback (event_id, complaint_no, round, quality, attitude, speed,
                   satisfied, comment, occurred_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (event_id) DO NOTHING""",
            event.event_id,
            event.complaint_no,
            event.round,
            event.quality,
            event.attitude,
            event.speed,
            event.satisfied,
            event.comment,
            event.occurred_at,
        )
    elif isinstance(event, ReturnVisitRecorded):
        await conn.execute(
            """INSERT INTO case_return_visits (event_id, complaint_no, method, outcome, satisfied,
                   occurred_at)
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING""",
            event.event_id,
            event.complaint_no,
            event.method,
            event.outcome,
            event.satisfied,
            event.occurred_at,
        )
    elif isinstance(event, CompensationRecorded):
        await conn.execute(
            """INSERT INTO case_compensation (event_id, complaint_no, compensation, loss, currency,
                   responsible_department, share, occurred_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING""",
            event.event_id,
            event.complaint_no,
            event.compensation_amount,
            event.loss_amount,
            event.currency,
            event.responsible_department,
            event.share,
            event.occurred_at,
        )
    elif isinstance(event, ComplaintEscalated):
        await _escalation(conn, event, level=None, reason=event.reason, source="intake")


async def _escalation(
    conn: DbConnection, event: Event, *, level: int | None, reason: str, source: str
) -> None:
    await conn.execute(
        """INSERT INTO case_escalations (event_id, complaint_no, level, reason, source, occurred_at)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING""",
        event.event_id,
        event.complaint_no,
        level,
        reason,
        source,
        event.occurred_at,
    )


async def _service_volume(conn: DbConnection, event: ServiceVolumeRecorded) -> None:
    await conn.execute(
        """INSERT INTO service_volumes (branch_id, day, services, occurred_at)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (branch_id, day) DO UPDATE
               SET services = EXCLUDED.services, occurred_at = EXCLUDED.occurred_at
               WHERE service_volumes.occurred_at < EXCLUDED.occurred_at""",
        event.branch_id,
        event.day,
        event.services,
        event.occurred_at,
    )


async def _ensure_case(conn: DbConnection, event: Event) -> None:
    # Routing's or sla's events may arrive before intake's: the row starts without status.
    await conn.execute(
        """INSERT INTO cases (complaint_no, branch_id, status) VALUES ($1, $2, 'unknown')
           ON CONFLICT (complaint_no) DO NOTHING""",
        event.complaint_no,
        event.branch_id,
    )


async def _case_event(conn: DbConnection, event: CaseEvent) -> None:
    """Intake's events carry the case's status; the latest by sequence wins."""
    await _ensure_case(conn, event)
    await conn.execute(
        """UPDATE cases SET status = $2, round = $3, intake_sequence = $4, updated_at = now()
           WHERE complaint_no = $1 AND intake_sequence < $4""",
        event.complaint_no,
        event.status.value,
        event.round,
        event.sequence,
    )


async def _received(conn: DbConnection, event: ComplaintReceived) -> None:
    await conn.execute(
        """UPDATE cases SET pack = $2, category = $3, channel = $4, severity = $5, region = $6,
               customer_type = $7, first_contact_staff = $8, received_at = $9
           WHERE complaint_no = $1""",
        event.complaint_no,
        event.pack,
        event.category,
        event.channel.value,
        event.severity.value,
        event.region.value,
        event.customer.type.value,
        event.first_contact_staff,
        event.received_at,
    )


async def _assigned(conn: DbConnection, event: ComplaintAssigned) -> None:
    await _ensure_case(conn, event)
    await conn.execute(
        """UPDATE cases SET department = $2, assignee_id = $3, assignee_name = $4, assigned_at = $5
           WHERE complaint_no = $1 AND (assigned_at IS NULL OR assigned_at <= $5)""",
        event.complaint_no,
        event.department,
        event.assignee.staff_id if event.assignee else None,
        event.assignee.name if event.assignee else None,
        event.occurred_at,
    )


async def _clock_started(conn: DbConnection, event: ClockStarted) -> None:
    await conn.execute(
        """INSERT INTO case_clocks (clock_id, complaint_no, name, rule, state, started_at, due_at,
               target_seconds, round, calendar, return_visit)
           VALUES ($1, $2, $3, $4, 'running', $5, $6, $7, $8, $9, $10)
           ON CONFLICT (clock_id) DO NOTHING""",
        event.clock_id,
        event.complaint_no,
        event.name,
        event.rule,
        event.started_at,
        event.due_at,
        event.target_seconds,
        event.round,
        event.calendar,
        event.return_visit,
    )


async def _clock_changed(conn: DbConnection, event: ClockEvent) -> None:
    """Later events of a clock; they follow its ClockStarted on the same partition."""
    if isinstance(event, ClockPaused):
        await conn.execute(
            "UPDATE case_clocks SET state = 'paused', paused_at = $2 WHERE clock_id = $1",
            event.clock_id,
            event.paused_at,
        )
    elif isinstance(event, ClockResumed):
        await conn.execute(
            """UPDATE case_clocks SET state = 'running', paused_at = NULL, due_at = $2,
                   paused_seconds = $3
               WHERE clock_id = $1""",
            event.clock_id,
            event.due_at,
            event.paused_seconds,
        )
    elif isinstance(event, ClockRecomputed):
        await conn.execute(
            "UPDATE case_clocks SET due_at = $2, rule = $3 WHERE clock_id = $1",
            event.clock_id,
            event.due_at,
            event.rule,
        )
    elif isinstance(event, ClockStopped):
        await conn.execute(
            "UPDATE case_clocks SET state = $2, stopped_at = $3 WHERE clock_id = $1",
            event.clock_id,
            event.outcome,
            event.stopped_at,
        )
    elif isinstance(event, ReturnVisitDue):
        await conn.execute(
            """INSERT INTO case_return_visits_due (event_id, complaint_no, clock_id, due_at)
               VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING""",
            event.event_id,
            event.complaint_no,
            event.clock_id,
            event.due_at,
        )
    elif isinstance(event, ClockBreached):
        await conn.execute(
            """UPDATE case_clocks SET state = 'breached'
               WHERE clock_id = $1 AND stopped_at IS NULL""",
            event.clock_id,
        )


_NOTIFICATION_STATUS = {
    "NotificationQueued": "queued",
    "NotificationSent": "sent",
    "NotificationDelivered": "delivered",
    "NotificationFailed": "failed",
    "NotificationUnconfirmed": "unconfirmed",
}


async def _notification(conn: DbConnection, event: NotificationEvent) -> None:
    """A notification's latest state; notify's events of one complaint arrive in order."""
    reason = (
        event.reason if isinstance(event, NotificationFailed | NotificationUnconfirmed) else None
    )
    await conn.execute(
        """INSERT INTO case_notifications (notification_id, complaint_no, channel,
               recipient_masked, template, status, occurred_at, reason, to_customer,
               dead_lettered)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (notification_id) DO UPDATE SET status = EXCLUDED.status,
               occurred_at = EXCLUDED.occurred_at, reason = EXCLUDED.reason,
               dead_lettered = EXCLUDED.dead_lettered""",
        event.notification_id,
        event.complaint_no,
        event.channel,
        event.recipient_masked,
        event.template,
        _NOTIFICATION_STATUS[event.event_type],
        event.occurred_at,
        reason,
        event.to_customer,
        isinstance(event, NotificationFailed) and event.dead_lettered,
    )
