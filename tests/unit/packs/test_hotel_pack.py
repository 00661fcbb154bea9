"""The hotel pack (seed 000 第一篇 十二) routes as the seed says."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.unit.packs.routing_cases import pack_named, route

CASES = [
    # (category, keyword text, department, assignee, rule)
    ("service-attitude", "", "front-office", "fo-supervisor", "rule:front-office-supervisor"),
    ("billing", "多收了一晚房费", "front-office", "fo-supervisor", "rule:front-office-supervisor"),
    ("room-cleanliness", "", "housekeeping", "hk-manager", "category:room-cleanliness"),
    ("food-beverage", "", "food-beverage", "fb-manager", "category:food-beverage"),
    ("facilities", "空调不制冷", "engineering", "eng-manager", "category:facilities"),
    ("unknown-thing", "", "front-office", "fo-agent", "triage"),
]


@pytest.mark.parametrize(("category", "text", "department", "assignee", "rule"), CASES)
def test_hotel_routing(category: str, text: str, department: str, assignee: str, rule: str) -> None:
    decision = route("hotel", category, text=text)
    assert (decision.department, decision.assignee_id, decision.rule) == (
        department,
        assignee,
        rule,
    )


def test_the_demo_branch_runs_the_hotel_pack() -> None:
    assert "hotel-demo" in {b.id for b in pack_named("hotel").branches}


def test_at_night_the_front_desk_is_on_shift_and_departments_are_not() -> None:
    night = datetime(2026, 11, 18, 2, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    decision = route("hotel", "facilities", at=night)
    assert decision.assignee_id == "eng-manager"
    assert "nobody on shift" in decision.reason
    triage = route("hotel", "unknown-thing", at=night, loads={"fo-agent": 10})
    assert triage.assignee_id == "fo-supervisor"  # both on shift; the agent is full
