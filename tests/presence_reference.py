"""A brute-force reference model of presence, written from SPEC §7 (and the presence
notes of docs/api.md) alone, to check the engine against.

Slow and obvious on purpose: every query replays the accepted operations from scratch and
counts credited seconds session by session. Nothing here shares code with `tallyboard`.

- A member is present in a room over ``[join, leave)``; a second join while present and a
  leave while absent change nothing (they are counted as no-ops).
- A snapshot of a room leaves the present members it does not list and joins the listed
  members who are absent, at its ``ts``; with ``close_on_gap = "last_seen"`` the unlisted
  are closed at the last time anything was heard about the room instead.
- Every present second ``t`` of a session is worth 1 to the presence metric (filter
  ``room``). Open sessions are credited up to ``at`` (boards) or ``now`` (sum, series).
- A migration pairs a leave from A and a join to B != A of the same member at most
  ``migration_window`` seconds apart; joins and leaves that changed something are taken in
  time order, and each pairs with the oldest unpaired opposite one in the window that it
  may pair with: the pair must be a move from A to B, so just before the first of the two
  the member is in A (in the session the leave ends) and not in B, and just after the
  second in B (in the session the join began) and not in A. (For a
  join made first this is SPEC's "while the member is still in A": a join to B made
  before the session in A began never pairs with its leave. The rest, which docs/api.md
  states, is the same rule seen from the other end.)
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


# ---- operations and what they leave behind -------------------------------------------------
@dataclass(frozen=True)
class Op:
    """A join, leave (``member``) or snapshot (``members``) of ``room`` at second ``ts``."""

    type: str
    room: str
    ts: int
    member: str | None = None
    members: tuple[str, ...] = ()

    def to_json(self, op_id: str | None = None) -> dict[str, object]:
        raw: dict[str, object] = {"type": self.type, "room": self.room, "ts": self.ts}
        if self.type == "snapshot":
            raw["members"] = list(self.members)
        else:
            raw["member"] = self.member
        if op_id is not None:
            raw["id"] = op_id
        return raw


@dataclass(frozen=True)
class Session:
    member: str
    room: str
    start: int
    end: int | None  # None: still open


@dataclass(frozen=True)
class Move:
    """A join or leave that changed something; ``seq`` is its arrival order, ``session``
    numbers the session the join opened or the leave closed."""

    kind: str
    member: str
    room: str
    ts: int
    seq: int
    session: int


@dataclass(frozen=True)
class Migration:
    member: str
    source: str
    target: str
    ts: int  # the join's time
    left: int  # the leave's time


@dataclass
class Derived:
    sessions: list[Session] = field(default_factory=list)
    present: dict[tuple[str, str], int] = field(default_factory=dict)  # (member, room) -> since
    moves: list[Move] = field(default_factory=list)
    noops: Counter[str] = field(default_factory=Counter)
    newest: dict[tuple[str, str], int] = field(default_factory=dict)  # (member, room) -> ts
    room_newest: dict[str, int] = field(default_factory=dict)
    migrations: list[Migration] = field(default_factory=list)


def derive(ops: Iterable[Op], migration_window: int = 300,
           close_on_gap: str = "snapshot") -> Derived:
    """Replay accepted operations (in arrival order) into sessions, moves and migrations."""
    d = Derived()
    closed: list[Session] = []
    heard: dict[str, int] = {}  # room -> last time anything was heard about it
    session_of: dict[tuple[str, str], int] = {}  # (member, room) -> its open session
    seq = 0

    def move(kind: str, member: str, room: str, ts: int) -> None:
        nonlocal seq
        if kind == "join":
            session_of[(member, room)] = seq
        d.moves.append(Move(kind, member, room, ts, seq, session_of[(member, room)]))
        seq += 1

    for op in ops:
        last_heard = heard.get(op.room, op.ts)
        heard[op.room] = max(last_heard, op.ts)
        d.room_newest[op.room] = max(op.ts, d.room_newest.get(op.room, op.ts))
        if op.type == "snapshot":
            here = sorted(m for (m, r) in d.present if r == op.room)
            listed = set(op.members)
            close_at = op.ts if close_on_gap == "snapshot" else last_heard
            for m in here:
                d.newest[(m, op.room)] = op.ts
                if m not in listed:
                    since = d.present.pop((m, op.room))
                    assert close_at >= since
                    closed.append(Session(m, op.room, since, close_at))
                    move("leave", m, op.room, close_at)
            for m in sorted(listed):
                d.newest[(m, op.room)] = op.ts
                if (m, op.room) not in d.present:
                    d.present[(m, op.room)] = op.ts
                    move("join", m, op.room, op.ts)
            continue
        assert op.member is not None
        key = (op.member, op.room)
        d.newest[key] = op.ts
        if op.type == "join":
            if key in d.present:
                d.noops["duplicate_join"] += 1
            else:
                d.present[key] = op.ts
                move("join", op.member, op.room, op.ts)
        elif key in d.present:
            closed.append(Session(op.member, op.room, d.present.pop(key), op.ts))
            move("leave", op.member, op.room, op.ts)
        else:
            d.noops["orphan_leave"] += 1
    d.sessions = closed + [Session(m, r, since, None) for (m, r), since in d.present.items()]
    d.migrations = match_migrations(d.moves, migration_window)
    return d


def match_migrations(moves: Sequence[Move], window: int) -> list[Migration]:
    """Greedy pairing in time order: each move takes the oldest unpaired opposite move of
    the same member that it may pair with (`may_pair`)."""

    def order(mv: Move) -> tuple[int, int]:
        return mv.ts, mv.seq

    opened = {mv.session: mv for mv in moves if mv.kind == "join"}
    closed = {mv.session: mv for mv in moves if mv.kind == "leave"}
    spans = [(j.member, j.room, order(j), order(closed[s]) if s in closed else None)
             for s, j in opened.items()]

    def present(member: str, room: str, point: tuple[int, int], after: bool) -> bool:
        """Whether `member` is in `room` just before (or after) the move at `point`."""
        return any(m == member and r == room and (lo <= point if after else lo < point)
                   and (hi is None or (hi > point if after else hi >= point))
                   for m, r, lo, hi in spans)

    def may_pair(leave: Move, join: Move) -> bool:
        """A move from the left room to the joined one: in the window, and just before the
        first of the two the member is in the session the leave ends and not in the joined
        room, just after the second in the session the join began and not in the left
        room."""
        if join.member != leave.member or join.room == leave.room:
            return False
        if abs(join.ts - leave.ts) > window:
            return False
        m, a, b = leave.member, leave.room, join.room
        first, second = sorted((order(leave), order(join)))
        ended = closed.get(join.session)
        return (order(opened[leave.session]) < first and not present(m, b, first, after=False)
                and (ended is None or order(ended) > second)
                and not present(m, a, second, after=True))

    unpaired: list[Move] = []
    found: list[Migration] = []
    for mv in sorted(moves, key=order):
        partners = [o for o in unpaired if o.kind != mv.kind
                    and (may_pair(o, mv) if mv.kind == "join" else may_pair(mv, o))]
        if not partners:
            unpaired.append(mv)
            continue
        other = min(partners, key=order)
        unpaired.remove(other)
        leave, join = (other, mv) if mv.kind == "join" else (mv, other)
        found.append(Migration(mv.member, leave.room, join.room, join.ts, leave.ts))
    return found


def late_index(d: Derived, batch: Sequence[Op]) -> int | None:
    """The index of the first operation older than what was seen for its member and room
    (for a snapshot: its room), counting earlier operations of the same batch; else None."""
    newest = dict(d.newest)
    room_newest = dict(d.room_newest)
    present = {k for k in d.present}
    for i, op in enumerate(batch):
        if op.type == "snapshot":
            if op.ts < room_newest.get(op.room, op.ts):
                return i
            here = {m for (m, r) in present if r == op.room}
            for m in here | set(op.members):
                newest[(m, op.room)] = op.ts
            present = {k for k in present if k[1] != op.room} | {
                (m, op.room) for m in op.members}
        else:
            assert op.member is not None
            key = (op.member, op.room)
            if op.ts < newest.get(key, op.ts):
                return i
            newest[key] = op.ts
            if op.type == "join":
                present.add(key)
            else:
                present.discard(key)
        room_newest[op.room] = max(op.ts, room_newest.get(op.room, op.ts))
    return None


# ---- calendar --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cal:
    timezone: str = "UTC"
    day_start: str = "00:00"
    week_start: str = "monday"

    def start_of(self, day: date) -> int:
        """The instant the local day labelled `day` starts (wall time with fold=0)."""
        hh, mm = (int(x) for x in self.day_start.split(":"))
        wall = datetime(day.year, day.month, day.day, hh, mm, tzinfo=ZoneInfo(self.timezone))
        return int(wall.timestamp())

    def day_of(self, t: float) -> date:
        local = datetime.fromtimestamp(math.floor(t), ZoneInfo(self.timezone)).date()
        for d in (local - timedelta(days=1), local, local + timedelta(days=1)):
            if self.start_of(d) <= t < self.start_of(d + timedelta(days=1)):
                return d
        raise AssertionError(f"no day contains {t}")

    def period(self, kind: str, t: float) -> tuple[int, int, str]:
        """``(start, end, label)`` of the `kind` period containing instant `t`."""
        if kind in ("second", "minute", "hour"):
            size = {"second": 1, "minute": 60, "hour": 3600}[kind]
            lo = math.floor(t) // size * size
            return lo, lo + size, datetime.fromtimestamp(lo, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        d = self.day_of(t)
        if kind == "day":
            first, nxt = d, d + timedelta(days=1)
            label = d.isoformat()
        elif kind == "week":
            first = d - timedelta(days=(d.weekday() - WEEKDAYS.index(self.week_start)) % 7)
            nxt, label = first + timedelta(days=7), first.isoformat()
        elif kind == "month":
            first = d.replace(day=1)
            nxt = (first + timedelta(days=32)).replace(day=1)
            label = first.strftime("%Y-%m")
        else:
            first, nxt = d.replace(month=1, day=1), d.replace(year=d.year + 1, month=1, day=1)
            label = f"{first.year}"
        return self.start_of(first), self.start_of(nxt), label

    def buckets(self, kind: str, start: float, end: float) -> list[tuple[int, int, str]]:
        """Every `kind` period overlapping ``[start, end)``, in order."""
        out = [self.period(kind, start)]
        while out[-1][1] < end:
            out.append(self.period(kind, out[-1][1]))
        return out


# ---- queries -----------------------------------------------------------------------------------
def _seconds(lo: float | None, hi: float | None) -> tuple[float, float]:
    """Bounds compared as given: second t counts when lo <= t < hi."""
    return (-math.inf if lo is None else math.ceil(lo), math.inf if hi is None else math.ceil(hi))


def credit(s: Session, lo: float | None, hi: float | None, upto: float) -> int:
    """Seconds t of session `s` with lo <= t < hi; an open session only those t < upto."""
    a, b = _seconds(lo, hi)
    a = max(a, s.start)
    b = min(b, math.ceil(upto) if s.end is None else s.end)
    return int(max(0, b - a))


class Reference:
    """Accepted operations plus settings; answers every presence query by brute force."""

    def __init__(self, cal: Cal | None = None, migration_window: int = 300,
                 close_on_gap: str = "snapshot") -> None:
        self.cal = cal or Cal()
        self.migration_window = migration_window
        self.close_on_gap = close_on_gap
        self.ops: list[Op] = []
        self._cache: tuple[tuple[int, int, str], Derived] | None = None

    @property
    def state(self) -> Derived:
        """Everything the accepted operations imply under the current settings."""
        key = (len(self.ops), self.migration_window, self.close_on_gap)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, derive(self.ops, self.migration_window, self.close_on_gap))
        return self._cache[1]

    def submit(self, batch: Sequence[Op]) -> int | None:
        """Accept `batch` whole, or return the index of its first late operation."""
        late = late_index(self.state, batch)
        if late is None:
            self.ops.extend(batch)
        return late

    def moves_in_time_order(self) -> bool:
        """Whether effective joins and leaves arrived in time order (so that matching
        them as they arrive and matching them by time are the same thing)."""
        moves = self.state.moves
        return all(a.ts <= b.ts for a, b in itertools.pairwise(moves))

    # -- the presence metric
    def _sessions(self, room: str | None = None) -> list[Session]:
        return [s for s in self.state.sessions if room is None or s.room == room]

    def total(self, member: str, lo: float | None, hi: float | None, upto: float,
              room: str | None = None) -> int:
        return sum(credit(s, lo, hi, upto) for s in self._sessions(room) if s.member == member)

    def sum(self, member: str, start: float | None, end: float | None, now: float,
            room: str | None = None) -> int:
        return self.total(member, start, end, now, room)

    def window(self, window: str, at: float, start: float | None = None,
               end: float | None = None) -> tuple[float | None, float]:
        if window == "all":
            return None, at
        if window == "range":
            return start, end  # type: ignore[return-value]
        if window.startswith("rolling:"):
            n, unit = int(window[8:-1]), window[-1]
            return at - n * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit], at
        return self.cal.period(window, at)[0], at

    def scores(self, window: str, at: float | None, now: float, room: str | None = None,
               start: float | None = None, end: float | None = None) -> dict[str, int]:
        when = now if at is None else at
        lo, hi = self.window(window, when, start, end)
        members = {s.member for s in self._sessions(room)}
        got = {m: self.total(m, lo, hi, when, room) for m in members}
        return {m: v for m, v in got.items() if v}

    def leaderboard(self, window: str, at: float | None, now: float, room: str | None = None,
                    n: int = 1000, offset: int = 0, start: float | None = None,
                    end: float | None = None) -> tuple[int, list[tuple[int, str, int]]]:
        """``(total, [(rank, member, score), ...])``."""
        ranked = ranked_entries(self.scores(window, at, now, room, start, end))
        return len(ranked), ranked[offset:offset + n]

    def rank(self, member: str, window: str, at: float | None, now: float,
             radius: int = 0) -> tuple[int | None, int, int, list[tuple[int, str, int]]]:
        ranked = ranked_entries(self.scores(window, at, now))
        pos = next((i for i, e in enumerate(ranked) if e[1] == member), None)
        if pos is None:
            return None, 0, len(ranked), []
        return (ranked[pos][0], ranked[pos][2], len(ranked),
                ranked[max(0, pos - radius):pos + radius + 1])

    def series(self, member: str, step: str, start: float, end: float, now: float,
               room: str | None = None) -> list[tuple[int, str, int]]:
        return [(b_lo, label, self.total(member, max(b_lo, start), min(b_hi, end), now, room))
                for b_lo, b_hi, label in self.cal.buckets(step, start, end)]

    # -- sessions, rooms, migrations, concurrency
    def sessions(self, member: str, start: float | None, end: float | None,
                 now: float) -> list[dict[str, object]]:
        out = []
        for s in self.state.sessions:
            if s.member != member:
                continue
            if end is not None and not s.start < end:
                continue
            if start is not None and s.end is not None and not s.end > start:
                continue
            seconds = s.end - s.start if s.end is not None else max(0, math.ceil(now) - s.start)
            out.append({"room": s.room, "start": s.start, "end": s.end, "seconds": seconds})
        return sorted(out, key=repr)

    def rooms(self) -> dict[str, int]:
        return dict(Counter(r for (_, r) in self.state.present))

    def room(self, room: str) -> dict[str, int]:
        return {m: since for (m, r), since in self.state.present.items() if r == room}

    def overlap(self, room: str, start: float | None, end: float | None,
                now: float) -> tuple[int, list[tuple[str, int]]]:
        """Members of `room` present a whole second of [start, min(end, now)) (neither:
        open now), and per other room how many of them were present there in it too."""
        def there(s: Session) -> bool:
            if start is None and end is None:
                return s.end is None
            lo = -math.inf if start is None else math.ceil(start)
            hi = math.floor(now if end is None else min(end, now))
            last = math.ceil(now) if s.end is None else s.end
            return max(s.start, lo) < min(last, hi)

        seen: dict[str, set[str]] = {}
        for s in self.state.sessions:
            if there(s):
                seen.setdefault(s.room, set()).add(s.member)
        ours = seen.get(room, set())
        found = [(r, len(ms & ours)) for r, ms in seen.items() if r != room and ms & ours]
        return len(ours), sorted(found, key=lambda rc: (-rc[1], rc[0]))

    def migrations(self, start: float | None = None, end: float | None = None,
                   source: str | None = None, target: str | None = None,
                   member: str | None = None) -> list[Migration]:
        return [m for m in self.state.migrations
                if (start is None or m.ts >= start) and (end is None or m.ts < end)
                and (source is None or m.source == source)
                and (target is None or m.target == target)
                and (member is None or m.member == member)]

    def migration_counts(self, **filters: str | float | None) -> dict[tuple[str, str], int]:
        return dict(Counter((m.source, m.target)
                            for m in self.migrations(**filters)))  # type: ignore[arg-type]

    def concurrency(self, step: str, start: int, end: int, now: float,
                    room: str | None = None) -> list[tuple[int, str, int, float]]:
        """Per bucket: ``(start, label, peak, avg)`` over seconds ``[start, min(end, now))``."""
        sessions = self._sessions(room)
        stop = min(end, math.ceil(now))

        def present_at(t: int) -> int:
            return sum(1 for s in sessions
                       if s.start <= t and (s.end is None or t < s.end))

        out = []
        for b_lo, b_hi, label in self.cal.buckets(step, start, end):
            lo, hi = max(b_lo, start), min(b_hi, stop)
            if hi <= lo:
                out.append((b_lo, label, 0, 0.0))
                continue
            # the count only changes where a session starts or ends: try those seconds
            candidates = {lo} | {t for s in sessions for t in (s.start, s.end)
                                 if t is not None and lo <= t < hi}
            peak = max(present_at(t) for t in candidates)
            seconds = sum(credit(s, lo, hi, now) for s in sessions)
            out.append((b_lo, label, peak, seconds / (hi - lo)))
        return out


def ranked_entries(scores: dict[str, int]) -> list[tuple[int, str, int]]:
    """Score descending, then member ascending; rank = 1 + number strictly better."""
    order = sorted(scores.items(), key=lambda x: (-x[1], x[0]))
    return [(1 + sum(1 for _, v in order if v > score), m, score) for m, score in order]
