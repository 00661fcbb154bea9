"""The furniture pack (seed 004 篇二 4.1–4.2.3, 5.4; 篇六 四, 五) routes as the seed says."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.unit.packs.routing_cases import pack_named, route

PACK = "furniture"

CASES = [
    # (category, text, severity, department, assignee, rule, also_notify)
    # 篇二 4.2.3.1: answered at once by the 客服主任, forwarded to the sales VP.
    (
        "grievance",
        "不理解新的返利政策",
        "normal",
        "customer-service",
        "cs-supervisor",
        "rule:grievance-answered-at-once",
        ("vp-sales",),
    ),
    # 篇二 4.2.3.2: the 客服主任 records suggestions.
    (
        "suggestion",
        "建议增加床垫尺寸",
        "normal",
        "customer-service",
        "cs-supervisor",
        "rule:suggestion-recorded",
        (),
    ),
    # 篇二 4.2.3.3 2): the production manager, with the committee and the sales manager.
    (
        "product-quality",
        "床架开裂",
        "normal",
        "production",
        "prod-manager",
        "rule:product-quality",
        ("quality-committee", "sales"),
    ),
    # 篇二 4.2.3.3 5): headquarters-made products also go to the deputy GM (production).
    (
        "product-quality",
        "总部生产的沙发脱皮",
        "normal",
        "production",
        "prod-manager",
        "rule:product-quality-headquarters-made",
        ("quality-committee", "sales", "vp-production"),
    ),
    # 篇六 六5: a major product-quality complaint is put before the general manager too.
    (
        "product-quality",
        "床垫弹簧断裂",
        "major",
        "production",
        "prod-manager",
        "rule:product-quality-major",
        ("quality-committee", "sales", "gm"),
    ),
    # 篇二 4.2.3.4 3): the warehouse & logistics supervisor, under the carrier contract.
    (
        "appearance-packaging",
        "外包装破损、淋湿",
        "normal",
        "warehouse-logistics",
        "wl-supervisor",
        "rule:appearance-packaging",
        (),
    ),
    # 篇二 4.2.3.5 1): the head of the responsible person's system.
    (
        "service-quality",
        "送货司机态度恶劣",
        "normal",
        "warehouse-logistics",
        "fl-head",
        "rule:service-quality-logistics",
        ("general-admin",),
    ),
    (
        "service-quality",
        "业务员承诺的折扣不兑现",
        "normal",
        "sales",
        "vp-sales",
        "rule:service-quality-sales",
        ("general-admin",),
    ),
    (
        "service-quality",
        "车间返修拖了很久",
        "normal",
        "production",
        "prod-manager",
        "rule:service-quality-production",
        ("general-admin",),
    ),
    (
        "service-quality",
        "客服电话没人接",
        "normal",
        "customer-service",
        "cs-supervisor",
        "rule:service-quality-customer-service",
        ("general-admin",),
    ),
    # 篇六 六5: a major service complaint with no known system goes to the GM.
    (
        "service-quality",
        "对处理结果极不满意",
        "major",
        "management",
        "gm",
        "rule:service-quality-major",
        ("cs-supervisor", "general-admin"),
    ),
    # 篇二 4.2.2.2 5): otherwise the 客服主任 determines the system and transfers it.
    (
        "service-quality",
        "对处理结果不满意",
        "normal",
        "customer-service",
        "cs-supervisor",
        "rule:service-quality-unattributed",
        ("general-admin",),
    ),
    # 篇二 3.1, 4.2.2.1: customer service is the only window: triage.
    ("unknown-thing", "", "normal", "customer-service", "cs-clerk", "triage", ()),
]


@pytest.mark.parametrize(
    ("category", "text", "severity", "department", "assignee", "rule", "also_notify"), CASES
)
def test_furniture_routing(
    category: str,
    text: str,
    severity: str,
    department: str,
    assignee: str,
    rule: str,
    also_notify: tuple[str, ...],
) -> None:
    decision = route(PACK, category, text=text, severity=severity, customer_type="dealer")
    assert (decision.department, decision.assignee_id, decision.rule) == (
        department,
        assignee,
        rule,
    )
    assert decision.also_notify == also_notify


def test_every_seed_category_has_a_department() -> None:
    pack = pack_named(PACK)
    assert {c.code: c.department for c in pack.categories} == {
        "grievance": "customer-service",
        "suggestion": "customer-service",
        "product-quality": "production",
        "appearance-packaging": "warehouse-logistics",
        "service-quality": "customer-service",
    }


def test_the_demo_branch_runs_the_furniture_pack() -> None:
    pack = pack_named(PACK)
    branches = {b.id: b for b in pack.branches}
    assert "furniture-demo" in branches
    assert branches["furniture-demo"].timezone == "Asia/Shanghai"


def test_the_general_manager_approves_reassignments() -> None:
    # 篇二 4.2.2.2 5): transfers are made after the general manager's approval.
    pack = pack_named(PACK)
    assert [s.id for s in pack.staff if s.approves_reassignment] == ["gm"]


def test_the_clerk_stands_in_when_the_supervisor_is_loaded() -> None:
    # 篇二 4.2.2.1: another member of customer service stands in for the 客服主任.
    assert route(PACK, "unknown-thing").assignee_id == "cs-clerk"  # tie: staff id
    busy_clerk = route(PACK, "unknown-thing", loads={"cs-clerk": 5})
    assert busy_clerk.assignee_id == "cs-supervisor"
    busy_supervisor = route(PACK, "unknown-thing", loads={"cs-supervisor": 5, "cs-clerk": 2})
    assert busy_supervisor.assignee_id == "cs-clerk"


def test_a_fixed_assignee_is_kept_whatever_the_load() -> None:
    decision = route(PACK, "appearance-packaging", loads={"wl-supervisor": 50})
    assert decision.assignee_id == "wl-supervisor"
    assert decision.reason == "the rule names the person"


def test_out_of_office_hours_nobody_is_on_shift() -> None:
    sunday_night = datetime(2026, 11, 22, 22, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    decision = route(PACK, "unknown-thing", at=sunday_night, loads={"cs-clerk": 3})
    assert decision.assignee_id == "cs-supervisor"
    assert "nobody on shift" in decision.reason


def test_no_elapsed_clock_is_invented() -> None:
    # The seed's deadlines are all in working days (篇二 4.2.3.3–4.2.3.5; 篇六 五).
    assert pack_named(PACK).clocks == ()


def test_the_escalation_ladder_climbs_from_customer_service_to_the_general_manager() -> None:
    # 篇二 4.2.2.1 (客服主任), 3.3 and 篇六 七 注 (综合管理部/人事行政), 4.2.2.2 5) (总经理).
    escalation = pack_named(PACK).escalation
    assert escalation is not None
    assert [(rung.level, rung.to) for rung in escalation.ladder] == [
        (1, ("cs-supervisor",)),
        (2, ("general-admin",)),
        (3, ("gm",)),
    ]
    # The seed gives neither delays between rungs nor authority by amount.
    assert all(rung.after_hours is None for rung in escalation.ladder)
    assert all(rung.max_compensation is None for rung in escalation.ladder)
    assert all(rung.seed for rung in escalation.ladder)


def test_major_complaints_go_to_the_top_of_the_ladder() -> None:
    # 篇六 六5: by the complaint's level the matching manager settles it in person.
    escalation = pack_named(PACK).escalation
    assert escalation is not None
    assert escalation.major_to_top is True
    major = [
        n
        for n in pack_named(PACK).notifications
        if n.event == "ComplaintReceived" and n.when.severities == ("major",)
    ]
    assert [n.to for n in major] == [("gm", "vp-sales", "vp-production", "general-admin")]


def test_notifications_cover_the_customer_the_assignee_and_breaches() -> None:
    rules = {n.id: n for n in pack_named(PACK).notifications}
    by_event: dict[str, set[str]] = {}
    for rule in rules.values():
        by_event.setdefault(rule.event, set()).update(rule.to)

    acknowledgement = rules["customer-acknowledgement"]
    assert (acknowledgement.event, acknowledgement.to) == ("ComplaintReceived", ("customer",))
    assert set(acknowledgement.channels) == {"email", "sms"}
    assert acknowledgement.template == "acknowledgement"

    assert {"assignee", "previous_assignee", "also_notify"} <= by_event["ComplaintAssigned"]
    assert "supervisor" in by_event["ClockBreached"]
    assert "supervisor" in by_event["ClockWarning"]
    assert "supervisor" in by_event["ComplaintEscalated"]
    assert "owner" in by_event["ReturnVisitDue"]
    for event in ("DecisionCommunicated", "ComplaintAnsweredOnSpot", "ComplaintNotUpheld"):
        assert "customer" in by_event[event]


def test_only_customer_templates_reach_the_customer() -> None:
    # 篇二 4.2.3.1 3)①: customer service is the only post that speaks to customers.
    customer_rules = [n for n in pack_named(PACK).notifications if "customer" in n.to]
    assert {n.template for n in customer_rules} == {
        "acknowledgement",
        "decision",
        "answered-on-spot",
        "not-upheld",
    }
    assert all(n.to == ("customer",) for n in customer_rules)
