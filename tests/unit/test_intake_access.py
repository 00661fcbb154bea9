"""Intake's access decisions, without a database: who submits, reads, acts, and what a
read shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.intake.access import (
    ForbiddenError,
    acting_as,
    as_staff,
    case_scope,
    check_action,
    check_branch_manager,
    check_submitter,
    clearance_needed,
    decide_read,
    sees_branch,
    without_contacts,
)
from services.intake.app import build_app
from services.intake.settings import IntakeSettings
from shared.auth.access import ALL, BranchCaller, CaseScope, Role, StaffCaller
from shared.auth.credentials import CredentialsError
from shared.contracts.submissions import Confidentiality

BRANCH = BranchCaller(branch_id="hotel-demo", key_id="0123456789ab")
OTHER_BRANCH = BranchCaller(branch_id="fitness-club-demo", key_id="ba9876543210")


def staff(
    subject: str,
    *roles: Role,
    branches: tuple[str, ...] = ("hotel-demo",),
    departments: tuple[str, ...] = ("front-office",),
) -> StaffCaller:
    return StaffCaller(subject, frozenset(roles), frozenset(branches), frozenset(departments))


AGENT = staff("fo-agent", Role.AGENT)
OTHER_AGENT = staff("fo-agent-2", Role.AGENT)
HOUSEKEEPING_AGENT = staff("hk-agent", Role.AGENT, departments=("housekeeping",))
SUPERVISOR = staff("fo-supervisor", Role.SUPERVISOR)
BRANCH_MANAGER = staff("deputy-gm", Role.MANAGER, departments=(ALL,))
COMPANY_MANAGER = staff("company-manager", Role.MANAGER, branches=(ALL,), departments=(ALL,))
AUDITOR = staff("auditor", Role.AUDITOR, branches=(ALL,), departments=(ALL,))
ADMIN = staff("admin", Role.ADMIN, branches=(ALL,), departments=(ALL,))


def scope(level: Confidentiality, assignee: str | None = None) -> CaseScope:
    return case_scope(
        branch_id="hotel-demo",
        department=None,
        assignee_id=assignee,
        confidentiality=level,
        triage_department="front-office",
    )


def test_before_routing_a_case_belongs_to_the_triage_department() -> None:
    assert scope(Confidentiality.DEPARTMENT).department == "front-office"
    routed = case_scope(
        branch_id="hotel-demo",
        department="engineering",
        assignee_id="eng-manager",
        confidentiality=Confidentiality.DEPARTMENT,
        triage_department="front-office",
    )
    assert routed.department == "engineering"


def test_a_branch_submits_for_itself_and_staff_for_the_branches_they_work_in() -> None:
    check_submitter(BRANCH, "hotel-demo")
    check_submitter(AGENT, "hotel-demo")
    check_submitter(ADMIN, "anywhere")
    with pytest.raises(ForbiddenError, match="submits for that branch only, not for anywhere"):
        check_submitter(BRANCH, "anywhere")
    with pytest.raises(ForbiddenError, match="does not cover branch fitness-club-demo"):
        check_submitter(AGENT, "fitness-club-demo")
    with pytest.raises(ForbiddenError, match="agent, supervisor or manager"):
        check_submitter(AUDITOR, "hotel-demo")


def test_branches_outside_the_scope_are_not_seen_and_only_managers_record_figures() -> None:
    assert sees_branch(BRANCH, "hotel-demo")
    assert not sees_branch(OTHER_BRANCH, "hotel-demo")
    assert sees_branch(AGENT, "hotel-demo")
    assert not sees_branch(AGENT, "fitness-club-demo")
    check_branch_manager(BRANCH, "hotel-demo")
    check_branch_manager(BRANCH_MANAGER, "hotel-demo")
    with pytest.raises(ForbiddenError, match="its own API key or its managers"):
        check_branch_manager(AGENT, "hotel-demo")


def test_staff_act_as_themselves_unless_an_administrator_enters_it_for_someone() -> None:
    with pytest.raises(ForbiddenError, match="staff member's token"):
        as_staff(BRANCH)
    assert as_staff(AGENT) is AGENT
    assert acting_as(AGENT, None) == "fo-agent"
    assert acting_as(AGENT, "fo-agent") == "fo-agent"
    with pytest.raises(ForbiddenError, match="you act as yourself"):
        acting_as(AGENT, "fo-supervisor")
    assert acting_as(ADMIN, "fo-supervisor") == "fo-supervisor"
    assert acting_as(ADMIN, None) == "admin"


def test_reassignment_needs_a_supervisor_and_auditors_take_no_action() -> None:
    case = scope(Confidentiality.DEPARTMENT)
    check_action(AGENT, case, needs_supervisor=False)
    check_action(SUPERVISOR, case, needs_supervisor=True)
    check_action(ADMIN, case, needs_supervisor=True)
    with pytest.raises(ForbiddenError, match="supervisor or manager"):
        check_action(AGENT, case, needs_supervisor=True)
    with pytest.raises(ForbiddenError, match="agent, supervisor or manager"):
        check_action(AUDITOR, case, needs_supervisor=False)


@pytest.mark.parametrize(
    ("caller", "level", "visible", "allowed", "contacts"),
    [
        (BRANCH, Confidentiality.COMPANY, True, True, True),
        (OTHER_BRANCH, Confidentiality.DEPARTMENT, False, False, False),
        (AGENT, Confidentiality.DEPARTMENT, True, True, True),
        (HOUSEKEEPING_AGENT, Confidentiality.DEPARTMENT, False, False, False),
        (AGENT, Confidentiality.PERSONAL, True, True, True),  # the assignee
        (OTHER_AGENT, Confidentiality.PERSONAL, True, False, False),
        (SUPERVISOR, Confidentiality.PERSONAL, True, True, True),
        (AGENT, Confidentiality.COMPANY, True, False, False),
        (BRANCH_MANAGER, Confidentiality.COMPANY, True, False, False),
        (COMPANY_MANAGER, Confidentiality.COMPANY, True, True, False),
        (AUDITOR, Confidentiality.COMPANY, True, True, False),
        (ADMIN, Confidentiality.PERSONAL, True, True, False),
    ],
)
def test_a_read_is_decided_by_scope_clearance_and_contact_duty(
    caller: BranchCaller | StaffCaller,
    level: Confidentiality,
    visible: bool,
    allowed: bool,
    contacts: bool,
) -> None:
    decision = decide_read(caller, scope(level, assignee="fo-agent"))
    assert (decision.visible, decision.allowed, decision.contacts_shown) == (
        visible,
        allowed,
        contacts,
    )
    assert decision.outcome == ("read" if allowed else "refused")


def test_the_refusal_names_the_clearance_and_the_roles_are_recorded_sorted() -> None:
    message = clearance_needed(Confidentiality.PERSONAL)
    assert message.startswith("reading this customer's record needs personal clearance")
    assert message.endswith("ask for approval")


def test_contacts_are_masked_in_the_record_and_in_its_history() -> None:
    customer = {"name": "张伟", "phone": "+86 138 0013 8000", "email": "zhang.wei@example.com"}
    view: dict[str, Any] = {
        "complaint_no": "261122001",
        "customer": customer,
        "history": [
            {"sequence": 1, "details": {"customer": customer, "category": "facilities"}},
            {"sequence": 2, "details": {"note": "called back"}},
        ],
    }
    masked = without_contacts(view)
    expected = {"name": "张伟", "phone": "***8000", "email": "z***@example.com"}
    assert masked["customer"] == expected
    assert masked["history"][0]["details"] == {"customer": expected, "category": "facilities"}
    assert masked["history"][1] == view["history"][1]
    assert view["customer"]["phone"] == "+86 138 0013 8000"  # the original is left alone
    no_contacts = without_contacts({"customer": {"name": "x", "phone": None}, "history": []})
    assert no_contacts["customer"] == {"name": "x", "phone": None}


def test_contacts_typed_into_free_text_are_masked_too() -> None:
    view: dict[str, Any] = {
        "description": "空调坏了，请打 13800138000 联系我",
        "customer_request": "email me at zhang.wei@example.com",
        "customer": {"name": "张伟"},
        "history": [
            {"sequence": 2, "note": "rang 13800138000", "details": {"note": "no answer"}},
            {"sequence": 3, "note": None, "details": {"note": "left a message on 13800138000"}},
        ],
    }
    masked = without_contacts(view)
    assert masked["description"] == "空调坏了，请打 ***8000 联系我"
    assert masked["customer_request"] == "email me at z***@example.com"
    assert masked["history"][0]["note"] == "rang ***8000"
    assert masked["history"][0]["details"] == {"note": "no answer"}
    assert masked["history"][1]["details"] == {"note": "left a message on ***8000"}


def test_intake_does_not_start_without_its_credentials(tmp_path: Path) -> None:
    missing = tmp_path / "branch-keys.json"
    with pytest.raises(CredentialsError, match="cannot read branch keys"):
        build_app(IntakeSettings(auth_branch_keys_file=missing))
