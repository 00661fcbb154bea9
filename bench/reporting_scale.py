"""Reporting at scale: every read endpoint of the reporting API, timed with 10^4, 10^5 and
10^6 complaints in its projections.

    python bench/reporting_scale.py [--sizes 10000 100000 1000000] [--requests 200]
                                    [--budget 30] [--days 730] [--seed N]
                                    [--database-url DSN] [--kafka HOST:PORT] [--keep]

Creates a fresh database on the given PostgreSQL (default: the `test` devstack, started
if needed), applies reporting's migrations and fills the projection tables with COPY,
as the projections would have from a realistic stream of events: the seven policy packs,
their demo branches and three more each, their categories, departments and staff, two
years of received days, clocks met and breached, feedback, reopenings, compensation,
escalations, return visits, notifications, every event in the case timelines and the
branches' daily service volumes. Loading grows in steps (10^4, then topped up to 10^5,
then to 10^6). At each size it starts the real service (`python -m services.reporting`),
warms every endpoint up, then times `--requests` sequential requests of each (at most
`--budget` seconds per endpoint) and samples the service's RSS.

Results: bench/results/reporting-scale-<UTC time>.json and a markdown table on stdout.
`--keep` leaves the database in place (its URL is printed) for EXPLAIN sessions. Results
and what they mean: docs/reporting.md, "Reporting at scale".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import subprocess
import sys
import time
import uuid
from bisect import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.run import (  # noqa: E402
    api_headers,
    free_port,
    fresh_database,
    percentiles,
    rss,
    service_env,
    use_stack,
    wait_http,
)
from shared.db import apply_migrations  # noqa: E402
from shared.kafka_admin import ensure_topics  # noqa: E402
from shared.policy import ClockRule, PolicyPack, load_packs  # noqa: E402
from shared.topics import all_topic_partitions  # noqa: E402

MIGRATIONS = REPO / "services" / "reporting" / "migrations"
RESULTS = REPO / "bench" / "results"
SCHEMA = "reporting"
TZ = ZoneInfo("Asia/Shanghai")  # the service's default REPORT_TIMEZONE
CHUNK = 5000  # complaints per COPY round: large enough to stream, small enough to hold
EXTRA_BRANCHES = ("shanghai", "beijing", "chengdu")
HOUR = 3600.0
TO_JSON = json.JSONEncoder(ensure_ascii=False).encode  # one encoder: json.dumps builds one a call

# Each table in COPY column order, as services/reporting/projections.py writes it.
COLUMNS: dict[str, tuple[str, ...]] = {
    "cases": (
        "complaint_no", "branch_id", "pack", "category", "channel", "severity", "region",
        "customer_type", "first_contact_staff", "received_at", "status", "department",
        "assignee_id", "assignee_name", "assigned_at", "updated_at", "intake_sequence", "round",
        "closed_at", "decided_at", "first_contact_at", "not_upheld", "reopened", "status_at",
    ),
    "case_status_history": (
        "event_id", "complaint_no", "sequence", "status", "event_type", "occurred_at",
    ),
    "case_clocks": (
        "clock_id", "complaint_no", "name", "rule", "state", "started_at", "due_at",
        "target_seconds", "round", "calendar", "return_visit", "paused_at", "paused_seconds",
        "stopped_at",
    ),
    "case_notifications": (
        "notification_id", "complaint_no", "channel", "recipient_masked", "template", "status",
        "occurred_at", "reason", "to_customer", "dead_lettered",
    ),
    "case_timeline": (
        "event_id", "complaint_no", "event_type", "producer", "occurred_at", "details",
    ),
    "case_feedback": (
        "event_id", "complaint_no", "round", "quality", "attitude", "speed", "satisfied",
        "comment", "occurred_at",
    ),
    "case_return_visits": (
        "event_id", "complaint_no", "method", "outcome", "satisfied", "occurred_at",
    ),
    "case_return_visits_due": ("event_id", "complaint_no", "clock_id", "due_at"),
    "case_compensation": (
        "event_id", "complaint_no", "compensation", "loss", "currency", "responsible_department",
        "share", "occurred_at",
    ),
    "case_escalations": ("event_id", "complaint_no", "level", "reason", "source", "occurred_at"),
    "service_volumes": ("branch_id", "day", "services", "occurred_at"),
}  # fmt: skip

# The rollups (migration 008): their triggers fill them as the rows above are copied in.
ROLLUPS = ("case_counts", "branch_days", "department_days", "first_contact_times",
           "close_times", "clock_counts", "escalation_counts", "feedback_scores",
           "return_visit_counts")  # fmt: skip

# Intake events that are a contact with the customer, and those that are a decision
# (projections.py: _CONTACT, _DECISION).
CONTACT = {"ComplaintAcknowledged", "DecisionCommunicated", "ComplaintAnsweredOnSpot",
           "ComplaintNotUpheld"}  # fmt: skip
DECISION = CONTACT - {"ComplaintAcknowledged"}
ENDS = ("ComplaintClosed", "ComplaintNotUpheld")  # sla stops every clock of an ended case
CHANNELS = ("phone", "web", "email", "walk_in", "wechat", "sms", "letter")
CHANNEL_WEIGHTS = (30, 22, 14, 12, 14, 5, 3)
CUSTOMER_TYPES = ("end_customer", "in_house_guest", "departed_guest", "member", "owner", "dealer")
# Per pack: how fast its staff settle a case (hours scale) and who its customers are.
PACE = {"hotel": 0.25, "fitness-club": 0.3, "property": 0.8}
PACK_CUSTOMERS = {
    "hotel": ("in_house_guest", "departed_guest", "member"),
    "fitness-club": ("member",),
    "property": ("owner",),
    "furniture": ("end_customer", "dealer"),
    "manufacturing": ("dealer", "end_customer"),
}


@dataclass(frozen=True)
class Branch:
    id: str
    pack: PolicyPack
    services_per_day: int
    staff_by_department: dict[str, list[tuple[str, str]]]


@dataclass(frozen=True)
class World:
    """Branches with their share of complaints; the packs' rules the story follows."""

    branches: list[Branch]
    cumulative_weights: list[float]

    def pick(self, rng: random.Random) -> Branch:
        return self.branches[bisect(self.cumulative_weights, rng.random() * self.total)]

    @property
    def total(self) -> float:
        return self.cumulative_weights[-1]


