"""The fault harness's verdict (reliability/reconcile.py) finds what is lost and doubled.

A clean, consistent world of three complaints is judged clean; each doctored copy of it
(an effect removed, an effect repeated, a count off by one) must be judged lost or doubled
in the right check, so that the harness's zero is a real zero.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from reliability.reconcile import (
    Asked,
    Complaint,
    Notification,
    Observed,
    expected_clocks,
    verdict,
)
from shared.policy import load_packs
from shared.settings import REPO_ROOT

REGISTRY = load_packs(REPO_ROOT / "policy-packs")
RECEIVED_AT = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


def complaint(ordinal: int, *, status: str = "assigned") -> Complaint:
    return Complaint(
        complaint_no=f"261122{ordinal:03d}",
        year=2026,
        ordinal=ordinal,
        branch_id="hotel-demo",
        submission_id=f"key-{ordinal}",
        status=status,
        received_event=uuid.uuid4(),
        pack="hotel",
        category="facilities",
        severity="urgent",
        region="domestic",
        customer_type="in_house_guest",
        channel="phone",
        department="engineering",
        received_at=RECEIVED_AT,
        contact_channels=frozenset({"email", "sms"}),
    )


def ack(c: Complaint, channel: str, status: str = "sent") -> Notification:
    return Notification(uuid.uuid4(), c.complaint_no, channel, "acknowledgement", True, status)


def clean_world() -> tuple[list[Asked], Observed]:
    complaints = [complaint(1), complaint(2), complaint(3, status="closed")]
    asked = [
        Asked(c.submission_id or "", c.branch_id, "http", (c.complaint_no,), confirmed=True)
        for c in complaints
    ]
    notifications = [ack(c, channel) for c in complaints for channel in ("email", "sms")]
    notifications.append(
        Notification(uuid.uuid4(), "261122001", "email", "complaint-received", False, "sent")
    )
    clocks = expected_clocks(complaints, REGISTRY)
    every_clock = [clock for ids in clocks.values() for clock in ids]
    statuses = Counter(c.status for c in complaints)
    seen = Observed(
        complaints=complaints,
        submissions={(c.branch_id, c.submission_id or ""): c.complaint_no for c in complaints},
        first_decisions=Counter(c.complaint_no for c in complaints),
        assignment_rows=frozenset(c.complaint_no for c in complaints),
        expected_clocks=clocks,
        clock_rows=frozenset(every_clock),
        clock_started=Counter(every_clock),
        notifications=notifications,
        delivered=Counter(n.notification_id for n in notifications),
        reporting_status={c.complaint_no: c.status for c in complaints},
        reporting_clocks=frozenset(every_clock),
        rollup_status=statuses,
        summary={
            "total": 3,
            "by_status": dict(statuses),
            "by_branch": {"hotel-demo": 3},
            "by_category": {"facilities": 3},
            "by_pack": {"hotel": 3},
            "by_channel": {"phone": 3},
            "by_department": {"engineering": 3},
        },
        dead_letters={"x.intake.dlq": 0},
        messages={"x.intake": 3, "x.intake.dlq": 0},
    )
    return asked, seen


def test_the_clean_world_is_clean() -> None:
    asked, seen = clean_world()
    assert seen.expected_clocks["261122001"], "the hotel's facilities complaints start clocks"
    judged = verdict(asked, seen)
    assert judged.as_dict()["checks"]["acknowledged"]["checked"] == 6
    assert (judged.lost, judged.doubled, judged.ok) == (0, 0, True), judged.as_dict()


def _first_clock(seen: Observed) -> uuid.UUID:
    return sorted(seen.expected_clocks["261122002"])[0]


def _first_ack(seen: Observed) -> Notification:
    return next(n for n in seen.notifications if n.template == "acknowledgement")


def never_routed(asked: list[Asked], seen: Observed) -> None:
    seen.first_decisions["261122002"] = 0


def routed_twice(asked: list[Asked], seen: Observed) -> None:
    seen.first_decisions["261122002"] = 2


def clock_missing(asked: list[Asked], seen: Observed) -> None:
    seen.clock_rows = seen.clock_rows - {_first_clock(seen)}


def clock_started_twice(asked: list[Asked], seen: Observed) -> None:
    seen.clock_started[_first_clock(seen)] += 1


def acknowledgement_never_queued(asked: list[Asked], seen: Observed) -> None:
    seen.notifications.remove(_first_ack(seen))


def acknowledgement_queued_twice(asked: list[Asked], seen: Observed) -> None:
    twin = replace(_first_ack(seen), notification_id=uuid.uuid4())
    seen.notifications.append(twin)
    seen.delivered[twin.notification_id] = 1


def acknowledgement_delivered_twice(asked: list[Asked], seen: Observed) -> None:
    seen.delivered[_first_ack(seen).notification_id] += 1


def acknowledgement_marked_sent_never_arrived(asked: list[Asked], seen: Observed) -> None:
    del seen.delivered[_first_ack(seen).notification_id]


def acknowledgement_dead(asked: list[Asked], seen: Observed) -> None:
    first = _first_ack(seen)
    seen.notifications[seen.notifications.index(first)] = replace(first, status="dead")


def staff_message_twice(asked: list[Asked], seen: Observed) -> None:
    staff = next(n for n in seen.notifications if not n.to_customer)
    seen.delivered[staff.notification_id] += 1


def unexplained_message_at_the_sink(asked: list[Asked], seen: Observed) -> None:
    seen.unexplained_deliveries = 1


def told_a_number_never_recorded(asked: list[Asked], seen: Observed) -> None:
    asked.append(Asked("key-9", "hotel-demo", "http", ("261122009",), confirmed=True))


def one_key_two_numbers(asked: list[Asked], seen: Observed) -> None:
    asked[0] = replace(asked[0], numbers=("261122001", "261122002"))


def kafka_submission_never_answered(asked: list[Asked], seen: Observed) -> None:
    asked.append(Asked("key-9", "hotel-demo", "kafka", (), confirmed=True))


def submission_refused(asked: list[Asked], seen: Observed) -> None:
    asked[0] = replace(asked[0], rejected="422: nope")


def complaint_nobody_asked_for(asked: list[Asked], seen: Observed) -> None:
    del asked[2]


def gap_in_the_numbers(asked: list[Asked], seen: Observed) -> None:
    del asked[0]
    seen.complaints.pop(0)
    _recount(seen)


def reporting_misses_a_case(asked: list[Asked], seen: Observed) -> None:
    del seen.reporting_status["261122002"]


def reporting_has_a_stale_status(asked: list[Asked], seen: Observed) -> None:
    seen.reporting_status["261122003"] = "assigned"


def rollup_counts_one_more(asked: list[Asked], seen: Observed) -> None:
    seen.rollup_status["closed"] += 1


def rollup_shows_a_stale_status(asked: list[Asked], seen: Observed) -> None:
    """One case still counted as assigned though intake closed it: the total is right,
    a status change is missing, nothing is counted twice."""
    seen.rollup_status["closed"] -= 1
    seen.rollup_status["assigned"] += 1


def summary_counts_one_less(asked: list[Asked], seen: Observed) -> None:
    assert seen.summary is not None
    seen.summary["by_branch"] = {"hotel-demo": 2}


def summary_unavailable(asked: list[Asked], seen: Observed) -> None:
    seen.summary = None


def reporting_misses_a_clock(asked: list[Asked], seen: Observed) -> None:
    seen.reporting_clocks = seen.reporting_clocks - {_first_clock(seen)}


def dead_lettered(asked: list[Asked], seen: Observed) -> None:
    seen.dead_letters = {"x.intake.dlq": 1}


def _recount(seen: Observed) -> None:
    """Keep the other checks' figures consistent with a world of fewer complaints."""
    statuses = Counter(c.status for c in seen.complaints)
    seen.rollup_status = statuses
    seen.reporting_status = {c.complaint_no: c.status for c in seen.complaints}
    assert seen.summary is not None
    seen.summary.update(
        total=len(seen.complaints),
        by_status=dict(statuses),
        by_branch={"hotel-demo": len(seen.complaints)},
        by_category={"facilities": len(seen.complaints)},
        by_pack={"hotel": len(seen.complaints)},
        by_channel={"phone": len(seen.complaints)},
        by_department={"engineering": len(seen.complaints)},
    )


