"""How fast reporting rebuilds its projections from the topics, and how much memory it takes.

    python bench/reporting_rebuild.py [--complaints 20000] [--seed 20261122]
        [--kafka HOST:PORT --database-url DSN] [--namespace NS] [--keep] [--live]

Writes a realistic event history onto a fresh topic namespace of the given broker
(default: the `test` devstack, started if needed): the platform's own contract classes
(shared/contracts) in the sequences the services emit them, over the policy packs' demo
branches and three more each: intake's life cycle (received, acknowledged, assigned,
investigation, holds, staff escalations, compensation, decisions, answers on the spot,
not upheld, feedback, reopenings, return visits, closing), routing's assignments and
reassignments, sla's clocks from the packs' rules (warnings, pauses, breaches met later,
ladder escalations, return visits due, recomputations), notify's notifications
(queued, sent, delivered, failed, unconfirmed) and the branches' daily service volumes.
Complaints overlap in time, so their events interleave on the topics as in production.
Events go out as the outbox relay sends them: keyed by complaint number, with the
`event_type` header, idempotent, acks=all.

Then `python -m services.reporting.rebuild` runs as its own process against a fresh
database, and the projections are checked against the history (one case per complaint,
one timeline row per event, every event in the inbox). Reported: events, seconds,
events/s, the rebuild process's peak RSS and CPU (from wait4), its database backends' CPU,
and how long both waited for a CPU other processes held (/proc/<pid>/schedstat: on a
shared machine, what the rate lost to its neighbours). `--live` also starts
the reporting service on another fresh database and times its consumer catching up with
the same history (events/s, per-second rates, peak RSS).

`--namespace NS` rebuilds from topics an earlier `--keep` run filled, without producing
again: the way to profile or compare code on the same history. Without `--keep` the
topics are deleted afterwards. Results: bench/results/reporting-rebuild-<UTC time>.json
and stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.run import (  # noqa: E402
    api_headers,
    free_port,
    fresh_database,
    percentiles,
    service_env,
    use_stack,
    wait_http,
)
from shared.contracts import Event, encode_event  # noqa: E402
from shared.contracts.intake import (  # noqa: E402
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
    Customer,
    DecisionCommunicated,
    FeedbackReceived,
    InvestigationStarted,
    NoteAdded,
    ReassignmentApproved,
    ReturnVisitRecorded,
    ServiceVolumeRecorded,
)
from shared.contracts.notify import (  # noqa: E402
    NotificationDelivered,
    NotificationFailed,
    NotificationQueued,
    NotificationSent,
    NotificationUnconfirmed,
)
from shared.contracts.routing import Assignee, CandidateConsidered, ComplaintAssigned  # noqa: E402
from shared.contracts.sla import (  # noqa: E402
    ClockBreached,
    ClockPaused,
    ClockRecomputed,
    ClockResumed,
    ClockStarted,
    ClockStopped,
    ClockWarning,
    EscalationRaised,
    ReturnVisitDue,
)
from shared.kafka_admin import ensure_topics  # noqa: E402
from shared.policy import ClockRule, PolicyPack, load_packs  # noqa: E402
from shared.topics import Topics, all_topic_partitions  # noqa: E402

RESULTS = REPO / "bench" / "results"
# Complaints generated (and their events sorted by time) together: they overlap in time,
# so their events interleave on the topics.
CHUNK = 500
# What a --keep run made, for later runs with --namespace.
KEPT = REPO / ".local" / "bench" / "reporting-rebuild"
REBUILT = re.compile(r"from (\d+) events \((\d+) skipped\) in ([\d.]+) s")
HOUR = timedelta(hours=1)


def event_id(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


@dataclass
class Life:
    """One complaint's events, in the order the services emit them."""

    rng: random.Random
    pack: PolicyPack
    branch_id: str
    complaint_no: str
    at: datetime
    events: list[Event] = field(default_factory=list)
    correlation_id: str = ""
    sequence: int = 0
    round: int = 1
    status: CaseStatus = CaseStatus.RECEIVED
    received: ComplaintReceived | None = None
    assignee: Assignee | None = None
    department: str = ""
    # What intake puts in the survey link (an HMAC there; any opaque text does here).
    survey_token: str = ""

    def later(self, low_minutes: float, high_minutes: float) -> datetime:
        self.at += timedelta(minutes=self.rng.uniform(low_minutes, high_minutes))
        return self.at

    def emit(self, model: type[Event], at: datetime, cause: Event | None, **payload: Any) -> Event:
        event = model(
            event_id=event_id(self.rng),
            event_type=model.EVENT_TYPE,
            occurred_at=at,
            complaint_no=self.complaint_no,
            branch_id=self.branch_id,
            correlation_id=self.correlation_id,
            causation_id=cause.event_id if cause else None,
            # Each contract module is named after the service that produces its events.
            producer=model.__module__.rsplit(".", 1)[1],
            **payload,
        )
        self.events.append(event)
        return event

    def intake(self, model: type[CaseEvent], status: CaseStatus, **payload: Any) -> Event:
        self.sequence += 1
        previous, self.status = self.status, status
        return self.emit(
            model,
            self.later(5, 240),
            None,
            status=status,
            previous_status=None if self.sequence == 1 else previous,
            sequence=self.sequence,
            round=self.round,
            actor=self.assignee.staff_id if self.assignee else "system",
            **payload,
        )

    def notify(self, cause: Event, template: str, recipients: int, to_customer: bool) -> None:
        channels = ("email", "sms") if to_customer or template == "breach" else ("email",)
        for _ in range(recipients):
            for channel in channels:
                self.notification(cause, template, channel, to_customer)

    def notification(self, cause: Event, template: str, channel: str, to_customer: bool) -> None:
        rng = self.rng
        common = {
            "notification_id": event_id(rng),
            "channel": channel,
            "recipient_masked": "z***@example.com" if channel == "email" else "***8000",
            "template": template,
            "to_customer": to_customer,
        }
        at = cause.occurred_at + timedelta(seconds=rng.uniform(0.2, 2))
        language = rng.choice(["zh", "en"])
        queued = self.emit(
            NotificationQueued,
            at,
            cause,
            rule=f"{template}-rule",
            language=language,
            not_before=at,
            segments=1 if channel == "sms" else None,
            **common,
        )
        at += timedelta(seconds=rng.uniform(0.1, 30))
        fate = rng.random()
        if fate < 0.02:
            self.emit(
                NotificationFailed,
                at,
                queued,
                reason="550 5.1.1 mailbox unavailable",
                attempts=5,
                dead_lettered=rng.random() < 0.5,
                **common,
            )
            return
        if fate < 0.025:
            self.emit(NotificationUnconfirmed, at, queued, reason="no reply after DATA", **common)
            return
        self.emit(
            NotificationSent,
            at,
            queued,
            language=language,
            sent_at=at,
            provider="smtp" if channel == "email" else "aliyun",
            provider_message_id=str(event_id(rng)),
            segments=1 if channel == "sms" else None,
            **common,
        )
        if channel == "sms" and rng.random() < 0.7:
            at += timedelta(seconds=rng.uniform(1, 60))
            self.emit(
                NotificationDelivered, at, queued, provider="aliyun", delivered_at=at, **common
            )