def build_world(largest: int, days: int) -> World:
    """Each pack's demo branch and three more, of different sizes; services per day put
    the complaint rate near 1 % at the largest size."""
    rng = random.Random(7)
    packs = load_packs(REPO / "policy-packs")
    places = [
        (pack, f"{name}-{place}", rng.uniform(0.3, 1.7))
        for name, pack in sorted(packs.packs.items())
        for place in ("demo", *EXTRA_BRANCHES)
    ]
    total = sum(weight for _, _, weight in places)
    branches = [
        Branch(
            branch_id,
            pack,
            services_per_day=max(50, round(largest * weight / total / days * 90)),
            staff_by_department=staff_of(pack),
        )
        for pack, branch_id, weight in places
    ]
    return World(branches, list(accumulate(weight for _, _, weight in places)))


def staff_of(pack: PolicyPack) -> dict[str, list[tuple[str, str]]]:
    """Each department's people: (id, name)."""
    staff: dict[str, list[tuple[str, str]]] = {}
    for member in pack.staff:
        staff.setdefault(member.department, []).append((member.id, member.name))
    return staff


Rows = dict[str, list[tuple[Any, ...]]]


@dataclass(frozen=True)
class Stage:
    """One load step: complaints ``first`` … ``first + count - 1``, received until ``now``."""

    first: int
    count: int
    now: datetime


Event = tuple[str, str, datetime, int, dict[str, Any]]  # type, status, when, round, payload


@dataclass
class Complaint:
    """One complaint being written: its identity and the rows it has produced so far."""

    no: str
    branch: Branch
    received_at: datetime
    category: str
    department: str
    severity: str
    customer_type: str
    rows: Rows
    rng: random.Random
    now: datetime
    timeline: list[tuple[Any, ...]] = field(default_factory=list)

    def event_id(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128))

    def record(self, event_type: str, producer: str, at: datetime, **details: Any) -> uuid.UUID:
        """An event in the case timeline; returns its id."""
        event_id = self.event_id()
        self.timeline.append((event_id, self.no, event_type, producer, at, TO_JSON(details)))
        return event_id


class Synthesizer:
    """Writes complaints' projection rows as the projections would from their events."""

    def __init__(self, world: World, days: int, seed: int) -> None:
        self.world = world
        self.days = days
        self.seed = seed

    def chunk(self, stage: Stage, first: int, count: int) -> Rows:
        """Complaints number ``first`` to ``first + count - 1`` (global ordinals)."""
        rng = random.Random(self.seed * 1_000_003 + first)
        rows: Rows = {table: [] for table in COLUMNS}
        for ordinal in range(first, first + count):
            self._complaint(rng, stage, ordinal, rows)
        return rows

    def volumes(self, now: datetime) -> list[tuple[Any, ...]]:
        """Each branch's daily services on most days of the window (some days unposted)."""
        rng = random.Random(self.seed)
        today = now.astimezone(TZ).date()
        rows = []
        for branch in self.world.branches:
            for back in range(self.days):
                day = today - timedelta(days=back)
                if rng.random() < 0.93:
                    weekend = 1.3 if day.weekday() >= 5 else 1.0
                    services = round(branch.services_per_day * weekend * rng.uniform(0.8, 1.2))
                    posted = datetime.combine(day, datetime.min.time(), TZ) + timedelta(hours=23)
                    rows.append((branch.id, day, services, min(posted, now)))
        return rows

    def _complaint(self, rng: random.Random, stage: Stage, ordinal: int, rows: Rows) -> None:
        branch = self.world.pick(rng)
        pack = branch.pack
        now = stage.now
        # A stage's complaints arrive in time order, as rows do in production (a case's row
        # lands near others of its days); most in office hours; the last ones just now.
        back = timedelta(
            days=self.days * (1 - (ordinal - stage.first + rng.random()) / stage.count)
        )
        received = now - back
        local = received.astimezone(TZ)
        if rng.random() < 0.7 and back > timedelta(days=1):
            received = local.replace(hour=rng.randint(8, 20), minute=rng.randint(0, 59))
            received = received.astimezone(UTC)
        category = rng.choice(pack.categories)
        customers = PACK_CUSTOMERS.get(pack.pack, CUSTOMER_TYPES)
        case = Complaint(
            no=f"{received.astimezone(TZ):%y%m%d}{ordinal:03d}",
            branch=branch,
            received_at=received,
            category=category.code,
            department=category.department,
            severity=rng.choices(("normal", "urgent", "major"), (85, 12, 3))[0],
            customer_type=rng.choice(customers),
            rows=rows,
            rng=rng,
            now=now,
        )
        events = [e for e in intake_story(case) if e[2] <= now]
        assignment = assign(case)
        clocks = ClockWriter(case, events).write()
        notify(case, events, assignment, clocks)
        write_intake(case, events)
        write_case(case, events, assignment)
        rows["case_timeline"].extend(case.timeline)


