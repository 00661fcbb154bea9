"""Who may see, read and act on what: pure decisions, no I/O.

Two kinds of caller reach the HTTP APIs. A branch system, authenticated by its branch's
API key, submits and reads its own branch's complaints and nothing else. A staff member,
authenticated by a signed token, carries roles scoped to branches and departments.

A complaint outside the caller's scope does not exist for them (404, so numbers cannot
be probed). Inside it, reading the customer's record also needs the clearance its
confidentiality level asks (seed 004 篇三 第四章: company files for the company's
managers, department files for the department, personal files for the person who holds
them and their managers); lacking it is a 403, and the refusal is audited like a read.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.contracts.submissions import Confidentiality

ALL = "*"


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    MANAGER = "manager"
    AUDITOR = "auditor"
    ADMIN = "admin"


@dataclass(frozen=True)
class BranchCaller:
    """A branch system, by its API key."""

    branch_id: str
    key_id: str

    @property
    def name(self) -> str:
        return f"branch:{self.branch_id}"


@dataclass(frozen=True)
class StaffCaller:
    """A staff member, by their token; ``branches``/``departments`` may hold ``ALL``."""

    subject: str
    roles: frozenset[Role]
    branches: frozenset[str]
    departments: frozenset[str]

    @property
    def name(self) -> str:
        return f"staff:{self.subject}"

    def has(self, *roles: Role) -> bool:
        return bool(self.roles.intersection(roles)) or Role.ADMIN in self.roles

    def covers_branch(self, branch_id: str) -> bool:
        return ALL in self.branches or branch_id in self.branches

    def covers_department(self, department: str | None) -> bool:
        if ALL in self.departments:
            return True
        return department is not None and department in self.departments

    @property
    def company_wide(self) -> bool:
        return ALL in self.branches and ALL in self.departments


Caller = BranchCaller | StaffCaller


@dataclass(frozen=True)
class CaseScope:
    """What access to one complaint turns on. ``department`` is the one it is routed to,
    or before routing the pack's triage department, whose staff take new complaints."""

    branch_id: str
    department: str | None
    assignee_id: str | None
    confidentiality: Confidentiality


def reader_roles(caller: Caller) -> tuple[str, ...]:
    """The roles an audit entry records: a branch system has none, its name says it all."""
    if isinstance(caller, BranchCaller):
        return ()
    return tuple(sorted(str(role) for role in caller.roles))


def can_see(caller: Caller, case: CaseScope) -> bool:
    """Whether the complaint exists for ``caller``: False answers 404."""
    if isinstance(caller, BranchCaller):
        return caller.branch_id == case.branch_id
    if not caller.covers_branch(case.branch_id):
        return False
    return caller.covers_department(case.department) or caller.subject == case.assignee_id


def can_read_record(caller: Caller, case: CaseScope) -> bool:
    """Whether ``caller`` may read the customer's record of a complaint they can see."""
    if not can_see(caller, case):
        return False
    if isinstance(caller, BranchCaller):
        return True  # the branch took the complaint: the record is its own
    if caller.has(Role.AUDITOR):
        return True  # auditors read everything, contacts masked (sees_contacts)
    if case.confidentiality is Confidentiality.COMPANY:
        return caller.has(Role.MANAGER) and caller.company_wide
    if case.confidentiality is Confidentiality.DEPARTMENT:
        return caller.has(Role.AGENT, Role.SUPERVISOR, Role.MANAGER)
    return caller.subject == case.assignee_id or caller.has(Role.SUPERVISOR, Role.MANAGER)


def sees_contacts(caller: Caller) -> bool:
    """Phone and e-mail in clear only for those who contact the customer: the branch that
    took the complaint and the staff who handle it. Managers and auditors see them masked."""
    if isinstance(caller, BranchCaller):
        return True
    return bool(caller.roles.intersection({Role.AGENT, Role.SUPERVISOR}))


def can_act(caller: Caller, case: CaseScope, *, needs_supervisor: bool = False) -> bool:
    """Whether ``caller`` may take a staff action on a complaint they can see."""
    if isinstance(caller, BranchCaller) or not can_see(caller, case):
        return False
    if needs_supervisor:
        return caller.has(Role.SUPERVISOR, Role.MANAGER)
    return caller.has(Role.AGENT, Role.SUPERVISOR, Role.MANAGER)


def can_read_reports(caller: Caller) -> bool:
    if isinstance(caller, BranchCaller):
        return True  # its own branch's figures only: report_scope narrows
    return caller.has(Role.SUPERVISOR, Role.MANAGER, Role.AUDITOR)


def can_read_audit(caller: Caller) -> bool:
    return isinstance(caller, StaffCaller) and caller.has(Role.AUDITOR)


def can_manage_branch(caller: Caller, branch_id: str) -> bool:
    """Service volumes and similar branch figures: the branch itself or its managers."""
    if isinstance(caller, BranchCaller):
        return caller.branch_id == branch_id
    return caller.covers_branch(branch_id) and caller.has(Role.MANAGER)


class OutOfScopeError(LookupError):
    """A report filter names a branch or department the caller has no access to."""


class NarrowingNeededError(ValueError):
    """The caller sees several branches or departments but not all: the report must name one
    (``parameter``, the query parameter to give)."""

    def __init__(self, message: str, parameter: str) -> None:
        super().__init__(message)
        self.parameter = parameter


def report_scope(
    caller: Caller, branch_id: str | None, department: str | None
) -> tuple[str | None, str | None]:
    """The branch and department filters a report runs with for ``caller``.

    A filter outside the caller's scope is refused; a missing one is filled in when the
    caller's scope holds exactly one value, and refused when it holds several (a report
    over "all branches" must not quietly include some the caller cannot see).
    """
    if isinstance(caller, BranchCaller):
        if branch_id is not None and branch_id != caller.branch_id:
            raise OutOfScopeError(f"no branch {branch_id}")
        return caller.branch_id, department
    return (
        _narrow(caller.branches, branch_id, "branch", "branch_id"),
        _narrow(caller.departments, department, "department", "department"),
    )


def _narrow(scope: frozenset[str], wanted: str | None, what: str, parameter: str) -> str | None:
    if ALL in scope:
        return wanted
    if wanted is not None:
        if wanted not in scope:
            raise OutOfScopeError(f"no {what} {wanted}")
        return wanted
    if len(scope) == 1:
        return next(iter(scope))
    raise NarrowingNeededError(
        f"you see {len(scope)} {what}s ({', '.join(sorted(scope))}): name one with {parameter}",
        parameter,
    )
