"""Concurrency per bucket: the peak number present in any one second, and the average."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Bucket:
    """One bucket: its own start and label; peak and average over its covered seconds."""

    start: int
    label: str
    peak: int
    avg: float


def concurrency(sessions: Iterable[tuple[int, int | None]],
                buckets: list[tuple[int, int, str]], lo: int, hi: int) -> list[Bucket]:
    """Sweep `sessions` (end None = still open) over `buckets`, counting only ``[lo, hi)``.

    A bucket's average is member-seconds divided by the seconds of the bucket that lie
    inside ``[lo, hi)`` (0 when none do), so a partly elapsed bucket is not diluted.
    """
    deltas: Counter[int] = Counter()
    for start, end in sessions:
        a, b = max(start, lo), min(hi if end is None else end, hi)
        if b > a:
            deltas[a] += 1
            deltas[b] -= 1
    points = sorted(deltas)
    out: list[Bucket] = []
    count, i = 0, 0
    for b_lo, b_hi, label in buckets:
        c_lo, c_hi = max(b_lo, lo), min(b_hi, hi)
        while i < len(points) and points[i] <= c_lo:
            count += deltas[points[i]]
            i += 1
        if c_hi <= c_lo:
            out.append(Bucket(b_lo, label, 0, 0.0))
            continue
        peak, seconds, t = count, 0, c_lo
        while i < len(points) and points[i] < c_hi:
            seconds += count * (points[i] - t)
            t = points[i]
            count += deltas[t]
            peak = max(peak, count)
            i += 1
        seconds += count * (c_hi - t)
        out.append(Bucket(b_lo, label, peak, seconds / (c_hi - c_lo)))
    return out
