"""Preload a database with N complaints' worth of every service's state (issue 8: does the
cost of one complaint stay flat as the work done grows?).

    python bench/preload.py [--sizes 10000 100000] [--database-url DSN] [--keep] [--seed 0]

``preload(database_url, complaints)`` applies every service's migrations, then writes what
intake, routing, sla and notify would have written handling ``complaints`` complaints
received over the past two years at the seven policy packs' demo branches, and has
bench/reporting_scale.py's loader write reporting's projections under the same complaint
numbers. Each complaint is played through the services' own code: intake's life cycle and
events, routing's decision on the loads of the moment, sla's clock plans and durable
timers (fired as their due times passed, cancelled when their clocks stopped), notify's
rules and rendering. Every outbox row is already published (and only the last week's are
left, as the relay deletes older ones) and every consumed event is
in its consumer's inbox, so the services start with nothing to catch up on; only the
cases still open (the last days' and a few forgotten ones) have clocks running, timers to
come and, at night, customers' SMS waiting for the morning. The stories are ordinary
ones (no reopenings, reassignments, compensation or project deliveries); reporting's are
reporting_scale's own, so a case's branch and life there differ from the other schemas'.

Worker processes (one a core, up to four) build and COPY a run of complaints each, a
transaction per thousand; about 70 rows a complaint, plus reporting's.

Loading is incremental: a larger N tops the database up from the complaints it holds.
A top-up's complaints span the same two years; their numbers continue each year's
counter (so within a year they follow the earlier load's numbers, not their receipt
times), and intake numbers the next complaint after them.

The command line loads each size in turn into a scratch database on the given PostgreSQL
(default: the `test` devstack), prints each step's timings and row counts as JSON and
drops the database (``--keep`` leaves it, its URL printed).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import heapq
import itertools
import json
import multiprocessing
import os
import random
import sys
import time
import uuid
from bisect import bisect
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from pydantic import PrivateAttr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from services.intake.cases import EVENT_OF_ACTION, feedback_token  # noqa: E402
from services.intake.lifecycle import Action, CaseState, apply  # noqa: E402
from services.intake.settings import IntakeSettings  # noqa: E402
from services.notify.domain import (  # noqa: E402
    CaseFacts,
    PlannedMessage,
    facts_from,
    notification_id,
    notification_key,
    plan_for,
    release_time,
    updated,
)
from services.notify.planning import RELEVANT, Planner  # noqa: E402
from services.notify.settings import NotifySettings  # noqa: E402
from services.notify.store import Notification  # noqa: E402
from services.notify.templates import Templates  # noqa: E402
from services.routing.app import decided  # noqa: E402
from services.routing.domain import Decision, RoutingInput, choose, target  # noqa: E402
from services.sla.app import _ladder_timers  # noqa: E402
from services.sla.domain import ComplaintFacts, PlannedClock, plan_clocks, shifted  # noqa: E402
from services.sla.store import timer_id  # noqa: E402
from shared.calendars import WorkingTime  # noqa: E402
from shared.contracts import (  # noqa: E402
    CaseEvent,
    ClockBreached,
    ClockPaused,
    ClockResumed,
    ClockStarted,
    ClockStopped,
    ClockWarning,
    ComplaintAssigned,
    ComplaintReceived,
    EscalationRaised,
    Event,
    NotificationQueued,
    NotificationSent,
    ReturnVisitDue,
    SubmissionAccepted,
    SubmitComplaint,
)
from shared.contracts.intake import (  # noqa: E402
    ComplaintPutOnHold,
    ComplaintResumed,
    ProjectDelivered,
    RepairedProductDelivered,
)
from shared.db import apply_migrations  # noqa: E402
from shared.policy import (  # noqa: E402
    ENDING_EVENTS,
    NOTIFICATION_TRIGGERS,
    Branch,
    LivePacks,
    PackRegistry,
    PolicyPack,
    load_packs,
)
from shared.redact import mask_email, mask_phone  # noqa: E402
from shared.settings import ServiceSettings  # noqa: E402
from shared.topics import DEFAULT_NAMESPACE, Topics  # noqa: E402

PACKS_DIR = REPO / "policy-packs"
SCHEMAS = ("intake", "routing", "sla", "notify")
WINDOW_DAYS = 730
CHUNK = 1000  # complaints per transaction: about 90,000 rows, COPY'd table by table
WORKERS = min(4, os.cpu_count() or 1)  # processes building and writing chunks
SECOND = timedelta(seconds=1)
OUTBOX_RETENTION = timedelta(hours=ServiceSettings().outbox_retention_hours)
HOUR = timedelta(hours=1)

OUTBOX = ("event_id", "topic", "key", "payload", "headers", "created_at", "published_at")
INBOX = ("event_id", "event_type", "processed_at")
# Each table in COPY order (a referenced table before the tables referring to it), with
# its columns as the services' INSERTs and later UPDATEs leave them.
COLUMNS: dict[str, tuple[str, ...]] = {
    "intake.complaints": (
        "complaint_no", "year", "ordinal", "branch_id", "pack", "pack_version", "channel",
        "customer", "description", "customer_request", "category", "severity", "region",
        "first_contact_staff", "status", "received_at", "correlation_id", "event_time",
        "event_place", "product", "attachments", "submission_id", "held_from", "round",
        "sequence", "department", "assignee_id", "updated_at",
    ),
    "intake.case_history": (
        "complaint_no", "sequence", "event_id", "event_type", "status", "previous_status",
        "round", "actor", "details", "occurred_at",
    ),
    "intake.submissions": (
        "branch_id", "submission_id", "fingerprint", "complaint_no", "created_at",
    ),
    "routing.assignments": (
        "complaint_no", "branch_id", "department", "assignee_id", "rule", "pack",
        "pack_version", "assigned_at", "open", "also_notify", "candidates", "reason",
        "correlation_id",
    ),
    "sla.cases": (
        "complaint_no", "branch_id", "pack", "category", "customer_type", "severity", "region",
        "correlation_id",
    ),
    "sla.clocks": (
        "clock_id", "complaint_no", "branch_id", "name", "rule", "state", "started_at",
        "due_at", "target_seconds", "pack", "pack_version", "round", "working", "calendar",
        "stops_on", "return_visit", "paused_at", "paused_seconds", "stopped_at", "occurrence",
        "series_start",
    ),
    "sla.timers": (
        "timer_id", "clock_id", "complaint_no", "kind", "fraction", "level", "due_at",
        "fired_at", "cancelled",
    ),
    "notify.cases": ("complaint_no", "facts", "updated_at"),
    "notify.notifications": (
        "notification_id", "notification_key", "complaint_no", "channel", "recipient_masked",
        "template", "language", "status", "attempts", "created_at", "sent_at",
        "source_event_id", "branch_id", "correlation_id", "rule", "address", "to_customer",
        "subject", "body_text", "body_html", "sms_text", "params", "segments", "not_before",
        "first_attempt_at", "provider", "provider_message_id", "updated_at",
    ),
    **{f"{schema}.outbox": OUTBOX for schema in SCHEMAS},
    **{f"{schema}.processed_events": INBOX for schema in SCHEMAS},
}  # fmt: skip

# What intake's history keeps of an event beyond its own columns (services/intake/store.py).
HISTORY_EXCLUDES = set(CaseEvent.model_fields) - {"note"}
# How often complaints arrive by the branch's hour of day (a weekend day: 1.3 times).
HOURLY = (1, 0.5, 0.3, 0.3, 0.3, 0.5, 1, 3, 7, 10, 10, 10, 8, 8, 10, 10, 9, 8, 7, 6, 5, 4, 3, 2)
BRANCH_WEIGHTS = {"hotel": 1.6, "property": 1.3, "fitness-club": 1.0, "furniture": 0.9,
                  "manufacturing": 0.7, "it-services": 0.8, "testing-lab": 0.6}  # fmt: skip
CUSTOMERS = {"hotel": ("in_house_guest", "departed_guest", "member"), "fitness-club": ("member",),
             "property": ("owner",), "furniture": ("end_customer", "dealer"),
             "manufacturing": ("dealer", "end_customer")}  # fmt: skip
# How fast a pack's staff settle a case (1: a day or two), so that most clocks are met.
PACE = {"hotel": 0.25, "fitness-club": 0.1, "property": 0.5, "testing-lab": 0.8}
CHANNELS = ("phone", "web", "email", "walk_in", "wechat", "sms", "letter")
CHANNEL_WEIGHTS = (30, 22, 14, 12, 14, 5, 3)
NAMES = ("张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "Emily Clark", "James Smith")
DESCRIPTIONS = (
    "多次反映未得到处理，希望尽快给出答复。",
    "工作人员态度冷淡，解释不清楚。",
    "约定的时间没有人来，也没有提前通知。",
    "问题反复出现，影响正常使用。",
    "The problem came back twice; please call me back.",
)
PLACEHOLDER = "\x00complaint-no\x00"


# --- The packs and messages, as the services see them ----------------------------------------


class CachedPack(PolicyPack):
    """A policy pack whose working-time calendars are built once: the services build one per
    call, which would take most of the time of a million complaints."""

    _times: dict[str | None, WorkingTime] = PrivateAttr(default_factory=dict)

    @classmethod
    def of(cls, pack: PolicyPack) -> CachedPack:
        return cls.model_construct(**dict(pack))  # validated as it was loaded

    def working_time(self, calendar_id: str | None = None) -> WorkingTime:
        if calendar_id not in self._times:
            self._times[calendar_id] = super().working_time(calendar_id)
        return self._times[calendar_id]


class Messages:
    """notify's rendering of a planned message, done by its own planner once per pack,
    template, language and channel and reused with the complaint's number and the message's
    ids and address put in: rendering each of ten million messages would take hours, and
    what the tables feel is the messages' size, which this keeps."""

    def __init__(self, planner: Planner) -> None:
        self._planner = planner
        self._rendered: dict[tuple[str, str, str, str], Notification] = {}

    def render(
        self, pack: CachedPack, facts: CaseFacts, event: Event, message: PlannedMessage
    ) -> Notification:
        key = (pack.pack, message.template, message.recipient.language, message.channel)
        if key not in self._rendered:
            fresh = self._planner._render(pack, facts, event, message)
            self._rendered[key] = renumbered(fresh, fresh.complaint_no, PLACEHOLDER)
        found = notification_key(event.event_id, message)
        return renumbered(
            self._rendered[key],
            PLACEHOLDER,
            facts.complaint_no,
            notification_id=notification_id(found),
            notification_key=found,
            complaint_no=facts.complaint_no,
            branch_id=facts.branch_id,
            correlation_id=event.correlation_id,
            source_event_id=event.event_id,
            rule=message.rule,
            address=message.address,
            recipient_masked=masked(message),
            to_customer=message.recipient.is_customer,
        )


