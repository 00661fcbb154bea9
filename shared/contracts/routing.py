"""Events produced by routing, on topic ``complaints.routing``."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.base import Event


class Assignee(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    staff_id: str
    name: str


class CandidateConsidered(BaseModel):
    """One person routing weighed, and what it saw."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    staff_id: str
    open_cases: int
    capacity: int
    on_shift: bool


class ComplaintAssigned(Event):
    """A department, and a person in it, now handle the complaint."""

    EVENT_TYPE: ClassVar[str] = "ComplaintAssigned"
    event_type: Literal["ComplaintAssigned"] = "ComplaintAssigned"

    department: str
    assignee: Assignee | None
    rule: str
    pack: str
    pack_version: str
    also_notify: tuple[str, ...] = Field(
        default=(), description="Staff ids or departments the pack says are told as well."
    )
    candidates: tuple[CandidateConsidered, ...] = ()
    reason: str = Field(default="", description="Why this person among the candidates.")
    previous_assignee: Assignee | None = Field(
        default=None, description="Set on a reassignment: the person who had the case."
    )
