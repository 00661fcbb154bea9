"""Events produced by sla, on topic ``complaints.sla``."""

from __future__ import annotations

import uuid
from typing import ClassVar, Literal

from pydantic import AwareDatetime

from shared.contracts.base import Event


class ClockStarted(Event):
    """A deadline clock began to run for the complaint."""

    EVENT_TYPE: ClassVar[str] = "ClockStarted"
    event_type: Literal["ClockStarted"] = "ClockStarted"

    clock_id: uuid.UUID
    name: str
    started_at: AwareDatetime
    due_at: AwareDatetime
    target_seconds: int
    calendar: Literal["elapsed"] = "elapsed"
    rule: str
    pack: str
    pack_version: str