def renumbered(n: Notification, old: str, new: str, **fields: Any) -> Notification:
    """``n`` with ``old`` (a complaint number, or the placeholder) replaced by ``new`` in its
    texts and parameters, and ``fields`` changed."""

    return dataclasses.replace(
        n,
        subject=n.subject.replace(old, new),
        body_text=n.body_text.replace(old, new),
        body_html=n.body_html.replace(old, new),
        sms_text=n.sms_text.replace(old, new) if n.sms_text else None,
        params={name: value.replace(old, new) for name, value in n.params.items()},
        **fields,
    )


def masked(message: PlannedMessage) -> str:
    """The recipient as notify's rows and events show it (planning.Planner._render)."""
    if message.channel == "email":
        return mask_email(message.address)
    return mask_phone(message.address) if message.channel == "sms" else message.address


def demo_branches(registry: PackRegistry) -> list[tuple[PolicyPack, Branch]]:
    return [
        (pack, next(b for b in pack.branches if b.id == f"{name}-demo"))
        for name, pack in sorted(registry.packs.items())
    ]


def demo_zone() -> ZoneInfo:
    """The demo branches' time zone: their numbers follow one calendar, so they share it."""
    zones = {branch.timezone for _, branch in demo_branches(load_packs(PACKS_DIR))}
    if len(zones) != 1:
        raise ValueError(f"the demo branches' time zones differ ({zones}): numbering needs one")
    return ZoneInfo(zones.pop())


@dataclass(frozen=True)
class World:
    """The demo branches and what the services would know of them."""

    branches: list[tuple[CachedPack, Branch]]
    cumulative_weights: list[float]
    topics: Topics
    messages: Messages
    feedback_secret: bytes

    @classmethod
    def build(cls, namespace: str) -> World:
        branches = [(CachedPack.of(p), b) for p, b in demo_branches(load_packs(PACKS_DIR))]
        planner = Planner(LivePacks(PACKS_DIR), Templates(PACKS_DIR / "templates"),
                          NotifySettings(), "unused: this planner only renders")  # fmt: skip
        weights = (BRANCH_WEIGHTS.get(pack.pack, 1.0) for pack, _ in branches)
        return cls(
            branches=branches,
            cumulative_weights=list(accumulate(weights)),
            topics=Topics.in_namespace(namespace),
            messages=Messages(planner),
            feedback_secret=IntakeSettings().feedback_secret.get_secret_value().encode(),
        )

    def pick(self, rng: random.Random) -> tuple[CachedPack, Branch]:
        spot = rng.random() * self.cumulative_weights[-1]
        return self.branches[bisect(self.cumulative_weights, spot)]


# --- When complaints arrived, and their numbers --------------------------------------------


@dataclass(frozen=True)
class Arrivals:
    """``count`` receipt times over the window that ends ``now``, in order, denser in office
    hours and at weekends; the ``index``-th complaint's time needs no earlier one's."""

    start: datetime
    now: datetime
    count: int
    cumulative: list[float]

    @classmethod
    def over(cls, now: datetime, zone: ZoneInfo, count: int) -> Arrivals:
        local = now.astimezone(zone) - timedelta(days=WINDOW_DAYS)
        start = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)
        weights = []
        for slot in range(int((now - start) / HOUR) + 1):
            moment = (start + slot * HOUR).astimezone(zone)
            weekend = 1.3 if moment.weekday() >= 5 else 1.0
            share = min(1.0, (now - start) / HOUR - slot)  # the hour under way: its part so far
            weights.append(HOURLY[moment.hour] * weekend * share)
        return cls(start, now, count, list(accumulate(w for w in weights if w > 0)))

    def at(self, index: int) -> datetime:
        """When the stage's ``index``-th complaint (from 0) arrived."""
        position = (index + 0.5) / self.count * self.cumulative[-1]
        slot = bisect(self.cumulative, position)
        below = self.cumulative[slot - 1] if slot else 0.0
        share = (position - below) / (self.cumulative[slot] - below)
        span = min(1.0, (self.now - self.start) / HOUR - slot)  # the last hour is under way
        return self.start + (slot + share * span) * HOUR


