"""Intake's application layer: accepting submissions and acting on cases.

Every change happens in one transaction with its events: the case row, its
append-only history and the outbox rows commit together or not at all.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import structlog
from prometheus_client import Counter

from services.intake import store
from services.intake.access import ReadDecision, case_scope, decide_read
from services.intake.lifecycle import Action, CaseState, apply
from services.intake.numbering import complaint_number, receipt_date
from shared.auth.access import Caller, CaseScope, reader_roles
from shared.consumer import batch_transaction
from shared.contracts import ComplaintAssigned, Event
from shared.contracts.audit import CustomerRecordRead
from shared.contracts.intake import (
    CaseEvent,
    CaseStatus,
    CompensationRecorded,
    ComplaintAcknowledged,
    ComplaintAnsweredOnSpot,
    ComplaintAssignmentRecorded,
    ComplaintClosed,
    ComplaintEscalated,
    ComplaintNotUpheld,
    ComplaintPutOnHold,
    ComplaintReceived,
    ComplaintReopened,
    ComplaintResolved,
    ComplaintResumed,
    DecisionCommunicated,
    FeedbackReceived,
    InvestigationStarted,
    NoteAdded,
    ProjectDelivered,
    ReassignmentApproved,
    RepairedProductDelivered,
    ReturnVisitRecorded,
    ServiceVolumeRecorded,
)
from shared.contracts.submissions import Confidentiality, SubmissionOutcome, SubmitComplaint
from shared.db import DbConnection
from shared.group_commit import GroupCommit
from shared.inbox import first_delivery
from shared.logging import note_for_access_log
from shared.outbox import enqueue
from shared.policy import Branch, LivePacks, PolicyPack
from shared.topics import Topics

log = structlog.get_logger("intake")

EVENT_OF_ACTION: dict[Action, type[CaseEvent]] = {
    Action.ACKNOWLEDGE: ComplaintAcknowledged,
    Action.RECORD_ASSIGNMENT: ComplaintAssignmentRecorded,
    Action.START_INVESTIGATION: InvestigationStarted,
    Action.ADD_NOTE: NoteAdded,
    Action.ESCALATE: ComplaintEscalated,
    Action.HOLD: ComplaintPutOnHold,
    Action.RESUME: ComplaintResumed,
    Action.COMMUNICATE_DECISION: DecisionCommunicated,
    Action.ANSWER_ON_SPOT: ComplaintAnsweredOnSpot,
    Action.MARK_NOT_UPHELD: ComplaintNotUpheld,
    Action.RESOLVE: ComplaintResolved,
    Action.RECORD_FEEDBACK: FeedbackReceived,
    Action.RECORD_RETURN_VISIT: ReturnVisitRecorded,
    Action.RECORD_COMPENSATION: CompensationRecorded,
    Action.CLOSE: ComplaintClosed,
    Action.REOPEN: ComplaintReopened,
    Action.REASSIGN: ReassignmentApproved,
    Action.RECORD_DELIVERY: RepairedProductDelivered,
    Action.RECORD_PROJECT_DELIVERY: ProjectDelivered,
}


class SubmissionRefusedError(Exception):
    """The submission names things its branch's policy pack does not know."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))


class SubmissionConflictError(Exception):
    """A submission id reused for a different complaint."""


class CaseNotFoundError(LookupError):
    pass


