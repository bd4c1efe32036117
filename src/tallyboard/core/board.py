"""A hot leaderboard: every member's score over one window "as of now", kept sorted.

The board never does delta arithmetic: whenever a member may have changed (a new event,
an event entering the window as time passes, or leaving a rolling window) it asks that
member's series for the exact score again. So it cannot drift, and a top-n or a rank is
a binary search away.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping

from sortedcontainers import SortedList

from .results import Entry
from .series import MemberSeries

Bounds = Callable[[float], tuple[int | None, int]]


Change = tuple[int, int, str]  # (first second, last second, member) of some new events
_BULK_FROM = 64  # fewer changed members than this are always moved one by one


class ChangeLog:
    """Members touched since boards last looked, with the span of seconds they got new
    events in: append-only, trimmed behind the slowest board."""

    __slots__ = ("base", "items")

    def __init__(self) -> None:
        self.base = 0
        self.items: list[Change] = []

    @property
    def head(self) -> int:
        return self.base + len(self.items)

    def since(self, cursor: int) -> list[Change]:
        return self.items[cursor - self.base:]

    def trim(self, cursor: int) -> None:
        """Forget entries before `cursor` (every reader has seen them)."""
        drop = cursor - self.base
        if drop > 0:
            del self.items[:drop]
            self.base = cursor


class Board:
    """Scores over ``[lo, hi)`` where `bounds` maps "now" to ``(lo, hi)``; lo None = open."""

    def __init__(self, series: Mapping[str, MemberSeries], bounds: Bounds, rolling: bool,
                 cursor: int) -> None:
        self._series = series
        self._bounds = bounds
        self._rolling = rolling
        self.cursor = cursor
        self.lo: int | None = None
        self.hi: int | None = None
        self.scores: dict[str, int] = {}
        self.order = SortedList()
        self._entering: list[tuple[int, str]] = []  # (second, member) at or after hi
        self._leaving: list[tuple[int, str]] = []  # rolling: earliest in-window second
        self._leave_at: dict[str, int] = {}

    def sync(self, now: float, changes: Iterable[Change], head: int) -> None:
        """Bring the board to `now`, given the changes since its cursor (up to `head`)."""
        lo, hi = self._bounds(now)
        if self.hi is None or hi < self.hi or (lo != self.lo and not self._rolling):
            self._rebuild(lo, hi)
            self.cursor = head
            return
        candidates: set[str] = set()
        for first, last, member in changes:
            if last >= hi:  # some are in the future: look again when the first one enters
                heapq.heappush(self._entering, (max(first, hi), member))
            if first < hi and (lo is None or last >= lo):
                candidates.add(member)
                # a lower bound of its earliest in-window second: expiring early only
                # means one more exact recount
                self._track_leave(first if lo is None else max(first, lo), member)
        self.cursor = head
        entering = self._entering
        while entering and entering[0][0] < hi:
            sec, member = heapq.heappop(entering)
            candidates.add(member)
            if lo is None or sec >= lo:
                self._track_leave(sec, member)
            later = self._series[member].first_at_or_after(hi)
            if later is not None:
                heapq.heappush(entering, (later, member))
        if self._rolling and lo is not None:
            self._expire(lo, hi, candidates)
        self.lo, self.hi = lo, hi
        if len(candidates) > max(_BULK_FROM, len(self.scores) >> 4):
            self._reorder(candidates, lo, hi)
            return
        for member in candidates:
            self._set(member, self._series[member].total(lo, hi))

    def _reorder(self, members: set[str], lo: int | None, hi: int) -> None:
        """Rescore many members at once and merge them into the order in one pass: the
        untouched entries stay one sorted run, so the sort is linear plus the movers',
        which beats a SortedList removal and insertion each once 1/16 have moved."""
        scores, series = self.scores, self._series
        moved: list[tuple[int, str]] = []
        for member in members:
            score = series[member].total(lo, hi)
            if score:
                scores[member] = score
                moved.append((-score, member))
            else:
                scores.pop(member, None)
        order = [e for e in self.order if e[1] not in members]
        order.extend(moved)
        order.sort()
        self.order = SortedList(order)

    def _track_leave(self, sec: int, member: str) -> None:
        if self._rolling:
            current = self._leave_at.get(member)
            if current is None or sec < current:
                self._leave_at[member] = sec
                heapq.heappush(self._leaving, (sec, member))

    def _expire(self, lo: int, hi: int, candidates: set[str]) -> None:
        leaving, leave_at = self._leaving, self._leave_at
        while leaving and leaving[0][0] < lo:
            sec, member = heapq.heappop(leaving)
            if leave_at.get(member) != sec:
                continue  # superseded by an earlier second of the same member
            candidates.add(member)
            nxt = self._series[member].first_at_or_after(lo)
            if nxt is not None and nxt < hi:
                leave_at[member] = nxt
                heapq.heappush(leaving, (nxt, member))
            else:
                del leave_at[member]

    def _set(self, member: str, score: int) -> None:
        old = self.scores.get(member)
        if old == score or (old is None and score == 0):
            return
        if old is not None:
            self.order.remove((-old, member))
        if score:
            self.scores[member] = score
            self.order.add((-score, member))
        else:
            del self.scores[member]

    def _rebuild(self, lo: int | None, hi: int) -> None:
        scores: dict[str, int] = {}
        entering: list[tuple[int, str]] = []
        leave_at: dict[str, int] = {}
        for member, series in self._series.items():
            score = series.total(lo, hi)
            if score:
                scores[member] = score
            nxt = series.first_at_or_after(hi)
            if nxt is not None:
                entering.append((nxt, member))
            if self._rolling:
                first = series.first_at_or_after(lo) if lo is not None else None
                if first is not None and first < hi:
                    leave_at[member] = first
        heapq.heapify(entering)
        self.scores = scores
        self.order = SortedList((-s, m) for m, s in scores.items())
        self._entering = entering
        self._leave_at = leave_at
        self._leaving = [(s, m) for m, s in leave_at.items()]
        heapq.heapify(self._leaving)
        self.lo, self.hi = lo, hi

    def rank_of(self, score: int) -> int:
        """Competition rank of `score`: 1 + members with a strictly greater score."""
        return int(self.order.bisect_left((-score,))) + 1

    # ---- what queries read (the same on every board kind) ---------------------------------
    @property
    def total(self) -> int:
        """Members listed (non-zero score)."""
        return len(self.order)

    def score_of(self, member: str) -> int:
        return self.scores.get(member, 0)

    def position(self, member: str) -> int:
        """0-based place of a listed member in score-descending, member-ascending order."""
        return int(self.order.index((-self.scores[member], member)))

    def entries(self, start: int, stop: int) -> list[Entry]:
        """Entries at positions ``[start, stop)`` with their competition ranks."""
        return [Entry(self.rank_of(-neg), m, -neg) for neg, m in self.order.islice(start, stop)]
