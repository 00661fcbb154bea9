"""The it-services pack (seed 000 第四篇 客户服务管理制度) routes as the seed says."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from services.sla.domain import ComplaintFacts, plan_clocks
from shared.contracts.submissions import CustomerType, Region, Severity
from shared.policy import CLOCK_EVENTS
from tests.unit.packs.routing_cases import pack_named, route

MAJOR_FAULT_NOTIFY = ("manager-in-charge", "gm", "business", "ts-head")

CASES = [
    # (category, keyword text, severity, channel, department, assignee, rule, also_notify)
    # 七: a major fault goes to management at once; the senior engineers take it.
    (
        "fault",
        "客户业务系统全部中断",
        "major",
        "phone",
        "technical-service",
        "ts-senior-1",
        "rule:major-fault",
        MAJOR_FAULT_NOTIFY,
    ),
    # 二5: a major matter is reported to the GM at once.
    (
        "complaint",
        "工程师多次推诿，项目无法验收",
        "major",
        "letter",
        "technical-service",
        "ts-head",
        "rule:major-matter",
        ("gm",),
    ),
    # 八: the customers' websites.
    (
        "fault",
        "客户网站打不开",
        "normal",
        "phone",
        "technical-service",
        "ts-engineer-1",
        "rule:fault-website",
        (),
    ),
    # 十 10.2.2: system faults, fixed by remote access.
    (
        "fault",
        "系统登录报错，需要远程处理",
        "urgent",
        "email",
        "technical-service",
        "ts-engineer-2",
        "rule:fault-system",
        (),
    ),
    # 十 10.1.2, 10.2.3: installation and implementation.
    (
        "fault",
        "新设备安装后无法启动",
        "normal",
        "phone",
        "technical-service",
        "ts-engineer-3",
        "rule:fault-installation",
        (),
    ),
    # 七, 十 10.2: any other fault goes to the service engineers.
    (
        "fault",
        "打印机卡纸",
        "normal",
        "wechat",
        "technical-service",
        "ts-engineer-1",
        "rule:fault-service-engineers",
        (),
    ),
    # 二3, 十 10.2.3: on-site service; 客服部 designates the technician.
    (
        "service-request",
        "请派人上门调试",
        "normal",
        "phone",
        "technical-service",
        "ts-engineer-1",
        "rule:on-site-service",
        ("customer-service",),
    ),
    # 一: technical service takes service requests.
    (
        "service-request",
        "咨询账号开通",
        "normal",
        "web",
        "technical-service",
        "ts-engineer-1",
        "rule:service-request-engineers",
        (),
    ),
    # 一, 十 10.1.3: complaints to the senior engineers; the business department supervises.
    (
        "complaint",
        "服务态度差",
        "normal",
        "email",
        "technical-service",
        "ts-senior-1",
        "rule:complaint-senior-engineers",
        ("business",),
    ),
    # 三: new requirements are 客服部's.
    (
        "new-requirement",
        "明年计划增加两个分站点",
        "normal",
        "phone",
        "customer-service",
        "cs-agent-1",
        "category:new-requirement",
        (),
    ),
    # 十 10.1.1: inspection findings are handed to 客服部.
    (
        "inspection-finding",
        "巡检发现机房温度偏高",
        "normal",
        "walk_in",
        "customer-service",
        "cs-agent-1",
        "category:inspection-finding",
        (),
    ),
    # 二7: whatever nobody decides goes to 客服部.
    ("unknown-thing", "", "normal", "phone", "customer-service", "cs-agent-1", "triage", ()),
]


@pytest.mark.parametrize(
    (
        "category",
        "text",
        "severity",
        "channel",
        "department",
        "assignee",
        "rule",
        "also_notify",
    ),
    CASES,
)
def test_it_services_routing(
    category: str,
    text: str,
    severity: str,
    channel: str,
    department: str,
    assignee: str,
    rule: str,
    also_notify: tuple[str, ...],
) -> None:
    decision = route("it-services", category, text=text, severity=severity, channel=channel)
    assert (decision.department, decision.assignee_id, decision.rule, decision.also_notify) == (
        department,
        assignee,
        rule,
        also_notify,
    )


def test_the_demo_branch_runs_the_it_services_pack() -> None:
    branches = {b.id: b for b in pack_named("it-services").branches}
    assert branches["it-services-demo"].timezone == "Asia/Shanghai"


def test_load_balancing_picks_the_other_engineer_with_the_skill() -> None:
    website = route("it-services", "fault", text="网站访问很慢", loads={"ts-engineer-1": 3})
    assert website.assignee_id == "ts-engineer-2"
    assert {c.staff_id for c in website.candidates} == {"ts-engineer-1", "ts-engineer-2"}
    major = route("it-services", "fault", severity="major", loads={"ts-senior-1": 2})
    assert major.assignee_id == "ts-senior-2"


def test_out_of_office_hours_nobody_is_on_shift() -> None:
    saturday = datetime(2026, 11, 21, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    loads = {"ts-engineer-2": 1}
    decision = route("it-services", "fault", text="系统故障", at=saturday, loads=loads)
    assert decision.assignee_id == "ts-engineer-3"
    assert "nobody on shift" in decision.reason


def test_someone_may_approve_reassignments_and_no_clock_is_invented() -> None:
    pack = pack_named("it-services")
    approvers = {s.id for s in pack.staff if s.approves_reassignment}
    assert {"ts-head", "office-director"} <= approvers
    # 第四篇 has no complaint deadline; its only clock is the project return-visit schedule.
    assert [(c.id, c.starts_on) for c in pack.clocks] == [
        ("project-return-visits", "ProjectDelivered")
    ]


def test_the_escalation_ladder_climbs_the_seeds_chain_of_command() -> None:
    # 二4 主管领导 → 七 分管经理 → 二5 总经理; the seed gives no delays and no amounts.
    escalation = pack_named("it-services").escalation
    assert escalation is not None
    assert [(rung.level, rung.to) for rung in escalation.ladder] == [
        (1, ("ts-head",)),
        (2, ("manager-in-charge",)),
        (3, ("gm",)),
    ]
    assert all(rung.after_hours is None for rung in escalation.ladder)
    assert all(rung.max_compensation is None for rung in escalation.ladder)
    assert all(rung.seed for rung in escalation.ladder)


def test_major_matters_go_to_the_top_at_once() -> None:
    # 二5: a major matter is reported to the GM immediately; 七: major faults likewise.
    pack = pack_named("it-services")
    assert pack.escalation is not None
    assert pack.escalation.major_to_top is True
    received = [n for n in pack.notifications if n.event == "ComplaintReceived"]
    major_gm = [n for n in received if n.when.severities == ("major",) and "gm" in n.to]
    assert major_gm
    major_fault = next(n for n in received if n.id == "major-fault-management")
    assert set(major_fault.to) == {"manager-in-charge", "business", "ts-head"}
    assert major_fault.when.categories == ("fault",)


def test_notifications_cover_customer_assignee_and_supervisors() -> None:
    notifications = pack_named("it-services").notifications

    def rules(event: str, recipient: str) -> list[str]:
        return [n.template for n in notifications if n.event == event and recipient in n.to]

    acknowledgement = next(n for n in notifications if n.id == "customer-acknowledgement")
    assert (acknowledgement.event, acknowledgement.to, acknowledgement.template) == (
        "ComplaintReceived",
        ("customer",),
        "acknowledgement",
    )
    assert set(acknowledgement.channels) == {"email", "sms"}
    assert rules("ComplaintAssigned", "assignee") == ["assignment"]
    assert rules("ComplaintAssigned", "previous_assignee") == ["reassignment"]
    assert rules("ComplaintAssigned", "also_notify") == ["assignment-copy"]
    assert rules("ClockBreached", "supervisor") == ["breach"]
    assert rules("ClockWarning", "supervisor") == ["warning"]
    assert rules("ComplaintEscalated", "supervisor") == ["escalation"]
    assert rules("ReturnVisitDue", "owner") == ["return-visit-due"]
    for event in ("DecisionCommunicated", "ComplaintAnsweredOnSpot", "ComplaintNotUpheld"):
        assert rules(event, "customer"), event


def test_only_customer_templates_speak_to_customers() -> None:
    # 004 篇二 4.2.3.1 ①: customer service alone speaks to customers.
    customer_templates = {"acknowledgement", "decision", "answered-on-spot", "not-upheld"}
    for rule in pack_named("it-services").notifications:
        if "customer" in rule.to:
            assert rule.to == ("customer",), rule.id
            assert rule.template in customer_templates, rule.id


# --- clocks (第四篇 gives no deadline and no return visit per complaint) -----------------

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize("category", ["fault", "complaint", "service-request"])
@pytest.mark.parametrize("severity", [Severity.NORMAL, Severity.MAJOR])
def test_the_planner_starts_no_clock_on_any_event(category: str, severity: Severity) -> None:
    # 七 "第一时间"/"及时" and 十 10.2.3 give no figure; 五's return visits start only when
    # a delivered project is recorded.
    for event in sorted(CLOCK_EVENTS - {"ProjectDelivered"}):
        clocks = plan_clocks(
            pack_named("it-services"),
            ComplaintFacts(
                complaint_no="261118001",
                category=category,
                customer_type=CustomerType.END_CUSTOMER,
                severity=severity,
                region=Region.DOMESTIC,
            ),
            starting_event=event,
            started_at=datetime(2026, 11, 18, 10, 0, tzinfo=SHANGHAI),
        )
        assert clocks == [], event


def test_office_hours_keep_the_statutory_holidays_of_8_and_the_adjusted_working_days() -> None:
    # 八: 国家法定假日 are days off (cn-mainland calendar); Saturday 2026-10-10 is a 调休
    # working day with Monday's hours.
    office = pack_named("it-services").working_time("office-hours")
    assert not office.is_working(datetime(2026, 10, 2, 10, 0, tzinfo=SHANGHAI))  # 国庆
    assert not office.is_working(datetime(2026, 1, 1, 10, 0, tzinfo=SHANGHAI))  # 元旦
    assert office.is_working(datetime(2026, 10, 10, 10, 0, tzinfo=SHANGHAI))  # 调休 Saturday
    assert not office.is_working(datetime(2026, 10, 10, 12, 30, tzinfo=SHANGHAI))  # lunch
    assert not office.is_working(datetime(2026, 11, 21, 10, 0, tzinfo=SHANGHAI))  # Saturday
    # Received on 09-30, the next working day is 10-08.
    received = datetime(2026, 9, 30, 10, 0, tzinfo=SHANGHAI)
    assert office.end_of_working_day(received, 1) == datetime(2026, 10, 8, 18, 0, tzinfo=SHANGHAI)