def hours(rng: random.Random, low: float, high: float) -> timedelta:
    return timedelta(seconds=rng.uniform(low, high) * HOUR)


def intake_story(case: Complaint) -> list[Event]:
    """Intake's events of the complaint's whole life, planned from its receipt; the caller
    keeps those that have happened by now."""
    rng = case.rng
    pace = PACE.get(case.branch.pack.pack, 1.0) * rng.lognormvariate(0, 0.5)
    if rng.random() < 0.02:
        pace *= 8  # the odd case that drags on for weeks
    t = case.received_at
    story: list[Event] = [("ComplaintReceived", "received", t, 1, {})]
    if rng.random() < 0.08:
        t += timedelta(minutes=rng.uniform(5, 60))
        story.append(("ComplaintAnsweredOnSpot", "answered_on_spot", t, 1, {}))
        return [*story, ("ComplaintClosed", "closed", t + hours(rng, 1, 24), 1, {})]
    story.append(("ComplaintAssignmentRecorded", "assigned", t + timedelta(minutes=2), 1, {}))
    story.append(
        ("ComplaintAcknowledged", "acknowledged", t + timedelta(minutes=rng.uniform(3, 90)), 1, {})
    )
    t += hours(rng, 0.5, 20) * pace + timedelta(minutes=90)
    story.append(("InvestigationStarted", "investigating", t, 1, {}))
    if rng.random() < 0.003:
        return story  # forgotten: open and late ever since
    status = "investigating"
    if rng.random() < 0.04:
        t += hours(rng, 2, 20)
        story.append(("ComplaintPutOnHold", "on_hold", t, 1, {"reason": "waiting_for_customer"}))
        t += hours(rng, 4, 72)
        story.append(("ComplaintResumed", "investigating", t, 1, {}))
    if rng.random() < 0.03:
        t += hours(rng, 1, 24)
        status = "escalated"
        story.append(("ComplaintEscalated", status, t, 1, {"reason": "超出部门权限"}))
    if rng.random() < 0.05:
        t += hours(rng, 2, 48)
        story.append(("CompensationRecorded", status, t, 1, compensation(case)))
    t += hours(rng, 4, 60) * pace
    if rng.random() < 0.06:
        story.append(("ComplaintNotUpheld", "not_upheld", t, 1, {"reason": "经核实不属实"}))
        return story
    return story + settle(case, t, pace, 1)


def settle(case: Complaint, decided: datetime, pace: float, round_: int) -> list[Event]:
    """From the decision to the close: feedback (an unhappy customer reopens the case),
    resolution, a return visit where the pack has them."""
    rng = case.rng
    story: list[Event] = [("DecisionCommunicated", "replied", decided, round_, {})]
    t = decided
    if case.branch.pack.pack == "furniture" and case.category == "product-quality":
        t += hours(rng, 24, 120)
        story.append(("RepairedProductDelivered", "replied", t, round_, {}))
    if rng.random() < 0.6:
        t += hours(rng, 2, 96)
        unhappy = round_ == 1 and rng.random() < 0.15
        scores = [rng.randint(1, 3) if unhappy else rng.randint(3, 5) for _ in range(3)]
        feedback = {
            **dict(zip(("quality", "attitude", "speed"), scores, strict=True)),
            "satisfied": not unhappy,
        }
        story.append(("FeedbackReceived", "feedback_received", t, round_, feedback))
        if unhappy:
            t += hours(rng, 1, 24)
            story.append(("ComplaintReopened", "reopened", t, round_ + 1, {"reason": "客户不满意"}))
            t += hours(rng, 1, 10)
            story.append(("InvestigationStarted", "investigating", t, round_ + 1, {}))
            return story + settle(case, t + hours(rng, 4, 48) * pace, pace, round_ + 1)
    t += hours(rng, 1, 48) * pace
    story.append(("ComplaintResolved", "resolved", t, round_, {"resolution": "已解决"}))
    if return_visit_rule(case, "DecisionCommunicated") is not None:
        t = max(t, decided + hours(rng, 300, 420))
        visit = {"method": rng.choice(("phone", "wechat")), "outcome": "满意", "satisfied": True}
        story.append(("ReturnVisitRecorded", "return_visited", t, round_, visit))
    return [*story, ("ComplaintClosed", "closed", t + hours(rng, 1, 72) * pace, round_, {})]


def compensation(case: Complaint) -> dict[str, Any]:
    rng = case.rng
    return {
        "compensation_amount": rng.randint(1, 200) * 10,
        "loss_amount": rng.randint(5, 900) * 10 + 0.5,
        "currency": "CNY",
        "responsible_department": rng.choice(case.branch.pack.departments).code,
        "share": rng.choice((0.25, 0.5, 0.75, 1.0)),
    }


