"""Presence credit of one member: sessions ``[start, end)`` worth 1 per present second.

Sessions may overlap (one member in several rooms earns once per room), so a span's
credit is computed from two sorted arrays, starts and ends, with running sums:
the credit of seconds ``< t`` is ``t*#starts<t - sum(starts<t) - (t*#ends<t - sum(ends<t))``.
Open sessions (no end yet) count up to an instant the query names.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right

_EMPTY: array[int] = array("q")  # shared by every series without closed sessions; never mutated


class IntervalSeries:
    """Closed sessions as sorted starts/ends with prefix sums, plus the open sessions.

    Millions of members sit in one open session each, so a series holds no containers
    of its own until it closes one: the four arrays start as one shared empty array
    (they are replaced, never appended to), the open starts are a tuple (rarely more
    than one) and the closed sessions waiting to be merged a list made on first need.
    """

    __slots__ = ("_pending", "end_cum", "ends", "open", "start_cum", "starts")

    def __init__(self, open_: tuple[int, ...] = ()) -> None:
        self.starts = self.start_cum = self.ends = self.end_cum = _EMPTY
        self.open: tuple[int, ...] = open_  # starts of sessions still open
        self._pending: list[tuple[int, int]] | None = None

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        """Arrays as bytes (see MemberSeries.__reduce__); most series have none."""
        if self.starts is _EMPTY:
            return _interval_series, (self.open, self._pending)
        return _interval_series, (self.open, self._pending, self.starts.tobytes(),
                                  self.start_cum.tobytes(), self.ends.tobytes(),
                                  self.end_cum.tobytes())

    def begin(self, start: int) -> None:
        """A session opens at `start`."""
        self.open = (*self.open, start)

    def end(self, start: int, end: int) -> None:
        """The open session that began at `start` closes at `end`."""
        i = self.open.index(start)
        self.open = self.open[:i] + self.open[i + 1:]
        if end > start:
            if self._pending is None:
                self._pending = [(start, end)]
            else:
                self._pending.append((start, end))

    def _settle(self) -> None:
        if not self._pending:
            return
        starts = sorted([*self.starts, *(s for s, _ in self._pending)])
        ends = sorted([*self.ends, *(e for _, e in self._pending)])
        self._pending = None
        self.starts, self.start_cum = array("q", starts), _running(starts)
        self.ends, self.end_cum = array("q", ends), _running(ends)

    def _closed_before(self, t: int) -> int:
        i = bisect_left(self.starts, t)
        j = bisect_left(self.ends, t)
        started = t * i - (self.start_cum[i - 1] if i else 0)
        ended = t * j - (self.end_cum[j - 1] if j else 0)
        return started - ended

    def total(self, lo: int | None, hi: int | None, upto: int | None = None) -> int:
        """Present seconds in ``[lo, hi)``; open sessions count up to `upto` (exclusive)."""
        self._settle()
        closed = 0
        if self.starts:
            top = self.ends[-1] if hi is None else hi
            closed = self._closed_before(top) - (self._closed_before(lo) if lo is not None
                                                 else 0)
        if not self.open or upto is None:
            return closed
        stop = upto if hi is None else min(hi, upto)
        for s in self.open:
            a = s if lo is None else max(s, lo)
            if stop > a:
                closed += stop - a
        return closed

    def next_change(self, t: int) -> int | None:
        """The first second ``>= t`` where a session starts or ends (the rate changes)."""
        self._settle()
        later = [s for s in self.open if s >= t]
        for arr in (self.starts, self.ends):
            i = bisect_left(arr, t)
            if i < len(arr):
                later.append(arr[i])
        return min(later, default=None)

    def covering(self, t: int) -> int:
        """How many sessions (open ones included) cover second `t`: the growth rate there."""
        self._settle()
        closed = bisect_right(self.starts, t) - bisect_right(self.ends, t)
        return closed + sum(1 for s in self.open if s <= t)

    def first_at_or_after(self, t: int) -> int | None:
        """The first second ``>= t`` with presence (open sessions count as ongoing)."""
        self._settle()
        if any(s <= t for s in self.open) or \
                self._closed_before(t + 1) > self._closed_before(t):
            return t
        # nothing covers t, so every later presence starts after t
        later = [s for s in self.open if s > t]
        i = bisect_right(self.starts, t)
        if i < len(self.starts):
            later.append(self.starts[i])
        return min(later, default=None)


def _interval_series(open_: tuple[int, ...], pending: list[tuple[int, int]] | None,
                     *arrays: bytes) -> IntervalSeries:
    """An IntervalSeries back from `IntervalSeries.__reduce__`."""
    s = IntervalSeries(open_)
    s._pending = pending
    if arrays:
        s.starts, s.start_cum, s.ends, s.end_cum = (array("q", a) for a in arrays)
    return s


def _running(values: list[int]) -> array[int]:
    out, total = array("q"), 0
    for v in values:
        total += v
        out.append(total)
    return out
