"""Applying events to the reporting projections, a batch at a time.

A batch costs a handful of statements however many events it holds: the inbox records
them all at once; the events of one case, clock, notification or branch-day are folded
into one row, upserted with the others from arrays (``unnest``); the rows that are one
event's own (timeline, status history, feedback...) go in together, by COPY when many.
Folding gives exactly what applying the events one by one in the batch's order would, so
batches of any size, cut anywhere, project alike; each fold below says how.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from services.reporting import audit, rollups
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
from shared.contracts.audit import CustomerRecordRead
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
from shared.redact import mask_email, mask_phone

_ENVELOPE_FIELDS = set(Event.model_fields)

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
# Fewer rows than this go in by one INSERT (one round trip); more by COPY (two round trips,
# but half the work per row on both sides).
_COPY_FROM = 32
_NOTIFICATION_STATUS = {
    "NotificationQueued": "queued",
    "NotificationSent": "sent",
    "NotificationDelivered": "delivered",
    "NotificationFailed": "failed",
    "NotificationUnconfirmed": "unconfirmed",
}


def timeline_details(event: Event) -> str:
    """What the case timeline shows of an event (JSON): its payload, contact details masked."""
    if not isinstance(event, ComplaintReceived):
        # Serialised by pydantic's core: the same JSON as model_dump + json.dumps, faster.
        return event.model_dump_json(exclude=_ENVELOPE_FIELDS)
    details: dict[str, Any] = event.model_dump(mode="json", exclude=_ENVELOPE_FIELDS)
    customer = details["customer"]
    if event.customer.email is not None:
        customer["email"] = mask_email(str(event.customer.email))
    if event.customer.phone is not None:
        customer["phone"] = mask_phone(event.customer.phone)
    return json.dumps(details, ensure_ascii=False)


async def apply_events(conn: DbConnection, events: Sequence[Event], *, notify: bool = True) -> int:
    """Project ``events`` as applying them one by one in this order would; returns how many
    were projected now (an event projected before, or earlier in ``events``, is skipped).

    Call inside the transaction the effects share with their inbox records; the rollups
    follow the rows in it (migration 008's triggers). ``notify``
    tells listening dashboards of the change when it commits; a rebuild, which writes
    into a schema nobody reads yet, goes without.
    """
    return await EventBatch(events).apply(conn, notify=notify)


class EventBatch:
    """Events folded into the rows they give each table, ready to be applied.

    Folding is most of the work of applying events and needs no database, so a rebuild
    folds the next batch while the database takes this one. The fold takes every event
    for new; should the inbox know some already, the rest are folded again without them.
    """

    def __init__(self, events: Sequence[Event]) -> None:
        first: dict[uuid.UUID, Event] = {}
        for event in events:
            first.setdefault(event.event_id, event)
        self._events = first
        self._rows = _Rows(first.values())

    async def apply(self, conn: DbConnection, *, notify: bool = True, bulk: bool = False) -> int:
        """As ``apply_events``. ``bulk``: a rebuild's load, its indexes set aside, leaves
        the cases' derived columns (compensation totals, earliest breach) to one recount
        at the end (``rollups.refresh``): looked up per batch without the indexes, they
        took a scan of the clocks per case."""
        if not self._events:
            return 0
        await rollups.lock(conn)
        known = await _known_to_inbox(conn, self._events)
        rows = self._rows
        if known:
            rows = _Rows(event for event_id, event in self._events.items() if event_id not in known)
        new = len(self._events) - len(known)
        if new:
            if notify and rows.changes_reports:
                await conn.execute("SELECT pg_notify($1, '')", CHANGED_CHANNEL)
            await rows.write(conn, derive=not bulk)
        return new


async def _known_to_inbox(conn: DbConnection, events: dict[uuid.UUID, Event]) -> set[uuid.UUID]:
    """Record the events in the inbox; the ids of those it had already."""
    if len(events) >= _COPY_FROM:
        records = [(event_id, event.event_type) for event_id, event in events.items()]
        try:
            # Usually every event is new: COPY, in a savepoint so that a known one costs
            # only this attempt.
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "processed_events", records=records, columns=["event_id", "event_type"]
                )
            return set()
        except asyncpg.UniqueViolationError:
            pass
    known = await conn.fetch(
        """WITH recorded AS (
               INSERT INTO processed_events (event_id, event_type)
               SELECT * FROM unnest($1::uuid[], $2::text[])
               ON CONFLICT (event_id) DO NOTHING RETURNING event_id)
           SELECT event_id FROM unnest($1::uuid[]) AS given (event_id)
           WHERE event_id NOT IN (SELECT event_id FROM recorded)""",
        list(events),
        [event.event_type for event in events.values()],
    )
    return {row["event_id"] for row in known}


@dataclass
class _Case:
    """A batch's effect on one row of ``cases``.

    The row is created by the first intake or routing event ('unknown' status until
    intake's arrive). Status and round are those of intake's latest event by sequence
    (the first of equals), status_at its time; the complaint's details are the last
    ComplaintReceived's; the assignment is the latest by time (the last of equals), so a
    late-arriving older one changes nothing; first contact and decision are the earliest
    (LEAST ignores NULL); closing is the last of the ComplaintClosed and ComplaintReopened
    events, which intake emits in order.
    """

    branch_id: str
    sequence: int = 0
    status: str = "unknown"
    status_at: datetime | None = None
    round: int = 1
    received: ComplaintReceived | None = None
    assigned: ComplaintAssigned | None = None
    first_contact_at: datetime | None = None
    decided_at: datetime | None = None
    not_upheld: bool = False
    closed_at: datetime | None = None
    reopened: int = 0

    def row(self, complaint_no: str) -> tuple[Any, ...]:
        received, assigned = self.received, self.assigned
        assignee = assigned.assignee if assigned else None
        return (
            complaint_no,
            self.branch_id,
            self.status,
            self.round,
            self.sequence,
            received.pack if received else None,
            received.category if received else None,
            received.channel.value if received else None,
            received.severity.value if received else None,
            received.region.value if received else None,
            received.customer.type.value if received else None,
            received.first_contact_staff if received else None,
            received.received_at if received else None,
            received.confidentiality.value if received else None,
            assigned.department if assigned else None,
            assignee.staff_id if assignee else None,
            assignee.name if assignee else None,
            assigned.occurred_at if assigned else None,
            self.first_contact_at,
            self.decided_at,
            self.not_upheld,
            self.closed_at,
            self.reopened,
            self.status_at,
        )


# In the update, a column of EXCLUDED that is NULL means "not in this batch": received_at
# and assigned_at are never NULL in their events. A closing happened when closed_at is set
# or a reopening was counted; after a reopening closed_at is NULL again.
_UPSERT_CASES = """
INSERT INTO cases AS c (complaint_no, branch_id, status, round, intake_sequence, pack,
    category, channel, severity, region, customer_type, first_contact_staff, received_at,
    confidentiality, department, assignee_id, assignee_name, assigned_at, first_contact_at,
    decided_at, not_upheld, closed_at, reopened, status_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[], $6::text[],
    $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
    $13::timestamptz[], $14::text[], $15::text[], $16::text[], $17::text[],
    $18::timestamptz[], $19::timestamptz[], $20::timestamptz[], $21::bool[],
    $22::timestamptz[], $23::int[], $24::timestamptz[])
ON CONFLICT (complaint_no) DO UPDATE SET
    status = CASE WHEN c.intake_sequence < EXCLUDED.intake_sequence
                  THEN EXCLUDED.status ELSE c.status END,
    round = CASE WHEN c.intake_sequence < EXCLUDED.intake_sequence
                 THEN EXCLUDED.round ELSE c.round END,
    status_at = CASE WHEN c.intake_sequence < EXCLUDED.intake_sequence
                     THEN EXCLUDED.status_at ELSE c.status_at END,
    updated_at = CASE WHEN c.intake_sequence < EXCLUDED.intake_sequence
                      THEN now() ELSE c.updated_at END,
    intake_sequence = GREATEST(c.intake_sequence, EXCLUDED.intake_sequence),
    pack = CASE WHEN EXCLUDED.received_at IS NULL THEN c.pack ELSE EXCLUDED.pack END,
    category = CASE WHEN EXCLUDED.received_at IS NULL THEN c.category ELSE EXCLUDED.category END,
    channel = CASE WHEN EXCLUDED.received_at IS NULL THEN c.channel ELSE EXCLUDED.channel END,
    severity = CASE WHEN EXCLUDED.received_at IS NULL THEN c.severity ELSE EXCLUDED.severity END,
    region = CASE WHEN EXCLUDED.received_at IS NULL THEN c.region ELSE EXCLUDED.region END,
    customer_type = CASE WHEN EXCLUDED.received_at IS NULL
                         THEN c.customer_type ELSE EXCLUDED.customer_type END,
    first_contact_staff = CASE WHEN EXCLUDED.received_at IS NULL
                               THEN c.first_contact_staff ELSE EXCLUDED.first_contact_staff END,
    received_at = COALESCE(EXCLUDED.received_at, c.received_at),
    confidentiality = CASE WHEN EXCLUDED.received_at IS NULL
                           THEN c.confidentiality ELSE EXCLUDED.confidentiality END,
    department = CASE WHEN c.assigned_at <= EXCLUDED.assigned_at
                           OR (c.assigned_at IS NULL AND EXCLUDED.assigned_at IS NOT NULL)
                      THEN EXCLUDED.department ELSE c.department END,
    assignee_id = CASE WHEN c.assigned_at <= EXCLUDED.assigned_at
                            OR (c.assigned_at IS NULL AND EXCLUDED.assigned_at IS NOT NULL)
                       THEN EXCLUDED.assignee_id ELSE c.assignee_id END,
    assignee_name = CASE WHEN c.assigned_at <= EXCLUDED.assigned_at
                              OR (c.assigned_at IS NULL AND EXCLUDED.assigned_at IS NOT NULL)
                         THEN EXCLUDED.assignee_name ELSE c.assignee_name END,
    assigned_at = GREATEST(c.assigned_at, EXCLUDED.assigned_at),
    first_contact_at = LEAST(c.first_contact_at, EXCLUDED.first_contact_at),
    decided_at = LEAST(c.decided_at, EXCLUDED.decided_at),
    not_upheld = c.not_upheld OR EXCLUDED.not_upheld,
    closed_at = CASE WHEN EXCLUDED.closed_at IS NOT NULL OR EXCLUDED.reopened > 0
                     THEN EXCLUDED.closed_at ELSE c.closed_at END,
    reopened = c.reopened + EXCLUDED.reopened"""


@dataclass
class _ClockChange:
    """A batch's changes to one clock after its start, folded in their order.

    Each field is None when unchanged (paused_at, which a resumption clears, has a flag).
    A breach marks a clock only if it has not stopped: a stop earlier in the batch rules it
    out here; otherwise the row's stopped_at decides (``breach``), unless a later event
    sets the state anyway.
    """

    state: str | None = None
    breach: bool = False
    sets_paused_at: bool = False
    paused_at: datetime | None = None
    due_at: datetime | None = None
    paused_seconds: int | None = None
    rule: str | None = None
    stopped_at: datetime | None = None

    def add(self, event: ClockEvent) -> None:
        if isinstance(event, ClockPaused):
            self.state, self.breach = "paused", False
            self.sets_paused_at, self.paused_at = True, event.paused_at
        elif isinstance(event, ClockResumed):
            self.state, self.breach = "running", False
            self.sets_paused_at, self.paused_at = True, None
            self.due_at, self.paused_seconds = event.due_at, event.paused_seconds
        elif isinstance(event, ClockRecomputed):
            self.due_at, self.rule = event.due_at, event.rule
        elif isinstance(event, ClockStopped):
            self.state, self.breach = event.outcome, False
            self.stopped_at = event.stopped_at
        elif isinstance(event, ClockBreached) and self.stopped_at is None:
            self.breach = True

    def row(self, clock_id: uuid.UUID) -> tuple[Any, ...]:
        return (
            clock_id,
            self.state,
            self.breach,
            self.sets_paused_at,
            self.paused_at,
            self.due_at,
            self.paused_seconds,
            self.rule,
            self.stopped_at,
        )


_CLOCK_CHANGES = (ClockPaused, ClockResumed, ClockRecomputed, ClockStopped, ClockBreached)
_INSERT_CLOCKS = """
INSERT INTO case_clocks (clock_id, complaint_no, name, rule, state, started_at, due_at,
    target_seconds, round, calendar, return_visit)
SELECT u.clock_id, u.complaint_no, u.name, u.rule, 'running', u.started_at, u.due_at,
       u.target_seconds, u.round, u.calendar, u.return_visit
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[],
    $6::timestamptz[], $7::int[], $8::int[], $9::text[], $10::bool[])
    AS u(clock_id, complaint_no, name, rule, started_at, due_at, target_seconds, round,
         calendar, return_visit)
ON CONFLICT (clock_id) DO NOTHING RETURNING clock_id"""
_UPDATE_CLOCKS = """
UPDATE case_clocks AS k SET
    state = CASE WHEN u.breach AND k.stopped_at IS NULL
                 THEN 'breached' ELSE COALESCE(u.state, k.state) END,
    paused_at = CASE WHEN u.sets_paused_at THEN u.paused_at ELSE k.paused_at END,
    due_at = COALESCE(u.due_at, k.due_at),
    paused_seconds = COALESCE(u.paused_seconds, k.paused_seconds),
    rule = COALESCE(u.rule, k.rule),
    stopped_at = COALESCE(u.stopped_at, k.stopped_at)
FROM unnest($1::uuid[], $2::text[], $3::bool[], $4::bool[], $5::timestamptz[],
    $6::timestamptz[], $7::int[], $8::text[], $9::timestamptz[])
    AS u(clock_id, state, breach, sets_paused_at, paused_at, due_at, paused_seconds, rule,
         stopped_at)
WHERE k.clock_id = u.clock_id"""
# A notification's first event gives what it is; its last, where it stands.
_UPSERT_NOTIFICATIONS = """
INSERT INTO case_notifications (notification_id, complaint_no, channel, recipient_masked,
    template, to_customer, status, occurred_at, reason, dead_lettered)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bool[],
    $7::text[], $8::timestamptz[], $9::text[], $10::bool[])
