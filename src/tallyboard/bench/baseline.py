"""What the seed systems do, as a baseline: one hash per granularity, scans, sort on request.

Every event increments six buckets (year, month, day, hour, minute, second, in UTC) in
one dict per granularity; a range sum covers [lo, hi) greedily with the coarsest aligned
buckets that fit (what their Lua script did); a leaderboard computes every member's
range sum and sorts them all on each request.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

UNITS = ("second", "minute", "hour", "day", "month", "year")
_FIXED = {"second": 1, "minute": 60, "hour": 3600, "day": 86_400}


def _bucket(unit: str, t: int) -> int:
    if unit in _FIXED:
        return t - t % _FIXED[unit]
    d = datetime.fromtimestamp(t, UTC)
    first = d.replace(month=1) if unit == "year" else d
    return int(first.replace(day=1, hour=0, minute=0, second=0).timestamp())


def _next(unit: str, start: int) -> int:
    if unit in _FIXED:
        return start + _FIXED[unit]
    d = datetime.fromtimestamp(start, UTC)
    if unit == "year":
        return int(d.replace(year=d.year + 1).timestamp())
    y, m = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    return int(d.replace(year=y, month=m).timestamp())


def start_of_year(t: int) -> int:
    """The UTC year bucket holding `t`: where the baseline's "all" window begins."""
    return _bucket("year", t)


def cover(lo: int, hi: int) -> list[tuple[str, int, int]]:
    """[lo, hi) as the coarsest aligned buckets (unit, start, end) that fit, in order."""
    out = []
    t = lo
    while t < hi:
        for unit in reversed(UNITS):
            if unit in ("year", "month") and t % 86_400:
                continue  # cheap pre-check: only midnights can start these
            if _bucket(unit, t) == t and _next(unit, t) <= hi:
                end = _next(unit, t)
                out.append((unit, t, end))
                t = end
                break
    return out


class SeedBaseline:
    """Per-granularity bucket dicts keyed by (member, bucket start)."""

    def __init__(self) -> None:
        self.buckets: dict[str, dict[tuple[str, int], int]] = {u: {} for u in UNITS}
        self.members: set[str] = set()

    def record(self, member: str, ts: int, value: int) -> None:
        """One event: six read-modify-writes, like HINCRBY per granularity."""
        self.members.add(member)
        for unit in UNITS:
            key = (member, _bucket(unit, ts))
            table = self.buckets[unit]
            table[key] = table.get(key, 0) + value

    def record_columns(self, members: list[str], secs: np.ndarray[Any, Any],
                       values: np.ndarray[Any, Any]) -> None:
        for member, ts, value in zip(members, secs.tolist(), values.tolist(), strict=True):
            self.record(member, ts, value)

    def sum(self, member: str, lo: int, hi: int) -> int:
        """Sum over [lo, hi): one read per covering bucket."""
        return sum(self.buckets[unit].get((member, start), 0) for unit, start, _ in cover(lo, hi))

    def totals(self, lo: int, hi: int) -> list[tuple[int, str]]:
        """Every member's total, sorted by score descending then member (SPEC tie order).

        The bucket keys are worked out once per request, as a script fetching many
        members would; the reads and the sort are per member, on every request.
        """
        keys = [(self.buckets[unit], start) for unit, start, _ in cover(lo, hi)]
        return sorted((-sum(table.get((m, start), 0) for table, start in keys), m)
                      for m in self.members)

    def leaderboard(self, lo: int, hi: int, n: int = 10) -> list[tuple[str, int]]:
        return [(m, -neg) for neg, m in self.totals(lo, hi)[:n]]

    def rank(self, member: str, lo: int, hi: int) -> int:
        ranked = self.totals(lo, hi)
        mine = next(neg for neg, m in ranked if m == member)
        return 1 + sum(1 for neg, _ in ranked if neg < mine)
