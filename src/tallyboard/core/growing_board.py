"""A hot leaderboard of presence time, where open sessions make scores grow every second.

While nothing joins or leaves, a member's score in a window with a fixed start grows
linearly: ``score(t) = base + k*t`` with ``k`` the sessions covering `t`. Members are
kept in one sorted list per growth rate `k`, ordered by `base`, which time does not
change; the top-n at any instant is a merge of those few lists. A join, a leave, or
time passing a future join or leave makes the member's score and rate be asked again
from its `IntervalSeries`, exactly.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice

from sortedcontainers import SortedList

from .board import Change
from .intervals import IntervalSeries
from .results import Entry

Bounds = Callable[[float], tuple[int | None, int]]
Placed = tuple[int, str, int]  # (-base, member, rate): sorts as (-base, member) would


class GrowingBoard:
    """Presence scores over ``[lo, now)`` for windows whose start `lo` is fixed (or None)."""

    def __init__(self, series: Mapping[str, IntervalSeries], bounds: Bounds,
                 cursor: int, shared: dict[str, Placed] | None = None) -> None:
        """`shared` (one per metric and filter) lets the boards of several windows hold
        one tuple for a member whose score is the same in each (present only lately)."""
        self._series = series
        self._shared: dict[str, Placed] = {} if shared is None else shared
        self._bounds = bounds
        self.cursor = cursor
        self.lo: int | None = None
        self.hi: int | None = None
        self._groups: dict[int, SortedList] = {}  # rate -> entries of that rate
        self._at: dict[str, Placed] = {}  # member -> its entry
        self._entering: list[tuple[int, str]] = []  # future joins and leaves

    # ---- keeping up -----------------------------------------------------------------------
    def sync(self, now: float, changes: Iterable[Change], head: int) -> None:
        lo, hi = self._bounds(now)
        if self.hi is None or hi < self.hi or lo != self.lo:
            self._rebuild(lo, hi)
            self.cursor = head
            return
        candidates: set[str] = set()
        for first, last, member in changes:
            if last >= hi:
                heapq.heappush(self._entering, (last, member))
            if first < hi:
                candidates.add(member)
        self.cursor = head
        while self._entering and self._entering[0][0] < hi:
            candidates.add(heapq.heappop(self._entering)[1])
        self.lo, self.hi = lo, hi
        for member in candidates:
            self._place(member, hi)

    def _place(self, member: str, hi: int) -> None:
        old = self._at.pop(member, None)
        if old is not None:
            self._groups[old[2]].remove(old)
        series = self._series[member]
        entry = self._entry(member, series.total(self.lo, hi, hi), series.covering(hi), hi)
        if entry is not None:
            group = self._groups.get(entry[2])
            if group is None:
                group = self._groups[entry[2]] = SortedList()
            group.add(entry)

    def _entry(self, member: str, score: int, rate: int, hi: int) -> Placed | None:
        """The member's entry at `hi` (None: not listed), recorded as its placement."""
        if not (score or rate):
            return None
        entry = (rate * hi - score, member, rate)
        same = self._shared.get(member)
        if same == entry:
            entry = same  # another window's board placed the member alike
        else:
            self._shared[member] = entry
        self._at[member] = entry
        return entry

    def _rebuild(self, lo: int | None, hi: int) -> None:
        """Every member placed afresh; each rate's list sorted once, not grown one by one."""
        self.lo, self.hi = lo, hi
        self._at, self._entering = {}, []
        by_rate: dict[int, list[Placed]] = {}
        for member, series in self._series.items():
            entry = self._entry(member, series.total(lo, hi, hi), series.covering(hi), hi)
            if entry is not None:
                by_rate.setdefault(entry[2], []).append(entry)
            nxt = series.next_change(hi)
            if nxt is not None:
                self._entering.append((nxt, member))
        self._groups = {rate: SortedList(entries) for rate, entries in by_rate.items()}
        heapq.heapify(self._entering)

    # ---- reading ---------------------------------------------------------------------------
    def _listed(self, rate: int) -> int:
        """How many of a rate's members have a non-zero score at hi (zeros sort last)."""
        assert self.hi is not None
        return int(self._groups[rate].bisect_left((rate * self.hi,)))

    @property
    def total(self) -> int:
        return sum(self._listed(rate) for rate in self._groups)

    def score_of(self, member: str) -> int:
        got = self._at.get(member)
        assert self.hi is not None
        return 0 if got is None else got[2] * self.hi - got[0]

    def rank_of(self, score: int) -> int:
        assert self.hi is not None
        hi = self.hi
        return 1 + sum(int(g.bisect_left((-(score - rate * hi),)))
                       for rate, g in self._groups.items())

    def position(self, member: str) -> int:
        score = self.score_of(member)
        assert self.hi is not None
        hi = self.hi
        return sum(int(g.bisect_left((-(score - rate * hi), member)))
                   for rate, g in self._groups.items())

    def _before(self, neg: int, member: str) -> int:
        """How many listed members sort before the entry ``(-score, member)``."""
        assert self.hi is not None
        hi = self.hi
        return sum(int(g.bisect_left((neg + rate * hi, member)))
                   for rate, g in self._groups.items())

    def _first_at(self, rate: int, start: int) -> int:
        """How many of a rate's listed members sit before global position `start`."""
        assert self.hi is not None
        group, shift = self._groups[rate], rate * self.hi
        lo, up = 0, self._listed(rate)
        while lo < up:
            mid = (lo + up) // 2
            neg, member, _ = group[mid]
            if self._before(neg - shift, member) < start:
                lo = mid + 1
            else:
                up = mid
        return lo

    def _stream(self, rate: int, hi: int, first: int) -> Iterator[tuple[int, str]]:
        """One rate's listed members from local index `first` as ``(-score, member)``."""
        for neg, member, _ in self._groups[rate].islice(first, self._listed(rate)):
            yield neg - rate * hi, member

    def entries(self, start: int, stop: int) -> list[Entry]:
        """Entries at positions ``[start, stop)``: each rate's list is entered where the
        global position `start` falls in it (a binary search, not a walk from the top),
        then the lists are merged."""
        assert self.hi is not None
        hi = self.hi
        merged = heapq.merge(*(self._stream(rate, hi, self._first_at(rate, start) if start
                                            else 0) for rate in self._groups))
        return [Entry(self.rank_of(-neg), m, -neg)
                for neg, m in islice(merged, max(0, stop - start))]