@dataclass
class Clock:
    started: ClockStarted
    rule: ClockRule
    stopped: bool = False


def clock_target(rule: ClockRule) -> tuple[int, str]:
    if rule.target_hours is not None:
        return int(rule.target_hours * 3600), "elapsed"
    hours = rule.working_hours or 8 * (rule.working_days or 3)
    return int(hours * 3600), "working"


def life(
    rng: random.Random, pack: PolicyPack, branch_id: str, complaint_no: str, start: datetime
) -> list[Event]:
    """One complaint from receipt to wherever its plan leaves it."""
    one = Life(
        rng,
        pack,
        branch_id,
        complaint_no,
        start,
        correlation_id=str(event_id(rng)),
        survey_token=event_id(rng).hex,
    )
    plan = rng.choices(["closed", "spot", "unhappy", "not-upheld", "open"], [55, 10, 8, 6, 21])[0]
    late = rng.random() < 0.12
    severity = rng.choices(["normal", "urgent", "major"], [85, 12, 3])[0]
    category = rng.choice(pack.categories)
    customer_type = rng.choice(["end_customer", "in_house_guest", "member", "dealer"])
    received = one.emit(
        ComplaintReceived,
        start,
        None,
        status=CaseStatus.RECEIVED,
        sequence=1,
        actor="fo-agent",
        received_at=start - timedelta(days=2) if late else start,
        pack=pack.pack,
        pack_version=pack.version,
        channel=rng.choice(["phone", "web", "email", "walk_in"]),
        customer=Customer.model_validate(
            {
                "name": f"客户{complaint_no}",
                "phone": f"+86 139 {rng.randrange(10**8):08d}",
                "email": f"c{complaint_no}@example.com",
                "type": customer_type,
                "language": rng.choice(["zh", "en"]),
            }
        ),
        description=f"第{complaint_no}号投诉：{category.label.zh}，已报修两次。",
        customer_request=rng.choice([None, "尽快处理", "退款"]),
        category=category.code,
        severity=severity,
        region=rng.choices(["domestic", "foreign"], [9, 1])[0],
        first_contact_staff=pack.staff[0].id,
        submission_id=rng.choice([None, f"pms-{complaint_no}"]),
    )
    assert isinstance(received, ComplaintReceived)
    one.sequence, one.received = 1, received
    one.notify(received, "acknowledgement", 1, to_customer=True)
    one.notify(received, "complaint-received", 1, to_customer=False)
    if severity == "major":
        one.notify(received, "major-complaint", 2, to_customer=False)

    clocks = [
        Clock(start_clock(one, received, rule), rule)
        for rule in rng.sample(
            [r for r in pack.clocks if not r.return_visit],
            min(2, sum(1 for r in pack.clocks if not r.return_visit)),
        )
    ]
    if late:
        for clock in clocks:
            due = clock.started.due_at
            warning = one.emit(
                ClockWarning,
                start + timedelta(seconds=5),
                None,
                **clock_of(clock),
                fraction=0.8,
                due_at=due,
            )
            one.notify(warning, "warning", 2, to_customer=False)
            breached = one.emit(
                ClockBreached, start + timedelta(seconds=6), None, **clock_of(clock), due_at=due
            )
            one.notify(breached, "breach", 2, to_customer=False)
            for level in range(1, 1 + rng.choice([1, 2])):
                raised = one.emit(
                    EscalationRaised,
                    start + timedelta(seconds=7 + level),
                    breached,
                    level=level,
                    to=(pack.staff[0].id,),
                    reason="breach",
                    clock_id=clock.started.clock_id,
                )
                one.notify(raised, "escalation-raised", 1, to_customer=False)

    assign(one, received, previous=None)
    if rng.random() < 0.5:
        one.intake(ComplaintAcknowledged, CaseStatus.ACKNOWLEDGED)
    one.intake(
        ComplaintAssignmentRecorded,
        CaseStatus.ASSIGNED,
        department=one.department,
        assignee_id=one.assignee.staff_id if one.assignee else None,
    )
    if plan == "spot":
        answer = one.intake(
            ComplaintAnsweredOnSpot,
            CaseStatus.ANSWERED_ON_SPOT,
            answer="当面解决",
            feedback_token=one.survey_token,
        )
        stop_clocks(one, clocks, answer, late)
        one.notify(answer, "decision", 1, to_customer=True)
        feedback(one, satisfied=True)
        one.intake(ComplaintClosed, CaseStatus.CLOSED)
        return one.events
    one.intake(InvestigationStarted, CaseStatus.INVESTIGATING)
    if rng.random() < 0.3:
        one.intake(NoteAdded, CaseStatus.INVESTIGATING, note="已联系客户")
    if rng.random() < 0.04:
        approved = one.intake(
            ReassignmentApproved,
            CaseStatus.INVESTIGATING,
            approver=pack.staff[0].id,
            to_department=pack.departments[-1].code,
            to_assignee=pack.staff[-1].id,
            previous_assignee=one.assignee.staff_id if one.assignee else None,
            reason="专业不符",
        )
        assign(one, approved, previous=one.assignee)
    if rng.random() < 0.06:
        hold(one, clocks)
    if rng.random() < 0.01 and clocks:
        clock = clocks[0]
        one.emit(
            ClockRecomputed,
            one.later(1, 10),
            None,
            **clock_of(clock),
            due_at=clock.started.due_at + HOUR,
            previous_due_at=clock.started.due_at,
            rule=clock.rule.id,
            pack_version=pack.version,
        )
    if rng.random() < 0.05:
        escalated = one.intake(
            ComplaintEscalated, CaseStatus.ESCALATED, reason="超出部门权限", escalated_to="deputy"
        )
        one.notify(escalated, "escalation", 2, to_customer=False)
    if plan == "open":
        return one.events
    if plan == "not-upheld":
        decision = one.intake(
            ComplaintNotUpheld,
            CaseStatus.NOT_UPHELD,
            reason="经核实不属实",
            feedback_token=one.survey_token,
        )
        stop_clocks(one, clocks, decision, late)
        one.notify(decision, "decision", 1, to_customer=True)
        return one.events
    if rng.random() < 0.08:
        one.intake(
            CompensationRecorded,
            CaseStatus.INVESTIGATING,
            compensation_amount=Decimal(rng.randint(1, 50) * 10),
            loss_amount=Decimal(f"{rng.randint(5, 90) * 10}.50"),
            responsible_department=pack.departments[-1].code,
            share=Decimal("0.5"),
        )
    decide(one, clocks, late)
    if plan == "unhappy":
        feedback(one, satisfied=False)
        one.round += 1
        one.intake(ComplaintReopened, CaseStatus.REOPENED, reason="客户不满意")
        clocks = [
            Clock(start_clock(one, one.events[-1], clock.rule), clock.rule) for clock in clocks
        ]
        one.intake(InvestigationStarted, CaseStatus.INVESTIGATING)
        decide(one, clocks, late=False)
    feedback(one, satisfied=True)
    resolved = one.intake(ComplaintResolved, CaseStatus.RESOLVED, resolution="客户确认")
    stop_clocks(one, clocks, resolved, late)
    visits = [r for r in pack.clocks if r.return_visit]
    if visits:
        rule = visits[0]
        visit = start_clock(one, resolved, rule, return_visit=True)
        reminder = one.emit(
            ReturnVisitDue,
            visit.due_at,
            None,
            clock_id=visit.clock_id,
            name=visit.name,
            due_at=visit.due_at,
        )
        one.notify(reminder, "return-visit-due", 1, to_customer=False)
        one.at = max(one.at, visit.due_at)
        one.intake(
            ReturnVisitRecorded,
            CaseStatus.RETURN_VISITED,
            method="phone",
            outcome="客户满意",
            satisfied=True,
        )
        one.emit(
            ClockStopped,
            one.at,
            None,
            clock_id=visit.clock_id,
            name=visit.name,
            stopped_at=one.at,
            outcome="met",
            by_event="ReturnVisitRecorded",
        )
    one.intake(ComplaintClosed, CaseStatus.CLOSED)
    return one.events