ON CONFLICT (notification_id) DO UPDATE SET status = EXCLUDED.status,
    occurred_at = EXCLUDED.occurred_at, reason = EXCLUDED.reason,
    dead_lettered = EXCLUDED.dead_lettered"""
# A branch's figure for a day: the latest stands (the first of equals).
_UPSERT_SERVICE_VOLUMES = """
INSERT INTO service_volumes (branch_id, day, services, occurred_at)
SELECT * FROM unnest($1::text[], $2::date[], $3::int[], $4::timestamptz[])
ON CONFLICT (branch_id, day) DO UPDATE
    SET services = EXCLUDED.services, occurred_at = EXCLUDED.occurred_at
    WHERE service_volumes.occurred_at < EXCLUDED.occurred_at"""


class _EventTable:
    """A table with one row per event, keyed by the event's id.

    The inbox has just recorded each of these events as new in this transaction, and rows
    are only ever written with their inbox record, so none can exist yet: there is no
    conflict to look for.
    """

    def __init__(self, table: str, **columns: str) -> None:
        self.table = table
        self.columns = list(columns)
        arrays = ", ".join(f"${n}::{kind}[]" for n, kind in enumerate(columns.values(), 1))
        names = ", ".join(columns)
        self.insert = f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays})"  # noqa: S608 -- constants

    async def write(self, conn: DbConnection, rows: list[tuple[Any, ...]]) -> None:
        if len(rows) >= _COPY_FROM:
            await conn.copy_records_to_table(self.table, records=rows, columns=self.columns)
        elif rows:
            await conn.execute(self.insert, *_columns(rows))


_TIMELINE = _EventTable(
    "case_timeline",
    event_id="uuid",
    complaint_no="text",
    event_type="text",
    producer="text",
    occurred_at="timestamptz",
    details="jsonb",
)
_STATUS_HISTORY = _EventTable(
    "case_status_history",
    event_id="uuid",
    complaint_no="text",
    sequence="int",
    status="text",
    event_type="text",
    occurred_at="timestamptz",
)
_FEEDBACK = _EventTable(
    "case_feedback",
    event_id="uuid",
    complaint_no="text",
    round="int",
    quality="int",
    attitude="int",
    speed="int",
    satisfied="bool",
    comment="text",
    occurred_at="timestamptz",
)
_RETURN_VISITS = _EventTable(
    "case_return_visits",
    event_id="uuid",
    complaint_no="text",
    method="text",
    outcome="text",
    satisfied="bool",
    occurred_at="timestamptz",
)
_RETURN_VISITS_DUE = _EventTable(
    "case_return_visits_due",
    event_id="uuid",
    complaint_no="text",
    clock_id="uuid",
    due_at="timestamptz",
)
_COMPENSATION = _EventTable(
    "case_compensation",
    event_id="uuid",
    complaint_no="text",
    compensation="numeric",
    loss="numeric",
    currency="text",
    responsible_department="text",
    share="numeric",
    occurred_at="timestamptz",
)
_ESCALATIONS = _EventTable(
    "case_escalations",
    event_id="uuid",
    complaint_no="text",
    level="int",
    reason="text",
    source="text",
    occurred_at="timestamptz",
)


class _Rows:
    """Events sorted into the rows each table receives."""

    def __init__(self, events: Iterable[Event]) -> None:
        self.cases: dict[str, _Case] = {}
        self.clock_starts: dict[uuid.UUID, tuple[int, ClockStarted]] = {}
        self.clock_changes: list[tuple[int, ClockEvent]] = []
        self.notifications: dict[uuid.UUID, tuple[NotificationEvent, NotificationEvent]] = {}
        self.service_volumes: dict[tuple[str, date], ServiceVolumeRecorded] = {}
        self.record_reads: list[audit.ReadEntry] = []
        # Whether the reports may read otherwise: the audit trail is not in them, and
        # live dashboards need not recount for it.
        self.changes_reports = False
        self.rows: dict[_EventTable, list[tuple[Any, ...]]] = {
            table: []
            for table in (
                _TIMELINE,
                _STATUS_HISTORY,
                _FEEDBACK,
                _RETURN_VISITS,
                _RETURN_VISITS_DUE,
                _COMPENSATION,
                _ESCALATIONS,
            )
        }
        for position, event in enumerate(events):
            kind = type(event)
            for step in _steps(kind):
                step(self, position, event)
            self.changes_reports = self.changes_reports or kind is not CustomerRecordRead
        self.cases_columns = _columns([case.row(no) for no, case in self.cases.items()])
        self.notifications_columns = _columns(
            [_notification_row(first, last) for first, last in self.notifications.values()]
        )
        self.service_volumes_columns = _columns(
            [(e.branch_id, e.day, e.services, e.occurred_at) for e in self.service_volumes.values()]
        )
        self.clock_starts_columns = _columns(
            [
                (
                    e.clock_id,
                    e.complaint_no,
                    e.name,
                    e.rule,
                    e.started_at,
                    e.due_at,
                    e.target_seconds,
                    e.round,
                    e.calendar,
                    e.return_visit,
                )
                for _, e in self.clock_starts.values()
            ]
        )

    def _case(self, event: Event) -> _Case:
        case = self.cases.get(event.complaint_no)
        if case is None:
            case = self.cases[event.complaint_no] = _Case(event.branch_id)
        return case

    def _service_volume(self, _: int, event: ServiceVolumeRecorded) -> None:
        key = (event.branch_id, event.day)
        known = self.service_volumes.get(key)
        if known is None or known.occurred_at < event.occurred_at:
            self.service_volumes[key] = event

    def _timeline(self, _: int, event: Event) -> None:
        self.rows[_TIMELINE].append(
            (
                event.event_id,
                event.complaint_no,
                event.event_type,
                event.producer,
                event.occurred_at,
                timeline_details(event),
            )
        )

    def _status(self, _: int, event: CaseEvent) -> None:
        """Intake's events carry the case's status."""
        case = self._case(event)
        if case.sequence < event.sequence:
            case.sequence, case.status, case.round = event.sequence, event.status.value, event.round
            case.status_at = event.occurred_at
        self.rows[_STATUS_HISTORY].append(
            (
                event.event_id,
                event.complaint_no,
                event.sequence,
                event.status.value,
                event.event_type,
                event.occurred_at,
            )
        )

    def _contact(self, _: int, event: CaseEvent) -> None:
        case = self._case(event)
        case.first_contact_at = _earliest(case.first_contact_at, event.occurred_at)

    def _decision(self, _: int, event: CaseEvent) -> None:
        case = self._case(event)
        case.decided_at = _earliest(case.decided_at, event.occurred_at)
        case.not_upheld = case.not_upheld or isinstance(event, ComplaintNotUpheld)

    def _received(self, _: int, event: ComplaintReceived) -> None:
        self._case(event).received = event

    def _closed(self, _: int, event: ComplaintClosed) -> None:
        self._case(event).closed_at = event.occurred_at

    def _reopened(self, _: int, event: ComplaintReopened) -> None:
        case = self._case(event)
        case.closed_at = None
        case.reopened += 1

    def _feedback(self, _: int, event: FeedbackReceived) -> None:
        self.rows[_FEEDBACK].append(
            (
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
        )

    def _return_visit(self, _: int, event: ReturnVisitRecorded) -> None:
        self.rows[_RETURN_VISITS].append(
            (
                event.event_id,
                event.complaint_no,
                event.method,
                event.outcome,
                event.satisfied,
                event.occurred_at,
            )
        )

    def _compensation(self, _: int, event: CompensationRecorded) -> None:
        self.rows[_COMPENSATION].append(
            (
                event.event_id,
                event.complaint_no,
                event.compensation_amount,
                event.loss_amount,
                event.currency,
                event.responsible_department,
                event.share,
                event.occurred_at,
            )
        )

    def _staff_escalation(self, _: int, event: ComplaintEscalated) -> None:
        self.rows[_ESCALATIONS].append(
            (event.event_id, event.complaint_no, None, event.reason, "intake", event.occurred_at)
        )

    def _ladder_escalation(self, _: int, event: EscalationRaised) -> None:
        self.rows[_ESCALATIONS].append(
            (
                event.event_id,
                event.complaint_no,
                event.level,
                event.reason,
                "sla",
                event.occurred_at,
            )
        )

    def _assigned(self, _: int, event: ComplaintAssigned) -> None:
        case = self._case(event)
        if case.assigned is None or case.assigned.occurred_at <= event.occurred_at:
            case.assigned = event

    def _clock_started(self, position: int, event: ClockStarted) -> None:
        self.clock_starts.setdefault(event.clock_id, (position, event))

    def _clock_changed(self, position: int, event: ClockEvent) -> None:
        self.clock_changes.append((position, event))

    def _return_visit_due(self, _: int, event: ReturnVisitDue) -> None:
        self.rows[_RETURN_VISITS_DUE].append(
            (event.event_id, event.complaint_no, event.clock_id, event.due_at)
        )

    def _record_read(self, _: int, event: CustomerRecordRead) -> None:
        self.record_reads.append(audit.ReadEntry.of(event))

    def _notification(self, _: int, event: NotificationEvent) -> None:
        first = self.notifications.get(event.notification_id, (event, event))[0]
        self.notifications[event.notification_id] = (first, event)

    async def write(self, conn: DbConnection, *, derive: bool) -> None:
        await _execute(conn, _UPSERT_CASES, self.cases_columns)
        await self._write_clocks(conn, derive=derive)
        await _execute(conn, _UPSERT_NOTIFICATIONS, self.notifications_columns)
        await _execute(conn, _UPSERT_SERVICE_VOLUMES, self.service_volumes_columns)
        for table, rows in self.rows.items():
            await table.write(conn, rows)
        await audit.record(conn, self.record_reads)
        if derive and (compensated := {row[1] for row in self.rows[_COMPENSATION]}):
            # After the cases' rows: the totals land on them (migration 009).
            await conn.execute("SELECT count_compensation($1)", sorted(compensated))

    async def _write_clocks(self, conn: DbConnection, *, derive: bool) -> None:
        created: set[uuid.UUID] = set()
        if self.clock_starts_columns:
            rows = await conn.fetch(_INSERT_CLOCKS, *self.clock_starts_columns)
            created = {row["clock_id"] for row in rows}
        changes: dict[uuid.UUID, _ClockChange] = {}
        for position, event in self.clock_changes:
            # A clock this batch created did not exist before its start: changes ahead
            # of the start found no row.
            if event.clock_id in created and position < self.clock_starts[event.clock_id][0]:
                continue
            changes.setdefault(event.clock_id, _ClockChange()).add(event)
        await _execute(
            conn,
            _UPDATE_CLOCKS,
            _columns([change.row(clock_id) for clock_id, change in changes.items()]),
        )
        if derive and (changed := {event.complaint_no for _, event in self.clock_changes}):
            # Only a change makes or unmakes a breach (a clock starts running): the cases'
            # earliest breached clocks follow their clocks (migration 011).
            await conn.execute("SELECT count_breaches($1)", sorted(changed))


_Step = Callable[[_Rows, int, Any], None]


@functools.cache
def _steps(kind: type[Event]) -> tuple[_Step, ...]:
    """What an event of this type does to a batch, worked out once per type: isinstance on
    pydantic models (their metaclass is an ABCMeta) costs more than sorting the event."""
    if issubclass(kind, ServiceVolumeRecorded):
        return (_Rows._service_volume,)  # not about a case: no timeline
    if issubclass(kind, CustomerRecordRead):
        # Who read a case is for auditors, not for its timeline, which readers see.
        return (_Rows._record_read,)
    steps: list[tuple[type[Event] | tuple[type[Event], ...], _Step]] = [
        (Event, _Rows._timeline),
        (CaseEvent, _Rows._status),
        (_CONTACT, _Rows._contact),
        (_DECISION, _Rows._decision),
        (ComplaintReceived, _Rows._received),
        (ComplaintClosed, _Rows._closed),
        (ComplaintReopened, _Rows._reopened),
        (FeedbackReceived, _Rows._feedback),
        (ReturnVisitRecorded, _Rows._return_visit),
        (CompensationRecorded, _Rows._compensation),
        (ComplaintEscalated, _Rows._staff_escalation),
        (ComplaintAssigned, _Rows._assigned),
        (ClockStarted, _Rows._clock_started),
        (_CLOCK_CHANGES, _Rows._clock_changed),
        (ReturnVisitDue, _Rows._return_visit_due),
        (NotificationEvent, _Rows._notification),
        (EscalationRaised, _Rows._ladder_escalation),
    ]
    return tuple(step for applies_to, step in steps if issubclass(kind, applies_to))


def _notification_row(first: NotificationEvent, last: NotificationEvent) -> tuple[Any, ...]:
    reason = last.reason if isinstance(last, NotificationFailed | NotificationUnconfirmed) else None
    return (
        first.notification_id,
        first.complaint_no,
        first.channel,
        first.recipient_masked,
        first.template,
        first.to_customer,
        _NOTIFICATION_STATUS[last.event_type],
        last.occurred_at,
        reason,
        isinstance(last, NotificationFailed) and last.dead_lettered,
    )


def _earliest(known: datetime | None, new: datetime) -> datetime:
    return new if known is None or new < known else known


def _columns(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return list(zip(*rows, strict=False))


async def _execute(conn: DbConnection, sql: str, columns: list[tuple[Any, ...]]) -> None:
    if columns:
        await conn.execute(sql, *columns)
