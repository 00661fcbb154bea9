"""Deadline clocks: which clocks a complaint gets and when each falls due. Pure."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.contracts.intake import CustomerType, Region, Severity
from shared.policy import PolicyPack

_CLOCK_NAMESPACE = uuid.UUID("6f1d8f64-3c2b-4a53-9a55-0c6d3f7b1e21")


@dataclass(frozen=True)
class PlannedClock:
    clock_id: uuid.UUID
    name: str
    rule: str
    started_at: datetime
    due_at: datetime
    target_seconds: int


def clock_id(complaint_no: str, clock: str) -> uuid.UUID:
    """Stable per complaint and clock, so a replay names the same clock."""
    return uuid.uuid5(_CLOCK_NAMESPACE, f"{complaint_no}/{clock}")


def plan_clocks(
    pack: PolicyPack,
    *,
    complaint_no: str,
    category: str,
    customer_type: CustomerType,
    severity: Severity,
    region: Region,
    received_at: datetime,
) -> list[PlannedClock]:
    """One clock per clock name: the first rule of that name whose filters match wins."""
    planned: dict[str, PlannedClock] = {}
    for rule in pack.clocks:
        if rule.clock in planned or not rule.matches(category, customer_type, severity, region):
            continue
        target = timedelta(hours=rule.target_hours)
        planned[rule.clock] = PlannedClock(
            clock_id=clock_id(complaint_no, rule.clock),
            name=rule.clock,
            rule=rule.id,
            started_at=received_at,
            due_at=received_at + target,
            target_seconds=int(target.total_seconds()),
        )
    return list(planned.values())