@dataclass(frozen=True)
class Numbering:
    """Intake's numbers: receipt day in the branches' zone, then the ordinal in that year,
    continuing each year's counter from before the stage."""

    zone: ZoneInfo
    counters: dict[int, int]
    first_of_year: dict[int, int]

    @classmethod
    def of(cls, arrivals: Arrivals, zone: ZoneInfo, counters: dict[int, int]) -> Numbering:
        def year(index: int) -> int:
            return arrivals.at(index).astimezone(zone).year

        first_of_year: dict[int, int] = {}
        for y in range(year(0), year(arrivals.count - 1) + 1):
            low, high = 0, arrivals.count  # bisect for the first index in year y or later
            while low < high:
                middle = (low + high) // 2
                low, high = (middle + 1, high) if year(middle) < y else (low, middle)
            first_of_year[y] = low
        return cls(zone, counters, first_of_year)

    def number(self, index: int, received: datetime) -> tuple[int, int, str]:
        day = received.astimezone(self.zone).date()
        ordinal = self.counters.get(day.year, 0) + index - self.first_of_year[day.year] + 1
        return day.year, ordinal, f"{day:%y%m%d}{ordinal:03d}"

    def last_ordinals(self, first: int, end: int) -> dict[int, int]:
        """Each year's last ordinal once the stage's complaints ``first`` to ``end - 1``
        are numbered: the counters."""
        years = sorted(self.first_of_year)
        last = {}
        for y, following in zip(years, [*years[1:], None], strict=True):
            stop = min(end, self.first_of_year[following] if following else end)
            if stop > max(first, self.first_of_year[y]):
                last[y] = self.counters.get(y, 0) + stop - self.first_of_year[y]
        return last


# --- One complaint, service by service ------------------------------------------------------

Rows = dict[str, list[tuple[Any, ...]]]


def new_rows() -> Rows:
    return {table: [] for table in COLUMNS}


def lag(rng: random.Random, low: float = 0.02, high: float = 0.3) -> timedelta:
    """How long after an event its consumer has handled it, or an outbox row went out."""
    return timedelta(seconds=rng.uniform(low, high))


def hours(rng: random.Random, low: float, high: float) -> timedelta:
    return timedelta(hours=rng.uniform(low, high))


