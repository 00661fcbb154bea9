"""The property pack (seed 001 客服中心 5.2, 5.6–5.7, 9; 004 篇六, 档案) routes as the seed says."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from services.sla.domain import ComplaintFacts, PlannedClock, plan_clocks
from shared.contracts.submissions import CustomerType, Region, Severity
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


def test_001_5_7_clocks_are_plain_hours_and_the_working_day_clocks_count_office_days() -> None:
    clocks = {c.clock: c for c in pack_named("property").clocks}
    # 001 5.7.1 (8 小时) and 5.7.3–5.7.4 (3日) are plain hours.
    elapsed = {name: c.target_hours for name, c in clocks.items() if not c.working}
    assert elapsed == {"forward-to-property-company": 8, "reply-to-property-company": 72}
    # 001 5.6.3 (3个工作日) and 004 篇六 五 (一个/二个工作日) count working days of the
    # departments doing the work: design and the property company, on the office calendar.
    working = {name: (c.working_days, c.calendar) for name, c in clocks.items() if c.working}
    assert working == {
        "design-drawings": (3, "office"),
        "property-company-investigation": (1, "office"),
        "property-company-reply": (2, "office"),
    }


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


# --- clocks planned for a sample complaint (001 5.6.3, 5.7; 004 篇六 五) -------------------

PROPERTY_SERVICE = ("service-attitude", "professionalism", "service-efficiency", "property-service")


def _plan(
    category: str,
    started_at: datetime,
    *,
    starting_event: str = "ComplaintReceived",
    severity: Severity = Severity.NORMAL,
) -> dict[str, PlannedClock]:
    clocks = plan_clocks(
        pack_named("property"),
        ComplaintFacts(
            complaint_no="261118001",
            category=category,
            customer_type=CustomerType.OWNER,
            severity=severity,
            region=Region.DOMESTIC,
        ),
        starting_event=starting_event,
        started_at=started_at,
    )
    return {clock.name: clock for clock in clocks}


def _at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


@pytest.mark.parametrize("category", PROPERTY_SERVICE)
def test_a_property_service_complaint_gets_the_forward_and_the_property_company_clocks(
    category: str,
) -> None:
    # Received Wednesday 2026-11-18 10:00.
    clocks = _plan(category, _at(11, 18, 10))
    assert {name: (c.rule, c.due_at) for name, c in clocks.items()} == {
        # 001 5.7.1: 8 plain hours.
        "forward-to-property-company": ("forward-to-property-company-8h", _at(11, 18, 18)),
        # 004 篇六 五: by the end of the 1st / 2nd office working day after Wednesday.
        "property-company-investigation": (
            "property-company-investigation-1-working-day",
            _at(11, 19, 17),
        ),
        "property-company-reply": ("property-company-reply-2-working-days", _at(11, 20, 17)),
    }
    assert clocks["forward-to-property-company"].stops_on == ("ComplaintAssignmentRecorded",)
    assert "InvestigationStarted" in clocks["property-company-investigation"].stops_on
    assert "DecisionCommunicated" in clocks["property-company-reply"].stops_on
    assert not any(c.return_visit for c in clocks.values())


def test_the_property_company_clocks_warn_at_half_and_four_fifths_of_the_working_time() -> None:
    clocks = _plan("service-efficiency", _at(11, 18, 10))
    # Elapsed: 8 h from 10:00 → 14:00 and 16:24.
    assert clocks["forward-to-property-company"].warnings == (
        (0.5, _at(11, 18, 14)),
        (0.8, _at(11, 18, 16, 24)),
    )
    # Investigation: Wed 10:00–17:00 is 6 h (lunch 12–13), Thu 7.5 h: 13.5 h in all.
    # Half, 6.75 h: Wed's 6 h, then 45 min from Thu 08:30 → 09:15. Four fifths, 10.8 h:
    # Wed 6 h + Thu morning 3.5 h, then 1.3 h from 13:00 → 14:18.
    assert clocks["property-company-investigation"].warnings == (
        (0.5, _at(11, 19, 9, 15)),
        (0.8, _at(11, 19, 14, 18)),
    )
    # Reply: 6 + 7.5 + 7.5 = 21 h. Half, 10.5 h: Wed 6 h + Thu 3.5 h + 1 h → Thu 14:00.
    # Four fifths, 16.8 h: Wed 6 h + Thu 7.5 h, then 3.3 h from Fri 08:30 → 11:48.
    assert clocks["property-company-reply"].warnings == (
        (0.5, _at(11, 19, 14)),
        (0.8, _at(11, 20, 11, 48)),
    )


def test_a_design_complaint_gets_the_3_day_reply_and_the_3_working_day_drawings() -> None:
    clocks = _plan("design-defect", _at(11, 18, 10))
    assert {name: (c.rule, c.due_at) for name, c in clocks.items()} == {
        # 001 5.7.3–5.7.4: 3 days, 72 plain hours → Saturday 10:00.
        "reply-to-property-company": ("reply-to-property-company-72h", _at(11, 21, 10)),
        # 001 5.6.3: Thursday, Friday, (weekend off for design) Monday → Monday 17:00.
        "design-drawings": ("design-drawings-3-working-days", _at(11, 23, 17)),
    }
    assert clocks["design-drawings"].calendar == "office"
    assert "DecisionCommunicated" in clocks["reply-to-property-company"].stops_on


@pytest.mark.parametrize("category", ["house-quality", "house-dispute"])
def test_house_quality_and_disputes_get_only_the_3_day_reply(category: str) -> None:
    clocks = _plan(category, _at(11, 18, 10), severity=Severity.MAJOR)
    assert {name: c.due_at for name, c in clocks.items()} == {
        "reply-to-property-company": _at(11, 21, 10)
    }


@pytest.mark.parametrize("category", ["repair", "suggestion"])
def test_repairs_and_suggestions_get_no_clock(category: str) -> None:
    # 001 5.6.2: the repair time is agreed per job; suggestions cannot be singled out.
    assert _plan(category, _at(11, 18, 10)) == {}


def test_working_day_clocks_skip_national_day_and_count_the_adjusted_saturday() -> None:
    # Received Wednesday 2026-09-30 10:00. 国庆节 2026-10-01..07 is off; Saturday 10-10 is
    # a 调休 working day (Monday's hours). Office working days after 09-30: Thu 10-08,
    # Fri 10-09, Sat 10-10.
    service = _plan("service-attitude", _at(9, 30, 10))
    assert service["property-company-investigation"].due_at == _at(10, 8, 17)
    assert service["property-company-reply"].due_at == _at(10, 9, 17)
    # Plain hours do not care: 8 h → 18:00 the same day.
    assert service["forward-to-property-company"].due_at == _at(9, 30, 18)
    design = _plan("design-defect", _at(9, 30, 10))
    assert design["design-drawings"].due_at == _at(10, 10, 17)
    assert design["reply-to-property-company"].due_at == _at(10, 3, 10)


def test_a_weekend_complaint_taken_by_the_centre_counts_from_the_next_office_day() -> None:
    # The centre is open on Saturday (001 5.2); the property company's days are Mon–Fri.
    clocks = _plan("property-service", _at(11, 21, 10))
    assert clocks["property-company-investigation"].due_at == _at(11, 23, 17)
    assert clocks["property-company-reply"].due_at == _at(11, 24, 17)


@pytest.mark.parametrize(
    "event",
    ["ComplaintAssignmentRecorded", "InvestigationStarted", "DecisionCommunicated"],
)
def test_no_clock_starts_later_and_no_return_visit_is_invented(event: str) -> None:
    # 001 9.3 and 004 篇六 四(三) give return visits but no time for them.
    assert _plan("service-attitude", _at(11, 18, 10), starting_event=event) == {}
    assert not any(c.return_visit for c in pack_named("property").clocks)
