"""Reporting's side of access: the scope of a case from its row, which filter a report
must be narrowed by, what an audit entry says of the reader, and a reason's text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.reporting.access import UNRECORDED_CONFIDENTIALITY, audited_branches, case_scope
from services.reporting.app import build_app
from services.reporting.settings import ReportingSettings
from shared.auth.access import (
    ALL,
    BranchCaller,
    CaseScope,
    NarrowingNeededError,
    Role,
    StaffCaller,
    can_read_record,
    report_scope,
)
from shared.auth.credentials import CredentialsError
from shared.contracts.submissions import Confidentiality
from shared.policy import load_packs
from shared.settings import REPO_ROOT

PACKS = load_packs(REPO_ROOT / "policy-packs")


def row(**changes: Any) -> dict[str, Any]:
    return {
        "branch_id": "hotel-demo",
        "pack": "hotel",
        "department": "engineering",
        "assignee_id": "eng-manager",
        "confidentiality": "personal",
        **changes,
    }


def staff(
    *roles: Role, branches: tuple[str, ...] = (ALL,), departments: tuple[str, ...] = (ALL,)
) -> StaffCaller:
    return StaffCaller("someone", frozenset(roles), frozenset(branches), frozenset(departments))


def test_a_routed_case_is_its_departments() -> None:
    assert case_scope(row(), PACKS) == CaseScope(
        "hotel-demo", "engineering", "eng-manager", Confidentiality.PERSONAL
    )


def test_before_routing_a_case_is_its_packs_triage_departments() -> None:
    scope = case_scope(row(department=None, assignee_id=None), PACKS)
    assert scope.department == PACKS.require("hotel").triage_department == "front-office"


def test_a_case_of_a_pack_no_longer_loaded_has_no_department_before_routing() -> None:
    assert case_scope(row(department=None, pack="gone"), PACKS).department is None
    assert case_scope(row(department=None, pack=None), PACKS).department is None


def test_a_case_without_its_complaint_yet_is_read_as_the_strictest_level() -> None:
    unknown = case_scope(row(confidentiality=None), PACKS)
    assert unknown.confidentiality is UNRECORDED_CONFIDENTIALITY
    # Whoever the strictest level admits, every level admits.
    callers = [
        staff(role, branches=branches, departments=departments)
        for role in Role
        for branches in ((ALL,), ("hotel-demo",))
        for departments in ((ALL,), ("engineering",))
    ] + [BranchCaller("hotel-demo", "k")]
    for caller in callers:
        if can_read_record(caller, unknown):
            for level in Confidentiality:
                assert can_read_record(caller, CaseScope("hotel-demo", "engineering", None, level))


@pytest.mark.parametrize(
    ("caller", "branch_id", "department", "expected"),
    [
        (staff(Role.MANAGER, branches=("a", "b")), None, None, "branch_id"),
        (staff(Role.MANAGER, branches=("a", "b"), departments=("x", "y")), None, None, "branch_id"),
        (staff(Role.MANAGER, branches=("a", "b"), departments=("x", "y")), "a", None, "department"),
        (staff(Role.MANAGER, departments=("x", "y")), None, None, "department"),
        (staff(Role.MANAGER, branches=("a",), departments=("x", "y")), None, None, "department"),
    ],
)
def test_the_missing_filter_is_the_one_report_scope_asks_for(
    caller: StaffCaller, branch_id: str | None, department: str | None, expected: str
) -> None:
    with pytest.raises(NarrowingNeededError, match=f"name one with {expected}$") as refused:
        report_scope(caller, branch_id, department)
    assert refused.value.parameter == expected


def test_an_auditor_lists_their_branches_or_all() -> None:
    assert audited_branches(staff(Role.AUDITOR)) is None
    assert audited_branches(staff(Role.AUDITOR, branches=("b", "a"))) == ["a", "b"]


def test_missing_credentials_stop_the_service_at_start_up(tmp_path: Path) -> None:
    missing = tmp_path / "branch-keys.json"
    with pytest.raises(CredentialsError, match=str(missing)):
        build_app(ReportingSettings(auth_branch_keys_file=missing))
