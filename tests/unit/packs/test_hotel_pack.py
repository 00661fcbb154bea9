"""The hotel pack (seed 000 第一篇 十二) routes as the seed says."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from services.routing.domain import RoutingInput, decide, stand_in
from services.sla.domain import ComplaintFacts, PlannedClock, plan_clocks
from shared.contracts.submissions import Channel, CustomerType, Region, Severity
from shared.policy import NotificationRule, PolicyPack
from tests.unit.packs.routing_cases import WORKING_HOURS, pack_named, route

CASES = [
    # (category, keyword text, department, assignee, rule)
    ("service-attitude", "", "front-office", "fo-supervisor", "rule:front-office-supervisor"),
    ("billing", "多收了一晚房费", "front-office", "fo-supervisor", "rule:front-office-supervisor"),
    ("room-cleanliness", "", "housekeeping", "hk-manager", "category:room-cleanliness"),
    ("food-beverage", "", "food-beverage", "fb-manager", "category:food-beverage"),
    ("facilities", "空调不制冷", "engineering", "eng-manager", "category:facilities"),
    ("unknown-thing", "", "front-office", "fo-agent", "triage"),
]


@pytest.mark.parametrize(("category", "text", "department", "assignee", "rule"), CASES)
def test_hotel_routing(category: str, text: str, department: str, assignee: str, rule: str) -> None:
    decision = route("hotel", category, text=text)
    assert (decision.department, decision.assignee_id, decision.rule) == (
        department,
        assignee,
        rule,
    )


def test_the_demo_branch_runs_the_hotel_pack() -> None:
    assert "hotel-demo" in {b.id for b in pack_named("hotel").branches}


def test_at_night_the_front_desk_is_on_shift_and_departments_are_not() -> None:
    night = datetime(2026, 11, 18, 2, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    decision = route("hotel", "facilities", at=night)
    assert decision.assignee_id == "eng-manager"
    assert "nobody on shift" in decision.reason
    triage = route("hotel", "unknown-thing", at=night, loads={"fo-agent": 10})
    assert triage.assignee_id == "fo-supervisor"  # both on shift; the agent is full


def test_the_escalation_ladder_climbs_from_the_front_office_supervisor_to_the_deputy_gm() -> None:
    pack = pack_named("hotel")
    assert pack.escalation is not None
    rungs = [(rung.level, rung.to) for rung in pack.escalation.ladder]
    assert rungs == [(1, ("fo-supervisor",)), (2, ("deputy-gm",))]  # 十二 1(1), 6(1)(2)
    assert [pack.member(person).name for _, (person,) in rungs] == ["王敏", "孙伟"]
    # The seed gives neither delays between rungs nor authority by amount.
    assert all(rung.after_hours is None for rung in pack.escalation.ladder)
    assert all(rung.max_compensation is None for rung in pack.escalation.ladder)
    assert all(rung.seed for rung in pack.escalation.ladder)


def test_major_complaints_go_to_the_top_rung_at_once() -> None:
    pack = pack_named("hotel")
    assert pack.escalation is not None
    assert pack.escalation.major_to_top is True
    (major,) = [
        rule
        for rule in pack.notifications
        if rule.event == "ComplaintReceived" and "major" in rule.when.severities
    ]
    assert "deputy-gm" in major.to


def test_notifications_tell_the_customer_the_assignee_and_the_supervisors() -> None:
    def rule_for(event: str, recipient: str) -> NotificationRule:
        return next(
            rule
            for rule in pack_named("hotel").notifications
            if rule.event == event and recipient in rule.to and not rule.when.severities
        )

    acknowledgement = rule_for("ComplaintReceived", "customer")
    assert (acknowledgement.template, set(acknowledgement.channels)) == (
        "acknowledgement",
        {"email", "sms"},
    )
    assert rule_for("ComplaintAssigned", "assignee").template == "assignment"
    assert rule_for("ComplaintAssigned", "also_notify").template == "assignment"
    assert rule_for("ComplaintAssigned", "previous_assignee").template == "reassignment"
    breach = rule_for("ClockBreached", "supervisor")
    assert (breach.template, "fo-supervisor" in breach.to) == ("breach", True)
    assert rule_for("ReturnVisitDue", "owner").template == "return-visit-due"
    for event in ("DecisionCommunicated", "ComplaintAnsweredOnSpot", "ComplaintNotUpheld"):
        assert rule_for(event, "customer").template == "decision"


def test_only_customer_templates_reach_the_customer() -> None:
    customer_templates = {
        rule.template for rule in pack_named("hotel").notifications if "customer" in rule.to
    }
    assert customer_templates == {"acknowledgement", "decision"}  # 004 篇二 4.2.3.1 ①


def test_someone_away_is_passed_over_and_their_stand_in_found() -> None:
    hotel = pack_named("hotel")
    away = PolicyPack.model_validate(
        {
            **hotel.model_dump(),
            "staff": [
                {**s.model_dump(), "available": s.id != "fo-supervisor"} for s in hotel.staff
            ],
        }
    )
    billing = RoutingInput(
        "billing", Severity.NORMAL, Channel.PHONE, CustomerType.MEMBER, Region.DOMESTIC, ""
    )
    assert decide(hotel, billing, {}, WORKING_HOURS).assignee_id == "fo-supervisor"
    # The rule wants the supervisor; with her away, the front office's agent takes it.
    assert decide(away, billing, {}, WORKING_HOURS).assignee_id == "fo-agent"
    stand = stand_in(away, "front-office", "fo-supervisor", {}, WORKING_HOURS)
    assert stand.assignee_id == "fo-agent"
    assert stand.rule == "reroute:unavailable"


SHANGHAI = ZoneInfo("Asia/Shanghai")


def hotel_clocks(
    customer_type: CustomerType,
    started_at: datetime = WORKING_HOURS,
    starting_event: str = "ComplaintReceived",
) -> list[PlannedClock]:
    return plan_clocks(
        pack_named("hotel"),
        ComplaintFacts(
            complaint_no="261118001",
            category="facilities",
            customer_type=customer_type,
            severity=Severity.NORMAL,
            region=Region.DOMESTIC,
        ),
        starting_event=starting_event,
        started_at=started_at,
    )


def test_an_in_house_guests_complaint_is_handled_within_24_hours() -> None:
    # 十二 4(6): received Wednesday 2026-11-18 10:00, due Thursday 10:00; elapsed hours.
    (clock,) = hotel_clocks(CustomerType.IN_HOUSE_GUEST)
    assert (clock.name, clock.rule, clock.working) == ("resolution", "in-house-guest-24h", False)
    assert clock.due_at == datetime(2026, 11, 19, 10, 0, tzinfo=SHANGHAI)
    assert clock.warnings == (
        (0.5, datetime(2026, 11, 18, 22, 0, tzinfo=SHANGHAI)),
        (0.8, datetime(2026, 11, 19, 5, 12, tzinfo=SHANGHAI)),
    )
    # Handled: resolved, or a general complaint settled face to face (4(2)).
    assert set(clock.stops_on) == {"ComplaintResolved", "ComplaintAnsweredOnSpot"}
    assert clock.return_visit is False


@pytest.mark.parametrize("customer_type", [CustomerType.DEPARTED_GUEST, CustomerType.MEMBER])
def test_every_other_guests_complaint_is_handled_within_72_hours(
    customer_type: CustomerType,
) -> None:
    # 十二 4(7): due Saturday 2026-11-21 10:00, weekend or not.
    (clock,) = hotel_clocks(customer_type)
    assert (clock.name, clock.rule) == ("resolution", "other-guests-72h")
    assert clock.due_at == datetime(2026, 11, 21, 10, 0, tzinfo=SHANGHAI)
    assert clock.warnings == (
        (0.5, datetime(2026, 11, 19, 22, 0, tzinfo=SHANGHAI)),
        (0.8, datetime(2026, 11, 20, 19, 36, tzinfo=SHANGHAI)),
    )


def test_the_hotel_clocks_run_through_national_day() -> None:
    # The hotel never closes: received 2026-09-30 10:00, the 24 h end on 10-01 (a public
    # holiday) and the 72 h on 10-03, as on any other day.
    eve = datetime(2026, 9, 30, 10, 0, tzinfo=SHANGHAI)
    (in_house,) = hotel_clocks(CustomerType.IN_HOUSE_GUEST, eve)
    (departed,) = hotel_clocks(CustomerType.DEPARTED_GUEST, eve)
    assert in_house.due_at == datetime(2026, 10, 1, 10, 0, tzinfo=SHANGHAI)
    assert departed.due_at == datetime(2026, 10, 3, 10, 0, tzinfo=SHANGHAI)


def test_the_hotel_has_no_return_visit_and_no_clock_started_later() -> None:
    # Chapter 十二 has no 回访 and counts every deadline from the complaint.
    assert all(rule.starts_on == "ComplaintReceived" for rule in pack_named("hotel").clocks)
    assert not any(rule.return_visit for rule in pack_named("hotel").clocks)
    assert hotel_clocks(CustomerType.IN_HOUSE_GUEST, starting_event="DecisionCommunicated") == []
