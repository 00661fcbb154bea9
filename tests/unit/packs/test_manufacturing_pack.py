"""The manufacturing pack (seed 000 第二篇 客诉处理办法) routes and times as the seed says."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict
from zoneinfo import ZoneInfo

import pytest

from services.sla.domain import ComplaintFacts, PlannedClock, plan_clocks
from shared.contracts.submissions import CustomerType, Region, Severity
from tests.unit.packs.routing_cases import pack_named, route


class Inputs(TypedDict, total=False):
    """The optional complaint fields a case sets; the rest take route()'s defaults."""

    severity: str
    channel: str
    customer_type: str
    region: str


QUALITY_PARTIES = ("sales", "gm-office", "manufacturing")  # 第七条(一)(三)(四), 9(三)

CASES: list[tuple[str, str, Inputs, str, str, str, tuple[str, ...]]] = [
    # (category, keyword text, other inputs, department, assignee, rule, also_notify)
    # 第七条(二), 9(二)(三): QA investigates; sales, GM office, manufacturing are told.
    (
        "quality",
        "",
        {},
        "quality",
        "qa-engineer-a",
        "rule:quality-to-qa",
        QUALITY_PARTIES,
    ),
    # The seed routes by cause only: a foreign dealer's major e-mailed complaint goes the same way.
    (
        "quality",
        "镀层剥落",
        {"severity": "major", "channel": "email", "customer_type": "dealer", "region": "foreign"},
        "quality",
        "qa-engineer-a",
        "rule:quality-to-qa",
        QUALITY_PARTIES,
    ),
    # 9(三): R&D gives its opinion when the abnormality calls for it.
    (
        "quality",
        "新配方产品韧性不足",
        {},
        "quality",
        "qa-engineer-a",
        "rule:quality-design-to-rd",
        (*QUALITY_PARTIES, "r-and-d"),
    ),
    # 9(十二): a supplier's responsibility is handled jointly by the GM office.
    (
        "quality",
        "原物料供应商来料有杂质",
        {},
        "gm-office",
        "pmg-clerk-a",
        "rule:supplier-joint-handling",
        ("quality", "sales"),
    ),
    # 第七条(四)2, 第十二条(二): a human cause in production is manufacturing's.
    (
        "non-quality",
        "夜班作业员装错配件",
        {},
        "manufacturing",
        "mfg-chief-a",
        "rule:non-quality-manufacturing",
        ("gm-office", "quality", "sales"),
    ),
    # 第七条(一)1, 9(四): order facts are sales'; a salesperson, not the manager, takes it.
    (
        "non-quality",
        "发错料号，数量不符",
        {"customer_type": "dealer"},
        "sales",
        "sales-rep-a",
        "rule:non-quality-sales",
        ("gm-office", "quality"),
    ),
    # 第十二条(二): the service department is the third unit responsibility can fall on.
    (
        "non-quality",
        "服务人员态度恶劣",
        {"channel": "letter"},
        "service",
        "service-manager",
        "rule:non-quality-service",
        ("gm-office", "quality", "sales"),
    ),
    # 第七条(三)3: cause not evident, the GM office judges whose it is.
    (
        "non-quality",
        "",
        {},
        "gm-office",
        "pmg-clerk-a",
        "rule:non-quality-gm-office",
        ("quality", "sales"),
    ),
    # 9(三): an unknown category goes to the GM office, which registers every complaint.
    ("unknown-thing", "", {}, "gm-office", "pmg-clerk-a", "triage", ()),
]


@pytest.mark.parametrize(
    ("category", "text", "inputs", "department", "assignee", "rule", "also_notify"), CASES
)
def test_manufacturing_routing(
    category: str,
    text: str,
    inputs: Inputs,
    department: str,
    assignee: str,
    rule: str,
    also_notify: tuple[str, ...],
) -> None:
    decision = route("manufacturing", category, text=text, **inputs)
    assert (decision.department, decision.assignee_id, decision.rule) == (
        department,
        assignee,
        rule,
    )
    assert decision.also_notify == also_notify


def test_the_demo_branch_runs_the_manufacturing_pack() -> None:
    branches = {b.id: b for b in pack_named("manufacturing").branches}
    assert branches["manufacturing-demo"].timezone == "Asia/Shanghai"


def test_the_less_loaded_qa_engineer_takes_the_quality_complaint() -> None:
    decision = route("manufacturing", "quality", loads={"qa-engineer-a": 6})
    assert decision.assignee_id == "qa-engineer-b"
    assert {c.staff_id for c in decision.candidates} == {"qa-engineer-a", "qa-engineer-b"}


