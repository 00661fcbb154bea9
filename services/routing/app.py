"""Routing: assigns every received complaint to a department and a person."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from services.routing import store
from services.routing.domain import (
    Decision,
    RoutingInput,
    choose,
    escalation_target,
    stand_in,
    target,
)
from shared.consumer import after_commit, subscribe_events
from shared.consumer_app import ConsumerApp, PoolHolder, consumer_app, new_broker
from shared.contracts import ComplaintAssigned, ComplaintReceived, Event
from shared.contracts.intake import (
    ComplaintClosed,
    ComplaintEscalated,
    ComplaintNotUpheld,
    ComplaintReopened,
    ReassignmentApproved,
)
from shared.contracts.routing import Assignee, CandidateConsidered
from shared.inbox import first_delivery
from shared.logging import configure_logging
from shared.metrics import ServiceMetrics
from shared.outbox import enqueue
from shared.policy import LivePacks, PackRegistry, PolicyPack
from shared.settings import ServiceSettings
from shared.topics import Topics
from shared.tracing import configure_tracing

SCHEMA = "routing"
MIGRATIONS = Path(__file__).parent / "migrations"
PUBLISHES = ("routing",)
SUBSCRIBES_TO = ("intake",)
OPS_PORT = 8002

log = structlog.get_logger("routing")


def decided(decision: Decision, pack: PolicyPack) -> dict[str, Any]:
    """The fields of ``ComplaintAssigned`` that a routing decision fills in."""
    return {
        "department": decision.department,
        "assignee": Assignee(staff_id=decision.assignee_id, name=decision.assignee_name),
        "rule": decision.rule,
        "pack": pack.pack,
        "pack_version": pack.version,
        "also_notify": decision.also_notify,
        "candidates": tuple(CandidateConsidered(**c.__dict__) for c in decision.candidates),
        "reason": decision.reason,
    }


def build_app(settings: ServiceSettings) -> ConsumerApp:
    configure_logging("routing", settings.log_level)
    configure_tracing("routing")
    packs = LivePacks(settings.policy_packs_dir)
    topics = Topics.in_namespace(settings.complaints_topic_namespace)
    holder = PoolHolder()
    metrics = ServiceMetrics("routing")
    assigned = metrics.counter(
        "complaints_assigned_total",
        "Assignments of a complaint to a department: first assignments, approved "
        "reassignments, escalations and moves away from staff who became unavailable.",
        "department",
    )
    broker = new_broker(settings, "routing", metrics)

    async def on_intake_event(event: Event) -> None:
        if isinstance(event, ComplaintReceived):
            await assign(event)
        elif isinstance(event, ReassignmentApproved | ComplaintEscalated):
            await reassign(event)
        elif isinstance(event, ComplaintClosed | ComplaintNotUpheld | ComplaintReopened):
            async with holder.transaction() as conn:
                if await first_delivery(conn, event):
                    opened = isinstance(event, ComplaintReopened)
                    await store.set_open(conn, event.complaint_no, open_now=opened)

    async def assign(event: ComplaintReceived) -> None:
        pack = packs.current.require(event.pack)
        complaint = RoutingInput(
            category=event.category,
            severity=event.severity,
            channel=event.channel,
            customer_type=event.customer.type,
            region=event.region,
            text=f"{event.description}\n{event.customer_request or ''}",
        )
        to = target(pack, complaint)
        async with holder.transaction() as conn:
            if not await first_delivery(conn, event):
                return
            await store.lock_department(conn, pack.pack, to.department)
            loads = await store.loads(conn, pack.pack, [member.id for member in to.pool])
            decision = choose(pack, to, loads, datetime.now(UTC))
            await store.record_assignment(conn, event, decision, pack)
            await enqueue(
                conn,
                topics.routing.name,
                ComplaintAssigned.caused_by(event, producer="routing", **decided(decision, pack)),
            )
            after_commit(assigned.labels(decision.department).inc)
        log.info(
            "complaint assigned",
            department=decision.department,
            assignee=decision.assignee_id,
            rule=decision.rule,
        )

    async def reassign(event: ReassignmentApproved | ComplaintEscalated) -> None:
        """An approved reassignment, or an escalation handing the case up the hierarchy."""
        async with holder.transaction() as conn:
            if not await first_delivery(conn, event):
                return
            now = await store.current(conn, event.complaint_no)
            if now is None:
                raise LookupError(f"{event.complaint_no} was never assigned here")
            pack = packs.current.require(now.pack)
            if isinstance(event, ReassignmentApproved):
                department, person = event.to_department, pack.member(event.to_assignee)
                rule = f"reassignment:{event.approver}"
                why = f"approved by {event.approver}: {event.reason}"
            else:
                chosen = escalation_target(pack, now.department, now.assignee_id, event)
                if chosen is None:
                    return  # already with the top of the hierarchy
                department, person = chosen.department, chosen
                rule, why = "escalation", f"escalated: {event.reason}"
            await store.move(
                conn,
                event.complaint_no,
                department=department,
                assignee_id=person.id,
                rule=rule,
                reason=why,
                pack_version=pack.version,
            )
            previous = (
                Assignee(staff_id=now.assignee_id, name=pack.member(now.assignee_id).name)
                if now.assignee_id and pack.has_member(now.assignee_id)
                else None
            )
            await enqueue(
                conn,
                topics.routing.name,
                ComplaintAssigned.caused_by(
                    event,
                    producer="routing",
                    department=department,
                    assignee=Assignee(staff_id=person.id, name=person.name),
                    rule=rule,
                    pack=pack.pack,
                    pack_version=pack.version,
                    reason=why,
                    previous_assignee=previous,
                ),
            )
            after_commit(assigned.labels(department).inc)
        log.info("complaint reassigned", assignee=person.id, rule=rule)

    async def move_cases_of_the_away(registry: PackRegistry) -> None:
        """After a pack change, cases of people now away (or gone) go to a colleague."""
        for pack in registry.packs.values():
            away = [s.id for s in pack.staff if not s.available]
            async with holder.pool.acquire() as conn:
                stranded = await store.open_cases_of_the_away(
                    conn, pack.pack, away, [s.id for s in pack.staff]
                )
            for complaint_no in stranded:
                await move_away(pack, complaint_no)

    async def move_away(pack: PolicyPack, complaint_no: str) -> None:
        async with holder.pool.acquire() as conn, conn.transaction():
            now = await store.current(conn, complaint_no)
            if now is None or not now.open or now.assignee_id is None:
                return
            if pack.has_member(now.assignee_id) and pack.member(now.assignee_id).available:
                return  # another instance moved it already
            await store.lock_department(conn, pack.pack, now.department)
            department_staff = [m.id for m in pack.candidates(now.department, away_too=True)]
            loads = await store.loads(conn, pack.pack, department_staff)
            decision = stand_in(pack, now.department, now.assignee_id, loads, datetime.now(UTC))
            await store.move(
                conn,
                complaint_no,
                department=decision.department,
                assignee_id=decision.assignee_id,
                rule=decision.rule,
                reason=f"{now.assignee_id} is unavailable; {decision.reason}",
                pack_version=pack.version,
            )
            previous = (
                Assignee(staff_id=now.assignee_id, name=pack.member(now.assignee_id).name)
                if pack.has_member(now.assignee_id)
                else Assignee(staff_id=now.assignee_id, name=now.assignee_id)
            )
            await enqueue(
                conn,
                topics.routing.name,
                ComplaintAssigned(
                    event_type=ComplaintAssigned.EVENT_TYPE,
                    complaint_no=complaint_no,
                    branch_id=now.branch_id,
                    correlation_id=now.correlation_id or complaint_no,
                    producer="routing",
                    **{
                        **decided(decision, pack),
                        "reason": f"{now.assignee_id} is unavailable; {decision.reason}",
                    },
                    previous_assignee=previous,
                ),
            )
        assigned.labels(decision.department).inc()  # committed: its own transaction
        log.info("case moved from unavailable staff", complaint_no=complaint_no)

    packs.on_reload(move_cases_of_the_away)
    subscribe_events(
        broker,
        [topics.intake],
        group_id="routing",
        handle=on_intake_event,
        pool=lambda: holder.pool,
    )
    return consumer_app(
        broker,
        settings,
        SCHEMA,
        MIGRATIONS,
        holder,
        metrics,
        ops_port=OPS_PORT,
        with_relay=True,
        packs=packs,
    )
