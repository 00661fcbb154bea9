"""Events produced by routing, on topic ``complaints.routing``."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from shared.contracts.base import Event


class Assignee(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    staff_id: str
    name: str


class ComplaintAssigned(Event):
    """A department, and a person in it, now handle the complaint."""

    EVENT_TYPE: ClassVar[str] = "ComplaintAssigned"
    event_type: Literal["ComplaintAssigned"] = "ComplaintAssigned"

    department: str
    assignee: Assignee | None
    rule: str
    pack: str
    pack_version: str
