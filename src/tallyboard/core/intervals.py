"""Presence credit of one member: sessions ``[start, end)`` worth 1 per present second.

Sessions may overlap (one member in several rooms earns once per room), so a span's
credit is computed from two sorted arrays, starts and ends, with running sums:
the credit of seconds ``< t`` is ``t*#starts<t - sum(starts<t) - (t*#ends<t - sum(ends<t))``.
Open sessions (no end yet) count up to an instant the query names.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from typing import cast

_EMPTY: array[int] = array("q")  # shared by every series without closed sessions; never mutated
_EAGER = 8  # a series with fewer closed sessions merges a closed one at once (no list kept)

Open = int | tuple[int, ...]  # starts of the open sessions: one (an int) is the common case


class IntervalSeries:
    """Closed sessions as sorted starts/ends with prefix sums, plus the open sessions.

    Millions of members sit in one or two sessions, so a series is as small as Python
    allows: the closed sessions are one array, ``[starts | start_cum | ends | end_cum]``
    (the shared empty array until one closes), replaced rather than grown; a lone open
    session is its start (an int shared with the snapshot that opened it), several a
    tuple; and closed sessions wait in a list to be merged only once there are
    `_EAGER` of them, so a long history is not re-sorted at every close.
    """

    __slots__ = ("_closed", "_open", "_pending")

    def __init__(self, open_: Open = ()) -> None:
        self._closed = _EMPTY
        self._open: Open = open_
        self._pending: list[tuple[int, int]] | None = None

    @property
    def open(self) -> tuple[int, ...]:
        """Starts of the sessions still open."""
        return (self._open,) if type(self._open) is int else cast(tuple[int, ...], self._open)

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        """The array as bytes (see MemberSeries.__reduce__); most series have none."""
        if self._closed is _EMPTY:
            return _interval_series, (self._open, self._pending)
        return _interval_series, (self._open, self._pending, self._closed.tobytes())

    def begin(self, start: int) -> None:
        """A session opens at `start`."""
        self._open = start if self._open == () else (*self.open, start)

    def end(self, start: int, end: int) -> None:
        """The open session that began at `start` closes at `end`."""
        opened = self.open
        i = opened.index(start)
        rest = opened[:i] + opened[i + 1:]
        self._open = rest[0] if len(rest) == 1 else rest
        if end > start:
            if self._pending is None:
                self._pending = [(start, end)]
            else:
                self._pending.append((start, end))
            if len(self._closed) < 4 * _EAGER:
                self._settle()

    def _settle(self) -> None:
        if not self._pending:
            return
        n = len(self._closed) // 4
        old = self._closed
        starts = sorted([*old[:n], *(s for s, _ in self._pending)])
        ends = sorted([*old[2 * n:3 * n], *(e for _, e in self._pending)])
        self._pending = None
        self._closed = array("q", [*starts, *_running(starts), *ends, *_running(ends)])

    def _closed_before(self, t: int, n: int) -> int:
        closed = self._closed
        i = bisect_left(closed, t, 0, n)
        j = bisect_left(closed, t, 2 * n, 3 * n) - 2 * n
        started = t * i - (closed[n + i - 1] if i else 0)
        ended = t * j - (closed[3 * n + j - 1] if j else 0)
        return started - ended

    def total(self, lo: int | None, hi: int | None, upto: int | None = None) -> int:
        """Present seconds in ``[lo, hi)``; open sessions count up to `upto` (exclusive)."""
        self._settle()
        closed = 0
        n = len(self._closed) // 4
        if n:
            top = self._closed[3 * n - 1] if hi is None else hi
            closed = self._closed_before(top, n) - (self._closed_before(lo, n)
                                                    if lo is not None else 0)
        if self._open == () or upto is None:
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
        n = len(self._closed) // 4
        for lo in (0, 2 * n):
            i = bisect_left(self._closed, t, lo, lo + n)
            if i < lo + n:
                later.append(self._closed[i])
        return min(later, default=None)

    def covering(self, t: int) -> int:
        """How many sessions (open ones included) cover second `t`: the growth rate there."""
        self._settle()
        n = len(self._closed) // 4
        closed = bisect_right(self._closed, t, 0, n) - \
            (bisect_right(self._closed, t, 2 * n, 3 * n) - 2 * n)
        return closed + sum(1 for s in self.open if s <= t)

    def first_at_or_after(self, t: int) -> int | None:
        """The first second ``>= t`` with presence (open sessions count as ongoing)."""
        self._settle()
        n = len(self._closed) // 4
        if any(s <= t for s in self.open) or \
                (n and self._closed_before(t + 1, n) > self._closed_before(t, n)):
            return t
        # nothing covers t, so every later presence starts after t
        later = [s for s in self.open if s > t]
        i = bisect_right(self._closed, t, 0, n)
        if i < n:
            later.append(self._closed[i])
        return min(later, default=None)


def _interval_series(open_: Open, pending: list[tuple[int, int]] | None,
                     closed: bytes = b"") -> IntervalSeries:
    """An IntervalSeries back from `IntervalSeries.__reduce__`."""
    s = IntervalSeries(open_)
    s._pending = pending
    if closed:
        s._closed = array("q", closed)
    return s


def _running(values: list[int]) -> list[int]:
    out, total = [], 0
    for v in values:
        total += v
        out.append(total)
    return out
