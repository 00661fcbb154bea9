"""Who may do what at intake: the platform's access rules (shared/auth/access.py) applied
to intake's endpoints. Pure: no I/O.

A complaint or branch outside the caller's scope is answered exactly like one that does
not exist (404), so numbers cannot be probed; inside it, what the caller lacks is a 403
that says what would be needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from shared.auth.access import (
    BranchCaller,
    Caller,
    CaseScope,
    Role,
    StaffCaller,
    can_act,
    can_manage_branch,
    can_read_record,
    can_see,
    sees_contacts,
)
from shared.contracts.submissions import Confidentiality
from shared.redact import mask_email, mask_phone, redact_text

# Who holds each level of customer file (seed 004 篇三 第四章), for the refusal message.
_HOLDERS = {
    Confidentiality.COMPANY: "the company's company-wide managers",
    Confidentiality.DEPARTMENT: "the agents, supervisors and managers of its department",
    Confidentiality.PERSONAL: "the person handling the case and the supervisors and managers",
}


class ForbiddenError(PermissionError):
    """Authenticated, but not allowed this: answered 403 with the message."""


@dataclass(frozen=True)
class ReadDecision:
    """What a request to read a complaint's customer record comes to."""

    visible: bool  # False: the complaint does not exist for the caller (404)
    allowed: bool  # visible but not allowed: 403
    contacts_shown: bool

    @property
    def outcome(self) -> Literal["read", "refused"]:
        return "read" if self.allowed else "refused"


def case_scope(
    *,
    branch_id: str,
    department: str | None,
    assignee_id: str | None,
    confidentiality: Confidentiality,
    triage_department: str,
) -> CaseScope:
    """A case's scope; until routing names its department, the triage department's staff
    take it."""
    return CaseScope(branch_id, department or triage_department, assignee_id, confidentiality)


def check_submitter(caller: Caller, branch_id: str) -> None:
    """A branch submits for itself; staff for a branch they work in, as agents or above."""
    if isinstance(caller, BranchCaller):
        if caller.branch_id != branch_id:
            raise ForbiddenError(
                f"this API key is branch {caller.branch_id}'s: it submits for that branch "
                f"only, not for {branch_id}"
            )
        return
    if not caller.covers_branch(branch_id):
        raise ForbiddenError(f"your token does not cover branch {branch_id}")
    if not caller.has(Role.AGENT, Role.SUPERVISOR, Role.MANAGER):
        raise ForbiddenError("submitting a complaint needs the agent, supervisor or manager role")


def sees_branch(caller: Caller, branch_id: str) -> bool:
    if isinstance(caller, BranchCaller):
        return caller.branch_id == branch_id
    return caller.covers_branch(branch_id)


def check_branch_manager(caller: Caller, branch_id: str) -> None:
    if not can_manage_branch(caller, branch_id):
        raise ForbiddenError(
            f"branch {branch_id}'s figures are recorded by its own API key or its managers"
        )


def as_staff(caller: Caller) -> StaffCaller:
    """The caller of a staff action: branch systems take none."""
    if isinstance(caller, BranchCaller):
        raise ForbiddenError("staff actions need a staff member's token, not a branch API key")
    return caller


def acting_as(caller: StaffCaller, actor: str | None) -> str:
    """Who a staff action is recorded against: the caller, or, for an administrator
    entering it on their behalf, the person the body names."""
    if actor is None or actor == caller.subject:
        return caller.subject
    if Role.ADMIN in caller.roles:
        return actor
    raise ForbiddenError(
        f"you act as yourself: leave actor out or give {caller.subject!r}; only an "
        "administrator enters actions on someone else's behalf"
    )


def check_action(caller: StaffCaller, case: CaseScope, *, needs_supervisor: bool) -> None:
    """For a case the caller can see (otherwise it is a 404, not this)."""
    if can_act(caller, case, needs_supervisor=needs_supervisor):
        return
    if needs_supervisor:
        raise ForbiddenError("this action needs a supervisor or manager of the case")
    raise ForbiddenError("acting on a case needs the agent, supervisor or manager role")


def decide_read(caller: Caller, case: CaseScope) -> ReadDecision:
    visible = can_see(caller, case)
    allowed = visible and can_read_record(caller, case)
    return ReadDecision(visible, allowed, allowed and sees_contacts(caller))


def clearance_needed(level: Confidentiality) -> str:
    return (
        f"reading this customer's record needs {level} clearance ({_HOLDERS[level]}); "
        "ask for approval"
    )


# Free text a customer or staff member typed: it can hold a phone number or an address
# ("call me back on 138…") as surely as the contact fields do.
_FREE_TEXT = ("description", "customer_request", "event_place", "note")


def without_contacts(view: dict[str, Any]) -> dict[str, Any]:
    """The case view with the customer's phone and e-mail masked, wherever the record, its
    free text and its history carry them."""
    history = [
        {
            **_masked_free_text(entry),
            "details": _masked_free_text(_masked_customer_in(entry["details"])),
        }
        for entry in view["history"]
    ]
    return {**_masked_free_text(_masked_customer_in(view)), "history": history}


def _masked_free_text(record: dict[str, Any]) -> dict[str, Any]:
    return {
        key: redact_text(value) if key in _FREE_TEXT and isinstance(value, str) else value
        for key, value in record.items()
    }


def _masked_customer_in(record: dict[str, Any]) -> dict[str, Any]:
    customer = record.get("customer")
    if not isinstance(customer, dict):
        return record
    masked = dict(customer)
    if masked.get("phone"):
        masked["phone"] = mask_phone(masked["phone"])
    if masked.get("email"):
        masked["email"] = mask_email(masked["email"])
    return {**record, "customer": masked}
