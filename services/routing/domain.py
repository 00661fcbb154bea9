"""Routing decisions: pure functions of a policy pack and a complaint."""

from __future__ import annotations

from dataclasses import dataclass

from shared.policy import PolicyPack


@dataclass(frozen=True)
class Decision:
    department: str
    assignee_id: str
    assignee_name: str
    rule: str


def decide(pack: PolicyPack, category: str) -> Decision:
    """The category's department and its head; the triage queue for an unknown category."""
    known = pack.category(category)
    if known is None:
        department, rule = pack.triage_department, "triage"
    else:
        department, rule = known.department, f"category:{known.code}"
    head = pack.member(pack.department(department).head)
    return Decision(department=department, assignee_id=head.id, assignee_name=head.name, rule=rule)