def return_visit_rule(case: Complaint, starts_on: str) -> ClockRule | None:
    for rule in case.branch.pack.clocks:
        if rule.return_visit and rule.starts_on == starts_on and applies(rule, case):
            return rule
    return None


def applies(rule: ClockRule, case: Complaint) -> bool:
    return (
        (not rule.categories or case.category in rule.categories)
        and (not rule.customer_types or case.customer_type in rule.customer_types)
        and (not rule.severities or case.severity in rule.severities)
    )


@dataclass(frozen=True)
class Assignment:
    department: str
    assignee: tuple[str, str] | None
    at: datetime


def assign(case: Complaint) -> Assignment | None:
    """Routing's ComplaintAssigned: the category's department, a person in it."""
    at = case.received_at + timedelta(seconds=case.rng.uniform(5, 100))
    if at > case.now:
        return None
    staff = case.branch.staff_by_department.get(case.department, [])
    assignee = case.rng.choice(staff) if staff else None
    case.record(
        "ComplaintAssigned",
        "routing",
        at,
        department=case.department,
        assignee={"staff_id": assignee[0], "name": assignee[1]} if assignee else None,
        rule="category-default",
        pack=case.branch.pack.pack,
    )
    return Assignment(case.department, assignee, at)


class ClockWriter:
    """sla's clocks of the pack's rules that apply, with their breaches and escalations."""

    def __init__(self, case: Complaint, events: list[Event]) -> None:
        self.case = case
        self.events = events
        self.first: dict[str, datetime] = {}
        for event_type, _, at, _, _ in events:
            self.first.setdefault(event_type, at)
        self.ended = min((self.first[e] for e in ENDS if e in self.first), default=None)
        holds = [e[2] for e in events if e[0] in ("ComplaintPutOnHold", "ComplaintResumed")]
        self.hold = [*holds, None][:2] if holds else None

    def write(self) -> list[tuple[str, datetime]]:
        """Returns each breach (clock name, when) for notify."""
        breaches: list[tuple[str, datetime]] = []
        named: set[str] = set()
        for rule in self.case.branch.pack.clocks:
            started = self.first.get(rule.starts_on)
            if rule.clock in named or started is None or not applies(rule, self.case):
                continue
            named.add(rule.clock)
            breach = self._clock(rule, started)
            if breach is not None:
                breaches.append((rule.clock, breach))
        if self.case.severity == "major" and self.case.branch.pack.escalation is not None:
            top = self.case.branch.pack.escalation.ladder[-1].level
            self._escalation(top, "major", self.case.received_at + timedelta(seconds=30))
        return breaches

    def _clock(self, rule: ClockRule, started: datetime) -> datetime | None:
        case = self.case
        target, calendar, span = target_of(rule)
        due = started + span
        paused_at, paused_seconds = None, 0
        if self.hold is not None and self.hold[0] >= started:
            if self.hold[1] is None:
                paused_at = self.hold[0]
            else:
                paused_seconds = int((self.hold[1] - self.hold[0]).total_seconds())
                due += timedelta(seconds=paused_seconds)
        stop = self._stop(rule, started)
        clock_id = case.event_id()
        payload = {"clock_id": str(clock_id), "name": rule.clock, "rule": rule.id}
        case.record("ClockStarted", "sla", started, **payload, due_at=due.isoformat())
        breached_at = due if due < min(stop or case.now, case.now) and paused_at is None else None
        if breached_at is not None:
            case.record("ClockBreached", "sla", due, **payload)
        if rule.return_visit and due <= case.now:
            event_id = case.record("ReturnVisitDue", "sla", due, **payload)
            case.rows["case_return_visits_due"].append((event_id, case.no, clock_id, due))
        if stop is not None:
            state = "met" if stop <= due else "breached"
            case.record("ClockStopped", "sla", stop, **payload, outcome=state)
        else:
            state = "paused" if paused_at else ("breached" if breached_at else "running")
        case.rows["case_clocks"].append((
            clock_id, case.no, rule.clock, rule.id, state, started, due, target, 1, calendar,
            rule.return_visit, paused_at, paused_seconds, stop,
        ))  # fmt: skip
        if breached_at is not None and not rule.return_visit:
            self._ladder(breached_at, stop)
        return breached_at

    def _stop(self, rule: ClockRule, started: datetime) -> datetime | None:
        stops = [self.first[e] for e in rule.stops_on if e in self.first]
        if self.ended is not None:
            stops.append(self.ended)
        after = [t for t in stops if t >= started]
        return min(after) if after else None

    def _ladder(self, breached_at: datetime, stop: datetime | None) -> None:
        escalation = self.case.branch.pack.escalation
        if escalation is None:
            return
        for rung in escalation.ladder[:2]:
            at = breached_at + timedelta(hours=24 * (rung.level - 1), minutes=1)
            if at > min(stop or self.case.now, self.case.now):
                return
            self._escalation(rung.level, "breach", at)

    def _escalation(self, level: int, reason: str, at: datetime) -> None:
        if at > self.case.now:
            return
        event_id = self.case.record("EscalationRaised", "sla", at, level=level, reason=reason)
        self.case.rows["case_escalations"].append(
            (event_id, self.case.no, level, reason, "sla", at)
        )


