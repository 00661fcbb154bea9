"""After a run: did every accepted complaint get each of its effects exactly once?

Two halves. ``observe`` reads what the platform recorded (every service's schema, the
SMTP sink's .eml files, the fake SMS provider's journal, reporting's summary report and
the run's topics); a fault harness may read every schema, the services never do.
``verdict`` is pure: given what the branches asked (``Asked``) and what was observed, it
lists every effect missing (lost) or repeated (doubled), per check:

- accepted: every submission key a branch sent is one complaint, the one it was told;
  no complaint exists that no branch asked for;
- numbered: each year's ordinals run 1..N with no gap and no repeat;
- routed: routing's first decision (``ComplaintAssigned`` caused by the complaint's
  ``ComplaintReceived``) exists exactly once, and its assignment row;
- clocks: every clock sla's own plan (``plan_clocks``) says receipt starts exists once,
  with exactly one ``ClockStarted``;
- acknowledged: one acknowledgement per complaint and customer channel (e-mail when the
  customer gave an address, SMS when a phone), sent, and found exactly once at the sink;
- messages: every notification of the run (staff messages too) is at the sink at most
  once, and exactly once when notify says it was sent; nothing at the sink is unexplained;
- reported: reporting's case file has intake's status for every complaint, its rollups'
  and its summary report's counts equal intake's, and it shows every clock;
- dead letters: nothing was dead-lettered.

An e-mail notify marks ``unconfirmed`` (the process died after handing the data to the
SMTP server and before its reply: docs/notify.md) is never resent by design; it is
counted apart, and lost only if it reached nobody.
"""

from __future__ import annotations

import email.parser
import json
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.run import api_headers
from services.sla.domain import ComplaintFacts, plan_clocks
from shared.contracts.submissions import CustomerType, Region, Severity
from shared.policy import PackRegistry
from shared.topics import DEAD_LETTER_SUFFIX, all_topic_partitions

SENT = frozenset({"sent", "delivered"})
ACKNOWLEDGEMENT = "acknowledgement"
MESSAGE_ID = re.compile(r"\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})@")
EXAMPLES = 10


# --------------------------------------------------------------------------- what was asked


@dataclass(frozen=True)
class Asked:
    """One submission as its branch saw it: every complaint number it was told (201s over
    HTTP, ``SubmissionAccepted`` over Kafka) and whether it ever got through."""

    key: str
    branch_id: str
    path: str
    numbers: tuple[str, ...]
    confirmed: bool
    rejected: str | None = None


# --------------------------------------------------------------------------- what was recorded


@dataclass(frozen=True)
class Complaint:
    complaint_no: str
    year: int
    ordinal: int
    branch_id: str
    submission_id: str | None
    status: str
    received_event: uuid.UUID | None
    pack: str
    category: str
    severity: str
    region: str
    customer_type: str
    channel: str
    department: str | None
    received_at: datetime
    contact_channels: frozenset[str]  # "email", "sms": where the customer can be told


@dataclass(frozen=True)
class Notification:
    notification_id: uuid.UUID
    complaint_no: str
    channel: str
    template: str
    to_customer: bool
    status: str


@dataclass
class Observed:
    complaints: list[Complaint] = field(default_factory=list)
    submissions: dict[tuple[str, str], str] = field(default_factory=dict)
    first_decisions: Counter[str] = field(default_factory=Counter)
    assignment_rows: frozenset[str] = frozenset()
    expected_clocks: dict[str, frozenset[uuid.UUID]] = field(default_factory=dict)
    clock_rows: frozenset[uuid.UUID] = frozenset()
    clock_started: Counter[uuid.UUID] = field(default_factory=Counter)
    notifications: list[Notification] = field(default_factory=list)
    delivered: Counter[uuid.UUID] = field(default_factory=Counter)
    unexplained_deliveries: int = 0
    reporting_status: dict[str, str] = field(default_factory=dict)
    reporting_clocks: frozenset[uuid.UUID] = frozenset()
    rollup_status: Counter[str] = field(default_factory=Counter)
    summary: dict[str, Any] | None = None
    dead_letters: dict[str, int] = field(default_factory=dict)
    messages: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------- the verdict


@dataclass
class Check:
    """One effect checked for every subject: what was lost, doubled or left unconfirmed.
    A finding names its subject (a complaint number, a submission key, a count) first."""

    name: str
    checked: int = 0
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "lost": len(self.lost),
            "doubled": len(self.doubled),
            "unconfirmed": len(self.unconfirmed),
            "lost_examples": self.lost[:EXAMPLES],
            "doubled_examples": self.doubled[:EXAMPLES],
            "unconfirmed_examples": self.unconfirmed[:EXAMPLES],
        }


