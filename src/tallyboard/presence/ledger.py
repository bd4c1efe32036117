"""Presence of one space: who is in which room since when, past sessions, migrations.

Pure: it is fed validated operations in time order and says which joins and leaves
changed something; crediting those seconds to the presence metric is the engine's job.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple

from ..core.series import MemberSeries
from .migration_index import MigrationIndex
from .session_index import OPEN, SessionIndex

CloseOnGap = Literal["snapshot", "last_seen"]


@dataclass(frozen=True)
class PresenceSettings:
    """Per-space presence settings."""

    metric: str = "presence_seconds"
    migration_window: int = 300
    close_on_gap: CloseOnGap = "snapshot"

    def to_dict(self) -> dict[str, object]:
        return {"metric": self.metric, "migration_window": self.migration_window,
                "close_on_gap": self.close_on_gap}


class PresenceOp(NamedTuple):
    """A validated join, leave or snapshot (``members`` is only for snapshots)."""

    space: str
    type: str
    room: str
    member: str | None
    members: tuple[str, ...] | None
    ts: int
    id: str | None = None


class Change(NamedTuple):
    """A join or leave that changed something; a leave carries its session's start."""

    kind: str
    member: str
    room: str
    ts: int
    since: int


class Migration(NamedTuple):
    """A member left `source` and joined `target`; `ts` is the join's time, `left` the
    leave's (None only in a checkpoint written before it was kept)."""

    member: str
    source: str
    target: str
    ts: int
    left: int | None = None


class Session(NamedTuple):
    room: str
    start: int
    end: int | None


# A join or leave that changed something, as (ts, seq, kind, room); `seq`, the member's
# own arrival order (its count of moves so far: a small, cached int), breaks time ties.
# A plain tuple: millions are kept, and a checkpoint pickles a plain tuple ~4x faster
# than a named one.
_Move = tuple[int, int, str, str]
TS: Final = 0
ROOM: Final = 3


class _Moves:
    """One member's moves in time order, the migrations they pair into, the moves still
    unpaired (oldest first) that a later move may pair with, and, as of the last move
    paired, the join that opened each room's current session.

    Made on a member's second move, as most members present at scale never move: their
    one join is the first row of their sessions (SessionIndex). The unpaired moves are
    None when there are none, as they mostly are: millions of members keep no empty list.
    """

    __slots__ = ("joins", "leaves", "migrations", "moves", "opened")

    def __init__(self) -> None:
        self.moves: list[_Move] = []
        self.migrations: list[Migration] = []
        self.leaves: list[tuple[_Move, frozenset[str]]] | None = None  # + rooms in
        self.joins: list[_Move] | None = None
        self.opened: dict[str, _Move] = {}

    def __getstate__(self) -> tuple[object, ...]:
        """Migrations as plain tuples: a named tuple pickles ~4x slower, and a checkpoint
        holds millions."""
        return (self.moves, [tuple(m) for m in self.migrations], self.leaves, self.joins,
                self.opened)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.moves, migrations, self.leaves, self.joins, self.opened = state
        self.migrations = [Migration(*m) for m in migrations]


class LateOperation(ValueError):
    """An operation older than what the ledger already saw for that member and room."""

    def __init__(self, message: str, index: int, member: str | None, room: str) -> None:
        super().__init__(message)
        self.index = index
        self.member = member
        self.room = room