def test_full_salespeople_still_take_order_complaints_not_their_manager() -> None:
    loads = {"sales-rep-a": 12, "sales-rep-b": 13}
    decision = route("manufacturing", "non-quality", text="交期延误", loads=loads)
    assert decision.assignee_id == "sales-rep-a"


def test_at_night_nobody_is_on_shift_and_the_least_loaded_takes_it() -> None:
    night = datetime(2026, 11, 18, 2, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    decision = route("manufacturing", "quality", at=night, loads={"qa-engineer-a": 1})
    assert decision.assignee_id == "qa-engineer-b"
    assert "nobody on shift" in decision.reason


def test_approvers_exist_for_reassignment() -> None:
    approvers = {s.id for s in pack_named("manufacturing").staff if s.approves_reassignment}
    assert {"pmg-leader", "sales-manager", "qa-manager"} <= approvers


CLOCKS = [
    # (clock, region, hours): 第十条(一) 15 days domestic, 20 days foreign; 9(二) 3 days.
    ("closure", "domestic", 360),
    ("closure", "foreign", 480),
    ("investigation-report", "domestic", 72),
    ("investigation-report", "foreign", 72),
]


@pytest.mark.parametrize(("clock", "region", "hours"), CLOCKS)
def test_manufacturing_clocks(clock: str, region: str, hours: float) -> None:
    rule = next(
        r
        for r in pack_named("manufacturing").clocks
        if r.clock == clock
        and r.matches("quality", CustomerType.END_CUSTOMER, Severity.NORMAL, Region(region))
    )
    assert rule.target_hours == hours


def test_no_clock_counts_the_combined_opinion_from_receipt() -> None:
    # 9(五)'s one day starts when sales returns the negotiated form; see the pack's comment.
    assert {r.clock for r in pack_named("manufacturing").clocks} == {
        "closure",
        "investigation-report",
    }


def test_the_escalation_ladder_climbs_from_the_gm_office_through_the_approvers() -> None:
    # 第七条(三)1: the GM office reacts to overdue cases; 9(五): approval by amount goes to
    # the sales manager, the deputy GM or the GM. The seed gives no delays and leaves the
    # amounts of 第十一条 blank, so no rung has either.
    escalation = pack_named("manufacturing").escalation
    assert escalation is not None
    assert [(rung.level, rung.to) for rung in escalation.ladder] == [
        (1, ("pmg-leader",)),
        (2, ("sales-manager",)),
        (3, ("deputy-gm",)),
        (4, ("general-manager",)),
    ]
    assert all(rung.after_hours is None for rung in escalation.ladder)
    assert all(rung.max_compensation is None for rung in escalation.ladder)
    assert all(rung.seed.startswith("000 第二篇") for rung in escalation.ladder)


def test_major_complaints_go_to_the_top_and_the_gm_hears_at_once() -> None:
    pack = pack_named("manufacturing")
    assert pack.escalation is not None
    assert pack.escalation.major_to_top is True
    major = next(
        n for n in pack.notifications if n.event == "ComplaintReceived" and n.when.severities
    )
    assert major.when.severities == (Severity.MAJOR,)
    assert "general-manager" in major.to


def test_notifications_cover_the_customer_the_assignee_and_supervisors() -> None:
    rules = pack_named("manufacturing").notifications
    acknowledgement = next(
        n for n in rules if n.event == "ComplaintReceived" and n.to == ("customer",)
    )
    assert acknowledgement.template == "acknowledgement"
    assert set(acknowledgement.channels) == {"email", "sms"}
    assert not acknowledgement.when.severities
    assert any(n.event == "ComplaintAssigned" and "assignee" in n.to for n in rules)
    assert any(n.event == "ComplaintAssigned" and "previous_assignee" in n.to for n in rules)
    assert any(n.event == "ComplaintAssigned" and "also_notify" in n.to for n in rules)
    breach = next(n for n in rules if n.event == "ClockBreached")
    # 第七条(三)1: the GM office manages time limits and reacts to overdue cases.
    assert {"supervisor", "gm-office"} <= set(breach.to)


def test_customers_hear_only_through_customer_templates() -> None:
    # 9(十): only the approved answer reaches the customer, never the internal form.
    rules = pack_named("manufacturing").notifications
    to_customer = {n.event: n.template for n in rules if "customer" in n.to}
    assert to_customer == {
        "ComplaintReceived": "acknowledgement",
        "DecisionCommunicated": "decision",
        "ComplaintAnsweredOnSpot": "answered-on-spot",
        "ComplaintNotUpheld": "not-upheld",
    }
    assert all(n.to == ("customer",) for n in rules if "customer" in n.to)


def test_the_owner_is_reminded_of_return_visits_and_closed_forms_reach_four_units() -> None:
    rules = {n.id: n for n in pack_named("manufacturing").notifications}
    assert rules["return-visit-due"].event == "ReturnVisitDue"
    assert rules["return-visit-due"].to == ("owner",)
    # 9(七): the closed form's copies go to QA, manufacturing, sales and the GM office.
    assert set(rules["closed-copies"].to) == {"quality", "manufacturing", "sales", "gm-office"}


SHANGHAI = ZoneInfo("Asia/Shanghai")
WEDNESDAY = datetime(2026, 11, 18, 10, 0, tzinfo=SHANGHAI)


def manufacturing_clocks(
    region: Region,
    started_at: datetime = WEDNESDAY,
    category: str = "quality",
    starting_event: str = "ComplaintReceived",
) -> dict[str, PlannedClock]:
    clocks = plan_clocks(
        pack_named("manufacturing"),
        ComplaintFacts(
            complaint_no="261118001",
            category=category,
            customer_type=CustomerType.DEALER,
            severity=Severity.NORMAL,
            region=region,
        ),
        starting_event=starting_event,
        started_at=started_at,
    )
    return {clock.name: clock for clock in clocks}


def test_a_domestic_complaint_closes_in_15_days_and_qa_reports_in_3() -> None:
    clocks = manufacturing_clocks(Region.DOMESTIC)
    assert set(clocks) == {"closure", "investigation-report"}
    closure, report = clocks["closure"], clocks["investigation-report"]
    # 第十条(一): 15 calendar days from Wednesday 2026-11-18 10:00.
    assert closure.rule == "closure-domestic-15d"
    assert closure.due_at == datetime(2026, 12, 3, 10, 0, tzinfo=SHANGHAI)
    assert closure.warnings == (
        (0.5, datetime(2026, 11, 25, 22, 0, tzinfo=SHANGHAI)),
        (0.8, datetime(2026, 11, 30, 10, 0, tzinfo=SHANGHAI)),
    )
    assert closure.stops_on == ("ComplaintClosed",)  # 9(七) 核签结案
    # 9(二): three days, due on a Saturday: 天 are calendar days.
    assert report.rule == "investigation-report-3d"
    assert report.due_at == datetime(2026, 11, 21, 10, 0, tzinfo=SHANGHAI)
    assert report.warnings == (
        (0.5, datetime(2026, 11, 19, 22, 0, tzinfo=SHANGHAI)),
        (0.8, datetime(2026, 11, 20, 19, 36, tzinfo=SHANGHAI)),
    )
    # No event marks the report itself; the first answer to the customer stands in.
    assert set(report.stops_on) == {"DecisionCommunicated", "ComplaintAnsweredOnSpot"}
    assert not any(clock.working or clock.return_visit for clock in clocks.values())


def test_a_foreign_complaint_closes_in_20_days_through_national_day() -> None:
    # Received 2026-09-30 10:00: calendar days run through the holiday of 10-01..07.
    clocks = manufacturing_clocks(Region.FOREIGN, datetime(2026, 9, 30, 10, 0, tzinfo=SHANGHAI))
    assert clocks["closure"].rule == "closure-foreign-20d"
    assert clocks["closure"].due_at == datetime(2026, 10, 20, 10, 0, tzinfo=SHANGHAI)
    assert clocks["investigation-report"].due_at == datetime(2026, 10, 3, 10, 0, tzinfo=SHANGHAI)


def test_non_quality_complaints_run_the_same_clocks() -> None:
    clocks = manufacturing_clocks(Region.DOMESTIC, category="non-quality")
    assert {name: clock.due_at for name, clock in clocks.items()} == {
        "closure": datetime(2026, 12, 3, 10, 0, tzinfo=SHANGHAI),
        "investigation-report": datetime(2026, 11, 21, 10, 0, tzinfo=SHANGHAI),
    }


def test_no_clock_starts_later_and_there_is_no_return_visit() -> None:
    # 9(五)'s combined opinion has no starting event; 第二篇 has no 回访.
    for event in ("DecisionCommunicated", "InvestigationStarted", "ComplaintResolved"):
        assert manufacturing_clocks(Region.DOMESTIC, starting_event=event) == {}
