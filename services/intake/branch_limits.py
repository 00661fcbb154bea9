"""Each branch's share of the HTTP front door.

A branch that floods intake (a misconfigured PMS replaying its backlog in a loop) is
answered ``429`` with ``Retry-After`` once it has used its burst, instead of queueing its
submissions ahead of every other branch's. The buckets live in each intake instance:
with N instances a branch can send N times the limit (docs/intake.md).
"""

from __future__ import annotations

import math

from aiolimiter import AsyncLimiter


class BranchLimits:
    def __init__(self, per_minute: int) -> None:
        """``per_minute`` submissions a minute per branch, any of them at once; 0: no limit."""
        self.per_minute = per_minute
        self._buckets: dict[str, AsyncLimiter] = {}

    async def admit(self, branch_id: str) -> bool:
        """Take one submission from ``branch_id``'s bucket; False when it is empty."""
        if not self.per_minute:
            return True
        bucket = self._buckets.get(branch_id)
        if bucket is None:
            bucket = self._buckets[branch_id] = AsyncLimiter(self.per_minute, 60)
        if not bucket.has_capacity():
            return False
        await bucket.acquire()  # does not wait: there is capacity
        return True

    @property
    def retry_after_seconds(self) -> int:
        """How long until the bucket has room for one more."""
        return max(1, math.ceil(60 / max(self.per_minute, 1)))