def clock_of(clock: Clock) -> dict[str, Any]:
    return {"clock_id": clock.started.clock_id, "name": clock.started.name}


def start_clock(
    one: Life, cause: Event, rule: ClockRule, *, return_visit: bool = False
) -> ClockStarted:
    seconds, calendar = clock_target(rule)
    at = cause.occurred_at + timedelta(seconds=one.rng.uniform(0.2, 2))
    started_at = cause.occurred_at
    if isinstance(cause, ComplaintReceived):
        started_at = cause.received_at
    started = one.emit(
        ClockStarted,
        at,
        cause,
        clock_id=event_id(one.rng),
        name=rule.clock,
        started_at=started_at,
        due_at=started_at + timedelta(seconds=seconds),
        target_seconds=seconds,
        calendar=calendar,
        rule=rule.id,
        pack=one.pack.pack,
        pack_version=one.pack.version,
        round=one.round,
        return_visit=return_visit,
    )
    assert isinstance(started, ClockStarted)
    return started


def stop_clocks(one: Life, clocks: list[Clock], cause: Event, late: bool) -> None:
    for clock in clocks:
        if clock.stopped:
            continue
        clock.stopped = True
        at = cause.occurred_at + timedelta(seconds=one.rng.uniform(0.2, 2))
        one.emit(
            ClockStopped,
            at,
            cause,
            **clock_of(clock),
            stopped_at=cause.occurred_at,
            outcome="breached" if late else "met",
            by_event=cause.event_type,
        )


