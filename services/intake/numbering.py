"""Complaint numbers ``AABBCCDDD`` (004 篇二 4.2.2.2 ③; 000 第二篇 第八条).

Year, month and day of receipt in the branch's time zone, then the complaint's
ordinal within that year, at least three digits and wider past 999.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo


def receipt_date(received_at: datetime, timezone: str) -> date:
    """The calendar day of receipt as the branch sees it."""
    return received_at.astimezone(ZoneInfo(timezone)).date()


def complaint_number(day: date, ordinal: int) -> str:
    if ordinal < 1:
        raise ValueError("ordinals start at 1")
    return f"{day:%y%m%d}{ordinal:03d}"
