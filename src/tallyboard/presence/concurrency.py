"""Concurrency per bucket: the peak number present in any one second, and the average."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from ..core.series import MemberSeries


@dataclass(frozen=True, slots=True)
class Bucket:
    """One bucket: its own start and label; peak and average over its covered seconds."""

    start: int
    label: str
    peak: int
    avg: float


def concurrency(timeline: MemberSeries | None, buckets: list[tuple[int, int, str]],
                lo: int, hi: int) -> list[Bucket]:
    """Peak and average of `timeline` (+1 per session start, -1 per end, by second: the
    ledger's) over each bucket, counting only ``[lo, hi)``: O(log n) per bucket plus the
    seconds in it where someone came or went, however long the history.

    A bucket's average is member-seconds divided by the seconds of the bucket that lie
    inside ``[lo, hi)`` (0 when none do), so a partly elapsed bucket is not diluted.
    """
    line = timeline if timeline is not None else MemberSeries()
    line.settle()
    secs, cum = line.secs, line.cum
    out: list[Bucket] = []
    for b_lo, b_hi, label in buckets:
        c_lo, c_hi = max(b_lo, lo), min(b_hi, hi)
        if c_hi <= c_lo:
            out.append(Bucket(b_lo, label, 0, 0.0))
            continue
        i, j = bisect_right(secs, c_lo), bisect_left(secs, c_hi)
        count = cum[i - 1] if i else 0  # present at c_lo: every change up to it
        peak, seconds, t = count, 0, c_lo
        for k in range(i, j):
            seconds += count * (secs[k] - t)
            t, count = secs[k], cum[k]
            peak = max(peak, count)
        seconds += count * (c_hi - t)
        out.append(Bucket(b_lo, label, peak, seconds / (c_hi - c_lo)))
    return out