def event_id(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


@dataclass
class Case:
    """A complaint being played through the services, and where its rows go."""

    world: World
    pack: CachedPack
    branch: Branch
    rng: random.Random
    now: datetime
    rows: Rows
    received: ComplaintReceived
    submitted: SubmitComplaint
    path: str  # how it came: "http-key" (with an Idempotency-Key), "kafka" or "http"

    def out(self, schema: str, topic: str, message: Event | SubmissionAccepted,
            at: datetime) -> None:  # fmt: skip
        """``message`` in ``schema``'s outbox, committed ``at`` and published just after;
        nothing once the relay would have deleted it (``OUTBOX_RETENTION``)."""
        if at < self.now - OUTBOX_RETENTION:
            return
        self.rows[f"{schema}.outbox"].append((
            message.event_id, topic, message.key, message.model_dump_json().encode(),
            json.dumps(message.headers()), at, at + lag(self.rng, 0.002, 0.05),
        ))  # fmt: skip

    def inbox(self, schema: str, event: Event, at: datetime) -> None:
        self.rows[f"{schema}.processed_events"].append((event.event_id, event.event_type, at))


@dataclass(frozen=True)
class Step:
    """A staff (or customer) action on the case, planned from its receipt."""

    action: Action
    at: datetime
    actor: str
    payload: dict[str, Any] = field(default_factory=dict)
    satisfied: bool | None = None


def submission(rng: random.Random, pack: CachedPack, branch: Branch) -> SubmitComplaint:
    category = rng.choice(pack.categories)
    contact = rng.random()
    customer: dict[str, Any] = {
        "name": rng.choice(NAMES),
        "type": rng.choice(CUSTOMERS.get(pack.pack, ("end_customer", "member", "dealer"))),
        "language": "en" if rng.random() < 0.2 else "zh",
    }
    if contact < 0.9:
        customer["phone"] = f"139{rng.randrange(10**8):08d}"
    if contact > 0.2:
        customer["email"] = f"c{rng.randrange(10**9)}@example.com"
    return SubmitComplaint.model_validate(
        {
            "branch_id": branch.id,
            "channel": rng.choices(CHANNELS, CHANNEL_WEIGHTS)[0],
            "customer": customer,
            "description": f"{category.label.zh}：{rng.choice(DESCRIPTIONS)}",
            "category": category.code,
            "severity": rng.choices(("normal", "urgent", "major"), (85, 12, 3))[0],
            "region": "foreign" if rng.random() < 0.04 else "domestic",
            "first_contact_staff": rng.choice(pack.staff).id if rng.random() < 0.6 else None,
        }
    )


def receive(
    world: World, rng: random.Random, now: datetime, rows: Rows, received_at: datetime,
    number: str,
) -> Case:  # fmt: skip
    """A complaint intake took over HTTP (most with an Idempotency-Key) or Kafka."""
    pack, branch = world.pick(rng)
    submitted = submission(rng, pack, branch)
    path = rng.choices(("http-key", "kafka", "http"), (60, 30, 10))[0]
    event = ComplaintReceived(
        event_id=event_id(rng),
        occurred_at=received_at,
        complaint_no=number,
        branch_id=branch.id,
        correlation_id=str(event_id(rng)),
        producer="intake",
        status="received",
        sequence=1,
        actor=submitted.first_contact_staff,
        received_at=received_at,
        pack=pack.pack,
        pack_version=pack.version,
        submission_id=str(event_id(rng)) if path != "http" else None,
        **submitted.model_dump(exclude={"submission_id", "branch_id", "taken_at"}),
    )
    return Case(world, pack, branch, rng, now, rows, event, submitted, path)


class Loads:
    """Each person's open cases as routing saw them when it assigned: cases assigned, less
    those closed by then."""

    def __init__(self) -> None:
        self.open: Counter[tuple[str, str]] = Counter()
        self._closing: list[tuple[datetime, str, str]] = []

    def at(self, moment: datetime) -> None:
        while self._closing and self._closing[0][0] <= moment:
            _, pack, staff = heapq.heappop(self._closing)
            self.open[(pack, staff)] -= 1

    def of(self, pack: str, staff: Iterable[str]) -> dict[str, int]:
        return {s: self.open[(pack, s)] for s in staff if self.open[(pack, s)]}

    def take(self, pack: str, staff: str, closed_at: datetime | None) -> None:
        self.open[(pack, staff)] += 1
        if closed_at is not None:
            heapq.heappush(self._closing, (closed_at, pack, staff))


Routed = tuple[ComplaintAssigned, Decision]


def route(case: Case, loads: Loads) -> Routed | None:
    """Routing's decision on ComplaintReceived, on the loads of that moment."""
    event, pack = case.received, case.pack
    at = event.occurred_at + lag(case.rng)
    if at > case.now:
        return None
    text = f"{event.description}\n{event.customer_request or ''}"
    to = target(pack, RoutingInput(event.category, event.severity, event.channel,
                                   event.customer.type, event.region, text))  # fmt: skip
    loads.at(at)
    decision = choose(pack, to, loads.of(pack.pack, (m.id for m in to.pool)), at)
    assigned = ComplaintAssigned.caused_by(
        event, producer="routing", event_id=event_id(case.rng), occurred_at=at,
        **decided(decision, pack),
    )  # fmt: skip
    case.inbox("routing", event, at)
    case.out("routing", case.world.topics.routing.name, assigned, at)
    return assigned, decision


def plan_steps(case: Case, assignee: str, start: datetime) -> list[Step]:
    """The case's handling from its assignment on: investigation, perhaps a hold, a decision
    (or not upheld), feedback, resolution, the return visit the pack asks for, closing. A
    few cases are forgotten and stay open."""
    rng, pack = case.rng, case.pack
    pace = PACE.get(pack.pack, 1.0) * rng.lognormvariate(0, 0.5) * (6 if rng.random() < 0.03 else 1)
    t = start + hours(rng, 0.2, 8) * pace
    steps = [Step(Action.START_INVESTIGATION, t, assignee)]
    if rng.random() < 0.003:
        return steps
    if rng.random() < 0.04:
        t += hours(rng, 1, 12)
        steps.append(Step(Action.HOLD, t, assignee, {"reason": "waiting_for_customer"}))
        t += hours(rng, 2, 72)
        steps.append(Step(Action.RESUME, t, assignee))
    t += hours(rng, 2, 40) * pace
    if rng.random() < 0.06:
        return [*steps, Step(Action.MARK_NOT_UPHELD, t, assignee, {"reason": "经核实，情况不属实"})]
    # Feedback may come before or after the resolution: intake's life cycle allows both.
    return steps + sorted(answered(case, assignee, t, pace), key=lambda step: step.at)


def answered(case: Case, assignee: str, decided_at: datetime, pace: float) -> list[Step]:
    """From the decision on: the repaired product's delivery where the pack has one, the
    resolution, perhaps the customer's feedback, the return visit the pack asks for, and
    closing after all of them."""
    rng = case.rng
    decision = {"decision": "已核实并整改，向您致歉。"}
    steps = [Step(Action.COMMUNICATE_DECISION, decided_at, assignee, decision)]
    visit_from = decided_at
    if case.pack.pack == "furniture" and case.received.category == "product-quality":
        visit_from = decided_at + hours(rng, 24, 120)
        delivery = {"delivered_at": visit_from, "delivery_note": "维修后送达"}
        steps.append(Step(Action.RECORD_DELIVERY, visit_from, assignee, delivery))
    resolved = visit_from + hours(rng, 0.5, 24) * pace
    steps.append(Step(Action.RESOLVE, resolved, assignee, {"resolution": "问题已解决"}))
    if rng.random() < 0.6:
        scores = {k: rng.randint(3, 5) for k in ("quality", "attitude", "speed")}
        at = decided_at + hours(rng, 2, 72)
        steps.append(Step(Action.RECORD_FEEDBACK, at, "customer", {**scores, "satisfied": True},
                          satisfied=True))  # fmt: skip
    due = return_visit_due(case, visit_from)
    if due is not None:
        at = max(resolved, visit_from + (due - visit_from) * rng.uniform(0.5, 1.15))
        visit = {"method": "phone", "outcome": "客户满意", "satisfied": True}
        owner = case.received.actor or assignee
        steps.append(Step(Action.RECORD_RETURN_VISIT, at, owner, visit, satisfied=True))
    closed = max(step.at for step in steps) + hours(rng, 1, 48) * pace
    return [*steps, Step(Action.CLOSE, closed, assignee)]


def return_visit_due(case: Case, start: datetime) -> datetime | None:
    """When the pack's return visit after the answer (or the delivery) falls due, if any."""
    e = case.received
    for rule in case.pack.clocks:
        if (
            rule.return_visit
            and not rule.recurrence
            and rule.starts_on in ("DecisionCommunicated", "RepairedProductDelivered")
            and rule.matches(e.category, e.customer.type, e.severity, e.region)
        ):
            return start + timedelta(hours=rule.target_hours or 72)
    return None


def intake_events(
    case: Case, assigned: ComplaintAssigned | None, steps: list[Step]
) -> tuple[list[CaseEvent], CaseState]:
    """The complaint's events as intake's life cycle makes them, up to now; its state."""
    received = case.received
    events: list[CaseEvent] = [received]
    state = CaseState()
    if assigned is None:
        return events, state
    recorded = Step(Action.RECORD_ASSIGNMENT, assigned.occurred_at + lag(case.rng), "system", {
        "department": assigned.department,
        "assignee_id": assigned.assignee.staff_id if assigned.assignee else None,
    })  # fmt: skip
    for step in [recorded, *steps]:
        if step.at > case.now:
            break
        after = apply(state, step.action, satisfied=step.satisfied)
        kind = EVENT_OF_ACTION[step.action]
        payload = dict(step.payload)
        if "feedback_token" in kind.model_fields:
            secret = case.world.feedback_secret
            payload["feedback_token"] = feedback_token(secret, received.complaint_no)
        events.append(kind(
            event_id=event_id(case.rng), event_type=kind.EVENT_TYPE, occurred_at=step.at,
            complaint_no=received.complaint_no, branch_id=received.branch_id,
            correlation_id=received.correlation_id,
            causation_id=assigned.event_id if step is recorded else None, producer="intake",
            actor=step.actor, previous_status=state.status, status=after.status,
            round=after.round, sequence=len(events) + 1, **payload,
        ))  # fmt: skip
        state = after
    return events, state


def write_intake(
    case: Case, number: tuple[int, int], events: list[CaseEvent], state: CaseState,
    assigned: ComplaintAssigned | None,
) -> None:  # fmt: skip
    """The complaint row as its last event left it, its history, its submission, the
    outbox (with a Kafka branch's outcome) and routing's assignment in the inbox."""
    e, topic = case.received, case.world.topics.intake.name
    for event in events:
        details = event.model_dump(mode="json", exclude=HISTORY_EXCLUDES)
        case.rows["intake.case_history"].append((
            event.complaint_no, event.sequence, event.event_id, event.event_type,
            event.status.value, event.previous_status.value if event.previous_status else None,
            event.round, event.actor, json.dumps(details, ensure_ascii=False), event.occurred_at,
        ))  # fmt: skip
        case.out("intake", topic, event, event.occurred_at)
    if e.submission_id is not None:
        case.rows["intake.submissions"].append((e.branch_id, e.submission_id,
                                                case.submitted.fingerprint(), e.complaint_no,
                                                e.received_at))  # fmt: skip
    if case.path == "kafka":
        outcome = SubmissionAccepted(
            event_id=event_id(case.rng), event_type="SubmissionAccepted",
            occurred_at=e.received_at, submission_id=e.submission_id or "", branch_id=e.branch_id,
            correlation_id=e.correlation_id, complaint_no=e.complaint_no, duplicate=False,
        )  # fmt: skip
        case.out("intake", case.world.topics.submission_outcomes.name, outcome, e.received_at)
    department = assignee = None
    if assigned is not None and len(events) > 1:
        case.inbox("intake", assigned, events[1].occurred_at)
        department = assigned.department
        assignee = assigned.assignee.staff_id if assigned.assignee else None
    last = events[-1]
    case.rows["intake.complaints"].append((
        e.complaint_no, number[0], number[1], e.branch_id, e.pack, e.pack_version,
        e.channel.value, e.customer.model_dump_json(), e.description, e.customer_request,
        e.category, e.severity.value, e.region.value, e.first_contact_staff, last.status.value,
        e.received_at, e.correlation_id, None, None, None, "[]", e.submission_id,
        state.held_from.value if state.held_from else None, last.round, last.sequence,
        department, assignee, last.occurred_at,
    ))  # fmt: skip


def write_routing(case: Case, routed: Routed, events: list[CaseEvent]) -> bool:
    """The assignment, open unless the case ended; routing's inbox of the endings. True
    when the case counts in its assignee's load."""
    assigned, decision = routed
    finished = False
    for event in events:
        if event.event_type in ("ComplaintClosed", "ComplaintNotUpheld"):
            case.inbox("routing", event, event.occurred_at + lag(case.rng))
            finished = True
    case.rows["routing.assignments"].append((
        assigned.complaint_no, assigned.branch_id, decision.department, decision.assignee_id,
        decision.rule, case.pack.pack, case.pack.version, assigned.occurred_at, not finished,
        list(decision.also_notify), json.dumps([c.__dict__ for c in decision.candidates]),
        decision.reason, assigned.correlation_id,
    ))  # fmt: skip
    return not finished


@dataclass
class Timer:
    timer_id: uuid.UUID
    kind: str
    fraction: float | None
    level: int | None
    due_at: datetime
    fired_at: datetime | None = None
    cancelled: bool = False

    @property
    def pending(self) -> bool:
        return self.fired_at is None and not self.cancelled


@dataclass
class Clock:
    plan: PlannedClock
    due_at: datetime
    timers: list[Timer]
    state: str = "running"
    paused_at: datetime | None = None
    paused_seconds: int = 0
    stopped_at: datetime | None = None


class Sla:
    """sla's handling of one complaint: clocks started, paused, resumed and stopped by
    intake's events, timers fired when due if their clock still waits for them."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self.clocks: dict[uuid.UUID, Clock] = {}
        self.events: list[Event] = []
        e = case.received
        self.facts = ComplaintFacts(e.complaint_no, e.category, e.customer.type, e.severity,
                                    e.region)  # fmt: skip

    def emit(self, event: Event) -> None:
        self.events.append(event)
        self.case.out("sla", self.case.world.topics.sla.name, event, event.occurred_at)

    def play(self, events: list[CaseEvent]) -> None:
        """intake's events as they reached sla, then the timers due since; the rows."""
        for event in events:
            self.consume(event)
        self.fire_until(self.case.now)
        self.write()

    def consume(self, event: CaseEvent) -> None:
        """sla's on_intake_event, after the timers due before it has fired."""
        at = event.occurred_at + lag(self.case.rng)
        self.fire_until(at)
        self.case.inbox("sla", event, at)
        if isinstance(event, ComplaintReceived):
            self.start(event, "ComplaintReceived", event.received_at, at)
            self.major(event, at)
            return
        for clock in sorted(self.clocks.values(), key=lambda c: c.plan.clock_id):
            if clock.stopped_at is None and clock.state in ("running", "paused", "breached"):
                self.affect(clock, event, at)
        delivered = RepairedProductDelivered | ProjectDelivered
        started = event.delivered_at if isinstance(event, delivered) else event.occurred_at
        self.start(event, event.event_type, started, at)

    def start(self, cause: Event, starting: str, started_at: datetime, at: datetime) -> None:
        pack = self.case.pack
        for plan in plan_clocks(pack, self.facts, starting_event=starting, started_at=started_at):
            if plan.clock_id in self.clocks:
                continue  # ON CONFLICT DO NOTHING: another rule of the same clock started it
            final = "return_visit" if plan.return_visit else "breach"
            timers = [Timer(timer_id(plan.clock_id, "warning", f), "warning", f, None, when)
                      for f, when in plan.warnings]  # fmt: skip
            timers.append(Timer(timer_id(plan.clock_id, final), final, None, None, plan.due_at))
            self.clocks[plan.clock_id] = Clock(plan, plan.due_at, timers)
            self.emit(ClockStarted.caused_by(
                cause, producer="sla", event_id=event_id(self.case.rng), occurred_at=at,
                clock_id=plan.clock_id, name=plan.name, started_at=plan.started_at,
                due_at=plan.due_at, target_seconds=plan.target_seconds,
                calendar="working" if plan.working else "elapsed", rule=plan.rule,
                pack=pack.pack, pack_version=pack.version, return_visit=plan.return_visit,
            ))  # fmt: skip

    def major(self, event: ComplaintReceived, at: datetime) -> None:
        ladder = self.case.pack.escalation
        if event.severity.value == "major" and ladder is not None and ladder.major_to_top:
            top = ladder.ladder[-1]
            self.emit(EscalationRaised.caused_by(
                event, producer="sla", event_id=event_id(self.case.rng), occurred_at=at,
                level=top.level, to=top.to, reason="major",
            ))  # fmt: skip

    def affect(self, clock: Clock, event: CaseEvent, at: datetime) -> None:
        """Stop, pause or resume ``clock`` as sla's on_case_event does."""
        about: dict[str, Any] = {
            "clock_id": clock.plan.clock_id, "name": clock.plan.name, "producer": "sla",
            "event_id": event_id(self.case.rng), "occurred_at": at,
        }  # fmt: skip
        moment = event.occurred_at
        ends = event.event_type in ENDING_EVENTS and not clock.plan.return_visit
        if event.event_type in clock.plan.stops_on or ends:
            outcome = "breached" if clock.state == "breached" else "met"
            clock.state, clock.stopped_at, clock.paused_at = outcome, moment, None
            for timer in clock.timers:
                timer.cancelled = timer.cancelled or timer.fired_at is None
            self.emit(ClockStopped.caused_by(event, **about, stopped_at=moment, outcome=outcome,
                                             by_event=event.event_type))  # fmt: skip
        elif isinstance(event, ComplaintPutOnHold) and clock.state == "running":
            clock.state, clock.paused_at = "paused", moment
            self.emit(ClockPaused.caused_by(event, **about, paused_at=moment))
        elif isinstance(event, ComplaintResumed) and clock.paused_at is not None:
            self.resume(clock, moment)
            self.emit(ClockResumed.caused_by(event, **about, resumed_at=moment,
                                             due_at=clock.due_at,
                                             paused_seconds=clock.paused_seconds))  # fmt: skip

    def resume(self, clock: Clock, moment: datetime) -> None:
        paused_at, working = clock.paused_at, clock.plan.working
        assert paused_at is not None
        calendar = self.case.pack.working_time(clock.plan.calendar)

        def moved(when: datetime) -> datetime:
            return shifted(when, paused_at, moment, working=working, time=calendar)

        clock.due_at = moved(clock.due_at)
        clock.paused_seconds += int((moment - paused_at).total_seconds())
        for timer in clock.timers:
            if timer.pending:
                timer.due_at = moved(timer.due_at)
        clock.state, clock.paused_at = "running", None

    def due_timer(self, moment: datetime) -> tuple[Clock, Timer] | None:
        """The earliest timer claim_due_timers would take by ``moment``."""
        due = [
            (timer.due_at, clock, timer)
            for clock in self.clocks.values()
            for timer in clock.timers
            if timer.pending
            and timer.due_at <= moment
            and clock.state == ("breached" if timer.kind == "escalation" else "running")
        ]
        if not due:
            return None
        _, clock, timer = min(due, key=lambda d: d[0])
        return clock, timer

    def fire_until(self, moment: datetime) -> None:
        moment = min(moment, self.case.now)
        while (found := self.due_timer(moment)) is not None:
            clock, timer = found
            timer.fired_at = min(timer.due_at + lag(self.case.rng, 0.01, 0.2), self.case.now)
            self.fire(clock, timer)

    def fire(self, clock: Clock, timer: Timer) -> None:
        """fire_due_timers' event for the timer (the timer's id is the event's)."""
        e, pack = self.case.received, self.case.pack
        about: dict[str, Any] = {
            "complaint_no": e.complaint_no, "branch_id": e.branch_id, "producer": "sla",
            "correlation_id": e.correlation_id, "event_id": timer.timer_id,
            "occurred_at": timer.fired_at, "clock_id": clock.plan.clock_id,
        }  # fmt: skip
        if timer.kind == "escalation":
            assert pack.escalation is not None
            assert timer.level is not None
            rung = pack.escalation.ladder[timer.level - 1]
            self.emit(EscalationRaised(event_type=EscalationRaised.EVENT_TYPE, level=rung.level,
                                       to=rung.to, reason="breach", **about))  # fmt: skip
            return
        about |= {"name": clock.plan.name, "due_at": clock.due_at}
        if timer.kind == "warning":
            kind: type[Event] = ClockWarning
            about["fraction"] = timer.fraction
        elif timer.kind == "return_visit":
            kind = ReturnVisitDue
        else:
            kind = ClockBreached
            clock.state = "breached"
            breach = {"due_at": timer.due_at, "clock_id": clock.plan.clock_id,
                      "complaint_no": e.complaint_no}  # fmt: skip
            clock.timers += [Timer(row[0], "escalation", None, row[5], row[6])
                             for row in _ladder_timers(pack, breach)]  # fmt: skip
        self.emit(kind(event_type=kind.EVENT_TYPE, **about))

    def write(self) -> None:
        rows, e, pack = self.case.rows, self.case.received, self.case.pack
        rows["sla.cases"].append((e.complaint_no, e.branch_id, e.pack, e.category,
                                  e.customer.type.value, e.severity.value, e.region.value,
                                  e.correlation_id))  # fmt: skip
        for clock in self.clocks.values():
            p = clock.plan
            rows["sla.clocks"].append((
                p.clock_id, e.complaint_no, e.branch_id, p.name, p.rule, clock.state,
                p.started_at, clock.due_at, p.target_seconds, pack.pack, pack.version, 1,
                p.working, p.calendar, list(p.stops_on), p.return_visit, clock.paused_at,
                clock.paused_seconds, clock.stopped_at, p.occurrence, p.series_start,
            ))  # fmt: skip
            rows["sla.timers"] += [(t.timer_id, p.clock_id, e.complaint_no, t.kind, t.fraction,
                                    t.level, t.due_at, t.fired_at, t.cancelled)
                                   for t in clock.timers]  # fmt: skip


class Notify:
    """notify's handling of one complaint: its facts kept up to date, every message the
    pack's rules ask for rendered, queued and sent (or still waiting to go)."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self.facts: CaseFacts | None = None
        self.updated_at = case.received.received_at
        self.keys: set[str] = set()

    def play(self, events: Iterable[Event]) -> None:
        """Every event of the complaint as it reached notify (by time); the case's row."""
        for event in sorted(events, key=lambda e: e.occurred_at):
            self.consume(event)
        self.write()

    def consume(self, event: Event) -> None:
        """notify's on_event: the inbox, the facts, the messages."""
        if event.event_type not in RELEVANT:
            return
        at = event.occurred_at + lag(self.case.rng)
        self.case.inbox("notify", event, at)
        if isinstance(event, ComplaintReceived):
            facts = facts_from(event, self.case.pack)
        else:
            assert self.facts is not None
            facts = updated(self.facts, event)
        if facts != self.facts:
            self.facts, self.updated_at = facts, at
        if event.event_type in NOTIFICATION_TRIGGERS:
            self.queue(event, facts, at)

    def queue(self, event: Event, facts: CaseFacts, at: datetime) -> None:
        pack = self.case.pack
        for message in plan_for(pack, facts, event).messages:
            n = self.case.world.messages.render(pack, facts, event, message)
            if n.notification_key in self.keys:
                continue  # ON CONFLICT (notification_key) DO NOTHING
            self.keys.add(n.notification_key)
            not_before = at
            if message.channel == "sms":
                zone = Planner._timezone(pack, facts)
                to_customer = message.recipient.is_customer
                not_before = release_time(at, zone, pack.quiet_hours, urgent=facts.urgent,
                                          to_customer=to_customer)  # fmt: skip
            self.send(event, n, at, not_before)

    def send(self, cause: Event, n: Notification, at: datetime, not_before: datetime) -> None:
        """Queued at ``at``, sent by the delivery worker once due (unless that is after now)."""
        rng, topic = self.case.rng, self.case.world.topics.notify.name
        about = {"complaint_no": n.complaint_no, "branch_id": n.branch_id,
                 "correlation_id": n.correlation_id, "causation_id": n.source_event_id,
                 "producer": "notify", "notification_id": n.notification_id,
                 "channel": n.channel, "recipient_masked": n.recipient_masked,
                 "template": n.template, "to_customer": n.to_customer}  # fmt: skip
        queued = NotificationQueued(
            event_type=NotificationQueued.EVENT_TYPE, **about, occurred_at=at,
            event_id=uuid.uuid5(n.notification_id, "queued"), rule=n.rule, language=n.language,
            not_before=not_before, segments=n.segments,
        )  # fmt: skip
        self.case.out("notify", topic, queued, at)
        attempt = max(at, not_before) + lag(rng, 0.01, 0.5)
        sent_at = attempt + lag(rng, 0.05, 1.5)
        if sent_at > self.case.now:
            self.notification(n, at, not_before, ("queued", 0, None, None, None, None, at))
            return
        provider, provider_id = self.provider(n, sent_at)
        sent = NotificationSent(
            event_type=NotificationSent.EVENT_TYPE, **about, occurred_at=sent_at,
            event_id=uuid.uuid5(n.notification_id, "sent"), language=n.language, sent_at=sent_at,
            provider=provider, provider_message_id=provider_id, attempts=1, segments=n.segments,
        )  # fmt: skip
        self.case.out("notify", topic, sent, sent_at)
        outcome = ("sent", 1, sent_at, attempt, provider, provider_id, sent_at)
        self.notification(n, at, not_before, outcome)

    def notification(
        self, n: Notification, at: datetime, not_before: datetime, outcome: tuple[Any, ...]
    ) -> None:
        """The row; ``outcome`` is (status, attempts, sent_at, first_attempt_at, provider,
        provider_message_id, updated_at)."""
        status, attempts, sent_at, attempt, provider, provider_id, updated_at = outcome
        self.case.rows["notify.notifications"].append((
            n.notification_id, n.notification_key, n.complaint_no, n.channel,
            n.recipient_masked, n.template, n.language, status, attempts, at, sent_at,
            n.source_event_id, n.branch_id, n.correlation_id, n.rule, n.address, n.to_customer,
            n.subject, n.body_text, n.body_html, n.sms_text, json.dumps(n.params), n.segments,
            not_before, attempt, provider, provider_id, updated_at,
        ))  # fmt: skip

    def provider(self, n: Notification, sent_at: datetime) -> tuple[str, str | None]:
        """Who took the message, and its id there, as the channels report them."""
        if n.channel == "email":
            stamp, serial = int(sent_at.timestamp() * 100), self.case.rng.getrandbits(60)
            return "smtp", f"<{stamp}.4242.{serial}.{n.notification_id}@complaints.local>"
        if n.channel == "sms":
            return "gateway", str(n.notification_id)
        return "webhook", None

    def write(self) -> None:
        assert self.facts is not None
        self.case.rows["notify.cases"].append(
            (self.facts.complaint_no, self.facts.model_dump_json(), self.updated_at)
        )


# --- A stage: the complaints one call adds ---------------------------------------------------


@dataclass(frozen=True)
class StagePlan:
    """The complaints one call adds: when they arrived, their numbers; small enough to hand
    to a worker process."""

    namespace: str
    arrivals: Arrivals
    numbering: Numbering
    seed: int
    first: int  # how many complaints the database held before

    @property
    def count(self) -> int:
        return self.arrivals.count


@dataclass
class Stage:
    """A worker's stage: complaints written chunk by chunk in time order (routing's loads
    carry over from one chunk to the next)."""

    plan: StagePlan
    world: World
    loads: Loads = field(default_factory=Loads)

    @classmethod
    def of(cls, plan: StagePlan) -> Stage:
        return cls(plan, World.build(plan.namespace))

    def chunk(self, start: int, end: int) -> Chunk:
        rows = new_rows()
        chunk = Chunk(rows, Counter(), [])
        for index in range(start, end):
            self.complaint(index, chunk)
        return chunk

    def complaint(self, index: int, chunk: Chunk) -> None:
        """One complaint through every service."""
        arrivals, numbering = self.plan.arrivals, self.plan.numbering
        rng = random.Random(self.plan.seed * 1_000_003 + self.plan.first + index)
        received_at = arrivals.at(index)
        year, ordinal, number = numbering.number(index, received_at)
        chunk.numbers.append(number)
        case = receive(self.world, rng, arrivals.now, chunk.rows, received_at, number)
        routed = route(case, self.loads)
        assigned = routed[0] if routed else None
        steps: list[Step] = []
        if routed is not None:
            steps = plan_steps(case, routed[1].assignee_id, routed[0].occurred_at + SECOND)
        events, state = intake_events(case, assigned, steps)
        write_intake(case, (year, ordinal), events, state, assigned)
        sla = Sla(case)
        sla.play(events)
        Notify(case).play(consumed_by_notify(events, assigned, sla))
        if routed is not None:
            self.count_load(case, routed, events, steps, chunk)

    def count_load(
        self, case: Case, routed: Routed, events: list[CaseEvent], steps: list[Step],
        chunk: Chunk,
    ) -> None:  # fmt: skip
        assignee = routed[1].assignee_id
        if write_routing(case, routed, events):
            chunk.open_cases[(case.pack.pack, assignee)] += 1
        endings = (Action.CLOSE, Action.MARK_NOT_UPHELD)
        ending = next((step.at for step in steps if step.action in endings), None)
        self.loads.take(case.pack.pack, assignee, ending)


@dataclass
class Chunk:
    """A chunk's rows, the open cases it adds to routing's loads, its complaints' numbers."""

    rows: Rows
    open_cases: Counter[tuple[str, str]]
    numbers: list[str]


def consumed_by_notify(
    events: list[CaseEvent], assigned: ComplaintAssigned | None, sla: Sla
) -> Iterator[Event]:
    yield from events
    if assigned is not None:
        yield assigned
    yield from sla.events


# --- Loading ----------------------------------------------------------------------------------


async def copy_rows(conn: asyncpg.Connection, rows: Rows) -> None:
    for table, records in rows.items():
        if records:
            schema, name = table.split(".")
            await conn.copy_records_to_table(
                name, records=records, columns=COLUMNS[table], schema_name=schema
            )


async def bump_counters(conn: asyncpg.Connection, last: dict[int, int]) -> None:
    await conn.executemany(
        """INSERT INTO intake.complaint_counters (year, last_ordinal) VALUES ($1, $2)
           ON CONFLICT (year) DO UPDATE
           SET last_ordinal = GREATEST(complaint_counters.last_ordinal, EXCLUDED.last_ordinal)""",
        list(last.items()),
    )


async def add_loads(conn: asyncpg.Connection, open_cases: Counter[tuple[str, str]]) -> None:
    await conn.executemany(
        """INSERT INTO routing.staff_load (pack, staff_id, open_cases) VALUES ($1, $2, $3)
           ON CONFLICT (pack, staff_id)
           DO UPDATE SET open_cases = staff_load.open_cases + EXCLUDED.open_cases""",
        [(pack, staff, n) for (pack, staff), n in open_cases.items()],
    )


async def write_chunk(database_url: str, chunk: Chunk, last_ordinals: dict[int, int]) -> None:
    """One transaction: the chunk's rows and what they move in the counters and loads (both
    commute, so workers may commit in any order)."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await copy_rows(conn, chunk.rows)
            await bump_counters(conn, last_ordinals)
            await add_loads(conn, chunk.open_cases)
    finally:
        await conn.close()


def load_run(
    stage: Stage, database_url: str, start: int, end: int
) -> tuple[Counter[str], list[str]]:
    """Complaints ``start`` to ``end - 1`` of the stage, a chunk at a time; the rows written
    per table, and the complaints' numbers."""
    written: Counter[str] = Counter()
    numbers: list[str] = []
    for first in range(start, end, CHUNK):
        last = min(first + CHUNK, end)
        chunk = stage.chunk(first, last)
        ordinals = stage.plan.numbering.last_ordinals(first, last)
        asyncio.run(write_chunk(database_url, chunk, ordinals))
        written.update({table: len(records) for table, records in chunk.rows.items()})
        numbers += chunk.numbers
    return written, numbers


# Each worker process's stage and database: it builds and writes a run of chunks.
_WORKER: dict[str, Any] = {}


def _start_worker(plan: StagePlan, database_url: str) -> None:
    _WORKER.update(stage=Stage.of(plan), database_url=database_url)


def _load_run_in_worker(start: int, end: int) -> tuple[Counter[str], list[str]]:
    return load_run(_WORKER["stage"], _WORKER["database_url"], start, end)


async def load(database_url: str, plan: StagePlan) -> tuple[dict[str, int], list[str]]:
    """The stage's complaints, split in runs of whole chunks between worker processes (one a
    core, each building a chunk while another's rows go in; a single run stays in this
    process); the rows written per table, and the complaints' numbers in order."""
    workers = max(1, min(WORKERS, plan.count // CHUNK))
    if workers == 1:
        written, numbers = await asyncio.to_thread(
            lambda: load_run(Stage.of(plan), database_url, 0, plan.count)
        )
        return dict(written), numbers
    cuts = [plan.count * w // workers // CHUNK * CHUNK for w in range(workers)] + [plan.count]
    loop = asyncio.get_running_loop()
    spawn = multiprocessing.get_context("spawn")  # no fork of a process running an event loop
    with ExitStack() as stack:
        runs = [
            loop.run_in_executor(
                stack.enter_context(ProcessPoolExecutor(1, mp_context=spawn,
                                                        initializer=_start_worker,
                                                        initargs=(plan, database_url))),
                _load_run_in_worker, start, end,
            )
            for start, end in itertools.pairwise(cuts)
        ]  # fmt: skip
        done = await asyncio.gather(*runs)
    total: Counter[str] = Counter()
    for counts, _ in done:
        total.update(counts)
    return dict(total), [number for _, numbers in done for number in numbers]


async def vacuum(conn: asyncpg.Connection) -> None:
    """What autovacuum would do after such a load: statistics and the visibility map."""
    for table in (*COLUMNS, "intake.complaint_counters", "routing.staff_load"):
        await conn.execute(f"VACUUM (ANALYZE) {table}")


async def migrate(database_url: str) -> None:
    for schema in (*SCHEMAS, "reporting"):
        await apply_migrations(database_url, schema, REPO / "services" / schema / "migrations")


async def preload(
    database_url: str, complaints: int, *, seed: int = 0, namespace: str = DEFAULT_NAMESPACE
) -> dict[str, Any]:
    """Fill every service's schema with ``complaints`` complaints' worth of state, topping
    up from what the database holds; ``namespace`` names the topics in the outbox rows.
    Returns the counts, the seconds each part took and the rows added per table."""
    started = time.monotonic()
    await migrate(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        before = await conn.fetchval("SELECT count(*) FROM intake.complaints")
        in_reporting = await conn.fetchval("SELECT count(*) FROM reporting.cases")
        if in_reporting != before:
            raise RuntimeError(
                f"reporting holds {in_reporting} complaints and intake {before}: not a database "
                "this preload filled (or one it was interrupted in); start from a fresh one"
            )
        added = max(0, complaints - before)
        result: dict[str, Any] = {"complaints_before": before, "complaints": before + added}
        if not added:
            return {**result, "seconds": round(time.monotonic() - started, 1)}
        rows = await conn.fetch("SELECT year, last_ordinal FROM intake.complaint_counters")
        counters: dict[int, int] = {row["year"]: row["last_ordinal"] for row in rows}
        zone = demo_zone()
        arrivals = Arrivals.over(datetime.now(UTC), zone, added)
        plan = StagePlan(namespace, arrivals, Numbering.of(arrivals, zone, counters), seed, before)
        result["rows_added"], numbers = await load(database_url, plan)
        result["load_seconds"] = round(time.monotonic() - started, 1)
        vacuum_started = time.monotonic()
        await vacuum(conn)
        result["vacuum_analyze_seconds"] = round(time.monotonic() - vacuum_started, 1)
    finally:
        await conn.close()
    reporting_started = time.monotonic()
    result["reporting"] = await preload_reporting(database_url, plan, numbers, complaints)
    result["reporting_seconds"] = round(time.monotonic() - reporting_started, 1)
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


# --- Reporting, by bench/reporting_scale.py's loader ----------------------------------------


async def preload_reporting(
    database_url: str, plan: StagePlan, numbers: list[str], complaints: int
) -> dict[str, Any]:
    """reporting_scale's projection rows for the stage's complaints, under intake's numbers
    (its own would collide with the ones intake hands out next), and reporting's inbox of
    their events. The stories are reporting_scale's: a case's branch, category and life in
    reporting are not those intake and the others have for it."""
    from bench import reporting_scale  # here: it imports bench/run.py, which imports this

    class Renumbered(reporting_scale.Synthesizer):
        def chunk(self, step: Any, first: int, count: int) -> dict[str, list[tuple[Any, ...]]]:
            rows = super().chunk(step, first, count)
            return {
                table: renumber(reporting_scale.COLUMNS[table], records, numbers, plan.first)
                for table, records in rows.items()
            }

    world = reporting_scale.build_world(complaints, WINDOW_DAYS)
    grown = await reporting_scale.grow(
        database_url,
        Renumbered(world, WINDOW_DAYS, plan.seed),
        plan.first,
        plan.first + plan.count,
        plan.first == 0,
    )
    grown["processed_events_added"] = await reporting_inbox(database_url, numbers)
    return grown


def renumber(
    columns: tuple[str, ...], records: list[tuple[Any, ...]], numbers: list[str], first: int
) -> list[tuple[Any, ...]]:
    """reporting_scale numbers complaint ``k`` (from 1, across loads) by its receipt day and
    ``k``; intake's number of the ``k``-th complaint takes its place."""
    if "complaint_no" not in columns:
        return records
    at = columns.index("complaint_no")
    return [(*r[:at], numbers[int(r[at][6:]) - 1 - first], *r[at + 1 :]) for r in records]


async def reporting_inbox(database_url: str, numbers: list[str]) -> int:
    """Every event of the loaded case timelines in reporting's inbox, as the projections
    recorded them."""
    conn = await asyncpg.connect(database_url)
    added = 0
    try:
        for start in range(0, len(numbers), 20_000):
            status = await conn.execute(
                """INSERT INTO reporting.processed_events (event_id, event_type, processed_at)
                   SELECT event_id, event_type, occurred_at + interval '50 milliseconds'
                   FROM reporting.case_timeline WHERE complaint_no = ANY($1::text[])""",
                numbers[start : start + 20_000],
            )
            added += int(status.split()[-1])
        await conn.execute("VACUUM (ANALYZE) reporting.processed_events")
    finally:
        await conn.close()
    return added


# --- The command line ---------------------------------------------------------------------


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.database_url is None:
        from bench.run import stack_env

        args.database_url = stack_env()["DATABASE_URL"]
    name = f"preload_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    database_url = args.database_url.rsplit("/", 1)[0] + f"/{name}"
    steps = []
    try:
        for size in sorted(args.sizes):
            print(f"preloading up to {size:,} complaints", flush=True)
            steps.append(await preload(database_url, size, seed=args.seed))
            steps[-1]["database_bytes"] = await admin.fetchval("SELECT pg_database_size($1)", name)
            print(json.dumps(steps[-1]), flush=True)
    finally:
        if args.keep:
            print(f"kept: {database_url}", flush=True)
        else:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
    return steps


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--database-url")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
