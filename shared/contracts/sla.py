"""Events produced by sla, on topic ``complaints.sla``."""

from __future__ import annotations

import uuid
from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field

from shared.contracts.base import Event


class ClockEvent(Event):
    """Fields every event about one clock carries."""

    clock_id: uuid.UUID
    name: str


class ClockStarted(ClockEvent):
    """A deadline clock began to run for the complaint."""

    EVENT_TYPE: ClassVar[str] = "ClockStarted"
    event_type: Literal["ClockStarted"] = "ClockStarted"

    started_at: AwareDatetime
    due_at: AwareDatetime
    target_seconds: int = Field(description="Elapsed or working seconds, as `calendar` says.")
    calendar: Literal["elapsed", "working"] = "elapsed"
    rule: str
    pack: str
    pack_version: str
    round: int = 1
    return_visit: bool = False


class ClockPaused(ClockEvent):
    """Waiting for the customer or for parts: the clock stands still."""

    EVENT_TYPE: ClassVar[str] = "ClockPaused"
    event_type: Literal["ClockPaused"] = "ClockPaused"

    paused_at: AwareDatetime


class ClockResumed(ClockEvent):
    EVENT_TYPE: ClassVar[str] = "ClockResumed"
    event_type: Literal["ClockResumed"] = "ClockResumed"

    resumed_at: AwareDatetime
    due_at: AwareDatetime
    paused_seconds: int = Field(description="Wall-clock seconds paused, all pauses together.")


class ClockRecomputed(ClockEvent):
    """A changed policy pack moved a running clock's due time (``open_clocks_on_change:
    recompute``)."""

    EVENT_TYPE: ClassVar[str] = "ClockRecomputed"
    event_type: Literal["ClockRecomputed"] = "ClockRecomputed"

    due_at: AwareDatetime
    previous_due_at: AwareDatetime
    rule: str
    pack_version: str


class ClockStopped(ClockEvent):
    """The event that satisfies the clock arrived (or the case ended)."""

    EVENT_TYPE: ClassVar[str] = "ClockStopped"
    event_type: Literal["ClockStopped"] = "ClockStopped"

    stopped_at: AwareDatetime
    outcome: Literal["met", "breached"]
    by_event: str


class ClockWarning(ClockEvent):
    """A share of the clock's time is used up."""

    EVENT_TYPE: ClassVar[str] = "ClockWarning"
    event_type: Literal["ClockWarning"] = "ClockWarning"

    fraction: float
    due_at: AwareDatetime


class ClockBreached(ClockEvent):
    """The clock's due time passed before the event that satisfies it."""

    EVENT_TYPE: ClassVar[str] = "ClockBreached"
    event_type: Literal["ClockBreached"] = "ClockBreached"

    due_at: AwareDatetime


class ReturnVisitDue(ClockEvent):
    """A return visit (回访) is due: the first-responsible person is reminded."""

    EVENT_TYPE: ClassVar[str] = "ReturnVisitDue"
    event_type: Literal["ReturnVisitDue"] = "ReturnVisitDue"

    due_at: AwareDatetime


class EscalationRaised(Event):
    """A rung of the pack's escalation ladder is told and takes over."""

    EVENT_TYPE: ClassVar[str] = "EscalationRaised"
    event_type: Literal["EscalationRaised"] = "EscalationRaised"

    level: int
    to: tuple[str, ...]
    reason: Literal["breach", "major", "compensation"] = Field(
        description="A clock breached, a major complaint, or compensation beyond the "
        "authority of the rungs below (核决权限)."
    )
    clock_id: uuid.UUID | None = None