def target_of(rule: ClockRule) -> tuple[int, str, timedelta]:
    """Target seconds, calendar, and roughly how long that is in wall-clock time."""
    if rule.target_hours is not None:
        seconds = int(rule.target_hours * HOUR)
        return seconds, "elapsed", timedelta(seconds=seconds)
    if rule.working_hours is not None:
        seconds = int(rule.working_hours * HOUR)
        return seconds, "working", timedelta(seconds=seconds * 3)
    days = rule.working_days or 0
    return days * 8 * int(HOUR), "working", timedelta(days=days * 1.4, hours=10)


def notify(
    case: Complaint,
    events: list[Event],
    assignment: Assignment | None,
    breaches: list[tuple[str, datetime]],
) -> None:
    """notify's messages: the customer's acknowledgement and decision, staff's assignment
    and breach notices; each through queued, sent and (SMS) delivered."""
    rng = case.rng
    customer_channel = "sms" if rng.random() < 0.5 else "email"
    customer = "138****0000" if customer_channel == "sms" else "k***@example.com"
    for event_type, _, at, _, _ in events:
        if event_type == "ComplaintAcknowledged":
            message(case, at, customer_channel, customer, "acknowledgement", to_customer=True)
        elif event_type in DECISION:
            message(case, at, customer_channel, customer, "decision", to_customer=True)
    if assignment is not None and assignment.assignee is not None:
        staff = f"{assignment.assignee[0][0]}***@{case.branch.pack.pack}.example"
        message(case, assignment.at, "email", staff, "assignment", to_customer=False)
    for _, at in breaches:
        message(case, at, "email", "h***@example.com", "breach", to_customer=False)


def message(
    case: Complaint, at: datetime, channel: str, recipient: str, template: str, *, to_customer: bool
) -> None:
    rng = case.rng
    notification_id = case.event_id()
    common = {"notification_id": str(notification_id), "channel": channel, "template": template}
    steps = [("NotificationQueued", "queued", at, None)]
    sent = at + timedelta(seconds=rng.uniform(1, 30))
    if rng.random() < 0.015:
        steps.append(("NotificationFailed", "failed", sent, "provider refused the message"))
    else:
        steps.append(("NotificationSent", "sent", sent, None))
        if channel == "sms":
            steps.append(("NotificationDelivered", "delivered", sent + timedelta(seconds=4), None))
    last = None
    for event_type, status, when, reason in steps:
        if when > case.now:
            break
        case.record(event_type, "notify", when, **common, recipient_masked=recipient)
        last = (status, when, reason)
    if last is None:
        return
    status, when, reason = last
    case.rows["case_notifications"].append((
        notification_id, case.no, channel, recipient, template, status, when, reason,
        to_customer, status == "failed" and rng.random() < 0.3,
    ))  # fmt: skip


def write_intake(case: Complaint, events: list[Event]) -> None:
    """Intake's events: the timeline, the status history and the one-row-per-event tables."""
    rows = case.rows
    for sequence, (event_type, status, at, round_, payload) in enumerate(events, start=1):
        details = {"status": status, "sequence": sequence, "round": round_, **payload}
        if event_type == "ComplaintReceived":
            details |= received_details(case)
        event_id = case.record(event_type, "intake", at, **details)
        rows["case_status_history"].append((event_id, case.no, sequence, status, event_type, at))
        if event_type == "FeedbackReceived":
            rows["case_feedback"].append((
                event_id, case.no, round_, payload["quality"], payload["attitude"],
                payload["speed"], payload["satisfied"], None, at,
            ))  # fmt: skip
        elif event_type == "ReturnVisitRecorded":
            rows["case_return_visits"].append((
                event_id, case.no, payload["method"], payload["outcome"], payload["satisfied"], at,
            ))  # fmt: skip
        elif event_type == "CompensationRecorded":
            rows["case_compensation"].append((
                event_id, case.no, payload["compensation_amount"], payload["loss_amount"],
                payload["currency"], payload["responsible_department"], payload["share"], at,
            ))  # fmt: skip
        elif event_type == "ComplaintEscalated":
            rows["case_escalations"].append(
                (event_id, case.no, None, payload["reason"], "intake", at)
            )


def received_details(case: Complaint) -> dict[str, Any]:
    return {
        "pack": case.branch.pack.pack,
        "category": case.category,
        "severity": case.severity,
        "channel": "phone",
        "customer": {"name": "客户", "type": case.customer_type, "phone": "138****0000"},
        "description": "合成的投诉 synthetic complaint",
    }