def assign(one: Life, cause: Event, previous: Assignee | None) -> None:
    rng = one.rng
    staff = rng.choice(one.pack.staff)
    one.assignee = Assignee(staff_id=staff.id, name=staff.name)
    one.department = staff.department
    assigned = one.emit(
        ComplaintAssigned,
        cause.occurred_at + timedelta(seconds=rng.uniform(0.2, 3)),
        cause,
        department=staff.department,
        assignee=one.assignee,
        rule=f"category:{one.received.category if one.received else 'other'}",
        pack=one.pack.pack,
        pack_version=one.pack.version,
        candidates=(
            CandidateConsidered(
                staff_id=staff.id, open_cases=rng.randint(0, 9), capacity=10, on_shift=True
            ),
        ),
        reason="on shift, lowest load",
        previous_assignee=previous,
    )
    one.notify(assigned, "assignment", 1, to_customer=False)
    if previous is not None:
        one.notify(assigned, "reassignment", 1, to_customer=False)


def hold(one: Life, clocks: list[Clock]) -> None:
    held = one.intake(ComplaintPutOnHold, CaseStatus.ON_HOLD, reason="awaiting_parts")
    for clock in clocks:
        one.emit(ClockPaused, held.occurred_at, held, **clock_of(clock), paused_at=held.occurred_at)
    resumed = one.intake(ComplaintResumed, CaseStatus.INVESTIGATING)
    paused = int((resumed.occurred_at - held.occurred_at).total_seconds())
    for clock in clocks:
        one.emit(
            ClockResumed,
            resumed.occurred_at,
            resumed,
            **clock_of(clock),
            resumed_at=resumed.occurred_at,
            due_at=clock.started.due_at + timedelta(seconds=paused),
            paused_seconds=paused,
        )


