"""The fitness-club pack (seed 003 六 投诉处理流程, 七 特殊突发事件处理) routes as the seed says."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from services.sla.domain import ComplaintFacts, plan_clocks
from shared.contracts.submissions import CustomerType, Region, Severity
from shared.policy import NotificationRule
from tests.unit.packs.routing_cases import pack_named, route

PACK = "fitness-club"
DUTY = ("duty-managers",)  # 六 1-2, 7-8: the duty manager takes every complaint
BEYOND = ("duty-managers", "store-manager")  # 六 9-10: written report to the store manager
INCIDENT = ("store-manager", "duty-managers", "fitness", "membership")  # 七 1-9

CASES = [
    # (category, text, severity, department, assignee, rule, also_notify)
    # 六 2-3: the supervisor of the area complained about investigates.
    (
        "coaching",
        "私教上课迟到",
        "normal",
        "fitness",
        "fitness-supervisor",
        "rule:coaching-supervisor",
        DUTY,
    ),
    (
        "front-desk",
        "前台态度冷淡",
        "normal",
        "customer-service",
        "fd-lead-1",
        "rule:front-desk-supervisor",
        DUTY,
    ),
    (
        "billing",
        "续卡多收了钱",
        "urgent",
        "customer-service",
        "cashier-manager",
        "rule:billing-supervisor",
        DUTY,
    ),
    (
        "membership",
        "会籍顾问反复推销",
        "normal",
        "membership",
        "membership-supervisor",
        "rule:membership-supervisor",
        DUTY,
    ),
    (
        "cleanliness",
        "浴室地面有积水",
        "normal",
        "cleaning",
        "cleaning-supervisor",
        "rule:cleanliness-supervisor",
        DUTY,
    ),
    (
        "facilities",
        "跑步机坏了没人修",
        "normal",
        "engineering",
        "eng-supervisor",
        "rule:facilities-supervisor",
        DUTY,
    ),
    # 六 9-10: beyond authority (major): the supervisor investigates, the store manager is told.
    (
        "coaching",
        "要求退还全部私教课费",
        "major",
        "fitness",
        "fitness-supervisor",
        "rule:coaching-beyond-authority",
        BEYOND,
    ),
    (
        "billing",
        "",
        "major",
        "customer-service",
        "cashier-manager",
        "rule:billing-beyond-authority",
        BEYOND,
    ),
    # 七: injuries follow the incident flow under the customer-service manager.
    (
        "injury-incident",
        "",
        "normal",
        "customer-service",
        "cs-manager",
        "rule:incident",
        INCIDENT,
    ),
    (
        "coaching",
        "上课时教练动作指导错误，我受伤了",
        "normal",
        "customer-service",
        "cs-manager",
        "rule:incident-by-keyword",
        INCIDENT,
    ),
    (
        "facilities",
        "Got an INJURY from a broken bench",
        "major",
        "customer-service",
        "cs-manager",
        "rule:incident-by-keyword",
        INCIDENT,
    ),
    # 六 1: what no rule or category decides goes to the duty managers.
    ("lost-property", "", "normal", "duty-managers", "duty-manager-1", "triage", ()),
]


@pytest.mark.parametrize(
    ("category", "text", "severity", "department", "assignee", "rule", "also_notify"), CASES
)
def test_fitness_club_routing(
    category: str,
    text: str,
    severity: str,
    department: str,
    assignee: str,
    rule: str,
    also_notify: tuple[str, ...],
) -> None:
    decision = route(
        PACK, category, text=text, severity=severity, channel="walk_in", customer_type="member"
    )
    assert (decision.department, decision.assignee_id, decision.rule) == (
        department,
        assignee,
        rule,
    )
    assert set(decision.also_notify) == set(also_notify)


def test_the_demo_branch_runs_the_fitness_club_pack() -> None:
    branches = {b.id: b for b in pack_named(PACK).branches}
    assert branches["fitness-club-demo"].timezone == "Asia/Shanghai"


def test_every_category_has_a_rule_that_tells_the_duty_managers() -> None:
    pack = pack_named(PACK)
    for category in pack.categories:
        decision = route(PACK, category.code)
        assert "duty-managers" in decision.also_notify, category.code


def test_a_busy_front_desk_lead_gives_way_to_the_other() -> None:
    decision = route(PACK, "front-desk", loads={"fd-lead-1": 6, "fd-lead-2": 1})
    assert decision.assignee_id == "fd-lead-2"
    assert {c.staff_id for c in decision.candidates} == {"fd-lead-1", "fd-lead-2"}


def test_a_full_duty_manager_gives_way_to_the_other() -> None:
    decision = route(PACK, "lost-property", loads={"duty-manager-1": 15, "duty-manager-2": 3})
    assert decision.assignee_id == "duty-manager-2"


def test_after_closing_nobody_is_on_shift_but_the_case_is_still_assigned() -> None:
    closed = datetime(2026, 11, 18, 23, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    decision = route(PACK, "lost-property", at=closed, loads={"duty-manager-1": 4})
    assert decision.assignee_id == "duty-manager-2"
    assert "nobody on shift" in decision.reason


def test_the_duty_managers_work_club_hours_every_day() -> None:
    pack = pack_named(PACK)
    calendar = pack.working_time_of(pack.member("duty-manager-1"))
    tz = ZoneInfo("Asia/Shanghai")
    sunday_evening = datetime(2026, 11, 22, 21, 30, tzinfo=tz)
    before_opening = datetime(2026, 11, 22, 9, 0, tzinfo=tz)
    assert calendar.is_working(sunday_evening)
    assert not calendar.is_working(before_opening)


def test_the_only_clock_is_the_same_day_one() -> None:
    (clock,) = pack_named(PACK).clocks
    assert (clock.clock, clock.working_days, clock.calendar) == (
        "same-day-handling",
        0,
        "club-hours",
    )


def test_the_ladder_climbs_from_the_duty_managers_to_the_store_manager() -> None:
    escalation = pack_named(PACK).escalation
    assert escalation is not None
    rungs = [(rung.level, rung.to) for rung in escalation.ladder]
    # 六 8: the duty manager tracks what is not handled the same day; 六 9-10: beyond
    # authority, a written report to the store manager.
    assert rungs == [(1, ("duty-managers",)), (2, ("store-manager",))]
    # The seed gives no delays in hours and no authority by amount.
    assert all(rung.after_hours is None for rung in escalation.ladder)
    assert all(rung.max_compensation is None for rung in escalation.ladder)
    assert all(rung.seed for rung in escalation.ladder)


def test_major_complaints_go_to_the_store_manager_at_once() -> None:
    pack = pack_named(PACK)
    assert pack.escalation is not None
    assert pack.escalation.major_to_top is True
    major = [
        n
        for n in pack.notifications
        if n.event == "ComplaintReceived" and "major" in n.when.severities
    ]
    assert major
    assert {"duty-managers", "store-manager"} <= set(major[0].to)


def _rules(on: str) -> list[NotificationRule]:
    return [n for n in pack_named(PACK).notifications if n.event == on]


def test_the_notification_rules_cover_the_member_the_assignee_and_the_supervisors() -> None:
    acknowledgements = [n for n in _rules("ComplaintReceived") if "customer" in n.to]
    assert [(n.template, set(n.channels)) for n in acknowledgements] == [
        ("acknowledgement", {"email", "sms"})
    ]
    assigned = _rules("ComplaintAssigned")
    assert any("assignee" in n.to for n in assigned)
    assert any("previous_assignee" in n.to for n in assigned)
    assert any("also_notify" in n.to for n in assigned)
    breached = _rules("ClockBreached")
    assert any({"supervisor", "duty-managers"} <= set(n.to) for n in breached)
    for on in ("DecisionCommunicated", "ComplaintAnsweredOnSpot", "ComplaintNotUpheld"):
        assert any("customer" in n.to for n in _rules(on)), on
    assert any("owner" in n.to for n in _rules("ReturnVisitDue"))


def test_customers_only_get_customer_templates() -> None:
    staff_templates = {
        "assignment",
        "assignment-notice",
        "reassignment",
        "warning",
        "breach",
        "escalation",
        "major-complaint",
        "incident",
        "outcome-report",
        "return-visit-due",
        "incident-follow-up",
    }
    for rule in pack_named(PACK).notifications:
        if "customer" in rule.to:
            assert rule.template not in staff_templates, rule.id
            assert set(rule.to) == {"customer"}, rule.id


def test_an_injury_tells_the_customer_service_manager_and_the_coaches_at_once() -> None:
    incident = [n for n in _rules("ComplaintReceived") if n.template == "incident"]
    assert {n.id for n in incident} == {"incident", "incident-by-keyword"}
    for rule in incident:
        assert set(rule.to) == {"cs-manager", "fitness"}  # 七 1
        assert "sms" in rule.channels


def test_the_store_manager_hears_every_outcome() -> None:
    # 六 7: the outcome is reported to the store manager at once, however it was answered.
    for on in ("DecisionCommunicated", "ComplaintAnsweredOnSpot", "ComplaintNotUpheld"):
        assert any("store-manager" in n.to for n in _rules(on)), on


# --- deadline clocks, planned by the sla service's own planner ---------------------------

TZ = ZoneInfo("Asia/Shanghai")


def test_a_complaint_not_handled_the_same_day_is_due_at_closing() -> None:
    # 六 投诉处理流程 8: the club's day ends at 22:00; a complaint after closing belongs to
    # the next club day.
    facts = ComplaintFacts(
        "261118001", "front-desk", CustomerType.MEMBER, Severity.NORMAL, Region.DOMESTIC
    )
    morning = datetime(2026, 11, 18, 10, 0, tzinfo=TZ)
    late = datetime(2026, 11, 18, 22, 30, tzinfo=TZ)
    (today,) = plan_clocks(
        pack_named(PACK), facts, starting_event="ComplaintReceived", started_at=morning
    )
    (tomorrow,) = plan_clocks(
        pack_named(PACK), facts, starting_event="ComplaintReceived", started_at=late
    )
    assert today.due_at == datetime(2026, 11, 18, 22, 0, tzinfo=TZ)
    assert tomorrow.due_at == datetime(2026, 11, 19, 22, 0, tzinfo=TZ)
    assert "DecisionCommunicated" in today.stops_on


def test_the_club_day_runs_through_national_day() -> None:
    # The club opens on public holidays (holidays: null): the day after 2026-09-30 is
    # 10-01, National Day, and the club's working day ends at 22:00 as on any other.
    club = pack_named(PACK).working_time("club-hours")
    eve = datetime(2026, 9, 30, 10, 0, tzinfo=TZ)
    assert club.end_of_working_day(eve, 1) == datetime(2026, 10, 1, 22, 0, tzinfo=TZ)
    # The store manager's office hours do keep the holiday: Thursday 10-08 is the next day.
    office = pack_named(PACK).working_time("office-hours")
    assert office.end_of_working_day(eve, 1) == datetime(2026, 10, 8, 18, 0, tzinfo=TZ)