Doctor = Callable[[list[Asked], Observed], None]

LOSSES: list[tuple[Doctor, str]] = [
    (never_routed, "routed"),
    (clock_missing, "clocks"),
    (acknowledgement_never_queued, "acknowledged"),
    (acknowledgement_marked_sent_never_arrived, "acknowledged"),
    (acknowledgement_dead, "acknowledged"),
    (told_a_number_never_recorded, "accepted"),
    (kafka_submission_never_answered, "accepted"),
    (submission_refused, "accepted"),
    (gap_in_the_numbers, "numbered"),
    (reporting_misses_a_case, "reported"),
    (reporting_has_a_stale_status, "reported"),
    (summary_counts_one_less, "reported"),
    (rollup_shows_a_stale_status, "reported"),
    (summary_unavailable, "reported"),
    (reporting_misses_a_clock, "reported"),
    (dead_lettered, "dead letters"),
]

DOUBLES: list[tuple[Doctor, str]] = [
    (routed_twice, "routed"),
    (clock_started_twice, "clocks"),
    (acknowledgement_queued_twice, "acknowledged"),
    (acknowledgement_delivered_twice, "acknowledged"),
    (staff_message_twice, "messages"),
    (unexplained_message_at_the_sink, "messages"),
    (one_key_two_numbers, "accepted"),
    (complaint_nobody_asked_for, "accepted"),
    (rollup_counts_one_more, "reported"),
]


