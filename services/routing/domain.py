"""Routing decisions: pure functions of a policy pack, a complaint, loads and the time.

The first routing rule whose conditions match decides the department (and may name
the person or narrow the candidates by role and skill); without one, the category's
own department; without that, the pack's triage queue, so nothing is ever dropped.
Within the department the person is the one on shift with the lowest load relative to
capacity, then the fewest open cases, then the staff id: the same inputs always give
the same decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from shared.contracts.intake import ComplaintEscalated
from shared.contracts.submissions import Channel, CustomerType, Region, Severity
from shared.policy import PolicyPack, RoutingRule, Staff


@dataclass(frozen=True)
class RoutingInput:
    category: str
    severity: Severity
    channel: Channel
    customer_type: CustomerType
    region: Region
    text: str


@dataclass(frozen=True)
class Candidate:
    staff_id: str
    open_cases: int
    capacity: int
    on_shift: bool


@dataclass(frozen=True)
class Decision:
    department: str
    assignee_id: str
    assignee_name: str
    rule: str
    also_notify: tuple[str, ...]
    candidates: tuple[Candidate, ...]
    reason: str


def matches(rule: RoutingRule, complaint: RoutingInput) -> bool:
    return rule.when.matches(
        category=complaint.category,
        severity=complaint.severity,
        channel=complaint.channel,
        customer_type=complaint.customer_type,
        region=complaint.region,
        text=complaint.text,
    )


@dataclass(frozen=True)
class Target:
    """Where a complaint goes before the person is chosen: the department and who may take it."""

    department: str
    rule: str
    pool: tuple[Staff, ...]
    also_notify: tuple[str, ...]
    fixed: bool


def target(pack: PolicyPack, complaint: RoutingInput) -> Target:
    rule = next((r for r in pack.routing if matches(r, complaint)), None)
    category = pack.category(complaint.category)
    if rule is not None:
        department, rule_id, also_notify = rule.department, f"rule:{rule.id}", rule.also_notify
        named = pack.member(rule.assignee) if rule.assignee else None
        pool = (
            [named]
            if named is not None and named.available
            else pack.candidates(rule.department, rule.roles, rule.skill)
        )
    elif category is not None:
        department, rule_id, also_notify = category.department, f"category:{category.code}", ()
        pool = pack.candidates(department)
    else:
        department, rule_id, also_notify = pack.triage_department, "triage", ()
        pool = pack.candidates(department)
    # Whoever fits may be away: then anyone available in the department, then its head.
    pool = pool or pack.candidates(department) or [pack.member(pack.department(department).head)]
    return Target(
        department=department,
        rule=rule_id,
        pool=tuple(sorted(pool, key=lambda m: m.id)),
        also_notify=also_notify,
        fixed=bool(rule and rule.assignee and pack.member(rule.assignee).available),
    )


def decide(
    pack: PolicyPack, complaint: RoutingInput, loads: Mapping[str, int], now: datetime
) -> Decision:
    return choose(pack, target(pack, complaint), loads, now)


def choose(pack: PolicyPack, to: Target, loads: Mapping[str, int], now: datetime) -> Decision:
    """The person in ``to.pool``: on shift, least loaded for their capacity, then by id."""
    candidates = tuple(
        Candidate(
            staff_id=member.id,
            open_cases=loads.get(member.id, 0),
            capacity=member.capacity,
            on_shift=pack.working_time_of(member).is_working(now),
        )
        for member in to.pool
    )
    chosen = min(
        candidates,
        key=lambda c: (not c.on_shift, c.open_cases / c.capacity, c.open_cases, c.staff_id),
    )
    member: Staff = pack.member(chosen.staff_id)
    return Decision(
        department=to.department,
        assignee_id=member.id,
        assignee_name=member.name,
        rule=to.rule,
        also_notify=to.also_notify,
        candidates=candidates,
        reason=_explain(chosen, candidates, fixed=to.fixed),
    )


def _explain(chosen: Candidate, candidates: tuple[Candidate, ...], *, fixed: bool) -> str:
    if fixed:
        return "the rule names the person"
    shift = "on shift" if chosen.on_shift else "nobody on shift; least loaded overall"
    return (
        f"{shift}, {chosen.open_cases}/{chosen.capacity} open cases, lowest load of "
        f"{len(candidates)} candidate{'s' if len(candidates) != 1 else ''}"
    )


def escalation_target(
    pack: PolicyPack, department: str, assignee_id: str | None, escalation: ComplaintEscalated
) -> Staff | None:
    """Who takes an escalated case: the person named, else the assignee's supervisor, else
    the department's head; None when the case already sits with them."""
    if escalation.escalated_to is not None and pack.has_member(escalation.escalated_to):
        chosen = pack.member(escalation.escalated_to)
    elif (
        assignee_id is not None
        and pack.has_member(assignee_id)
        and (pack.member(assignee_id).supervisor is not None)
    ):
        supervisor = pack.member(assignee_id).supervisor
        assert supervisor is not None
        chosen = pack.member(supervisor)
    else:
        chosen = pack.member(pack.department(department).head)
    return None if chosen.id == assignee_id else chosen


def stand_in(
    pack: PolicyPack, department: str, away: str, loads: Mapping[str, int], now: datetime
) -> Decision:
    """Who takes over a case from someone who became unavailable, in the same department."""
    pool = tuple(m for m in pack.candidates(department) if m.id != away)
    head = pack.member(pack.department(department).head)
    to = Target(
        department=department,
        rule="reroute:unavailable",
        pool=pool or (head,),
        also_notify=(),
        fixed=False,
    )
    return choose(pack, to, loads, now)
