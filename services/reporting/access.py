"""Who reads what in reporting: shared/auth/access.py's decisions applied to reporting's
own projections, without a query of their own (the caller's scope is in their token,
the case's in the row the case file reads anyway)."""

from __future__ import annotations

from typing import Any, Protocol

from shared.auth.access import ALL, CaseScope, StaffCaller
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


def audited_branches(caller: StaffCaller) -> list[str] | None:
    """The branches whose audit trail ``caller`` lists; None: every branch."""
    return None if ALL in caller.branches else sorted(caller.branches)