@pytest.mark.parametrize(("doctor", "check"), LOSSES, ids=[d.__name__ for d, _ in LOSSES])
def test_a_loss_is_reported(doctor: Doctor, check: str) -> None:
    asked, seen = clean_world()
    doctor(asked, seen)
    judged = verdict(asked, seen)
    assert not judged.ok
    assert judged.lost >= 1
    assert judged.as_dict()["checks"][check]["lost"] >= 1, judged.as_dict()["checks"][check]


def test_a_stale_count_is_a_loss_not_a_double() -> None:
    asked, seen = clean_world()
    rollup_shows_a_stale_status(asked, seen)
    assert (verdict(asked, seen).lost, verdict(asked, seen).doubled) == (2, 0)


@pytest.mark.parametrize(("doctor", "check"), DOUBLES, ids=[d.__name__ for d, _ in DOUBLES])
def test_a_double_is_reported(doctor: Doctor, check: str) -> None:
    asked, seen = clean_world()
    doctor(asked, seen)
    judged = verdict(asked, seen)
    assert not judged.ok
    assert judged.doubled >= 1
    assert judged.as_dict()["checks"][check]["doubled"] >= 1, judged.as_dict()["checks"][check]


def test_an_unconfirmed_email_is_counted_apart_not_as_lost() -> None:
    asked, seen = clean_world()
    first = _first_ack(seen)
    seen.notifications[seen.notifications.index(first)] = replace(first, status="unconfirmed")
    del seen.delivered[first.notification_id]
    judged = verdict(asked, seen)
    assert (judged.ok, judged.unconfirmed) == (True, 1)


def test_a_branch_that_gave_up_is_not_the_platforms_loss() -> None:
    asked, seen = clean_world()
    asked.append(Asked("key-9", "hotel-demo", "http", (), confirmed=False))
    assert verdict(asked, seen).ok


def test_an_answer_lost_in_a_crash_is_not_a_loss_when_the_complaint_was_kept() -> None:
    """intake committed and died before answering: the branch heard nothing, yet the
    complaint exists under its key and is handled like the others."""
    asked, seen = clean_world()
    asked[0] = replace(asked[0], numbers=(), confirmed=False)
    assert verdict(asked, seen).ok