def decide(one: Life, clocks: list[Clock], late: bool) -> None:
    decision = one.intake(
        DecisionCommunicated, CaseStatus.REPLIED, decision="已处理", feedback_token=one.survey_token
    )
    one.notify(decision, "decision", 1, to_customer=True)
    stop_clocks(
        one, [c for c in clocks if "DecisionCommunicated" in c.rule.stops_on], decision, late
    )


def feedback(one: Life, *, satisfied: bool) -> None:
    rng = one.rng
    scores = (
        {"quality": rng.randint(3, 5), "attitude": rng.randint(3, 5), "speed": rng.randint(3, 5)}
        if satisfied
        else {"quality": 2, "attitude": rng.randint(1, 3), "speed": 2}
    )
    one.intake(
        FeedbackReceived,
        CaseStatus.FEEDBACK_RECEIVED,
        comment=rng.choice([None, "谢谢", "太慢了"]),
        satisfied=satisfied,
        **scores,
    )


@dataclass
class History:
    complaints: int
    events: int = 0
    bytes: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    by_topic: Counter[str] = field(default_factory=Counter)
    service_volumes: set[tuple[str, str]] = field(default_factory=set)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "complaints": self.complaints,
                    "events": self.events,
                    "bytes": self.bytes,
                    "by_type": self.by_type,
                    "by_topic": self.by_topic,
                    "service_volumes": sorted(self.service_volumes),
                }
            )
        )

    @classmethod
    def load(cls, path: Path) -> History:
        saved = json.loads(path.read_text())
        return cls(
            saved["complaints"],
            saved["events"],
            saved["bytes"],
            Counter(saved["by_type"]),
            Counter(saved["by_topic"]),
            {(branch, day) for branch, day in saved["service_volumes"]},
        )


