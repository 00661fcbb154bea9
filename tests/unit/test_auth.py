"""Access decisions, API keys and staff tokens, without any service."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.auth.access import (
    ALL,
    BranchCaller,
    CaseScope,
    NarrowingNeededError,
    OutOfScopeError,
    Role,
    StaffCaller,
    can_act,
    can_manage_branch,
    can_read_audit,
    can_read_record,
    can_read_reports,
    can_see,
    reader_roles,
    report_scope,
    sees_contacts,
)
from shared.auth.credentials import (
    BranchKeys,
    CredentialsError,
    InvalidTokenError,
    StaffTokens,
    TokenIssuer,
    new_api_key,
)
from shared.auth.dev import generate
from shared.auth.http import header_text
from shared.contracts.submissions import Confidentiality
from shared.settings import REPO_ROOT


def staff(
    subject: str = "fo-agent",
    *roles: Role,
    branches: tuple[str, ...] = ("hotel-demo",),
    departments: tuple[str, ...] = ("front-office",),
) -> StaffCaller:
    return StaffCaller(
        subject=subject,
        roles=frozenset(roles or (Role.AGENT,)),
        branches=frozenset(branches),
        departments=frozenset(departments),
    )


def case(
    level: Confidentiality = Confidentiality.DEPARTMENT,
    *,
    branch: str = "hotel-demo",
    department: str | None = "front-office",
    assignee: str | None = "fo-agent",
) -> CaseScope:
    return CaseScope(branch, department, assignee, level)


HOTEL_BRANCH = BranchCaller("hotel-demo", "0123456789ab")


def test_a_branch_sees_only_its_own_branchs_complaints() -> None:
    assert can_see(HOTEL_BRANCH, case())
    assert can_read_record(HOTEL_BRANCH, case(Confidentiality.COMPANY))
    assert not can_see(HOTEL_BRANCH, case(branch="property-demo"))
    assert not can_act(HOTEL_BRANCH, case())


def test_staff_see_their_branches_and_departments_and_their_own_cases() -> None:
    agent = staff("fo-agent")
    assert can_see(agent, case())
    assert not can_see(agent, case(branch="property-demo"))
    assert not can_see(agent, case(department="housekeeping", assignee="hk-manager"))
    # Assigned to them across departments (a reassignment): still theirs to work.
    assert can_see(agent, case(department="housekeeping", assignee="fo-agent"))
    everyone = staff("gm", Role.MANAGER, branches=(ALL,), departments=(ALL,))
    assert can_see(everyone, case(branch="property-demo", department=None))


def test_each_confidentiality_level_needs_its_clearance() -> None:
    assignee = staff("fo-agent")
    colleague = staff("fo-agent-2")
    supervisor = staff("fo-supervisor", Role.SUPERVISOR)
    department_manager = staff("fo-head", Role.MANAGER)
    company_manager = staff("gm", Role.MANAGER, branches=(ALL,), departments=(ALL,))
    auditor = staff("audit", Role.AUDITOR, branches=(ALL,), departments=(ALL,))

    department = case(Confidentiality.DEPARTMENT)
    assert all(
        can_read_record(c, department)
        for c in (assignee, colleague, supervisor, department_manager, company_manager)
    )

    personal = case(Confidentiality.PERSONAL)
    assert can_read_record(assignee, personal)
    assert can_read_record(supervisor, personal)
    assert can_read_record(department_manager, personal)
    assert not can_read_record(colleague, personal)

    company = case(Confidentiality.COMPANY)
    assert can_read_record(company_manager, company)
    assert not can_read_record(department_manager, company)
    assert not can_read_record(supervisor, company)
    assert not can_read_record(assignee, company)

    assert all(can_read_record(auditor, case(level)) for level in Confidentiality)


def test_contacts_are_clear_only_for_those_who_call_the_customer() -> None:
    assert sees_contacts(HOTEL_BRANCH)
    assert sees_contacts(staff("a", Role.AGENT))
    assert sees_contacts(staff("s", Role.SUPERVISOR))
    assert not sees_contacts(staff("m", Role.MANAGER))
    assert not sees_contacts(staff("x", Role.AUDITOR))
    assert not sees_contacts(staff("root", Role.ADMIN))


def test_actions_reports_audit_and_branch_figures_by_role() -> None:
    agent, supervisor = staff("a", Role.AGENT), staff("s", Role.SUPERVISOR)
    auditor = staff("x", Role.AUDITOR)
    admin = staff("root", Role.ADMIN, branches=(ALL,), departments=(ALL,))
    assert can_act(agent, case())
    assert not can_act(agent, case(), needs_supervisor=True)
    assert can_act(supervisor, case(), needs_supervisor=True)
    assert not can_act(auditor, case())
    assert can_act(admin, case(branch="anywhere", department="anything"), needs_supervisor=True)
    assert not can_read_reports(agent)
    assert can_read_reports(supervisor)
    assert can_read_reports(HOTEL_BRANCH)
    assert can_read_audit(auditor)
    assert can_read_audit(admin)
    assert not can_read_audit(supervisor)
    assert not can_read_audit(HOTEL_BRANCH)
    assert can_manage_branch(HOTEL_BRANCH, "hotel-demo")
    assert not can_manage_branch(HOTEL_BRANCH, "property-demo")
    assert not can_manage_branch(agent, "hotel-demo")
    assert can_manage_branch(staff("m", Role.MANAGER), "hotel-demo")


def test_report_filters_are_narrowed_to_the_callers_scope() -> None:
    assert report_scope(HOTEL_BRANCH, None, None) == ("hotel-demo", None)
    with pytest.raises(OutOfScopeError):
        report_scope(HOTEL_BRANCH, "property-demo", None)
    manager = staff("m", Role.MANAGER)
    assert report_scope(manager, None, None) == ("hotel-demo", "front-office")
    with pytest.raises(OutOfScopeError):
        report_scope(manager, None, "housekeeping")
    two = staff("m2", Role.MANAGER, branches=("hotel-demo", "property-demo"))
    with pytest.raises(NarrowingNeededError, match="name one with branch_id"):
        report_scope(two, None, None)
    assert report_scope(two, "property-demo", None) == ("property-demo", "front-office")
    company = staff("gm", Role.MANAGER, branches=(ALL,), departments=(ALL,))
    assert report_scope(company, None, None) == (None, None)


scopes = st.frozensets(st.sampled_from(["b1", "b2", "b3", ALL]), min_size=1)
departments = st.frozensets(st.sampled_from(["d1", "d2", ALL]), min_size=1)
cases = st.builds(
    CaseScope,
    st.sampled_from(["b1", "b2", "b3"]),
    st.sampled_from(["d1", "d2", None]),
    st.sampled_from(["p1", "p2", None]),
    st.sampled_from(list(Confidentiality)),
)
callers = st.builds(
    StaffCaller,
    st.sampled_from(["p1", "p2", "p3"]),
    st.frozensets(st.sampled_from(list(Role)), min_size=1),
    scopes,
    departments,
)


@given(callers, cases)
def test_nobody_reads_or_acts_on_what_they_cannot_see(
    caller: StaffCaller, scope: CaseScope
) -> None:
    if not can_see(caller, scope):
        assert not can_read_record(caller, scope)
        assert not can_act(caller, scope)
        assert not can_act(caller, scope, needs_supervisor=True)
    if not caller.covers_branch(scope.branch_id):
        assert not can_see(caller, scope)


@given(callers, st.sampled_from(["b1", "b2", None]), st.sampled_from(["d1", "d2", None]))
def test_a_narrowed_report_never_leaves_the_callers_scope(
    caller: StaffCaller, branch: str | None, department: str | None
) -> None:
    try:
        narrowed_branch, narrowed_department = report_scope(caller, branch, department)
    except (OutOfScopeError, NarrowingNeededError):
        return
    assert (narrowed_branch is None and ALL in caller.branches) or (
        narrowed_branch is not None and caller.covers_branch(narrowed_branch)
    )
    assert (narrowed_department is None and ALL in caller.departments) or (
        narrowed_department is not None and caller.covers_department(narrowed_department)
    )


def test_branch_keys_are_stored_hashed_and_checked(tmp_path: Path) -> None:
    _, hotel = new_api_key()
    _, lab = new_api_key()
    path = tmp_path / "keys.json"
    BranchKeys.write(path, {hotel: "hotel-demo", lab: "testing-lab-demo"})
    stored = path.read_text()
    assert hotel not in stored
    assert lab not in stored
    keys = BranchKeys.load(path)
    checked = keys.verify(hotel)
    assert checked is not None
    assert checked.branch_id == "hotel-demo"
    assert keys.verify(hotel[:-1] + ("A" if hotel[-1] != "A" else "B")) is None
    assert keys.verify("") is None
    assert keys.verify("cbk_" + hotel.split("_")[1] + "_guess") is None


NO_KEYS = BranchKeys(())


@given(st.text(max_size=200))
def test_no_string_passes_an_empty_key_file(candidate: str) -> None:
    assert NO_KEYS.verify(candidate) is None


def test_a_broken_keys_file_is_refused_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text('{"keys": [{"key_id": "x", "branch_id": "b", "sha256": "nope"}]}')
    with pytest.raises(CredentialsError, match=str(path)):
        BranchKeys.load(path)
    with pytest.raises(CredentialsError, match="cannot read"):
        BranchKeys.load(tmp_path / "missing.json")


def test_staff_tokens_carry_roles_and_scopes_and_nothing_else_passes() -> None:
    issuer = TokenIssuer.generate()
    tokens = StaffTokens(issuer.public_pem())
    token = issuer.issue(
        "fo-agent", (Role.AGENT,), branches=("hotel-demo",), departments=("front-office",)
    )
    assert tokens.verify(token) == staff("fo-agent")

    forged = TokenIssuer.generate().issue("fo-agent", (Role.ADMIN,))
    with pytest.raises(InvalidTokenError, match="Signature"):
        tokens.verify(forged)
    old = datetime.now(UTC) - timedelta(days=2)
    expired = issuer.issue("fo-agent", (Role.AGENT,), now=old, valid_for=timedelta(hours=1))
    with pytest.raises(InvalidTokenError, match="expired"):
        tokens.verify(expired)
    unsigned = jwt.encode({"sub": "root", "roles": ["admin"]}, key=None, algorithm="none")
    with pytest.raises(InvalidTokenError):
        tokens.verify(unsigned)
    with pytest.raises(InvalidTokenError):
        tokens.verify("not a token")


def test_a_token_with_an_unknown_role_is_refused() -> None:
    issuer = TokenIssuer.generate()
    claims = {
        "sub": "x",
        "roles": ["superuser"],
        "branches": ["*"],
        "departments": ["*"],
        "iss": "complaints-platform",
        "aud": "complaints-platform",
        "exp": datetime.now(UTC) + timedelta(hours=1),
    }
    token = jwt.encode(claims, issuer.private_key, algorithm="EdDSA")
    with pytest.raises(InvalidTokenError, match="claims"):
        StaffTokens(issuer.public_pem()).verify(token)


def test_dev_credentials_cover_every_demo_branch_and_keep_their_keys(tmp_path: Path) -> None:
    clear = generate(tmp_path, REPO_ROOT / "policy-packs")
    first = clear.read_text()
    assert (clear.stat().st_mode & 0o777) == 0o600
    assert ((tmp_path / "staff-token-private.pem").stat().st_mode & 0o777) == 0o600
    generate(tmp_path, REPO_ROOT / "policy-packs")
    before, after = json.loads(first), json.loads(clear.read_text())
    assert before["branches"] == after["branches"]  # keys handed out stay valid
    keys = BranchKeys.load(tmp_path / "branch-keys.json")
    tokens = StaffTokens.load(tmp_path / "staff-token-public.pem")
    for branch, key in after["branches"].items():
        checked = keys.verify(key)
        assert checked is not None
        assert checked.branch_id == branch
    agent = tokens.verify(after["staff"]["hotel/fo-agent"]["token"])
    assert agent.roles == {Role.AGENT}
    assert agent.departments == {"front-office"}
    head = tokens.verify(after["staff"]["hotel/hk-manager"]["token"])
    assert head.roles == {Role.MANAGER}
    assert head.departments == {"housekeeping"}
    supervisor = tokens.verify(after["staff"]["hotel/fo-supervisor"]["token"])
    assert supervisor.roles == {Role.SUPERVISOR}  # heads front office, and works its cases
    deputy = tokens.verify(after["staff"]["hotel/deputy-gm"]["token"])
    assert deputy.roles == {Role.MANAGER}
    assert deputy.departments == {ALL}
    assert deputy.branches == {"hotel-demo"}
    assert tokens.verify(after["staff"]["auditor"]["token"]).company_wide


def test_an_audit_entry_names_a_staff_members_roles_and_none_for_a_branch_system() -> None:
    assert reader_roles(staff("x", Role.SUPERVISOR, Role.AGENT)) == ("agent", "supervisor")
    assert reader_roles(HOTEL_BRANCH) == ()


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("calling the guest back", "calling the guest back"),
        ("回访客户".encode().decode("latin-1"), "回访客户"),  # UTF-8 bytes, read as Latin-1
        ("café", "café"),  # Latin-1 that is not UTF-8 stays as sent
        ("回访", "回访"),  # already text (a test client): unchanged
    ],
)
def test_a_reason_is_read_as_utf8_when_its_bytes_are(raw: str, text: str) -> None:
    assert header_text(raw) == text


def test_two_public_keys_accept_tokens_of_either_while_the_issuer_rotates() -> None:
    old, new, stranger = TokenIssuer.generate(), TokenIssuer.generate(), TokenIssuer.generate()
    tokens = StaffTokens(old.public_pem() + new.public_pem())
    assert tokens.verify(old.issue("fo-agent", (Role.AGENT,))).subject == "fo-agent"
    assert tokens.verify(new.issue("fo-head", (Role.MANAGER,))).subject == "fo-head"
    with pytest.raises(InvalidTokenError, match="Signature"):
        tokens.verify(stranger.issue("intruder", (Role.ADMIN,)))
    expired = new.issue(
        "fo-agent", (Role.AGENT,), now=datetime.now(UTC) - timedelta(days=1),
        valid_for=timedelta(hours=1),
    )  # fmt: skip
    with pytest.raises(InvalidTokenError, match="expired"):
        tokens.verify(expired)
    with pytest.raises(CredentialsError, match="no PEM public key"):
        StaffTokens(b"not a key")


def test_a_token_checked_once_is_trusted_only_until_it_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issuer = TokenIssuer.generate()
    tokens = StaffTokens(issuer.public_pem())
    token = issuer.issue("fo-agent", (Role.AGENT,), valid_for=timedelta(seconds=2))
    first = tokens.verify(token)
    checked = tokens._check
    checks: list[str] = []
    monkeypatch.setattr(tokens, "_check", lambda t: checks.append(t) or checked(t))
    assert tokens.verify(token) == first
    assert checks == []  # the second request did not check the signature again
    time.sleep(2.1)
    with pytest.raises(InvalidTokenError, match="expired"):
        tokens.verify(token)
    assert checks == [token]