def _subject(finding: str) -> str:
    return finding.split(" ", 1)[0]


@dataclass
class Verdict:
    checks: list[Check]
    accepted: int
    messages: int

    @property
    def lost(self) -> int:
        """Subjects (complaints, submissions, counts) with at least one effect missing."""
        return len({_subject(f) for c in self.checks for f in c.lost})

    @property
    def doubled(self) -> int:
        return len({_subject(f) for c in self.checks for f in c.doubled})

    @property
    def unconfirmed(self) -> int:
        return len({f for c in self.checks for f in c.unconfirmed})

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.doubled == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "accepted": self.accepted,
            "messages": self.messages,
            "lost": self.lost,
            "doubled": self.doubled,
            "unconfirmed_emails": self.unconfirmed,
            "checks": {check.name: check.as_dict() for check in self.checks},
        }


def verdict(asked: list[Asked], seen: Observed) -> Verdict:
    checks = [
        check_accepted(asked, seen),
        check_numbered(seen),
        check_routed(seen),
        check_clocks(seen),
        check_acknowledged(seen),
        check_messages(seen),
        check_reported(seen),
        check_dead_letters(seen),
    ]
    return Verdict(checks, accepted=len(seen.complaints), messages=sum(seen.messages.values()))


def check_accepted(asked: list[Asked], seen: Observed) -> Check:
    check = Check("accepted", checked=len(asked))
    recorded = {c.complaint_no for c in seen.complaints}
    for submission in asked:
        check.lost += _submission_lost(submission, recorded, seen.submissions)
        told = sorted(set(submission.numbers))
        if len(told) > 1:
            check.doubled.append(f"{submission.key} answered with {', '.join(told)}")
    keys = {(s.branch_id, s.key) for s in asked}
    per_key = Counter((c.branch_id, c.submission_id) for c in seen.complaints)
    for complaint in seen.complaints:
        key = (complaint.branch_id, complaint.submission_id)
        if key not in keys:
            check.doubled.append(f"{complaint.complaint_no} recorded, never asked for")
        elif per_key[key] > 1:
            check.doubled.append(f"{complaint.complaint_no} one of {per_key[key]} for one key")
    return check


def _submission_lost(
    submission: Asked, recorded: set[str], by_key: dict[tuple[str, str], str]
) -> list[str]:
    if submission.rejected is not None:
        return [f"{submission.key} refused: {submission.rejected}"]
    kept = by_key.get((submission.branch_id, submission.key))
    if not submission.numbers:
        if submission.confirmed:
            where = f"recorded as {kept}" if kept else "not recorded"
            return [f"{submission.key} sent, never answered ({where})"]
        return []  # never got through (the branch gave up): not the platform's to keep
    told = sorted(set(submission.numbers))
    lost = [f"{submission.key} told {n}, not recorded" for n in told if n not in recorded]
    if kept is not None and kept not in told:
        lost.append(f"{submission.key} told {submission.numbers[0]}, recorded as {kept}")
    return lost


def check_numbered(seen: Observed) -> Check:
    check = Check("numbered", checked=len(seen.complaints))
    by_year: dict[int, Counter[int]] = defaultdict(Counter)
    for complaint in seen.complaints:
        by_year[complaint.year][complaint.ordinal] += 1
    for year, ordinals in sorted(by_year.items()):
        for missing in sorted(set(range(1, max(ordinals) + 1)) - set(ordinals)):
            check.lost.append(f"ordinal:{year}/{missing} a gap in the numbering")
        for ordinal, n in sorted(ordinals.items()):
            if n > 1:
                check.doubled.append(f"ordinal:{year}/{ordinal} given {n} times")
    return check


def check_routed(seen: Observed) -> Check:
    check = Check("routed", checked=len(seen.complaints))
    for complaint in seen.complaints:
        number = complaint.complaint_no
        decisions = seen.first_decisions[number]
        if decisions == 0:
            check.lost.append(f"{number} never routed")
        elif decisions > 1:
            check.doubled.append(f"{number} routed {decisions} times")
        if number not in seen.assignment_rows:
            check.lost.append(f"{number} has no assignment row")
    return check


def check_clocks(seen: Observed) -> Check:
    check = Check("clocks")
    for complaint in seen.complaints:
        for clock in sorted(seen.expected_clocks.get(complaint.complaint_no, ())):
            check.checked += 1
            started = seen.clock_started[clock]
            if clock not in seen.clock_rows or started == 0:
                check.lost.append(f"{complaint.complaint_no} clock {clock} not started")
            elif started > 1:
                check.doubled.append(f"{complaint.complaint_no} clock {clock} started {started}x")
    return check


