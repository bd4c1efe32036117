"""One metric's state: per-member series (unfiltered and per dimension value) and queries.

Hot boards answer leaderboards and ranks "as of now" in O(log n); any other instant or
window is computed exactly from the series, member by member.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import count, islice, pairwise
from typing import Any, cast

import numpy as np

from ..calendar import FIXED_STEPS, Calendar
from ..windows import Window, ceil_second
from .board import Board, ChangeLog
from .columns import Columns
from .config import MetricConfig
from .events import Event
from .growing_board import GrowingBoard, Placed
from .intervals import IntervalSeries
from .results import Entry, Leaderboard, Point, Rank, Streak
from .series import MemberSeries, Series
from .streak import counted_days, streak_of

FilterKey = tuple[str, str] | None
HotBoard = Board | GrowingBoard


MAX_POINTS = 10_000
WARM_FROM = 1_000  # members: smaller metrics build their hot boards on first use
_CHANGELOG_LIMIT = 1 << 21  # boards lagging further than this are dropped and rebuilt


class TooManyPoints(ValueError):
    """A series would have more than MAX_POINTS buckets."""


@dataclass(frozen=True, slots=True)
class WindowBounds:
    """Maps "now" to a window's ``(lo, hi)`` seconds (lo None: open): a value, not a
    closure, so hot boards can be checkpointed with the state they index."""

    kind: str
    seconds: int
    calendar: Calendar

    def __call__(self, now: float) -> tuple[int | None, int]:
        if self.kind == "all":
            return None, math.ceil(now)
        if self.kind == "rolling":
            return math.ceil(now) - self.seconds, math.ceil(now)
        return self.calendar.period_start(self.kind, math.floor(now)), math.ceil(now)


class MetricState:
    """Everything one metric knows, in memory; fed events, answers exact queries."""

    def __init__(self, config: MetricConfig, presence: bool = False) -> None:
        self.config = config
        self.presence = presence  # fed by sessions (IntervalSeries), not events
        self.events = 0
        self.series: dict[FilterKey, dict[str, Series]] = {None: {}}
        self._boards: dict[tuple[FilterKey, str], HotBoard] = {}
        self._changes: dict[FilterKey, ChangeLog] = {}
        self._placed: dict[FilterKey, dict[str, Placed]] = {}  # shared by presence boards

    # ---- ingest -------------------------------------------------------------------------
    def apply(self, events: Iterable[Event]) -> None:
        """Add events (of this metric) to every series they belong to."""
        # an event metric's series are all MemberSeries
        series = cast(dict[FilterKey, dict[str, MemberSeries]], self.series)
        changes, dims = self._changes, self.config.dimensions
        unfiltered = series[None]
        log = changes.get(None)
        n = 0
        for _, _, member, sec, value, tags, _ in events:
            n += 1
            s = unfiltered.get(member)
            if s is None:
                s = unfiltered[member] = MemberSeries()
            secs = s.secs
            if secs and sec > secs[-1] and type(s.cum) is array:  # in-order append, inline
                secs.append(sec)
                try:
                    s.cum.append(s.cum[-1] + value)
                except OverflowError:
                    secs.pop()
                    s.add(sec, value)
            else:
                s.add(sec, value)
            if log is not None:
                log.items.append((sec, sec, member))
            if tags and dims:
                for dim in dims:
                    tag = tags.get(dim)
                    if tag is None:
                        continue
                    fkey: FilterKey = (dim, tag)
                    by_member = series.get(fkey)
                    if by_member is None:
                        by_member = series[fkey] = {}
                    fs = by_member.get(member)
                    if fs is None:
                        fs = by_member[member] = MemberSeries()
                    fs.add(sec, value)
                    flog = changes.get(fkey)
                    if flog is not None:
                        flog.items.append((sec, sec, member))
        self.events += n
        self._check_changelogs()

    def apply_columns(self, cols: Columns) -> None:
        """Add a column batch: grouped per series with numpy, same result as `apply`."""
        n = len(cols)
        if n == 0:
            return
        member_codes = self._apply_grouped(None, cols.members, cols.secs, cols.values)
        for dim in self.config.dimensions:
            column = cols.tags.get(dim)
            if column is not None:
                self._apply_grouped(dim, column, cols.secs, cols.values, member_codes)
        self.events += n
        self._check_changelogs()

    def _apply_grouped(self, dim: str | None, keys: list[str],
                       secs: np.ndarray[Any, Any], values: np.ndarray[Any, Any],
                       members: tuple[np.ndarray[Any, Any], dict[int, str]] | None = None,
                       ) -> tuple[np.ndarray[Any, Any], dict[int, str]]:
        """Add events to the series that `keys` name: members (dim None), or the values
        of tag `dim`, combined with the member codes of the first call. Returns codes."""
        codes, names = _codes(keys)
        if members is not None:
            member_codes, member_names = members
            codes = codes * len(keys) + member_codes
        order = np.argsort(codes, kind="stable")
        ordered = codes[order]
        cuts = [0, *(np.flatnonzero(np.diff(ordered)) + 1).tolist(), len(keys)]
        secs_l, vals_l = secs[order].tolist(), values[order].tolist()
        for a, b in pairwise(cuts):
            code = int(ordered[a])
            fkey: FilterKey = None
            if members is None:
                member = names[code]
            else:
                tag_value = names[code // len(keys)]
                if tag_value is None:  # rows (from `Columns.of_events`) without this tag
                    continue
                fkey = (cast(str, dim), tag_value)
                member = member_names[code % len(keys)]
            by_member = cast(dict[str, MemberSeries], self.series_of(fkey))
            s = by_member.get(member)
            if s is None:
                s = by_member[member] = MemberSeries()
            if b - a == 1:
                s.add(secs_l[a], vals_l[a])
                span = (secs_l[a], secs_l[a])
            else:
                chunk = secs_l[a:b]
                s.add_many(chunk, vals_l[a:b])
                span = (min(chunk), max(chunk))
            clog = self._changes.get(fkey)
            if clog is not None:
                clog.items.append((*span, member))
        return codes, names

    def _check_changelogs(self) -> None:
        for key, clog in list(self._changes.items()):
            if len(clog.items) > _CHANGELOG_LIMIT:
                self._drop_lagging(key, clog)

    def begin(self, member: str, room: str, ts: int) -> None:
        """A presence session of `member` in `room` opens at `ts`."""
        for key in (None, ("room", room)):
            self._interval(key, member).begin(ts)
            self._changed(key, ts, member)
        self.events += 1

    def begin_many(self, members: Sequence[str], room: str, ts: int) -> None:
        """`begin` for many members joining `room` at `ts` (a snapshot's arrivals)."""
        for key in (None, ("room", room)):
            by_member = self.series_of(key)
            got = by_member.get
            for member in members:
                s = got(member)
                if s is None:
                    by_member[member] = IntervalSeries(ts)
                else:
                    cast(IntervalSeries, s).begin(ts)
            clog = self._changes.get(key)
            if clog is not None:
                clog.items.extend((ts, ts, m) for m in members)
        self.events += len(members)

    def end(self, member: str, room: str, since: int, ts: int) -> None:
        """The session of `member` in `room` that opened at `since` closes at `ts`."""
        for key in (None, ("room", room)):
            self._interval(key, member).end(since, ts)
            self._changed(key, ts, member)
        self.events += 1

    def _interval(self, key: FilterKey, member: str) -> IntervalSeries:
        by_member = self.series_of(key)
        s = by_member.get(member)
        if s is None:
            s = by_member[member] = IntervalSeries()
        return cast(IntervalSeries, s)

    def _changed(self, key: FilterKey, ts: int, member: str) -> None:
        clog = self._changes.get(key)
        if clog is not None:
            clog.items.append((ts, ts, member))

    def _drop_lagging(self, key: FilterKey, clog: ChangeLog) -> None:
        for bkey in [k for k, b in self._boards.items()
                     if k[0] == key and b.cursor < clog.head - _CHANGELOG_LIMIT // 2]:
            del self._boards[bkey]
        self._trim(key)

    def _trim(self, key: FilterKey) -> None:
        clog = self._changes[key]
        cursors = [b.cursor for k, b in self._boards.items() if k[0] == key]
        if not cursors:
            del self._changes[key]
        else:
            clog.trim(min(cursors))

    # ---- hot boards -----------------------------------------------------------------------
    def board(self, key: FilterKey, window: Window, now: float) -> HotBoard:
        """The hot board of `window` (not range) under filter `key`, synced to `now`."""
        bkey = (key, window.name)
        clog = self._changes.get(key)
        if clog is None:
            clog = self._changes[key] = ChangeLog()
        board = self._boards.get(bkey)
        if board is None:
            board = self._boards[bkey] = self._new_board(key, window, clog.head)
        board.sync(now, clog.since(board.cursor), clog.head)
        if len(clog.items) > 4096:
            self._trim(key)
        return board

    def boards_to_sync(self, every_board: bool = False) -> list[tuple[FilterKey, str]]:
        """The hot boards with changes they have not taken (`every_board`: all of them,
        for what time alone changes), by key."""
        out = []
        for bkey, board in self._boards.items():
            clog = self._changes.get(bkey[0])
            if every_board or (clog is not None and board.cursor != clog.head):
                out.append(bkey)
        return out

    def sync_board(self, bkey: tuple[FilterKey, str], now: float,
                   most: int | None = None) -> bool:
        """Bring one hot board to `now` with (at most `most` of) the changes it has not
        taken, off any read: the engine calls this after each write and on its keep-up
        step, so reads find only what time did since (a window's start moving, future
        events coming due). Whether the board has taken every change."""
        board, clog = self._boards.get(bkey), self._changes.get(bkey[0])
        if board is None or clog is None:  # dropped meanwhile (lagging, or reconfigured)
            return True
        changes = clog.since(board.cursor)
        if most is not None and len(changes) > most:
            board.sync(now, changes[:most], board.cursor + most)  # a state it passes by
            return False
        board.sync(now, changes, clog.head)
        self._trim(bkey[0])
        return True

    def _new_board(self, key: FilterKey, window: Window, cursor: int) -> HotBoard:
        bounds = WindowBounds(window.kind, window.seconds, self.config.calendar)
        if self.presence:
            return GrowingBoard(cast(dict[str, IntervalSeries], self.series_of(key)),
                                bounds, cursor, self._placed.setdefault(key, {}))
        return Board(cast(dict[str, MemberSeries], self.series_of(key)), bounds,
                     window.kind == "rolling", cursor)

    def has_boards(self) -> bool:
        """Whether any hot board was built (a restored one is kept up like a live one)."""
        return bool(self._boards)

    def has_board(self, window: Window) -> bool:
        """Whether "as of now" in `window` is kept hot (presence grows linearly only when
        the window's start is fixed, so its rolling windows are computed per query)."""
        return window.kind != "range" and not (self.presence and window.kind == "rolling")

    def warm(self, now: float) -> bool:
        """Build the configured hot boards (all, calendar periods, rolling) ahead of queries,
        for a metric big enough that building one on its first query would be felt.

        A smaller metric's board is built when first asked for (under a millisecond below
        WARM_FROM members), as on a live server that never asked: a restart then costs
        what the live process did, not a board per window for each of 50,000 small metrics.
        Whether it built them.
        """
        if len(self.series[None]) < WARM_FROM:
            return False
        for name in ("all", "day", "week", "month", "year",
                     *(f"rolling:{r}" for r in self.config.rolling)):
            window = Window.parse(name)
            if self.has_board(window):
                self.board(None, window, now)
        return True

    # ---- queries ------------------------------------------------------------------------
    def series_of(self, key: FilterKey) -> dict[str, Series]:
        found = self.series.get(key)
        if found is None:
            found = self.series[key] = {}
        return found

    def sum(self, key: FilterKey, member: str, start: float | None, end: float | None,
            now: float) -> int:
        """Total over ``[start, end)``; open sessions count up to now."""
        s = self.series.get(key, {}).get(member)
        return 0 if s is None else s.total(ceil_second(start), ceil_second(end),
                                           math.ceil(now))

    def points(self, key: FilterKey, member: str, step: str, start: float,
               end: float, now: float) -> list[Point]:
        """Every `step` bucket overlapping ``[start, end)``, counting only events inside it."""
        cal = self.config.calendar
        if step in FIXED_STEPS:
            size = FIXED_STEPS[step]
            if math.ceil(end / size) - math.floor(start / size) > MAX_POINTS:
                raise TooManyPoints(f"more than {MAX_POINTS} points; use a larger step")
        s = self.series.get(key, {}).get(member) or MemberSeries()
        lo_q, hi_q, upto = math.ceil(start), math.ceil(end), math.ceil(now)
        out: list[Point] = []
        lo, hi, label = cal.period(step, math.floor(start))
        while lo < end:
            if len(out) == MAX_POINTS:
                raise TooManyPoints(f"more than {MAX_POINTS} points; use a larger step")
            out.append(Point(lo, label, s.total(max(lo, lo_q), min(hi, hi_q), upto)))
            lo, hi, label = cal.period(step, hi)
        return out

    def scores(self, key: FilterKey, window: Window, at: float | None, now: float,
               members: Sequence[str] | None = None
               ) -> tuple[float | None, float, HotBoard | None, dict[str, int]]:
        """Window span, the hot board when `at` is now, and non-zero scores otherwise."""
        cal = self.config.calendar
        start, end = window.span(now if at is None else at, cal)
        if at is None and self.has_board(window):
            board = self.board(key, window, now)
            if members is None:
                return start, end, board, {}
            got = {m: board.score_of(m) for m in members}
            return start, end, None, {m: v for m, v in got.items() if v}
        lo, hi = ceil_second(start), ceil_second(end)
        upto = math.ceil(now if at is None else at)  # open sessions count up to `at`
        by_member = self.series.get(key, {})
        if members is None:
            pairs: Iterable[tuple[str, Series]] = by_member.items()
        else:
            pairs = ((m, by_member[m]) for m in members if m in by_member)
        out = {}
        for m, s in pairs:
            v = s.total(lo, hi, upto)
            if v:
                out[m] = v
        return start, end, None, out

    def leaderboard(self, key: FilterKey, window: Window, n: int, offset: int,
                    at: float | None, now: float,
                    members: Sequence[str] | None = None) -> Leaderboard:
        start, end, board, scores = self.scores(key, window, at, now, members)
        if board is not None:
            return Leaderboard(start, end, board.total, board.entries(offset, offset + n))
        ranked = _ranked(heapq.nsmallest(offset + n, ((-v, m) for m, v in scores.items())))
        return Leaderboard(start, end, len(scores), ranked[offset:])

    def rank(self, key: FilterKey, member: str, window: Window, radius: int,
             at: float | None, now: float) -> Rank:
        _, _, board, scores = self.scores(key, window, at, now)
        if board is not None:
            score = board.score_of(member)
            if not score:
                return Rank(None, 0, board.total)
            pos = board.position(member)
            return Rank(board.rank_of(score), score, board.total,
                        board.entries(max(0, pos - radius), pos + radius + 1))
        score = scores.get(member, 0)
        if not score:
            return Rank(None, 0, len(scores))
        order = sorted((-v, m) for m, v in scores.items())
        ranked = _ranked(order)
        pos = order.index((-score, member))
        return Rank(ranked[pos].rank, score, len(order),
                    ranked[max(0, pos - radius):pos + radius + 1])

    def streak(self, key: FilterKey, member: str, minimum: int, at: float,
               calendar: Calendar | None = None) -> Streak:
        cal = calendar or self.config.calendar
        s = self.series.get(key, {}).get(member) or MemberSeries()
        return streak_of(counted_days(s, cal, at, minimum), cal.day_of(math.floor(at)))


def _codes(keys: list[str]) -> tuple[np.ndarray[Any, Any], dict[int, str]]:
    """A code per row (the index of the key's first row) and each code's key."""
    first: dict[str, int] = {}
    # setdefault with a running count does the whole mapping in C
    codes = np.fromiter(map(first.setdefault, keys, count()), dtype=np.int64,
                        count=len(keys))
    return codes, {code: key for key, code in first.items()}


def _ranked(order: Iterable[tuple[int, str]]) -> list[Entry]:
    """Entries with competition ranks for a prefix of the full order (score desc, member)."""
    out: list[Entry] = []
    for i, (neg, m) in enumerate(islice(order, None)):
        rank = out[-1].rank if out and out[-1].score == -neg else i + 1
        out.append(Entry(rank, m, -neg))
    return out
