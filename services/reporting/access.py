"""Who reads what in reporting: shared/auth/access.py's decisions applied to reporting's
own projections, without a query of their own (the caller's scope is in their token,
the case's in the row the case file reads anyway)."""

from __future__ import annotations

from typing import Any, Protocol

from shared.auth.access import ALL, BranchCaller, Caller, CaseScope, StaffCaller
from shared.contracts.submissions import Confidentiality
from shared.policy import PackRegistry

# A case whose ComplaintReceived has not been projected yet (routing's event came first)
# has no level on record: it is read as the strictest one until it has. Every caller
# company files admit is admitted by the other levels too.
UNRECORDED_CONFIDENTIALITY = Confidentiality.COMPANY


class Row(Protocol):
    """A row of ``cases``: an asyncpg record, or a dict in tests."""

    def __getitem__(self, key: str, /) -> Any: ...


def case_scope(case: Row, packs: PackRegistry) -> CaseScope:
    """What access to the case turns on. Before routing, the department is the pack's
    triage department, whose staff take new complaints."""
    department = case["department"]
    pack = packs.packs.get(case["pack"])
    if department is None and pack is not None:
        department = pack.triage_department
    level = case["confidentiality"]
    return CaseScope(
        branch_id=case["branch_id"],
        department=department,
        assignee_id=case["assignee_id"],
        confidentiality=Confidentiality(level) if level else UNRECORDED_CONFIDENTIALITY,
    )


def missing_filter(caller: Caller, branch_id: str | None) -> str:
    """The query parameter a ``NarrowingNeededError`` of ``report_scope`` asks for: it
    narrows the branch first, then the department."""
    needs_branch = (
        isinstance(caller, StaffCaller)
        and branch_id is None
        and ALL not in caller.branches
        and len(caller.branches) > 1
    )
    return "branch_id" if needs_branch else "department"


def reader_roles(caller: Caller) -> tuple[str, ...]:
    """The roles an audit entry records: a branch system has none, its name says it all."""
    if isinstance(caller, BranchCaller):
        return ()
    return tuple(sorted(str(role) for role in caller.roles))


def audited_branches(caller: StaffCaller) -> list[str] | None:
    """The branches whose audit trail ``caller`` lists; None: every branch."""
    return None if ALL in caller.branches else sorted(caller.branches)


def header_text(raw: str) -> str:
    """A header's text. HTTP carries header values as bytes, which the server reads as
    Latin-1; a browser can send a reason typed in Chinese only as its UTF-8 bytes (the
    dashboard does), so bytes that are valid UTF-8 are read as such. ASCII is unchanged."""
    try:
        return raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return raw
