"""Routing a complaint through a shipped pack, for the table-driven pack tests."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from services.routing.domain import Decision, RoutingInput, decide
from shared.contracts.submissions import Channel, CustomerType, Region, Severity
from shared.policy import PolicyPack, load_packs
from shared.settings import REPO_ROOT

PACKS = load_packs(REPO_ROOT / "policy-packs")
# A Wednesday mid-morning in Shanghai: every office calendar has someone on shift.
WORKING_HOURS = datetime(2026, 11, 18, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def route(
    pack: str,
    category: str,
    *,
    text: str = "",
    severity: str = "normal",
    channel: str = "phone",
    customer_type: str = "end_customer",
    region: str = "domestic",
    loads: dict[str, int] | None = None,
    at: datetime = WORKING_HOURS,
) -> Decision:
    return decide(
        pack_named(pack),
        RoutingInput(
            category=category,
            severity=Severity(severity),
            channel=Channel(channel),
            customer_type=CustomerType(customer_type),
            region=Region(region),
            text=text,
        ),
        loads or {},
        at,
    )


def pack_named(pack: str) -> PolicyPack:
    return PACKS.require(pack)