def _acknowledgements(seen: Observed) -> dict[tuple[str, str], list[Notification]]:
    found: dict[tuple[str, str], list[Notification]] = defaultdict(list)
    for n in seen.notifications:
        if n.template == ACKNOWLEDGEMENT and n.to_customer:
            found[n.complaint_no, n.channel].append(n)
    return found


def check_acknowledged(seen: Observed) -> Check:
    check = Check("acknowledged")
    acks = _acknowledgements(seen)
    for complaint in seen.complaints:
        for channel in sorted(complaint.contact_channels):
            check.checked += 1
            subject = f"{complaint.complaint_no} {channel} acknowledgement"
            found = acks.get((complaint.complaint_no, channel), [])
            if not found:
                check.lost.append(f"{subject} never queued")
            elif len(found) > 1:
                check.doubled.append(f"{subject} queued {len(found)} times")
            else:
                _judge_delivery(check, subject, found[0], seen.delivered[found[0].notification_id])
    return check


def _judge_delivery(check: Check, subject: str, n: Notification, at_sink: int) -> None:
    """One notification against the messages the sinks took for it."""
    if at_sink > 1:
        check.doubled.append(f"{subject} delivered {at_sink} times")
    elif n.status in SENT and at_sink == 0:
        check.lost.append(f"{subject} marked {n.status}, never arrived")
    elif n.status == "unconfirmed":
        if at_sink == 0:
            check.unconfirmed.append(f"{subject} unconfirmed and never arrived")
    elif n.status not in SENT:
        check.lost.append(f"{subject} ended {n.status}")


def check_messages(seen: Observed) -> Check:
    check = Check("messages", checked=len(seen.notifications))
    for n in seen.notifications:
        subject = f"{n.complaint_no} {n.channel} {n.template}"
        _judge_delivery(check, subject, n, seen.delivered[n.notification_id])
    if seen.unexplained_deliveries:
        check.doubled.append(f"sink {seen.unexplained_deliveries} messages of no notification")
    return check


def check_reported(seen: Observed) -> Check:
    check = Check("reported", checked=len(seen.complaints))
    intake_status = {c.complaint_no: c.status for c in seen.complaints}
    for number, status in sorted(intake_status.items()):
        shown = seen.reporting_status.get(number)
        if shown is None:
            check.lost.append(f"{number} not in reporting")
        elif shown != status:
            check.lost.append(f"{number} reported {shown}, intake says {status}")
    for number in sorted(set(seen.reporting_status) - set(intake_status)):
        check.doubled.append(f"{number} in reporting, unknown to intake")
    _compare_counts(check, "rollup:status", Counter(intake_status.values()), seen.rollup_status)
    _check_summary(check, seen)
    _check_reported_clocks(check, seen)
    return check


def _compare_counts(check: Check, what: str, truth: Counter[str], shown: Counter[str]) -> None:
    """A key counted over intake's figure is a double only when more cases are counted in
    all than intake holds; with the total right, it is a case still shown under an older
    value, i.e. a change reporting missed."""
    excess = sum(shown.values()) - sum(truth.values())
    for key in sorted(set(truth) | set(shown)):
        difference = shown[key] - truth[key]
        finding = f"{what}:{key} {shown[key]} shown, {truth[key]} recorded"
        if difference > 0 and excess > 0:
            check.doubled.append(finding)
        elif difference != 0:
            check.lost.append(finding)


SUMMARY_DIMENSIONS = {
    "by_status": "status",
    "by_branch": "branch_id",
    "by_category": "category",
    "by_pack": "pack",
    "by_channel": "channel",
    "by_department": "department",
}


def _check_summary(check: Check, seen: Observed) -> None:
    if seen.summary is None:
        check.lost.append("summary:unavailable the summary report did not answer")
        return
    total = Counter({"all": len(seen.complaints)})
    _compare_counts(check, "summary:total", total, Counter({"all": seen.summary["total"]}))
    for dimension, attribute in SUMMARY_DIMENSIONS.items():
        truth = Counter(
            getattr(c, attribute) if getattr(c, attribute) is not None else "unknown"
            for c in seen.complaints
        )
        _compare_counts(check, f"summary:{dimension}", truth, Counter(seen.summary[dimension]))


def _check_reported_clocks(check: Check, seen: Observed) -> None:
    for complaint in seen.complaints:
        for clock in sorted(seen.expected_clocks.get(complaint.complaint_no, ())):
            if clock in seen.clock_rows and clock not in seen.reporting_clocks:
                check.lost.append(f"{complaint.complaint_no} clock {clock} not in reporting")