def write_case(case: Complaint, events: list[Event], assignment: Assignment | None) -> None:
    """The cases row as the projections leave it after all the complaint's events."""
    rng = case.rng
    last_type, status, last_at, round_, _ = events[-1]
    times = {t: [e[2] for e in events if e[0] == t] for t in {e[0] for e in events}}
    contact = [at for t in CONTACT for at in times.get(t, [])]
    decided = [at for t in DECISION for at in times.get(t, [])]
    closed = times.get("ComplaintClosed", [])
    reopened = len(times.get("ComplaintReopened", []))
    pack = case.branch.pack
    staff, department = None, None
    if assignment is not None:
        staff, department = assignment.assignee, assignment.department
    case.rows["cases"].append((
        case.no, case.branch.id, pack.pack, case.category,
        rng.choices(CHANNELS, CHANNEL_WEIGHTS)[0], case.severity,
        "foreign" if rng.random() < 0.04 else "domestic", case.customer_type,
        pack.staff[0].id if rng.random() < 0.6 else None, case.received_at, status, department,
        staff[0] if staff else None, staff[1] if staff else None,
        assignment.at if assignment else None,
        max(last_at, assignment.at) if assignment else last_at,
        len(events), round_,
        closed[-1] if closed and last_type != "ComplaintReopened" else None,
        min(decided, default=None), min(contact, default=None),
        "ComplaintNotUpheld" in times, reopened, last_at,
    ))  # fmt: skip


# --- Loading ------------------------------------------------------------------------------


async def copy_rows(conn: asyncpg.Connection, rows: Rows) -> None:
    for table, records in rows.items():
        if records:
            await conn.copy_records_to_table(
                table, records=records, columns=COLUMNS[table], schema_name=SCHEMA
            )


async def load(conn: asyncpg.Connection, synth: Synthesizer, stage: Stage) -> dict[str, int]:
    """The stage's complaints; the next chunk is written (in a thread) while the previous
    one is copied, so PostgreSQL and Python work at the same time."""
    written: dict[str, int] = dict.fromkeys(COLUMNS, 0)
    end = stage.first + stage.count
    starts = list(range(stage.first, end, CHUNK))

    def write(first: int) -> asyncio.Task[Rows]:
        return asyncio.create_task(
            asyncio.to_thread(synth.chunk, stage, first, min(CHUNK, end - first))
        )

    pending = write(starts[0])
    for index in range(len(starts)):
        rows = await pending
        if index + 1 < len(starts):
            pending = write(starts[index + 1])
        await copy_rows(conn, rows)
        for table, records in rows.items():
            written[table] += len(records)
    return written


