from __future__ import annotations

import asyncio

from services.intake.branch_limits import BranchLimits


async def test_a_branch_has_its_burst_then_is_refused_while_others_are_not() -> None:
    limits = BranchLimits(per_minute=5)
    admitted = [await limits.admit("hotel-b01") for _ in range(7)]
    assert admitted == [True] * 5 + [False] * 2
    assert await limits.admit("hotel-b02")
    assert limits.retry_after_seconds == 12


async def test_the_bucket_refills_at_the_pace_of_the_limit() -> None:
    limits = BranchLimits(per_minute=600)  # one every 0.1 s
    assert all([await limits.admit("hotel-b01") for _ in range(600)])
    assert not await limits.admit("hotel-b01")
    await asyncio.sleep(0.15)
    assert await limits.admit("hotel-b01")
    assert limits.retry_after_seconds == 1


async def test_zero_means_no_limit() -> None:
    limits = BranchLimits(per_minute=0)
    assert all([await limits.admit("hotel-b01") for _ in range(10_000)])
