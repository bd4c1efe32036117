"""Streaks: runs of consecutive local days whose total reaches a minimum."""

from __future__ import annotations

import math
from datetime import date, timedelta

from ..calendar import Calendar
from .results import Run, Streak
from .series import Series


def counted_days(series: Series, calendar: Calendar, at: float, minimum: int) -> list[int]:
    """Ordinals of the days up to the one containing `at` whose total (``ts < at``) >= minimum.

    Only days with events can count (minimum >= 1), so the walk jumps from one active day
    to the next with a binary search instead of visiting every calendar day.
    """
    hi = math.ceil(at)
    days: list[int] = []
    t = series.first_at_or_after(-(1 << 62))
    while t is not None and t < hi:
        day = calendar.day_of(t)
        day_end = calendar.day_start_unix(day + timedelta(days=1))
        if series.total(calendar.day_start_unix(day), min(day_end, hi), hi) >= minimum:
            days.append(day.toordinal())
        t = series.first_at_or_after(day_end)
    return days


def streak_of(days: list[int], today: date) -> Streak:
    """Current and longest runs in the sorted day ordinals `days`, as of `today`."""
    runs: list[tuple[int, int]] = []
    for d in days:
        if runs and runs[-1][1] == d - 1:
            runs[-1] = (runs[-1][0], d)
        else:
            runs.append((d, d))
    longest = max(runs, key=lambda r: r[1] - r[0], default=None)  # max keeps the earliest
    t = today.toordinal()
    current = runs[-1] if runs and runs[-1][1] in (t, t - 1) else None
    return Streak(current=_run(current), longest=_run(longest))


def _run(run: tuple[int, int] | None) -> Run:
    if run is None:
        return Run()
    first, last = run
    return Run(last - first + 1, date.fromordinal(first).isoformat(),
               date.fromordinal(last).isoformat())