def check_dead_letters(seen: Observed) -> Check:
    check = Check("dead letters", checked=len(seen.dead_letters))
    for topic, records in sorted(seen.dead_letters.items()):
        if records:
            check.lost.append(f"dlq:{topic} {records} messages dead-lettered")
    return check


# --------------------------------------------------------------------------- observing


@dataclass(frozen=True)
class Sources:
    """Where one run's platform keeps what it did."""

    database_url: str
    bootstrap: str
    namespace: str
    mail_dir: Path
    sms_dir: Path
    reporting_url: str


async def observe(sources: Sources, registry: PackRegistry) -> Observed:
    conn = await asyncpg.connect(sources.database_url)
    try:
        seen = Observed(complaints=await _complaints(conn))
        seen.submissions = await _submissions(conn)
        seen.first_decisions = await _first_decisions(conn, seen.complaints)
        seen.assignment_rows = await _column(conn, "SELECT complaint_no FROM routing.assignments")
        seen.clock_rows = await _column(conn, "SELECT clock_id FROM sla.clocks")
        seen.clock_started = await _clock_started(conn)
        seen.notifications = await _notifications(conn)
        seen.reporting_status = await _reporting_status(conn)
        seen.reporting_clocks = await _column(conn, "SELECT clock_id FROM reporting.case_clocks")
        seen.rollup_status = await _rollup_status(conn)
    finally:
        await conn.close()
    seen.expected_clocks = expected_clocks(seen.complaints, registry)
    _take_deliveries(seen, sink_references(sources.mail_dir, sources.sms_dir))
    seen.summary = await _summary(sources.reporting_url)
    seen.messages = await topic_sizes(sources.bootstrap, sources.namespace)
    seen.dead_letters = {
        topic: n for topic, n in seen.messages.items() if topic.endswith(DEAD_LETTER_SUFFIX)
    }
    return seen


COMPLAINTS = """
SELECT c.complaint_no, c.year, c.ordinal, c.branch_id, c.submission_id, c.status, c.pack,
       c.category, c.severity, c.region, c.channel, c.department, c.received_at,
       c.customer ->> 'type' AS customer_type,
       coalesce(c.customer ->> 'email', '') <> '' AS has_email,
       coalesce(c.customer ->> 'phone', '') <> '' AS has_phone,
       h.event_id AS received_event
FROM intake.complaints c
LEFT JOIN intake.case_history h
       ON h.complaint_no = c.complaint_no AND h.sequence = 1
      AND h.event_type = 'ComplaintReceived'
"""


async def _complaints(conn: asyncpg.Connection) -> list[Complaint]:
    return [_complaint(row) for row in await conn.fetch(COMPLAINTS)]


def _complaint(row: asyncpg.Record) -> Complaint:
    channels = {"email"} if row["has_email"] else set()
    channels |= {"sms"} if row["has_phone"] else set()
    return Complaint(
        complaint_no=row["complaint_no"],
        year=row["year"],
        ordinal=row["ordinal"],
        branch_id=row["branch_id"],
        submission_id=row["submission_id"],
        status=row["status"],
        received_event=row["received_event"],
        pack=row["pack"],
        category=row["category"],
        severity=row["severity"],
        region=row["region"],
        customer_type=row["customer_type"],
        channel=row["channel"],
        department=row["department"],
        received_at=row["received_at"],
        contact_channels=frozenset(channels),
    )


async def _submissions(conn: asyncpg.Connection) -> dict[tuple[str, str], str]:
    rows = await conn.fetch("SELECT branch_id, submission_id, complaint_no FROM intake.submissions")
    return {(r["branch_id"], r["submission_id"]): r["complaint_no"] for r in rows}


async def _column(conn: asyncpg.Connection, sql: str) -> frozenset[Any]:
    return frozenset(row[0] for row in await conn.fetch(sql))


FIRST_DECISIONS = """
SELECT payload::jsonb ->> 'complaint_no' AS complaint_no,
       (payload::jsonb ->> 'causation_id')::uuid AS causation_id
FROM (SELECT convert_from(payload, 'UTF8') AS payload FROM routing.outbox
      WHERE headers ->> 'event_type' = 'ComplaintAssigned') AS assigned
"""