async def table_bytes(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch(
        """SELECT c.relname, pg_total_relation_size(c.oid) AS bytes
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY bytes DESC""",
        SCHEMA,
    )
    return {row["relname"]: row["bytes"] for row in rows if row["relname"] in (*COLUMNS, *ROLLUPS)}


async def grow(
    database_url: str, synth: Synthesizer, loaded: int, size: int, first_load: bool
) -> dict[str, Any]:
    """Top the projections up from ``loaded`` to ``size`` complaints; VACUUM ANALYZE as
    autovacuum would after such a load (visibility map, statistics)."""
    # The rollups' triggers read the projections by their unqualified names.
    conn = await asyncpg.connect(database_url, server_settings={"search_path": SCHEMA})
    try:
        now = datetime.now(UTC)
        started = time.monotonic()
        volumes = synth.volumes(now) if first_load else []
        await copy_rows(conn, {"service_volumes": volumes})
        written = await load(conn, synth, Stage(loaded + 1, size - loaded, now))
        written["service_volumes"] += len(volumes)
        # As the projections do for each batch that records compensation or changes clocks
        # (migrations 009 and 011).
        await conn.execute("SELECT count_compensation(NULL)")
        await conn.execute("SELECT count_breaches(NULL)")
        seconds = time.monotonic() - started
        vacuum_started = time.monotonic()
        for table in (*COLUMNS, *ROLLUPS):
            await conn.execute(f"VACUUM (ANALYZE) {SCHEMA}.{table}")
        return {
            "complaints_added": size - loaded,
            "seconds": round(seconds, 1),
            "ms_per_complaint": round(seconds * 1000 / (size - loaded), 3),
            "complaints_per_second": round((size - loaded) / seconds),
            "rows_added": written,
            "vacuum_analyze_seconds": round(time.monotonic() - vacuum_started, 1),
            "table_bytes": await table_bytes(conn),
        }
    finally:
        await conn.close()


# --- Measuring ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    name: str
    path: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Facts:
    """Realistic parameter values, read from the loaded data."""

    branch_id: str
    pack: str
    department: str
    today: date
    complaint_nos: list[str]


async def facts(database_url: str) -> Facts:
    conn = await asyncpg.connect(database_url, server_settings={"search_path": SCHEMA})
    try:
        busiest = await conn.fetchrow(
            """SELECT branch_id, pack, department FROM cases
               WHERE branch_id = 'hotel-demo' AND department IS NOT NULL LIMIT 1"""
        )
        numbers = await conn.fetch(
            "SELECT complaint_no FROM cases TABLESAMPLE SYSTEM (1) LIMIT 200"
        ) or await conn.fetch("SELECT complaint_no FROM cases LIMIT 200")
    finally:
        await conn.close()
    return Facts(
        branch_id=busiest["branch_id"],
        pack=busiest["pack"],
        department=busiest["department"],
        today=datetime.now(TZ).date(),
        complaint_nos=[row["complaint_no"] for row in numbers],
    )


def probes(f: Facts) -> list[Probe]:
    """Every read endpoint of services/reporting/app.py, bare and with typical filters."""
    month_ago = (f.today - timedelta(days=30)).isoformat()
    last_month = (f.today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    monday = f.today - timedelta(days=f.today.weekday())
    window = {"date_from": month_ago, "date_to": f.today.isoformat()}
    branch = {"branch_id": f.branch_id}
    return [
        Probe("summary", "/v1/reports/summary"),
        Probe("summary branch", "/v1/reports/summary", branch),
        Probe("summary pack+department", "/v1/reports/summary",
              {"pack": f.pack, "department": f.department}),
        Probe("summary last 30 days", "/v1/reports/summary", window),
        Probe("summary as_of 7 days ago, branch", "/v1/reports/summary",
              {**branch, "as_of": (datetime.now(UTC) - timedelta(days=7)).isoformat()}),
        Probe("summary csv", "/v1/reports/summary", {"format": "csv"}),
        Probe("sla", "/v1/reports/sla"),
        Probe("sla branch, last 30 days", "/v1/reports/sla", {**branch, **window}),
        Probe("sla csv", "/v1/reports/sla", {"format": "csv"}),
        Probe("response-times", "/v1/reports/response-times"),
        Probe("response-times pack", "/v1/reports/response-times", {"pack": f.pack}),
        Probe("response-times last 30 days", "/v1/reports/response-times", window),
        Probe("satisfaction", "/v1/reports/satisfaction"),
        Probe("satisfaction branch, last 30 days", "/v1/reports/satisfaction",
              {**branch, **window}),
        Probe("complaint-rate", "/v1/reports/complaint-rate"),
        Probe("complaint-rate last 30 days", "/v1/reports/complaint-rate", window),
        Probe("daily (today)", "/v1/reports/daily"),
        Probe("daily yesterday, branch", "/v1/reports/daily",
              {**branch, "day": (f.today - timedelta(days=1)).isoformat()}),
        Probe("weekly (this week)", "/v1/reports/weekly"),
        Probe("weekly last week, pack", "/v1/reports/weekly",
              {"pack": f.pack, "week_start": (monday - timedelta(days=7)).isoformat()}),
        Probe("monthly (last month)", "/v1/reports/monthly"),
        Probe("monthly branch", "/v1/reports/monthly", {**branch, "month": last_month}),
        Probe("monthly csv", "/v1/reports/monthly", {"format": "csv"}),
        Probe("late-cases", "/v1/reports/late-cases"),
        Probe("late-cases branch, 200", "/v1/reports/late-cases", {**branch, "limit": "200"}),
        Probe("dashboard", "/v1/reports/dashboard"),
        Probe("dashboard branch", "/v1/reports/dashboard", branch),
        Probe("stream: first dashboard", "/v1/stream"),
        Probe("case file", "/v1/cases/{no}"),
        Probe("dashboard page", "/"),
    ]  # fmt: skip


async def timed_get(client: httpx.AsyncClient, probe: Probe, no: str) -> tuple[float, bool]:
    """Milliseconds to the whole answer (the stream: to its first dashboard event)."""
    path = probe.path.replace("{no}", no)
    started = time.perf_counter()
    if probe.path == "/v1/stream":
        async with client.stream("GET", path, params=probe.params) as answer:
            ok = answer.status_code == 200
            async for line in answer.aiter_lines():
                if line.startswith("data:"):
                    break
    else:
        answer = await client.get(path, params=probe.params)
        ok = answer.status_code == 200
    return (time.perf_counter() - started) * 1000, ok


async def measure_probe(
    client: httpx.AsyncClient, probe: Probe, numbers: list[str], requests: int, budget: float
) -> dict[str, Any]:
    for index in range(3):  # warm-up: cold pages, prepared statements
        await timed_get(client, probe, numbers[index % len(numbers)])
    timings, errors = [], 0
    deadline = time.monotonic() + budget
    for index in range(requests):
        ms, ok = await timed_get(client, probe, numbers[index % len(numbers)])
        timings.append(ms)
        errors += 0 if ok else 1
        if time.monotonic() > deadline:
            break
    return {**percentiles(timings), "errors": errors}


async def measure_service(
    env: dict[str, str], log: Path, args: argparse.Namespace, size_facts: Facts
) -> dict[str, Any]:
    """The real service on the loaded data: every probe, and the process's peak RSS."""
    port = free_port()
    with log.open("wb") as out:
        service = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.reporting",
            cwd=REPO,
            env={**env, "REPORTING_PORT": str(port)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    process = psutil.Process(service.pid)
    peak = 0
    sampling = True

    async def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, rss(process))
            await asyncio.sleep(0.25)

    try:
        await wait_http(f"http://127.0.0.1:{port}/openapi.json", seconds=300)
        started_rss = rss(process)
        sampler = asyncio.create_task(sample())
        endpoints = {}
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=120, headers=api_headers()
        ) as client:
            for probe in probes(size_facts):
                endpoints[probe.name] = await measure_probe(
                    client, probe, size_facts.complaint_nos, args.requests, args.budget
                )
                print(f"  {probe.name}: {endpoints[probe.name]}", flush=True)
        sampling = False
        await sampler
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(service.wait(), 30)
        except TimeoutError:
            service.kill()
            await service.wait()
    return {
        # Other work on the machine shows in the tail: say how busy it was.
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "rss_mb_after_start": round(started_rss / 2**20, 1),
        "peak_rss_mb": round(peak / 2**20, 1),
        "endpoints": endpoints,
    }


# --- The run ------------------------------------------------------------------------------


async def server_facts(conn: asyncpg.Connection) -> dict[str, str]:
    names = ("server_version", "shared_buffers", "work_mem", "effective_cache_size", "jit",
             "max_parallel_workers_per_gather", "random_page_cost")  # fmt: skip
    return {name: await conn.fetchval(f"SHOW {name}") for name in names}


def code_version() -> str:
    """The commit measured, ``-dirty`` with uncommitted changes (before/after comparisons)."""
    return subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    use_stack(args)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    admin = await asyncpg.connect(args.database_url)
    database_url = args.loaded or await fresh_database(admin, args.database_url, "rscale")
    namespace = f"rscale-{uuid.uuid4().hex[:8]}"
    await ensure_topics(args.kafka, all_topic_partitions(namespace))
    log_dir = REPO / ".local" / "bench" / f"reporting-scale-{stamp}"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = service_env(args.kafka, database_url, namespace)
    result: dict[str, Any] = {
        "when": stamp,
        "command": " ".join(["python", *sys.argv]),
        "code": await asyncio.to_thread(code_version),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "postgres": await server_facts(admin),
        "days": args.days,
        "sizes": [],
    }
    try:
        await apply_migrations(database_url, SCHEMA, MIGRATIONS)
        if args.loaded:
            await measure_loaded(args, env, log_dir, result)
            return result
        synth = Synthesizer(build_world(max(args.sizes), args.days), args.days, args.seed)
        loaded = 0
        for size in sorted(args.sizes):
            print(f"loading {loaded} → {size} complaints", flush=True)
            loading = await grow(database_url, synth, loaded, size, first_load=loaded == 0)
            loaded = size
            print(f"  {json.dumps(loading)}", flush=True)
            service = await measure_service(
                env, log_dir / f"reporting-{size}.log", args, await facts(database_url)
            )
            result["sizes"].append({"complaints": size, "load": loading, "service": service})
    finally:
        if args.keep or args.loaded:
            print(f"kept: {database_url}", flush=True)
        else:
            await admin.execute(f'DROP DATABASE "{database_url.rsplit("/", 1)[1]}" WITH (FORCE)')
        await admin.close()
    return result


async def measure_loaded(
    args: argparse.Namespace, env: dict[str, str], log_dir: Path, result: dict[str, Any]
) -> None:
    """The service measured again on a database a ``--keep`` run left (after a change to
    the service, its migrations applied): no load figures."""
    env = {**env, "DATABASE_URL": args.loaded}
    conn = await asyncpg.connect(args.loaded, server_settings={"search_path": SCHEMA})
    try:
        size = await conn.fetchval("SELECT count(*) FROM cases")
        for table in (*COLUMNS, *ROLLUPS):
            await conn.execute(f"VACUUM (ANALYZE) {SCHEMA}.{table}")
    finally:
        await conn.close()
    service = await measure_service(
        env, log_dir / f"reporting-{size}.log", args, await facts(args.loaded)
    )
    result["sizes"].append({"complaints": size, "load": None, "service": service})


def markdown(result: dict[str, Any]) -> str:
    sizes = result["sizes"]
    head = " | ".join(f"{s['complaints']:,}" for s in sizes)
    lines = [
        f"## Reporting at scale, {result['when']}",
        "",
        f"p50 / p99 ms over up to {sizes[0]['service']['endpoints']['summary']['count']} "
        "sequential requests per endpoint (fewer where the time budget ran out: see the JSON).",
        "",
        f"| endpoint | {head} |",
        "| --- |" + " --- |" * len(sizes),
    ]
    for name in sizes[0]["service"]["endpoints"]:
        cells = []
        for s in sizes:
            e = s["service"]["endpoints"][name]
            errors = f" ({e['errors']} errors)" if e["errors"] else ""
            cells.append(f"{e['p50']} / {e['p99']}{errors}")
        lines.append(f"| {name} | {' | '.join(cells)} |")

    def row(label: str, cell: Callable[[dict[str, Any]], object]) -> str:
        return f"| {label} | {' | '.join(str(cell(s)) for s in sizes)} |"

    lines.append(row("service peak RSS MB", lambda s: s["service"]["peak_rss_mb"]))
    if all(s["load"] for s in sizes):  # not a --loaded run
        lines += [
            row("load: ms per complaint", lambda s: s["load"]["ms_per_complaint"]),
            row("load: complaints/s", lambda s: s["load"]["complaints_per_second"]),
            row(
                "projection tables MB",
                lambda s: round(sum(s["load"]["table_bytes"].values()) / 2**20),
            ),
            row(
                "case_timeline rows added",
                lambda s: f"{s['load']['rows_added']['case_timeline']:,}",
            ),
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--requests", type=int, default=200, help="timed requests per endpoint")
    parser.add_argument("--budget", type=float, default=30, help="seconds at most per endpoint")
    parser.add_argument("--days", type=int, default=730, help="received days spanned")
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--database-url")
    parser.add_argument("--kafka")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--loaded",
        metavar="DATABASE_URL",
        help="measure a database a --keep run loaded, without loading (it is kept)",
    )
    args = parser.parse_args()
    result = asyncio.run(run(args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"reporting-scale-{result['when']}.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(markdown(result))
    print(f"results: {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