def branches() -> list[tuple[PolicyPack, str]]:
    packs = load_packs(REPO / "policy-packs")
    return [
        (pack, f"{name}-{suffix}")
        for name, pack in sorted(packs.packs.items())
        for suffix in ("demo", "b1", "b2", "b3")
    ]


def chunks(args: argparse.Namespace, history: History) -> Iterator[list[Event]]:
    """The history in time order, a few hundred complaints at a time."""
    rng = random.Random(args.seed)
    places = branches()
    days = max(30, -(-args.complaints // 900))
    first_day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first_day -= timedelta(days=days + 10)
    volumes: list[Event] = []
    for _, branch_id in places:
        for day in range(days):
            on = (first_day + timedelta(days=day)).date()
            for post in range(2 if rng.random() < 0.05 else 1):
                volume = ServiceVolumeRecorded(
                    event_id=event_id(rng),
                    event_type=ServiceVolumeRecorded.EVENT_TYPE,
                    occurred_at=first_day + timedelta(days=day + 1, hours=2 + post),
                    complaint_no=f"{branch_id}/{on}",
                    branch_id=branch_id,
                    correlation_id=str(event_id(rng)),
                    producer="intake",
                    day=on,
                    services=rng.randint(2000, 9000),
                )
                volumes.append(volume)
                history.service_volumes.add((branch_id, str(on)))
    yield volumes
    spacing = days * 86400 / args.complaints
    for begin in range(0, args.complaints, CHUNK):
        events: list[Event] = []
        for index in range(begin, min(begin + CHUNK, args.complaints)):
            start = first_day + timedelta(seconds=index * spacing + rng.uniform(0, spacing))
            pack, branch_id = places[rng.randrange(len(places))]
            number = f"{start:%y%m%d}{index:05d}"
            events.extend(life(rng, pack, branch_id, number, start))
        events.sort(key=lambda event: event.occurred_at)
        yield events


async def produce(args: argparse.Namespace, topics: Topics) -> tuple[History, float]:
    history = History(args.complaints)
    started = time.monotonic()
    producer = AIOKafkaProducer(
        bootstrap_servers=args.kafka,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    try:
        for events in chunks(args, history):
            sent = []
            for event in events:
                topic = topics.by_role(event.producer).name
                value = encode_event(event)
                headers = [(k, v.encode()) for k, v in event.headers().items()]
                sent.append(await producer.send(topic, value, key=event.key, headers=headers))
                history.events += 1
                history.bytes += len(value)
                history.by_type[event.event_type] += 1
                history.by_topic[event.producer] += 1
            await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return history, time.monotonic() - started


def run_rebuild(env: dict[str, str], pids: list[int]) -> dict[str, Any]:
    """The rebuild as its own process (its pid goes to ``pids``): what it says, and its
    peak RSS and CPU from wait4."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "services.reporting.rebuild"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    pids.append(process.pid)
    assert process.stdout is not None
    output = process.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    found = REBUILT.search(output)
    if process.returncode != 0 or found is None:
        raise RuntimeError(f"rebuild failed ({process.returncode}):\n{output[-4000:]}")
    events, skipped, seconds = int(found[1]), int(found[2]), float(found[3])
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "events": events,
        "skipped": skipped,
        "seconds": seconds,
        "events_per_second": round(events / seconds),
        "process_wall_seconds": round(wall, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "cpu_seconds": round(cpu, 2),
        "cpu_share": round(cpu / wall, 2),
    }


def schedstat(pid: int) -> tuple[float, float]:
    """Seconds a process has run on a CPU, and waited for one while runnable."""
    with open(f"/proc/{pid}/schedstat") as stat:
        ran, waited, _ = stat.read().split()
    return int(ran) / 1e9, int(waited) / 1e9


async def watch(
    admin: asyncpg.Connection, database_url: str, rebuild: list[int], running: asyncio.Task[Any]
) -> dict[str, float]:
    """While ``running`` runs: the CPU of the PostgreSQL backends serving the database, and
    how long they and the rebuild waited for a CPU another process held (sampled, so the
    last fraction of a second of each may be missed)."""
    database = database_url.rsplit("/", 1)[1]
    backends: dict[int, tuple[float, float]] = {}
    rebuild_wait = 0.0
    while not running.done():
        for row in await admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1", database
        ):
            with contextlib.suppress(OSError):
                backends[row["pid"]] = schedstat(row["pid"])
        if rebuild:
            with contextlib.suppress(OSError):
                rebuild_wait = schedstat(rebuild[0])[1]
        await asyncio.sleep(0.1)
    return {
        "database_cpu_seconds": round(sum(ran for ran, _ in backends.values()), 2),
        "database_waited_for_cpu_seconds": round(sum(w for _, w in backends.values()), 2),
        "rebuild_waited_for_cpu_seconds": round(rebuild_wait, 2),
    }


async def checks(database_url: str, history: History) -> dict[str, dict[str, int]]:
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "reporting"})
    try:
        found = {
            "inbox": await conn.fetchval("SELECT count(*) FROM processed_events"),
            "cases": await conn.fetchval(
                "SELECT count(*) FROM cases WHERE received_at IS NOT NULL"
            ),
            "timeline": await conn.fetchval("SELECT count(*) FROM case_timeline"),
            "service_volumes": await conn.fetchval("SELECT count(*) FROM service_volumes"),
            "feedback": await conn.fetchval("SELECT count(*) FROM case_feedback"),
        }
    finally:
        await conn.close()
    volumes = history.by_type["ServiceVolumeRecorded"]
    expected = {
        "inbox": history.events,
        "cases": history.complaints,
        "timeline": history.events - volumes,
        "service_volumes": len(history.service_volumes),
        "feedback": history.by_type["FeedbackReceived"],
    }
    return {name: {"expected": expected[name], "found": found[name]} for name in expected}


async def live(args: argparse.Namespace, env: dict[str, str], total: int) -> dict[str, Any]:
    """The reporting service, started on a fresh database, catching up with the history."""
    port = free_port()
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.reporting",
        cwd=REPO,
        env={**env, "REPORTING_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    watched = psutil.Process(process.pid)
    peak_rss = done = 0
    rates: list[float] = []
    try:
        await wait_http(f"http://127.0.0.1:{port}/openapi.json")
        conn = await asyncpg.connect(env["DATABASE_URL"])
        try:
            deadline = started + args.live_timeout
            while done < total and time.monotonic() < deadline:
                await asyncio.sleep(1)
                now = await conn.fetchval("SELECT count(*) FROM reporting.processed_events")
                rates.append(now - done)
                done = now
                peak_rss = max(peak_rss, watched.memory_info().rss)
            seconds = time.monotonic() - started
        finally:
            await conn.close()
        async with httpx.AsyncClient(headers=api_headers()) as client:
            summary = (await client.get(f"http://127.0.0.1:{port}/v1/reports/summary")).json()
    finally:
        process.terminate()
        await process.wait()
    # The last second is a partial one.
    steady = rates[:-1] or rates
    return {
        "events": done,
        "caught_up": done >= total,
        "seconds": round(seconds, 1),
        "events_per_second": round(done / seconds),
        "per_second_rates": percentiles([float(rate) for rate in steady]),
        "peak_rss_mb": round(peak_rss / 2**20, 1),
        "summary_total": summary.get("total"),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    use_stack(args)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    namespace = args.namespace or f"bench-rebuild-{uuid.uuid4().hex[:8]}"
    topics = Topics.in_namespace(namespace)
    kept = KEPT / f"{namespace}.json"
    produce_seconds = 0.0
    if args.namespace:
        if not kept.exists() or not await topics_exist(args.kafka, topics):
            raise SystemExit(f"no history kept in {namespace}: make one with --keep first")
        history = History.load(kept)
    else:
        await ensure_topics(args.kafka, all_topic_partitions(namespace))
        history, produce_seconds = await produce(args, topics)
        print(f"produced {history.events} events in {produce_seconds:.1f} s", file=sys.stderr)
        if args.keep:
            history.save(kept)
            print(f"kept: --namespace {namespace}", file=sys.stderr)
    admin = await asyncpg.connect(args.database_url)
    databases: list[str] = []
    try:
        database_url = await fresh_database(admin, args.database_url, "bench_rebuild")
        databases.append(database_url)
        env = service_env(args.kafka, database_url, namespace)
        pids: list[int] = []
        rebuilding = asyncio.create_task(asyncio.to_thread(run_rebuild, env, pids))
        watched = await watch(admin, database_url, pids, rebuilding)
        rebuilt = {**await rebuilding, **watched}
        verified = await checks(database_url, history)
        result: dict[str, Any] = {
            "when": stamp,
            "command": " ".join(["python", *sys.argv]),
            "machine": {
                "cpus": os.cpu_count(),
                "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "load_average_before": os.getloadavg(),
            },
            "history": {
                "namespace": namespace,
                "seed": args.seed,
                "complaints": history.complaints,
                "events": history.events,
                "mb": round(history.bytes / 2**20, 1),
                "events_per_complaint": round(history.events / history.complaints, 1),
                "by_topic": dict(history.by_topic),
                "by_type": dict(history.by_type.most_common()),
                "produce_seconds": round(produce_seconds, 1),
            },
            "rebuild": rebuilt,
            "checks": verified,
            "consistent": all(c["expected"] == c["found"] for c in verified.values()),
        }
        if args.live:
            live_url = await fresh_database(admin, args.database_url, "bench_live")
            databases.append(live_url)
            result["live"] = await live(args, {**env, "DATABASE_URL": live_url}, history.events)
    finally:
        for url in databases:
            await admin.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        await admin.close()
        if not (args.keep or args.namespace):
            await delete_topics(args.kafka, topics)
    return result


async def topics_exist(bootstrap: str, topics: Topics) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic.name for topic in topics.all()])
    finally:
        await admin.close()
    return all(topic["error_code"] == 0 for topic in described)


async def delete_topics(bootstrap: str, topics: Topics) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(list(all_topic_partitions(topics.namespace)))
    finally:
        await admin.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--complaints", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--kafka")
    parser.add_argument("--database-url")
    parser.add_argument("--namespace", help="rebuild from an earlier --keep run's topics")
    parser.add_argument("--keep", action="store_true", help="keep the topics for --namespace")
    parser.add_argument("--live", action="store_true", help="also time the live consumer")
    parser.add_argument("--live-timeout", type=float, default=900)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"reporting-rebuild-{result['when']}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result, indent=2, default=str))
    print(f"results: {path.relative_to(REPO)}", file=sys.stderr)
    return 0 if result["consistent"] else 1


if __name__ == "__main__":
    sys.exit(main())