async def _first_decisions(conn: asyncpg.Connection, complaints: list[Complaint]) -> Counter[str]:
    """Routing's decisions taken on a complaint's receipt (not staff's later moves)."""
    received = {c.complaint_no: c.received_event for c in complaints}
    return Counter(
        row["complaint_no"]
        for row in await conn.fetch(FIRST_DECISIONS)
        if row["causation_id"] is not None
        and received.get(row["complaint_no"]) == row["causation_id"]
    )


CLOCKS_STARTED = """
SELECT (convert_from(payload, 'UTF8')::jsonb ->> 'clock_id')::uuid AS clock_id, count(*) AS n
FROM sla.outbox WHERE headers ->> 'event_type' = 'ClockStarted' GROUP BY 1
"""


async def _clock_started(conn: asyncpg.Connection) -> Counter[uuid.UUID]:
    return Counter({row["clock_id"]: row["n"] for row in await conn.fetch(CLOCKS_STARTED)})


async def _notifications(conn: asyncpg.Connection) -> list[Notification]:
    rows = await conn.fetch(
        """SELECT notification_id, complaint_no, channel, template, to_customer, status
           FROM notify.notifications"""
    )
    return [Notification(**dict(row)) for row in rows]


async def _reporting_status(conn: asyncpg.Connection) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT complaint_no, status FROM reporting.cases WHERE received_at IS NOT NULL"
    )
    return {row["complaint_no"]: row["status"] for row in rows}


async def _rollup_status(conn: asyncpg.Connection) -> Counter[str]:
    rows = await conn.fetch("SELECT status, sum(cases) AS n FROM reporting.case_counts GROUP BY 1")
    return Counter({row["status"]: int(row["n"]) for row in rows})


def expected_clocks(
    complaints: Iterable[Complaint], registry: PackRegistry
) -> dict[str, frozenset[uuid.UUID]]:
    """The clocks sla's own plan says each complaint's receipt starts."""
    return {c.complaint_no: _planned_clocks(c, registry) for c in complaints}


def _planned_clocks(complaint: Complaint, registry: PackRegistry) -> frozenset[uuid.UUID]:
    facts = ComplaintFacts(
        complaint_no=complaint.complaint_no,
        category=complaint.category,
        customer_type=CustomerType(complaint.customer_type),
        severity=Severity(complaint.severity),
        region=Region(complaint.region),
    )
    planned = plan_clocks(
        registry.require(complaint.pack),
        facts,
        starting_event="ComplaintReceived",
        started_at=complaint.received_at,
    )
    return frozenset(clock.clock_id for clock in planned)


def sink_references(mail_dir: Path, sms_dir: Path) -> list[str | None]:
    """The notification id of every message the sinks took (None where none is named):
    the e-mail's Message-ID carries it, the SMS gateway and webhooks its idempotency key."""
    return [*_mail_references(mail_dir), *_sms_references(sms_dir)]


def _mail_references(mail_dir: Path) -> list[str | None]:
    parser = email.parser.BytesHeaderParser()
    references: list[str | None] = []
    for path in sorted(mail_dir.glob("*.eml")):
        with path.open("rb") as message:
            headers = parser.parse(message)
        match = MESSAGE_ID.search(str(headers.get("Message-ID", "")))
        references.append(match.group(1) if match else None)
    return references


def _sms_references(sms_dir: Path) -> list[str | None]:
    journal = sms_dir / "messages.jsonl"
    if not journal.exists():
        return []
    lines = journal.read_text(encoding="utf-8").splitlines()
    return [json.loads(line).get("reference") for line in lines if line.strip()]


def _take_deliveries(seen: Observed, references: list[str | None]) -> None:
    known = {n.notification_id for n in seen.notifications}
    for reference in references:
        try:
            notification = uuid.UUID(reference or "")
        except ValueError:
            seen.unexplained_deliveries += 1
            continue
        if notification in known:
            seen.delivered[notification] += 1
        else:
            seen.unexplained_deliveries += 1


async def _summary(reporting_url: str) -> dict[str, Any] | None:
    try:
        async with httpx.AsyncClient(
            base_url=reporting_url, timeout=30, headers=api_headers()
        ) as client:
            answer = await client.get("/v1/reports/summary")
    except httpx.HTTPError:
        return None
    summary: dict[str, Any] | None = answer.json() if answer.status_code == 200 else None
    return summary


async def topic_sizes(bootstrap: str, namespace: str) -> dict[str, int]:
    """Records on each of the run's topics, dead-letter topics included."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic, count in all_topic_partitions(namespace).items()
            for p in range(count)
        ]
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
    finally:
        await consumer.stop()
    sizes: Counter[str] = Counter()
    for tp in partitions:
        sizes[tp.topic] += ends[tp] - starts[tp]
    return dict(sizes)
