"""Exact percentiles and means from bucketed counts: the buckets say which values a
percentile needs (by rank); only those are read, and combined as PostgreSQL's
``percentile_cont`` combines them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from asyncpg import Record

PERCENTILES = (0.5, 0.9, 0.95)
SECONDS_PER_HOUR = 3600


def mean_hours(seconds: Decimal | None, count: int) -> float | None:
    """The mean in hours, rounded to 3 places (half to even) from the exact quotient."""
    if not count or seconds is None:
        return None
    return float(round(Fraction(seconds) / (SECONDS_PER_HOUR * count), 3))


def ranks(count: int, percentile: float) -> tuple[int, int, float]:
    """The two 0-based ranks ``percentile_cont`` interpolates between, and how far."""
    position = percentile * (count - 1)
    first = math.floor(position)
    return first, math.ceil(position), position - first


def interpolate(low: float, high: float, proportion: float) -> float:
    """As PostgreSQL's float8_lerp, to the last bit."""
    return low + proportion * (high - low)


@dataclass
class Histogram:
    """Counts of values per bucket (buckets in the order of their values) and their sum."""

    counts: list[tuple[int, int]] = field(default_factory=list)
    seconds: Decimal = Decimal(0)

    @property
    def count(self) -> int:
        return sum(n for _, n in self.counts)

    def locate(self, rank: int) -> tuple[int, int]:
        """The bucket holding the value of ``rank`` and its rank within the bucket."""
        before = 0
        for bucket, n in self.counts:
            if rank < before + n:
                return bucket, rank - before
            before += n
        raise IndexError(rank)

    def wanted(self) -> set[tuple[int, int]]:
        """(bucket, rank within it) of the first value of each pair a percentile reads;
        the value after it is read along (it may lie in the next bucket)."""
        if not self.count:
            return set()
        return {self.locate(ranks(self.count, p)[0]) for p in PERCENTILES}

    def percentiles(
        self, values: Mapping[tuple[int, int], tuple[float, ...]]
    ) -> list[float | None]:
        """p50, p90, p95 given ``values``: for each of ``wanted()``, that value and the next."""
        if not self.count:
            return [None for _ in PERCENTILES]
        result: list[float | None] = []
        for p in PERCENTILES:
            first, second, proportion = ranks(self.count, p)
            pair = values[self.locate(first)]
            result.append(pair[0] if second == first else interpolate(pair[0], pair[1], proportion))
        return result


def histograms(rows: Iterable[Record], key: str | None = None) -> dict[str, Histogram]:
    """Histograms from rows of (``key``,) bucket and n, ordered by key and bucket, and,
    where ``is_total``, the sum of seconds of the key's values."""
    result: dict[str, Histogram] = {}
    for row in rows:
        histogram = result.setdefault(row[key] if key else "", Histogram())
        if row["is_total"]:
            histogram.seconds = row["seconds"]
        else:
            histogram.counts.append((row["bucket"], row["n"]))
    return result