class PresenceLedger:
    """Presence state of one space; every method is exact and deterministic."""

    def __init__(self, settings: PresenceSettings | None = None) -> None:
        self.settings = settings or PresenceSettings()
        self.present: dict[str, dict[str, int]] = {}  # room -> member -> since
        self.last_ts: dict[str, dict[str, int]] = {}  # room -> member -> newest op
        self.room_seen: dict[str, int] = {}  # room -> newest op (snapshots included)
        self.noops: Counter[str] = Counter()  # duplicate joins, orphan leaves
        self._moves: dict[str, _Moves] = {}  # members who moved more than once
        # room (None: every room) -> +1 at each session's start, -1 at its end, per second:
        # how many are present at t is the running total, so concurrency reads no sessions
        self.timeline: dict[str | None, MemberSeries] = {}
        self.index = MigrationIndex()  # every member's migrations, in time order
        self.visits = SessionIndex()  # every session in flat arrays, for overlap

    # ---- writes ---------------------------------------------------------------------------
    def check(self, ops: Iterable[PresenceOp]) -> None:
        """LateOperation unless every op (in order, with the ones before it) is in time order.

        A snapshot is late if older than its room's newest op; a join or leave if older
        than its member's newest op in the room, where a snapshot counts for everyone it
        listed or found there. Of the ops' own snapshots only each room's latest listed set
        is kept (and the times of the leaves they make), not a time per listed member.
        """
        seen: dict[tuple[str, str], int] = {}  # (member, room) -> newest op of the ops
        room_seen: dict[str, int] = {}
        moved: dict[str, dict[str, bool]] = {}  # room -> member -> present after the ops
        snapped: dict[str, tuple[int, set[str]]] = {}  # room -> latest snapshot, its members
        for index, op in enumerate(ops):
            room = op.room
            if op.type == "snapshot":
                assert op.members is not None
                newest = room_seen.get(room, self.room_seen.get(room))
                if newest is not None and op.ts < newest:
                    raise LateOperation(f"snapshot of room {room!r} at {op.ts} is older than "
                                        f"what was seen for it ({newest})", index, None, room)
                before = snapped.get(room)
                found = set(before[1] if before else self.present.get(room, ()))
                for who, there in moved.pop(room, {}).items():
                    if there:
                        found.add(who)
                    else:
                        found.discard(who)
                listed = set(op.members)
                for gone in found - listed:  # the snapshot's leaves
                    seen[(gone, room)] = op.ts
                snapped[room] = (op.ts, listed)
            else:
                m = op.member
                assert m is not None
                key = (m, room)
                newest = seen.get(key, self.last_ts.get(room, {}).get(m))
                snap = snapped.get(room)
                if snap is not None and m in snap[1] and (newest is None or snap[0] > newest):
                    newest = snap[0]
                if newest is not None and op.ts < newest:
                    raise LateOperation(f"{op.type} of {m!r} in {room!r} at {op.ts} is older "
                                        f"than the newest seen ({newest})", index, m, room)
                seen[key] = op.ts
                moved.setdefault(room, {})[m] = op.type == "join"
            room_seen[room] = max(op.ts, room_seen.get(room, self.room_seen.get(room, op.ts)))

    def apply(self, op: PresenceOp) -> list[Change]:
        """Apply one op; the joins and leaves that changed something, in order."""
        return [c for part in self.apply_in_parts(op) for c in part]

    def apply_in_parts(self, op: PresenceOp, size: int | None = None) -> Iterator[list[Change]]:
        """`apply`, `size` changes at a time (all at once if None): between two parts the
        ledger is as after a prefix of the same changes (a snapshot's leaves, then its
        joins), so a reader may look in while a 100,000-member snapshot is applied."""
        here = self.present.setdefault(op.room, {})
        last = self.last_ts.setdefault(op.room, {})
        gap_end = self.room_seen.get(op.room, op.ts)
        self.room_seen[op.room] = max(op.ts, gap_end)
        if op.type == "snapshot":
            # in the room's order, then the snapshot's: deterministic in a replay (and
            # after a checkpoint) without sorting 100,000 names under the lock; the order
            # among members changes no answer (each has one change here)
            listed = dict.fromkeys(op.members or ())
            close_at = gap_end if self.settings.close_on_gap == "last_seen" else op.ts
            was = list(here)
            step = size or max(1, len(was) + len(listed))
            for lo in range(0, len(was), step):
                yield [self._leave(m, op.room, max(close_at, here[m]), op.ts)
                       for m in was[lo:lo + step] if m not in listed]
            arriving = list(listed)
            for lo in range(0, len(arriving), step):
                part = arriving[lo:lo + step]
                yield [self._join(m, op.room, op.ts) for m in part if m not in here]
                last.update(dict.fromkeys(part, op.ts))
        else:
            changes: list[Change] = []
            assert op.member is not None
            if op.type == "join" and op.member not in here:
                changes.append(self._join(op.member, op.room, op.ts))
            elif op.type == "leave" and op.member in here:
                changes.append(self._leave(op.member, op.room, op.ts, op.ts))
            else:
                self.noops["duplicate_join" if op.type == "join" else "orphan_leave"] += 1
            last[op.member] = op.ts
            yield changes
        if not here:
            self.present.pop(op.room, None)

    def _count(self, room: str, ts: int, delta: int) -> None:
        for key in (room, None):
            line = self.timeline.get(key)
            if line is None:
                line = self.timeline[key] = MemberSeries()
            line.add(ts, delta)

    def _join(self, member: str, room: str, ts: int) -> Change:
        self.present.setdefault(room, {})[member] = ts
        self.visits.opened(member, room, ts)
        self._count(room, ts, 1)
        self._match(member, "join", room, ts)
        return Change("join", member, room, ts, ts)

    def _leave(self, member: str, room: str, ts: int, seen: int) -> Change:
        self._match(member, "leave", room, ts)  # first: it may read the session's start
        since = self.present[room].pop(member)
        self.visits.closed(member, room, ts)
        self._count(room, ts, -1)
        last = self.last_ts[room]
        last[member] = max(seen, last.get(member, seen))
        return Change("leave", member, room, ts, since)

    def _match(self, member: str, kind: str, room: str, ts: int) -> None:
        """Record a move and pair the member's moves into migrations, in time order.

        A move in time order pairs at once with the oldest unpaired opposite move it may
        pair with (`_pair`). A move older than the member's newest (a late op for another
        room, or a snapshot closing back to when a room was last seen) re-pairs that
        member's moves from scratch, so the result never depends on the order ops
        arrived in.
        """
        mine = self._moves.get(member)
        if mine is None:
            room0, sessions = self.visits.first(member)
            if kind == "join" and sessions == 1:
                return  # the first move (a join: a leave needs a session) is that session
            # the second move: the first session is still open (this closes it, or is later)
            mine = self._moves[member] = _Moves()
            mine.moves.append((self.present[room0][member], 0, "join", room0))  # seq 0: first
            self._pair(member, mine, mine.moves[0])
        move = (ts, len(mine.moves), kind, room)
        index = self.index
        if mine.moves and ts < mine.moves[-1][TS]:
            bisect.insort(mine.moves, move)
            before = Counter(mine.migrations)
            mine.migrations = []
            mine.leaves = mine.joins = None
            mine.opened.clear()
            for earlier in mine.moves:
                self._pair(member, mine, earlier)
            # the index follows only what changed: those paired before the late move are
            # paired alike, and taking an old one out would shift the array from there on
            after = Counter(mine.migrations)
            for m in (before - after).elements():
                index.remove(m.source, m.target, m.ts)
            for m in (after - before).elements():
                index.add(m.source, m.target, m.ts)
        else:
            paired = len(mine.migrations)
            mine.moves.append(move)
            self._pair(member, mine, move)
            for m in mine.migrations[paired:]:
                index.add(m.source, m.target, m.ts)

    def _pair(self, member: str, mine: _Moves, move: _Move) -> None:
        """Pair `move` (the newest in time order) with the oldest unpaired opposite move it
        makes a move from one room to another with, or keep it unpaired.

        A leave from A and a join to B are a move from A to B when, just before the first
        of the two, the member is in A and not in B, and just after the second in B and
        not in A (SPEC §7, docs/api.md). So a join after the leave must not find the member
        back in A, nor the leave have found them already in B; a join before the leave
        must have been made while in A (not before that session began), and its session
        must still be open at the leave.
        """
        leaves, joins = mine.leaves or [], mine.joins or []
        try:
            self._pair_into(member, mine, move, leaves, joins)
        finally:
            mine.leaves, mine.joins = leaves or None, joins or None

    def _pair_into(self, member: str, mine: _Moves, move: _Move,
                   leaves: list[tuple[_Move, frozenset[str]]], joins: list[_Move]) -> None:
        ts, _, kind, room = move
        oldest = ts - self.settings.migration_window
        stale = 0
        while stale < len(leaves) and leaves[stale][0][TS] < oldest:
            stale += 1
        del leaves[:stale]
        stale = 0
        while stale < len(joins) and joins[stale][TS] < oldest:
            stale += 1
        del joins[:stale]
        if kind == "join":
            mine.opened[room] = move
            for i, (left, rooms_then) in enumerate(leaves):
                if left[ROOM] != room and room not in rooms_then \
                        and left[ROOM] not in mine.opened:
                    del leaves[i]
                    self._found(member, left, move, mine)
                    return
            joins.append(move)
            return
        began = mine.opened.pop(room)
        if began in joins:  # its own join can never pair now
            joins.remove(began)
        for joined in joins:
            if joined > began and mine.opened.get(joined[ROOM]) == joined:
                joins.remove(joined)
                self._found(member, move, joined, mine)
                return
        leaves.append((move, frozenset(mine.opened)))

    @staticmethod
    def _found(member: str, leave: _Move, join: _Move, mine: _Moves) -> None:
        mine.migrations.append(Migration(member, leave[ROOM], join[ROOM], join[TS],
                                         leave[TS]))

    def migrations(self, member: str | None = None) -> Iterator[Migration]:
        """Migrations of `member` (of everyone if None), each member's in time order."""
        if member is not None:
            mine = self._moves.get(member)
            yield from mine.migrations if mine is not None else ()
            return
        for moves in self._moves.values():
            yield from moves.migrations

    # ---- reads ------------------------------------------------------------------------------
    def rooms(self) -> list[tuple[str, int]]:
        """Rooms with someone present and how many, most crowded first."""
        return sorted(((r, len(ms)) for r, ms in self.present.items()),
                      key=lambda x: (-x[1], x[0]))

    def room(self, room: str) -> list[tuple[str, int]]:
        """Members present in `room` with the second they joined, longest-present first."""
        return sorted(self.present.get(room, {}).items(), key=lambda x: (x[1], x[0]))

    def sessions(self, member: str, start: int | None, end: int | None) -> list[Session]:
        """The member's sessions (open ones last, end None) overlapping ``[start, end)``."""
        found = [Session(r, a, None if e == OPEN else e)  # in opening order: ties keep it
                 for r, a, e in reversed(self.visits.of(member))
                 if (end is None or a < end) and (start is None or e > start)]
        return sorted(found, key=lambda s: (s.start, s.room))
