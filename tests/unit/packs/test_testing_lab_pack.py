"""The testing-lab pack (seed 000 第三篇 客户服务管理制度 1–7) routes as the seed says."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from services.sla.domain import ComplaintFacts, PlannedClock, plan_clocks
from shared.contracts.submissions import CustomerType, Region, Severity
from tests.unit.packs.routing_cases import pack_named, route

PACK = "testing-lab"

CASES = [
    # (category, text, severity, department, assignee, rule, also_notify)
    # 1.2, 2.2.1: an objection to test data goes to the technical office, the quality
    # manager is told and presides, the testers review their records.
    (
        "test-result-objection",
        "COD 数值明显偏高，要求复检",
        "normal",
        "technical-office",
        "tech-clerk-1",
        "rule:objection-technical-office",
        ("quality-manager", "analysis-room"),
    ),
    # 2.2.5: an urgent objection is handled the same way (only its deadline is shorter).
    (
        "test-result-objection",
        "",
        "urgent",
        "technical-office",
        "tech-clerk-1",
        "rule:objection-technical-office",
        ("quality-manager", "analysis-room"),
    ),
    # 2.2.3: sampling or transport in question: the sampling room is involved as well.
    (
        "test-result-objection",
        "怀疑样品运输途中污染",
        "normal",
        "technical-office",
        "tech-clerk-1",
        "rule:objection-sampling",
        ("quality-manager", "sampling-room", "analysis-room"),
    ),
    # 2.1.1: a general complaint goes to the head of the department complained about,
    # who hands the record to the technical office.
    (
        "general-service",
        "采样员到现场迟到两个小时",
        "normal",
        "sampling-room",
        "sampling-head",
        "rule:general-sampling-room",
        ("technical-office",),
    ),
    (
        "general-service",
        "分析室电话一直无人接听",
        "normal",
        "analysis-room",
        "analysis-head",
        "rule:general-analysis-room",
        ("technical-office",),
    ),
    (
        "general-service",
        "办公室开具的发票抬头错误",
        "normal",
        "office",
        "office-director",
        "rule:general-office",
        ("technical-office",),
    ),
    (
        "general-service",
        "The technical office lost our sample submission form",
        "normal",
        "technical-office",
        "tech-office-head",
        "rule:general-technical-office",
        (),
    ),
    # 2.1.1 names no department here: the technical office, which receives complaints,
    # keeps it to pass on.
    (
        "general-service",
        "服务态度不好",
        "normal",
        "technical-office",
        "tech-clerk-1",
        "category:general-service",
        (),
    ),
    # 2.1.2–2.1.3: hard cases and satisfaction-survey findings go to the office.
    (
        "hard-case",
        "",
        "major",
        "office",
        "office-director",
        "rule:hard-case-office",
        (),
    ),
    (
        "satisfaction-survey",
        "",
        "normal",
        "office",
        "office-director",
        "rule:satisfaction-survey-office",
        (),
    ),
    # Nothing is dropped: an unknown category goes to the triage queue.
    ("unknown-thing", "", "normal", "technical-office", "tech-clerk-1", "triage", ()),
]


@pytest.mark.parametrize(
    ("category", "text", "severity", "department", "assignee", "rule", "also_notify"), CASES
)
def test_testing_lab_routing(
    category: str,
    text: str,
    severity: str,
    department: str,
    assignee: str,
    rule: str,
    also_notify: tuple[str, ...],
) -> None:
    decision = route(PACK, category, text=text, severity=severity)
    assert (
        decision.department,
        decision.assignee_id,
        decision.rule,
        decision.also_notify,
    ) == (department, assignee, rule, also_notify)


def test_the_demo_branch_runs_the_testing_lab_pack() -> None:
    pack = pack_named(PACK)
    branches = {b.id: b for b in pack.branches}
    assert "testing-lab-demo" in branches
    assert branches["testing-lab-demo"].timezone == "Asia/Shanghai"


def test_the_technical_office_is_under_the_quality_manager() -> None:
    pack = pack_named(PACK)
    head = pack.member(pack.department("technical-office").head)
    assert head.supervisor == "quality-manager"
    clerks = pack.candidates("technical-office", ("clerk",))
    assert {c.supervisor for c in clerks} == {head.id}
    assert pack.member("quality-manager").approves_reassignment


def test_a_busy_clerk_leaves_the_objection_to_the_other() -> None:
    decision = route(PACK, "test-result-objection", loads={"tech-clerk-1": 6, "tech-clerk-2": 1})
    assert decision.assignee_id == "tech-clerk-2"
    assert {c.staff_id for c in decision.candidates} == {"tech-clerk-1", "tech-clerk-2"}


def test_a_busy_office_director_leaves_the_hard_case_to_the_officer() -> None:
    decision = route(PACK, "hard-case", loads={"office-director": 3})
    assert decision.assignee_id == "office-officer"
    assert "archivist" not in {c.staff_id for c in decision.candidates}


def test_at_the_weekend_nobody_is_on_shift_and_the_least_loaded_takes_it() -> None:
    saturday = datetime(2026, 11, 21, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    decision = route(PACK, "test-result-objection", at=saturday, loads={"tech-clerk-1": 2})
    assert decision.assignee_id == "tech-clerk-2"
    assert "nobody on shift" in decision.reason


def test_the_retest_reply_clock_is_fifteen_days_or_three_working_days_when_urgent() -> None:
    # 2.2.5: one clock, two rules; the urgent rule comes first so that it wins.
    urgent, ordinary = pack_named(PACK).clocks
    assert (urgent.clock, urgent.working_days, urgent.severities) == (
        "retest-reply",
        3,
        (Severity.URGENT,),
    )
    assert (ordinary.clock, ordinary.target_hours, ordinary.severities) == ("retest-reply", 360, ())


def test_the_ladder_climbs_from_the_technical_office_to_the_quality_manager() -> None:
    # 1.2, 2.1.1: 技术业务室; 2.1.2–2.1.3: 办公室; 1.2, 2.2.1: 质量负责人 presides.
    escalation = pack_named(PACK).escalation
    assert escalation is not None
    assert [(rung.level, rung.to) for rung in escalation.ladder] == [
        (1, ("tech-office-head",)),
        (2, ("office-director",)),
        (3, ("quality-manager",)),
    ]
    # The seed gives no delays and no authority by amount (6: compensation is negotiated).
    assert all(rung.after_hours is None for rung in escalation.ladder)
    assert all(rung.max_compensation is None for rung in escalation.ladder)
    assert all(rung.seed for rung in escalation.ladder)


def test_major_complaints_go_to_the_top_rung_at_once() -> None:
    pack = pack_named(PACK)
    assert pack.escalation is not None
    assert pack.escalation.major_to_top
    (major,) = [
        n
        for n in pack.notifications
        if n.event == "ComplaintReceived" and "major" in n.when.severities
    ]
    assert pack.escalation.ladder[-1].to[0] in major.to


def test_notifications_cover_the_customer_the_assignee_and_the_supervisors() -> None:
    rules = pack_named(PACK).notifications
    heard = {(n.event, target): n for n in rules for target in n.to}
    acknowledgement = heard[("ComplaintReceived", "customer")]
    assert set(acknowledgement.channels) == {"email", "sms"}
    assert acknowledgement.template == "acknowledgement"
    assert not acknowledgement.when.severities
    assert heard[("ComplaintAssigned", "assignee")].template == "assignment"
    assert ("ComplaintAssigned", "previous_assignee") in heard
    assert ("ComplaintAssigned", "also_notify") in heard
    assert heard[("ClockBreached", "supervisor")].template == "breach"
    assert heard[("ReturnVisitDue", "owner")].template == "return-visit-due"


def test_customers_get_customer_templates_only() -> None:
    # 004 篇二 4.2.3.1 ①: only customer service speaks to customers; 3.1–3.3 in writing.
    customer_rules = [n for n in pack_named(PACK).notifications if "customer" in n.to]
    assert {n.event: n.template for n in customer_rules} == {
        "ComplaintReceived": "acknowledgement",
        "DecisionCommunicated": "decision",
        "ComplaintAnsweredOnSpot": "decision",
        "ComplaintNotUpheld": "not-upheld",
    }
    assert all(n.to == ("customer",) and "email" in n.channels for n in customer_rules)


SHANGHAI = ZoneInfo("Asia/Shanghai")
WEDNESDAY = datetime(2026, 11, 18, 10, 0, tzinfo=SHANGHAI)
NATIONAL_DAY_EVE = datetime(2026, 9, 30, 10, 0, tzinfo=SHANGHAI)
REPLIED = {"DecisionCommunicated", "ComplaintAnsweredOnSpot", "ComplaintNotUpheld"}


def lab_clocks(
    severity: Severity,
    started_at: datetime = WEDNESDAY,
    category: str = "test-result-objection",
    starting_event: str = "ComplaintReceived",
) -> list[PlannedClock]:
    return plan_clocks(
        pack_named(PACK),
        ComplaintFacts(
            complaint_no="261118001",
            category=category,
            customer_type=CustomerType.END_CUSTOMER,
            severity=severity,
            region=Region.DOMESTIC,
        ),
        starting_event=starting_event,
        started_at=started_at,
    )


@pytest.mark.parametrize("severity", [Severity.NORMAL, Severity.MAJOR])
def test_an_objection_is_answered_within_15_days(severity: Severity) -> None:
    # 2.2.5: 15 calendar days from Wednesday 2026-11-18 10:00.
    (clock,) = lab_clocks(severity)
    assert (clock.name, clock.rule, clock.working) == ("retest-reply", "retest-reply-15d", False)
    assert clock.due_at == datetime(2026, 12, 3, 10, 0, tzinfo=SHANGHAI)
    assert clock.warnings == (
        (0.5, datetime(2026, 11, 25, 22, 0, tzinfo=SHANGHAI)),
        (0.8, datetime(2026, 11, 30, 10, 0, tzinfo=SHANGHAI)),
    )
    assert set(clock.stops_on) == REPLIED  # 3.1, 3.2: the written answer
    assert clock.return_visit is False


def test_an_urgent_objection_is_answered_within_three_working_days() -> None:
    # 2.2.5: received Wednesday 10:00; Thursday, Friday and Monday are the three working
    # days: due Monday 2026-11-23 at the office's closing time, 17:00. Working time
    # left: 6 h Wednesday + 3 × 7.5 h = 28.5 h; half (14.25 h) falls at Friday 09:15,
    # 80 % (22.8 h) at Monday 10:18.
    (clock,) = lab_clocks(Severity.URGENT)
    assert (clock.name, clock.rule, clock.working) == ("retest-reply", "urgent-reply-3wd", True)
    assert clock.calendar == "station-office"
    assert clock.due_at == datetime(2026, 11, 23, 17, 0, tzinfo=SHANGHAI)
    assert clock.target_seconds == int(28.5 * 3600)
    assert clock.warnings == (
        (0.5, datetime(2026, 11, 20, 9, 15, tzinfo=SHANGHAI)),
        (0.8, datetime(2026, 11, 23, 10, 18, tzinfo=SHANGHAI)),
    )
    assert set(clock.stops_on) == REPLIED


def test_an_urgent_objection_before_national_day_waits_out_the_holiday() -> None:
    # Received 2026-09-30 10:00: 10-01..07 are public holidays; 10-08 (Thu) and 10-09
    # (Fri) are working days 1 and 2, and Saturday 10-10 is a 调休 working day, the 3rd,
    # with a Monday's hours: due 2026-10-10 17:00. Warnings as above: 09:15 on 10-09,
    # 10:18 on 10-10.
    (clock,) = lab_clocks(Severity.URGENT, NATIONAL_DAY_EVE)
    assert clock.due_at == datetime(2026, 10, 10, 17, 0, tzinfo=SHANGHAI)
    assert clock.warnings == (
        (0.5, datetime(2026, 10, 9, 9, 15, tzinfo=SHANGHAI)),
        (0.8, datetime(2026, 10, 10, 10, 18, tzinfo=SHANGHAI)),
    )
    # The 15 calendar days run through the holiday.
    (ordinary,) = lab_clocks(Severity.NORMAL, NATIONAL_DAY_EVE)
    assert ordinary.due_at == datetime(2026, 10, 15, 10, 0, tzinfo=SHANGHAI)


@pytest.mark.parametrize("category", ["general-service", "hard-case", "satisfaction-survey"])
def test_other_complaints_get_no_clock(category: str) -> None:
    # The seed sets deadlines only for objections to test results (2.2.5).
    assert lab_clocks(Severity.URGENT, category=category) == []


def test_no_clock_starts_later_and_there_is_no_return_visit() -> None:
    # 第三篇 has no 回访 (3.3 is a feedback form).
    assert lab_clocks(Severity.NORMAL, starting_event="DecisionCommunicated") == []
    assert not any(rule.return_visit for rule in pack_named(PACK).clocks)
