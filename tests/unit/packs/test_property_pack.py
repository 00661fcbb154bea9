"""The property pack (seed 001 客服中心 5.2, 5.6–5.7, 9; 004 篇六, 档案) routes as the seed says."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.unit.packs.routing_cases import pack_named, route

SHANGHAI = ZoneInfo("Asia/Shanghai")

CASES = [
    # (category, text, severity, department, assignee, rule, also_notify)
    # 001 5.7.1: service complaints go to the property company; the centre tracks them.
    (
        "property-service",
        "楼道垃圾三天没人清理",
        "normal",
        "property-company",
        "pm-cs-supervisor",
        "rule:property-service",
        ("pm-hr-admin", "customer-service"),
    ),
    # 004 篇六 二1 + 六5: a major attitude complaint goes to the property company's manager.
    (
        "service-attitude",
        "保安辱骂业主",
        "major",
        "property-company",
        "pm-manager",
        "rule:major-property-service",
        ("pm-hr-admin", "cs-manager"),
    ),
    # 001 5.6.1: house quality goes to engineering.
    (
        "house-quality",
        "卫生间楼板渗水",
        "normal",
        "engineering",
        "eng-engineer",
        "rule:house-quality",
        ("customer-service",),
    ),
    (
        "house-quality",
        "外墙大面积开裂",
        "major",
        "engineering",
        "eng-manager",
        "rule:major-house-quality",
        ("cs-manager",),
    ),
    # 001 4.2.2: quality problems at handover are the centre's specialist's.
    (
        "house-quality",
        "收房时发现窗框变形",
        "normal",
        "customer-service",
        "cs-specialist",
        "rule:handover-quality",
        ("cs-manager",),
    ),
    # 001 5.6.3: design faults go to design, which hands drawings to engineering.
    (
        "design-defect",
        "厨房排烟道位置不合理",
        "normal",
        "design",
        "design-manager",
        "rule:design-defect",
        ("engineering", "customer-service"),
    ),
    # 001 5.5.2: raised during sales, sales is told the outcome.
    (
        "design-defect",
        "样板房与交付户型不一致",
        "normal",
        "design",
        "design-manager",
        "rule:sales-stage-design",
        ("engineering", "sales", "customer-service"),
    ),
    # 001 4.2.4: house disputes are the specialist's, reported to the manager.
    (
        "house-dispute",
        "",
        "normal",
        "customer-service",
        "cs-specialist",
        "rule:house-dispute",
        ("cs-manager",),
    ),
    # 001 2.2: repairs to the repair team, maintenance to the maintenance team.
    (
        "repair",
        "水龙头漏水",
        "normal",
        "repair-contractors",
        "repair-lead",
        "rule:repair",
        ("customer-service",),
    ),
    (
        "repair",
        "电梯该做维保了",
        "normal",
        "repair-contractors",
        "maintenance-lead",
        "rule:repair-maintenance",
        ("customer-service",),
    ),
    # 001 5.7.1: suggestions about property service go to the property company too.
    (
        "suggestion",
        "建议物业增加绿化养护",
        "normal",
        "property-company",
        "pm-cs-supervisor",
        "rule:property-suggestion",
        ("pm-hr-admin", "customer-service"),
    ),
    # 001 9.2: other suggestions stay with the centre; unknown categories are triaged there.
    (
        "suggestion",
        "希望举办业主活动",
        "normal",
        "customer-service",
        "cs-clerk",
        "category:suggestion",
        (),
    ),
    ("unknown-thing", "", "normal", "customer-service", "cs-clerk", "triage", ()),
]


@pytest.mark.parametrize(
    ("category", "text", "severity", "department", "assignee", "rule", "also_notify"), CASES
)
def test_property_routing(
    category: str,
    text: str,
    severity: str,
    department: str,
    assignee: str,
    rule: str,
    also_notify: tuple[str, ...],
) -> None:
    decision = route("property", category, text=text, severity=severity, customer_type="owner")
    assert (decision.department, decision.assignee_id, decision.rule, decision.also_notify) == (
        department,
        assignee,
        rule,
        also_notify,
    )


def test_the_demo_branch_runs_the_property_pack() -> None:
    branches = {b.id: b for b in pack_named("property").branches}
    assert branches["property-demo"].timezone == "Asia/Shanghai"


def test_a_busy_property_supervisor_leaves_the_complaint_to_the_other() -> None:
    decision = route("property", "service-efficiency", loads={"pm-cs-supervisor": 3})
    assert decision.assignee_id == "pm-ops-supervisor"
    assert {c.staff_id for c in decision.candidates} == {"pm-cs-supervisor", "pm-ops-supervisor"}


def test_a_busy_engineer_leaves_house_quality_to_the_engineering_manager() -> None:
    decision = route("property", "house-quality", loads={"eng-engineer": 4, "eng-manager": 1})
    assert decision.assignee_id == "eng-manager"


def test_the_centre_keeps_the_working_hours_of_001_5_2() -> None:
    assert pack_named("property").calendars[0].id == "cs-centre"
    centre = pack_named("property").working_time("cs-centre")
    assert centre.is_working(datetime(2026, 11, 18, 8, 30, tzinfo=SHANGHAI))  # Wednesday
    assert not centre.is_working(datetime(2026, 11, 18, 12, 30, tzinfo=SHANGHAI))  # lunch
    assert not centre.is_working(datetime(2026, 11, 18, 17, 0, tzinfo=SHANGHAI))
    assert not centre.is_working(datetime(2026, 11, 21, 8, 30, tzinfo=SHANGHAI))  # Saturday
    assert centre.is_working(datetime(2026, 11, 21, 9, 0, tzinfo=SHANGHAI))
    assert centre.is_working(datetime(2026, 11, 22, 16, 59, tzinfo=SHANGHAI))  # Sunday
    assert not centre.is_working(datetime(2026, 10, 2, 10, 0, tzinfo=SHANGHAI))  # 国庆


def test_on_a_weekend_the_centre_is_on_shift_and_engineering_is_not() -> None:
    saturday = datetime(2026, 11, 21, 10, 0, tzinfo=SHANGHAI)
    triage = route("property", "unknown-thing", at=saturday)
    assert triage.assignee_id == "cs-clerk"
    assert all(c.on_shift for c in triage.candidates)
    quality = route("property", "house-quality", at=saturday)
    assert quality.department == "engineering"
    assert "nobody on shift" in quality.reason


def test_clocks_are_plain_elapsed_hours_from_001_5_7() -> None:
    clocks = {c.clock: c.target_hours for c in pack_named("property").clocks}
    assert clocks == {"forward-to-property-company": 8, "reply-to-property-company": 72}


def test_the_ladder_climbs_from_the_centres_specialist_to_its_manager() -> None:
    # 001 4.2.2, 4.2.4: the 客服专员 reports to the 客服经理; the seed gives no delays and no
    # amounts, so no rung has after_hours or max_compensation.
    escalation = pack_named("property").escalation
    assert escalation is not None
    assert [(rung.level, rung.to) for rung in escalation.ladder] == [
        (1, ("cs-specialist",)),
        (2, ("cs-manager",)),
    ]
    assert all(rung.after_hours is None for rung in escalation.ladder)
    assert all(rung.max_compensation is None for rung in escalation.ladder)
    assert all(rung.seed for rung in escalation.ladder)


def test_major_property_complaints_go_to_the_top_rung_at_once() -> None:
    # 004 篇六 六5; 001 5.6.1: nothing in the seed says otherwise.
    escalation = pack_named("property").escalation
    assert escalation is not None
    assert escalation.major_to_top is True


def _rules(on: str) -> list[tuple[tuple[str, ...], tuple[str, ...], str]]:
    return [
        (rule.to, rule.channels, rule.template)
        for rule in pack_named("property").notifications
        if rule.event == on
    ]


def test_the_customer_the_assignee_and_supervisors_are_notified() -> None:
    received = _rules("ComplaintReceived")
    assert (("customer",), ("email", "sms"), "acknowledgement") in received
    assert any(to == ("assignee",) for to, _, _ in _rules("ComplaintAssigned"))
    assert any("previous_assignee" in to for to, _, _ in _rules("ComplaintAssigned"))
    assert any("also_notify" in to for to, _, _ in _rules("ComplaintAssigned"))
    breached = _rules("ClockBreached")
    assert any({"supervisor", "cs-manager"} <= set(to) for to, _, _ in breached)


def test_the_customer_hears_every_outcome_and_only_through_customer_templates() -> None:
    customer = {
        rule.event: rule.template
        for rule in pack_named("property").notifications
        if "customer" in rule.to
    }
    assert customer == {
        "ComplaintReceived": "acknowledgement",
        "DecisionCommunicated": "decision",
        "ComplaintAnsweredOnSpot": "answered-on-spot",
        "ComplaintNotUpheld": "not-upheld",
    }
    assert all(
        rule.to == ("customer",)
        for rule in pack_named("property").notifications
        if "customer" in rule.to
    )


def test_major_complaints_and_return_visits_reach_the_people_the_seed_names() -> None:
    rules = {rule.id: rule for rule in pack_named("property").notifications}
    major = rules["major-complaint"]
    assert (major.event, major.when.severities, major.to) == (
        "ComplaintReceived",
        ("major",),
        ("cs-manager",),
    )
    # 004 篇六 四(三)1: the 人事行政经理 makes the property company's return visits.
    assert rules["return-visit-due"].to == ("owner",)
    assert rules["return-visit-due-property"].to == ("pm-hr-admin",)
    assert all(rule.seed for rule in rules.values())
