"""The furniture pack (seed 004 篇二 4.1–4.2.3, 5.4; 篇六 四, 五) routes as the seed says."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from services.sla.domain import ComplaintFacts, PlannedClock, plan_clocks
from shared.contracts.submissions import CustomerType, Region, Severity
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


def test_deadlines_are_working_days_and_only_return_visits_count_elapsed_time() -> None:
    # The seed's deadlines are all in working days (篇二 4.2.3.3–4.2.3.5; 篇六 五); only
    # the return visits of 5.4 count calendar days (15 days after the reply; the 2nd day
    # after a repaired product's delivery).
    rules = pack_named(PACK).clocks
    deadlines = [r for r in rules if not r.return_visit]
    visits = [r for r in rules if r.return_visit]
    assert deadlines
    assert all(r.working_days is not None and r.calendar == "office" for r in deadlines)
    assert all(r.target_hours is None and r.working_hours is None for r in deadlines)
    assert {(r.target_hours, r.stops_on) for r in visits} == {
        (360, ("ReturnVisitRecorded",)),
        (48, ("ReturnVisitRecorded",)),
    }
    assert all(r.seed and r.stops_on for r in rules)


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


# --- deadline clocks, planned by the sla service's own planner ---------------------------

TZ = ZoneInfo("Asia/Shanghai")
# Wednesday 10:00; the office calendar is Mon–Fri 08:30–12:00 and 13:00–17:30.
WEDNESDAY = datetime(2026, 11, 18, 10, 0, tzinfo=TZ)
REPLY_CLOSERS = ("DecisionCommunicated", "ComplaintAnsweredOnSpot", "ComplaintNotUpheld")


def _plan(
    category: str, event: str = "ComplaintReceived", at: datetime = WEDNESDAY
) -> dict[str, PlannedClock]:
    clocks = plan_clocks(
        pack_named(PACK),
        ComplaintFacts(
            complaint_no="261118001",
            category=category,
            customer_type=CustomerType.END_CUSTOMER,
            severity=Severity.NORMAL,
            region=Region.DOMESTIC,
        ),
        starting_event=event,
        started_at=at,
    )
    return {clock.name: clock for clock in clocks}


def _at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=TZ)


@pytest.mark.parametrize(
    ("category", "event", "expected"),
    [
        # 篇六 五: investigation within 1 working day, satisfactory reply within 2.
        (
            "service-quality",
            "ComplaintReceived",
            {
                "investigation-start": ("service-investigation-start", _at(11, 19, 17, 30)),
                "reply": ("service-reply", _at(11, 20, 17, 30)),
            },
        ),
        # 4.2.3.5 3): the system head's opinion by the 2nd working day after receiving it.
        (
            "service-quality",
            "ComplaintAssignmentRecorded",
            {"handling-opinion": ("service-quality-opinion", _at(11, 20, 17, 30))},
        ),
        # 4.2.3.3 3)③: internal handling within 3 working days of receipt (Wed → Mon).
        (
            "product-quality",
            "ComplaintReceived",
            {"internal-handling": ("product-quality-internal-handling", _at(11, 23, 17, 30))},
        ),
        # 4.2.3.3 2)⑦: the memo by the 2nd working day after the production manager has it.
        (
            "product-quality",
            "ComplaintAssignmentRecorded",
            {"handling-opinion": ("product-quality-memo", _at(11, 20, 17, 30))},
        ),
        # 4.2.3.4 3): the warehouse & logistics supervisor's opinion by the 2nd working day.
        (
            "appearance-packaging",
            "ComplaintAssignmentRecorded",
            {"handling-opinion": ("appearance-packaging-opinion", _at(11, 20, 17, 30))},
        ),
        ("appearance-packaging", "ComplaintReceived", {}),
        # Grievances are answered at once and suggestions recorded: no numbered deadline.
        ("grievance", "ComplaintReceived", {}),
        ("grievance", "ComplaintAssignmentRecorded", {}),
        ("suggestion", "ComplaintReceived", {}),
        # 5.4 2): 15 days after the reply (or the answer on the spot) a return visit is due.
        (
            "service-quality",
            "DecisionCommunicated",
            {"return-visit": ("return-visit-after-reply", _at(12, 3, 10))},
        ),
        (
            "grievance",
            "ComplaintAnsweredOnSpot",
            {"return-visit": ("return-visit-after-answer-on-spot", _at(12, 3, 10))},
        ),
        (
            "suggestion",
            "DecisionCommunicated",
            {"return-visit": ("return-visit-after-reply", _at(12, 3, 10))},
        ),
        # 5.4 1): product quality is visited after the repaired product's delivery, for
        # which there is no event: no clock starts at the reply.
        ("product-quality", "DecisionCommunicated", {}),
    ],
)
def test_clocks_planned_for_a_complaint(
    category: str, event: str, expected: dict[str, tuple[str, datetime]]
) -> None:
    planned = _plan(category, event)
    assert {name: (c.rule, c.due_at) for name, c in planned.items()} == expected


def test_a_two_working_day_clock_started_on_wednesday_is_due_friday_at_closing() -> None:
    opinion = _plan("appearance-packaging", "ComplaintAssignmentRecorded")["handling-opinion"]
    assert opinion.due_at == _at(11, 20, 17, 30)
    assert opinion.working
    assert opinion.calendar == "office"
    assert opinion.stops_on == REPLY_CLOSERS
    assert not opinion.return_visit
    # 22.5 working hours (Wed 6.5 h, Thu 8 h, Fri 8 h): half is Thu 14:15 after lunch,
    # 80 % (18 h) runs out exactly at Friday's lunch break.
    assert opinion.warnings == ((0.5, _at(11, 19, 14, 15)), (0.8, _at(11, 20, 12, 0)))


def test_the_service_clocks_are_met_by_the_matching_events() -> None:
    clocks = _plan("service-quality")
    assert clocks["investigation-start"].stops_on == ("InvestigationStarted",)
    assert clocks["reply"].stops_on == REPLY_CLOSERS
    # 14.5 working hours from Wed 10:00 to Thu 17:30: half is Thu 09:15, 80 % Thu 14:36.
    assert clocks["investigation-start"].warnings == (
        (0.5, _at(11, 19, 9, 15)),
        (0.8, _at(11, 19, 14, 36)),
    )
    internal = _plan("product-quality")["internal-handling"]
    assert internal.stops_on == ("ComplaintResolved",)


def test_the_return_visit_reminds_the_owner_without_warnings() -> None:
    visit = _plan("service-quality", "DecisionCommunicated")["return-visit"]
    assert visit.return_visit
    assert not visit.working
    assert visit.stops_on == ("ReturnVisitRecorded",)
    assert visit.target_seconds == 15 * 24 * 3600
    assert visit.warnings == ()


def test_national_day_and_its_adjusted_saturday() -> None:
    # Received Wednesday 2026-09-30: 10-01..07 are National Day, 10-08 (Thu) is the 1st
    # working day, 10-09 (Fri) the 2nd, Saturday 10-10 a 调休 working day (Monday's hours),
    # the 3rd.
    eve = _at(9, 30, 10)
    assert _plan("service-quality", at=eve)["investigation-start"].due_at == _at(10, 8, 17, 30)
    assert _plan("service-quality", at=eve)["reply"].due_at == _at(10, 9, 17, 30)
    opinion = _plan("appearance-packaging", "ComplaintAssignmentRecorded", at=eve)
    assert opinion["handling-opinion"].due_at == _at(10, 9, 17, 30)
    internal = _plan("product-quality", at=eve)["internal-handling"]
    assert internal.due_at == _at(10, 10, 17, 30)
    # 30.5 working hours (6.5 + 8 + 8 + 8): half runs out Fri 10-09 09:15, 80 % (24.4 h)
    # on the 调休 Saturday at 10:24.
    assert internal.warnings == ((0.5, _at(10, 9, 9, 15)), (0.8, _at(10, 10, 10, 24)))
    # The return visit counts calendar days, holidays included: 15 days after the reply.
    assert _plan("grievance", "ComplaintAnsweredOnSpot", at=eve)["return-visit"].due_at == (
        _at(10, 15, 10)
    )


def test_mid_autumn_holiday_and_its_adjusted_sunday() -> None:
    # 2026-09-20 (Sunday) is worked instead of a Mid-Autumn day; 09-25..27 are holidays.
    friday_afternoon = _at(9, 18, 15)
    start = _plan("service-quality", at=friday_afternoon)["investigation-start"]
    assert start.due_at == _at(9, 20, 17, 30)
    # Received Thursday 09-24: Fri 25 to Sun 27 off, so Mon 28 and Tue 29 are the two days.
    reply = _plan("service-quality", at=_at(9, 24, 10))["reply"]
    assert reply.due_at == _at(9, 29, 17, 30)


def test_a_repaired_product_is_visited_on_the_second_day_after_delivery() -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from services.sla.domain import ComplaintFacts, plan_clocks
    from shared.contracts.submissions import CustomerType, Region, Severity

    delivered = datetime(2026, 11, 25, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    facts = ComplaintFacts(
        "261118001", "product-quality", CustomerType.DEALER, Severity.NORMAL, Region.DOMESTIC
    )
    (visit,) = plan_clocks(
        pack_named("furniture"),
        facts,
        starting_event="RepairedProductDelivered",
        started_at=delivered,
    )
    assert visit.name == "return-visit"
    assert visit.return_visit is True
    assert visit.due_at == datetime(2026, 11, 27, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