class InvalidReferenceError(ValueError):
    """An action names a staff member or department its branch's pack does not have."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


@dataclass(frozen=True)
class Accepted:
    complaint_no: str
    received_at: datetime
    correlation_id: str
    duplicate: bool


@dataclass(frozen=True)
class RecordRead:
    """A read of a customer record, as audited; ``view``, the case in full, only when the
    read was allowed."""

    decision: ReadDecision
    scope: CaseScope
    view: dict[str, Any] | None


@dataclass(frozen=True)
class ActionResult:
    complaint_no: str
    status: CaseStatus
    held_from: CaseStatus | None
    round: int
    sequence: int
    events: list[str]


# A branch's clock may run a little ahead of ours; a week back is as far as a branch may
# have been offline.
TAKEN_AT_SKEW = timedelta(minutes=2)
TAKEN_AT_LIMIT = timedelta(days=7)


def _refused(field: str, message: str) -> SubmissionRefusedError:
    return SubmissionRefusedError([{"loc": ["body", field], "msg": message, "type": "value_error"}])


def feedback_token(secret: bytes, complaint_no: str) -> str:
    """What the satisfaction-survey link carries: only intake can make one for a case."""
    return hmac.new(secret, complaint_no.encode(), hashlib.sha256).hexdigest()[:32]


class _SubmissionRaceError(Exception):
    """Another transaction claimed the same submission id first: start over and find it."""


OutcomeFactory = Callable[[Accepted], SubmissionOutcome]
# Decides, on the locked case, whether the caller may take an action; raises if not.
Authorize = Callable[[CaseScope], None]


class Intake:
    def __init__(
        self,
        pool: asyncpg.Pool,
        packs: LivePacks,
        topics: Topics,
        feedback_secret: str,
        received: Counter,
    ) -> None:
        """``received`` counts the complaints accepted, by branch."""
        self._pool = pool
        self._received = received
        self._topics = topics
        self._packs = packs
        self._feedback_secret = feedback_secret.encode()
        self._group_commit = GroupCommit(pool, refusals=(SubmissionConflictError,))

    async def close(self) -> None:
        await self._group_commit.close()

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    def feedback_token(self, complaint_no: str) -> str:
        return feedback_token(self._feedback_secret, complaint_no)

    def check_feedback_token(self, complaint_no: str, token: str) -> bool:
        # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError).
        return hmac.compare_digest(self.feedback_token(complaint_no).encode(), token.encode())

    def check(self, submission: SubmitComplaint) -> tuple[PolicyPack, Branch]:
        """The branch's pack, if the submission only names what the pack defines."""
        found = self._packs.current.for_branch(submission.branch_id)
        if found is None:
            raise _refused(
                "branch_id",
                f"unknown branch {submission.branch_id!r}; known branches: "
                + ", ".join(self._packs.current.branch_ids()),
            )
        pack, branch = found
        if pack.category(submission.category) is None:
            raise _refused(
                "category",
                f"category {submission.category!r} is not defined for branch {branch.id}; "
                "allowed: " + ", ".join(c.code for c in pack.categories),
            )
        if submission.taken_at is not None:
            now = datetime.now(UTC)
            if submission.taken_at > now + TAKEN_AT_SKEW:
                raise _refused("taken_at", "taken_at is in the future")
            if submission.taken_at < now - TAKEN_AT_LIMIT:
                raise _refused("taken_at", "taken_at is more than 7 days back")
        staff = submission.first_contact_staff
        if staff is not None and not pack.has_member(staff):
            raise _refused(
                "first_contact_staff",
                f"{staff!r} is not on the staff of branch {branch.id}; known: "
                + ", ".join(s.id for s in pack.staff),
            )
        return pack, branch

    async def accept(
        self,
        submission: SubmitComplaint,
        *,
        correlation_id: str,
        submission_key: str | None,
        outcome: OutcomeFactory | None = None,
    ) -> Accepted:
        """Number and record a complaint; a retried submission id returns the first result.

        ``outcome`` builds the event a Kafka branch reads back, committed with the rest.
        """
        pack, branch = self.check(submission)

        async def unit(conn: DbConnection) -> Accepted:
            accepted = await self._accept_once(
                conn, submission, pack, branch, correlation_id, submission_key
            )
            if outcome is not None:
                await enqueue(conn, self._topics.submission_outcomes.name, outcome(accepted))
            return accepted

        async def alone() -> Accepted:
            for _ in range(3):
                try:
                    async with self._pool.acquire() as conn, conn.transaction():
                        return await unit(conn)
                except _SubmissionRaceError:
                    continue
            raise RuntimeError("submission id contended three times in a row")

        accepted = await self._group_commit.run(unit, alone)
        if not accepted.duplicate:
            self._received.labels(branch.id).inc()
        return accepted

    async def _accept_once(
        self,
        conn: DbConnection,
        submission: SubmitComplaint,
        pack: PolicyPack,
        branch: Branch,
        correlation_id: str,
        submission_key: str | None,
    ) -> Accepted:
        fingerprint = submission.fingerprint()
        if submission_key is not None:
            earlier = await store.find_submission(conn, branch.id, submission_key)
            if earlier is not None:
                return await self._replay(conn, earlier, fingerprint, submission_key)
        now = datetime.now(UTC)
        received_at = min(submission.taken_at, now) if submission.taken_at else now
        day: date = receipt_date(received_at, branch.timezone)
        ordinal = await store.next_ordinal(conn, day.year)
        event = ComplaintReceived(
            complaint_no=complaint_number(day, ordinal),
            branch_id=branch.id,
            correlation_id=correlation_id,
            producer="intake",
            status=CaseStatus.RECEIVED,
            sequence=1,
            actor=submission.first_contact_staff,
            received_at=received_at,
            pack=pack.pack,
            pack_version=pack.version,
            submission_id=submission_key,
            **submission.model_dump(exclude={"submission_id", "branch_id", "taken_at"}),
        )
        await store.insert_complaint(conn, event, year=day.year, ordinal=ordinal)
        if submission_key is not None and not await store.claim_submission(
            conn, branch.id, submission_key, fingerprint, event.complaint_no
        ):
            raise _SubmissionRaceError
        await store.append_history(conn, event)
        await enqueue(conn, self._topics.intake.name, event)
        log.info(
            "complaint received",
            complaint_no=event.complaint_no,
            correlation_id=correlation_id,
            branch_id=branch.id,
            category=event.category,
        )
        return Accepted(event.complaint_no, received_at, correlation_id, duplicate=False)

    async def _replay(
        self, conn: DbConnection, earlier: store.Submission, fingerprint: str, key: str
    ) -> Accepted:
        if earlier.fingerprint != fingerprint:
            raise SubmissionConflictError(
                f"submission id {key!r} was already used for complaint {earlier.complaint_no} "
                "with a different body"
            )
        row = await conn.fetchrow(
            "SELECT received_at, correlation_id FROM complaints WHERE complaint_no = $1",
            earlier.complaint_no,
        )
        assert row is not None
        return Accepted(
            earlier.complaint_no, row["received_at"], row["correlation_id"], duplicate=True
        )

    async def act(
        self,
        complaint_no: str,
        action: Action,
        *,
        actor: str,
        payload: dict[str, Any],
        correlation_id: str | None = None,
        satisfied: bool | None = None,
        staff_only: bool = True,
        authorize: Authorize | None = None,
    ) -> ActionResult:
        """Take ``action`` on the case; raises ``ActionNotAllowedError`` out of turn, and
        whatever ``authorize`` raises when the caller may not."""
        result = await self._act(
            complaint_no,
            action,
            actor=actor,
            payload=payload,
            correlation_id=correlation_id,
            satisfied=satisfied,
            staff_only=staff_only,
            authorize=authorize,
        )
        assert result is not None
        return result

    async def _act(
        self,
        complaint_no: str,
        action: Action,
        *,
        actor: str,
        payload: dict[str, Any],
        correlation_id: str | None,
        satisfied: bool | None = None,
        staff_only: bool,
        authorize: Authorize | None = None,
        consumed: Event | None = None,
    ) -> ActionResult | None:
        """``consumed`` is the Kafka event that caused the action: it is recorded in the
        inbox with the change, and a redelivery of it does nothing (None)."""
        async with batch_transaction(self._pool) as conn:
            if consumed is not None and not await first_delivery(conn, consumed):
                return None
            case = await store.lock_case(conn, complaint_no)
            if case is None:
                raise CaseNotFoundError(complaint_no)
            # Before any refusal, so that a refused request's line names the case's story too.
            note_for_access_log(correlation_id=correlation_id or case.correlation_id)
            if authorize is not None:
                # Decided on the locked row: its department and assignee cannot change under it.
                authorize(
                    self._scope(
                        case.pack,
                        case.branch_id,
                        case.department,
                        case.assignee_id,
                        case.confidentiality,
                    )
                )
            self._check_references(case, actor, payload, staff_only=staff_only)
            before = CaseState(case.status, case.held_from, case.round)
            after = apply(before, action, satisfied=satisfied)
            reopened = action in (Action.RECORD_FEEDBACK, Action.RECORD_RETURN_VISIT) and (
                after.round > before.round
            )
            event_type = EVENT_OF_ACTION[action]
            if action is Action.REASSIGN:
                to_assignee = self._packs.current.require(case.pack).member(payload["to_assignee"])
                payload = {
                    **payload,
                    "to_department": payload.get("to_department") or to_assignee.department,
                    "previous_assignee": case.assignee_id,
                }
            if "feedback_token" in event_type.model_fields:
                payload = {**payload, "feedback_token": self.feedback_token(complaint_no)}
            envelope: dict[str, Any] = {
                "complaint_no": complaint_no,
                "branch_id": case.branch_id,
                "correlation_id": correlation_id or case.correlation_id,
                "causation_id": consumed.event_id if consumed else None,
                "producer": "intake",
                "actor": actor,
                "previous_status": before.status,
            }
            events: list[CaseEvent] = [
                event_type(
                    event_type=event_type.EVENT_TYPE,
                    status=before.status if reopened else after.status,
                    round=before.round if reopened else after.round,
                    sequence=case.sequence + 1,
                    **envelope,
                    **payload,
                )
            ]
            if reopened:
                events.append(
                    ComplaintReopened(
                        status=after.status,
                        round=after.round,
                        sequence=case.sequence + 2,
                        reason="the customer is not satisfied",
                        **envelope,
                    )
                )
            for event in events:
                await store.append_history(conn, event)
                await enqueue(conn, self._topics.intake.name, event)
            assignment = None
            if isinstance(events[0], ComplaintAssignmentRecorded):
                assignment = (events[0].department, events[0].assignee_id)
            await store.update_case(
                conn,
                complaint_no,
                status=after.status,
                held_from=after.held_from,
                round=after.round,
                sequence=events[-1].sequence,
                assignment=assignment,
            )
        log.info(
            "case action",
            complaint_no=complaint_no,
            correlation_id=events[0].correlation_id,
            action=action.value,
            status=after.status.value,
            events=[e.event_type for e in events],
        )
        return ActionResult(
            complaint_no,
            after.status,
            after.held_from,
            after.round,
            events[-1].sequence,
            [e.event_type for e in events],
        )

    def _check_references(
        self, case: store.CaseRow, actor: str, payload: dict[str, Any], *, staff_only: bool
    ) -> None:
        pack = self._packs.current.require(case.pack)
        if staff_only and not pack.has_member(actor):
            raise InvalidReferenceError(
                "actor", f"{actor!r} is not on the staff of branch {case.branch_id}"
            )
        approver = payload.get("approver")
        if approver is not None and not (
            pack.has_member(approver) and pack.member(approver).approves_reassignment
        ):
            raise InvalidReferenceError(
                "approver",
                f"{approver!r} may not approve reassignments in branch {case.branch_id}; may: "
                + ", ".join(s.id for s in pack.staff if s.approves_reassignment),
            )
        to_assignee = payload.get("to_assignee")
        if to_assignee is not None and not pack.has_member(to_assignee):
            raise InvalidReferenceError(
                "to_assignee", f"{to_assignee!r} is not on the staff of branch {case.branch_id}"
            )
        department = payload.get("responsible_department")
        if department is not None and not pack.has_department(department):
            raise InvalidReferenceError(
                "responsible_department",
                f"{department!r} is not a department of branch {case.branch_id}; known: "
                + ", ".join(d.code for d in pack.departments),
            )

    async def record_assignment(self, assigned: ComplaintAssigned) -> None:
        """Routing assigned the case: note it, once, whatever the redeliveries."""
        await self._act(
            assigned.complaint_no,
            Action.RECORD_ASSIGNMENT,
            actor="system",
            payload={
                "department": assigned.department,
                "assignee_id": assigned.assignee.staff_id if assigned.assignee else None,
            },
            correlation_id=assigned.correlation_id,
            staff_only=False,
            consumed=assigned,
        )

    async def publish_outcome(self, outcome: SubmissionOutcome) -> None:
        """A rejected Kafka submission changes nothing but its outcome must still go out."""
        async with self._pool.acquire() as conn, conn.transaction():
            await enqueue(conn, self._topics.submission_outcomes.name, outcome)

    async def record_service_volume(self, branch_id: str, day: date, services: int) -> bool:
        """Store a branch's figure for a day; False if it was already that (no new event)."""
        if self._packs.current.for_branch(branch_id) is None:
            raise CaseNotFoundError(f"no branch {branch_id}")
        async with self._pool.acquire() as conn, conn.transaction():
            changed = await conn.fetchval(
                """INSERT INTO service_volumes (branch_id, day, services) VALUES ($1, $2, $3)
                   ON CONFLICT (branch_id, day) DO UPDATE
                       SET services = EXCLUDED.services, updated_at = now()
                       WHERE service_volumes.services <> EXCLUDED.services
                   RETURNING true""",
                branch_id,
                day,
                services,
            )
            if not changed:
                return False
            await enqueue(
                conn,
                self._topics.intake.name,
                ServiceVolumeRecorded(
                    event_type=ServiceVolumeRecorded.EVENT_TYPE,
                    complaint_no=f"{branch_id}/{day.isoformat()}",
                    branch_id=branch_id,
                    correlation_id=str(uuid.uuid4()),
                    producer="intake",
                    day=day,
                    services=services,
                ),
            )
        log.info("service volume recorded", branch_id=branch_id, day=day.isoformat())
        return True

    def _scope(
        self,
        pack: str,
        branch_id: str,
        department: str | None,
        assignee_id: str | None,
        confidentiality: Confidentiality,
    ) -> CaseScope:
        return case_scope(
            branch_id=branch_id,
            department=department,
            assignee_id=assignee_id,
            confidentiality=confidentiality,
            triage_department=self._packs.current.require(pack).triage_department,
        )

    async def read_record(
        self, complaint_no: str, caller: Caller, *, reason: str, correlation_id: str
    ) -> RecordRead:
        """Decide whether ``caller`` may read the case's customer record and audit the
        attempt, allowed or not: committed before the caller sees anything."""
        async with self._pool.acquire() as conn, conn.transaction():
            view = await store.case_view(conn, complaint_no)
            if view is None:
                raise CaseNotFoundError(complaint_no)
            scope = self._scope(
                view["pack"],
                view["branch_id"],
                view["department"],
                view["assignee_id"],
                Confidentiality(view["confidentiality"]),
            )
            decision = decide_read(caller, scope)
            read = CustomerRecordRead(
                event_type=CustomerRecordRead.EVENT_TYPE,
                complaint_no=complaint_no,
                branch_id=scope.branch_id,
                correlation_id=correlation_id,
                producer="intake",
                reader=caller.name,
                reader_roles=reader_roles(caller),
                reason=reason,
                outcome=decision.outcome,
                contacts_shown=decision.contacts_shown,
                service="intake",
            )
            await store.record_read(conn, read)
            await enqueue(conn, self._topics.record_reads.name, read)
        log.info(
            "customer record read",
            complaint_no=complaint_no,
            correlation_id=correlation_id,
            reader=caller.name,
            outcome=decision.outcome,
            contacts_shown=decision.contacts_shown,
        )
        return RecordRead(decision, scope, view if decision.allowed else None)
