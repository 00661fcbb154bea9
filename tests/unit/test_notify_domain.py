"""Who hears what, when SMS may go, how long an SMS is: notify's pure rules."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notify.domain import (
    CaseFacts,
    PlannedMessage,
    facts_from,
    notification_id,
    notification_key,
    plan_for,
    release_time,
    retry_delay,
    sms_segments,
    to_e164,
    updated,
)
from shared.contracts import (
    ComplaintAssigned,
    ComplaintReceived,
    EscalationRaised,
    Event,
    decode_event,
)
from shared.contracts.intake import DecisionCommunicated
from shared.contracts.sla import ClockBreached
from shared.policy import PolicyPack, QuietHours, load_packs
from tests.contracts.golden import golden_samples

PACKS = load_packs(Path(__file__).resolve().parents[2] / "policy-packs")
HOTEL = PACKS.require("hotel")
SHANGHAI = "Asia/Shanghai"


def planned(pack: PolicyPack, case: CaseFacts, event: Event) -> list[PlannedMessage]:
    return plan_for(pack, case, event).messages


def received(**changes: object) -> ComplaintReceived:
    sample = golden_samples()["ComplaintReceived"]
    event = decode_event(json.dumps({**sample, **changes}).encode())
    assert isinstance(event, ComplaintReceived)
    return event


def hotel_case(**changes: object) -> CaseFacts:
    return facts_from(received(**changes), HOTEL)


def follow_up(event_type: str, case: CaseFacts, **fields: object) -> Event:
    sample = golden_samples()[event_type]
    event = decode_event(
        json.dumps({**sample, "complaint_no": case.complaint_no, **fields}, default=str).encode()
    )
    assert event is not None
    return event


def recipients(
    messages: list[PlannedMessage], channel: str | None = None
) -> set[tuple[str, str, str]]:
    return {
        (m.recipient.key, m.channel, m.template)
        for m in messages
        if channel is None or m.channel == channel
    }


def test_a_new_complaint_is_acknowledged_to_the_customer_by_email_and_sms() -> None:
    case = hotel_case()
    messages = planned(HOTEL, case, received())
    assert ("customer", "email", "acknowledgement") in recipients(messages)
    assert ("customer", "sms", "acknowledgement") in recipients(messages)
    sms = next(m for m in messages if m.channel == "sms" and m.recipient.is_customer)
    assert sms.address == "+8613800138000"  # the customer's "+86 138 0013 8000" in E.164


def test_the_front_office_supervisor_hears_of_every_complaint_in_the_hotel() -> None:
    messages = planned(HOTEL, hotel_case(), received())
    assert ("staff:fo-supervisor", "email", "complaint-received") in recipients(messages)


def test_a_major_complaint_reaches_the_top_at_once_but_a_normal_one_does_not() -> None:
    normal = recipients(planned(HOTEL, hotel_case(), received()))
    major = recipients(planned(HOTEL, hotel_case(severity="major"), received(severity="major")))
    assert not any(template == "major-complaint" for _, _, template in normal)
    assert ("staff:deputy-gm", "email", "major-complaint") in major
    assert ("staff:deputy-gm", "sms", "major-complaint") in major


def test_a_customer_without_email_gets_no_email_but_still_an_sms() -> None:
    customer = {**golden_samples()["ComplaintReceived"]["customer"], "email": None}
    event = received(customer=customer)
    messages = planned(HOTEL, facts_from(event, HOTEL), event)
    assert ("customer", "email", "acknowledgement") not in recipients(messages)
    assert ("customer", "sms", "acknowledgement") in recipients(messages)


def test_the_assignee_hears_of_an_assignment_and_the_previous_one_of_a_reassignment() -> None:
    case = hotel_case()
    assigned = follow_up(
        "ComplaintAssigned",
        case,
        assignee={"staff_id": "eng-manager", "name": "周强"},
        previous_assignee={"staff_id": "fo-agent", "name": "李静"},
        also_notify=[],
    )
    assert isinstance(assigned, ComplaintAssigned)
    messages = recipients(planned(HOTEL, updated(case, assigned), assigned))
    assert ("staff:eng-manager", "email", "assignment") in messages
    assert ("staff:fo-agent", "email", "reassignment") in messages


def test_a_breach_reaches_assignee_supervisor_and_front_office_once_each() -> None:
    case = hotel_case().model_copy(update={"assignee": "fo-agent", "department": "front-office"})
    breached = follow_up("ClockBreached", case)
    assert isinstance(breached, ClockBreached)
    messages = planned(HOTEL, case, breached)
    email = recipients(messages, "email")
    # fo-agent's supervisor is fo-supervisor, whom the rule also names: told once.
    assert email == {
        ("staff:fo-agent", "email", "breach"),
        ("staff:fo-supervisor", "email", "breach"),
    }


def test_an_escalation_reaches_the_people_of_its_rung() -> None:
    case = hotel_case()
    raised = follow_up("EscalationRaised", case, to=["deputy-gm"], level=2)
    assert isinstance(raised, EscalationRaised)
    assert ("staff:deputy-gm", "sms", "escalation-raised") in recipients(
        planned(HOTEL, case, raised)
    )


def test_the_decision_goes_to_the_customer_in_their_language() -> None:
    customer = {**golden_samples()["ComplaintReceived"]["customer"], "language": "en"}
    event = received(customer=customer)
    case = facts_from(event, HOTEL)
    decision = follow_up("DecisionCommunicated", case)
    assert isinstance(decision, DecisionCommunicated)
    to_customer = [m for m in planned(HOTEL, case, decision) if m.recipient.is_customer]
    assert to_customer
    assert {m.recipient.language for m in to_customer} == {"en"}


def test_the_promised_reply_time_is_the_earliest_deadline_the_complaint_starts() -> None:
    case = hotel_case()
    assert case.promised_reply_at is not None
    assert case.promised_reply_at > case.received_at


@pytest.mark.parametrize("pack", sorted(PACKS.packs))
def test_every_pack_acknowledges_a_complaint_to_its_customer(pack: str) -> None:
    policy: PolicyPack = PACKS.require(pack)
    branch = policy.branches[0]
    category = policy.categories[0].code
    event = received(branch_id=branch.id, pack=pack, category=category)
    messages = planned(policy, facts_from(event, policy), event)
    assert any(m.recipient.is_customer for m in messages), pack


def test_the_key_names_event_channel_recipient_and_template() -> None:
    case = hotel_case()
    event = received()
    messages = planned(HOTEL, case, event)
    keys = [notification_key(event.event_id, m) for m in messages]
    assert len(set(keys)) == len(keys)
    assert notification_id(keys[0]) == notification_id(keys[0])


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+86 138 0013 8000", "+8613800138000"),
        ("13800138000", "+8613800138000"),
        ("0086-138-0013-8000", "+8613800138000"),
        ("+1 (415) 555-0100", "+14155550100"),
        ("021-6123 4567", None),  # a landline without country: not an SMS destination
        ("+0 123", None),
    ],
)
def test_phone_numbers_become_e164(raw: str, e164: str | None) -> None:
    assert to_e164(raw) == e164


def test_sms_segments_follow_gsm7_and_ucs2_lengths() -> None:
    assert sms_segments("a" * 160) == 1
    assert sms_segments("a" * 161) == 2
    assert sms_segments("a" * 306) == 2
    assert sms_segments("a" * 307) == 3
    assert sms_segments("中" * 70) == 1
    assert sms_segments("中" * 71) == 2
    assert sms_segments("中" * 134) == 2
    assert sms_segments("中" * 135) == 3
    assert sms_segments("a" * 159 + "€") == 2  # € takes two GSM-7 septets
    assert sms_segments("a" * 159 + "’") == 3  # a curly quote forces UCS-2: 160 > 70


@given(st.text(max_size=500))
def test_segments_are_at_least_one_and_grow_with_the_text(text: str) -> None:
    assert sms_segments(text) >= 1
    assert sms_segments(text + text) >= sms_segments(text)


QUIET = QuietHours(start=time(21), end=time(8))


def shanghai(hour: int, minute: int = 0, day: int = 22) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=ZoneInfo(SHANGHAI)).astimezone(UTC)


def test_a_customer_sms_at_night_waits_until_eight_in_the_morning() -> None:
    late = shanghai(22, 30)
    assert release_time(late, SHANGHAI, QUIET, urgent=False, to_customer=True) == shanghai(
        8, day=23
    )
    early = shanghai(6, 15)
    assert release_time(early, SHANGHAI, QUIET, urgent=False, to_customer=True) == shanghai(8)


def test_daytime_urgent_and_staff_messages_go_at_once() -> None:
    night = shanghai(23)
    assert release_time(night, SHANGHAI, QUIET, urgent=True, to_customer=True) == night
    assert release_time(night, SHANGHAI, QUIET, urgent=False, to_customer=False) == night
    day = shanghai(12)
    assert release_time(day, SHANGHAI, QUIET, urgent=False, to_customer=True) == day
    assert release_time(shanghai(8), SHANGHAI, QUIET, urgent=False, to_customer=True) == shanghai(8)


@given(st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31)))
def test_a_released_customer_sms_never_goes_in_quiet_hours(moment: datetime) -> None:
    now = moment.replace(tzinfo=UTC)
    released = release_time(now, SHANGHAI, QUIET, urgent=False, to_customer=True)
    local = released.astimezone(ZoneInfo(SHANGHAI)).time()
    assert time(8) <= local < time(21)
    assert now <= released <= now + timedelta(hours=11)


@given(st.integers(min_value=1, max_value=30), st.integers(min_value=0, max_value=2**32))
def test_backoff_stays_within_its_cap_and_its_exponential_bound(attempt: int, seed: int) -> None:
    delay = retry_delay(attempt, base=2.0, cap=300.0, rng=random.Random(seed))
    assert 0 <= delay <= min(300.0, 2.0 * 2 ** (attempt - 1))


def test_a_staff_member_hears_in_their_own_language() -> None:
    case = hotel_case()
    assigned = follow_up(
        "ComplaintAssigned",
        case,
        assignee={"staff_id": "fo-agent", "name": "李静"},
        previous_assignee=None,
        also_notify=[],
    )
    to_agent = [m for m in planned(HOTEL, updated(case, assigned), assigned)]
    languages = {m.recipient.key: m.recipient.language for m in to_agent}
    assert languages["staff:fo-agent"] == "en"  # looks after international guests
