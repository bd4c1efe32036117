"""Every session of a space, open and closed, in flat arrays: questions about all members
at once ("who of this stream's audience was also in which other stream this week") are
then a few vectorised passes instead of a walk over every member's history.

A session is a row (room id, member id, start, end, the member's previous row), appended
when it opens with end = OPEN and given its end when it closes; the member's newest row
starts a chain through its rows, so a close finds its row in a step or two, and each room
lists its rows. An overlap then reads only the room's rows and its audience's chains, not
every session: its cost follows the audience's sessions, so a small stream's answer is quick
beside a history of millions. The arrays cost 44 bytes a session plus a name-to-id entry per
member and room.
"""

from __future__ import annotations

from array import array

import numpy as np

OPEN = np.iinfo(np.int64).max  # the end of a session still open
CHAIN_STEPS = 64  # chain links walked at once before a full scan is cheaper
BIG_AUDIENCE = 16  # an audience over 1/16 of all members is read in a full scan instead


class SessionIndex:
    __slots__ = ("_last", "_member_ids", "_room_ids", "_room_rows", "end", "member",
                 "member_names", "prev", "room", "room_names", "start")

    def __init__(self) -> None:
        self._member_ids: dict[str, int] = {}
        self.member_names: list[str] = []
        self._room_ids: dict[str, int] = {}
        self.room_names: list[str] = []
        self.room = array("i")
        self.member = array("i")
        self.start = array("q")
        self.end = array("q")
        self.prev = array("q")  # the member's previous row, -1 for its first
        self._last = array("q")  # member id -> its newest row
        self._room_rows: list[array[int]] = []  # room id -> its rows, oldest first

    def __len__(self) -> int:
        return len(self.start)

    def opened(self, member: str, room: str, ts: int) -> None:
        mid = self._member_ids.get(member)
        if mid is None:
            mid = self._member_ids[member] = len(self._last)
            self.member_names.append(member)
            self._last.append(-1)
        rid = self._room(room)
        self._room_rows[rid].append(len(self.start))
        self.room.append(rid)
        self.member.append(mid)
        self.start.append(ts)
        self.end.append(OPEN)
        self.prev.append(self._last[mid])
        self._last[mid] = len(self.start) - 1

    def closed(self, member: str, room: str, ts: int) -> None:
        """The member's open session in `room` ends at `ts` (KeyError if none is open)."""
        rid, row = self._room_ids[room], self._last[self._member_ids[member]]
        while row >= 0 and not (self.room[row] == rid and self.end[row] == OPEN):
            row = self.prev[row]
        if row < 0:
            raise KeyError((member, room))
        self.end[row] = ts

    def first(self, member: str) -> tuple[str, int]:
        """The room of the member's first session and how many it has had, open ones
        included (KeyError if none), in one walk of its chain."""
        row, count = self._last[self._member_ids[member]], 1
        while self.prev[row] >= 0:
            row, count = self.prev[row], count + 1
        return self.room_names[self.room[row]], count

    def of(self, member: str) -> list[tuple[str, int, int]]:
        """The member's sessions, newest first: (room, start, end), end OPEN if open."""
        found = []
        row = self._last[self._member_ids[member]] if member in self._member_ids else -1
        while row >= 0:
            found.append((self.room_names[self.room[row]], self.start[row], self.end[row]))
            row = self.prev[row]
        return found

    def _room(self, room: str) -> int:
        rid = self._room_ids.get(room)
        if rid is None:
            rid = self._room_ids[room] = len(self.room_names)
            self.room_names.append(room)
            self._room_rows.append(array("q"))
        return rid

    def overlap(self, room: str, lo: int | None, hi: int | None
                ) -> tuple[int, list[tuple[str, int]]]:
        """Members present in `room` for at least a second of ``[lo, hi)`` (None, None:
        present now; `hi` no later than now, so an open session reaches it), and for each
        other room how many of them were present there too within the same span:
        (audience, [(room, shared)]), most shared first, ties by room name."""
        rid = self._room_ids.get(room)
        n = len(self.start)
        if rid is None or n == 0 or (lo is not None and hi is not None and lo >= hi):
            return 0, []
        rooms = np.frombuffer(self.room, dtype=np.int32, count=n)
        members = np.frombuffer(self.member, dtype=np.int32, count=n)
        starts = np.frombuffer(self.start, dtype=np.int64, count=n)
        ends = np.frombuffer(self.end, dtype=np.int64, count=n)

        def present(rows: np.ndarray) -> np.ndarray:
            if lo is None and hi is None:
                return np.asarray(rows[ends[rows] == OPEN])
            keep = ends[rows] > starts[rows]  # a session of no whole second was never present
            if hi is not None:
                keep &= starts[rows] < hi
            if lo is not None:
                keep &= ends[rows] > lo
            return np.asarray(rows[keep])

        here = present(np.frombuffer(self._room_rows[rid], dtype=np.int64))
        ours = np.zeros(len(self._last), dtype=bool)
        ours[members[here]] = True
        audience = np.flatnonzero(ours)
        if len(audience) == 0:
            return 0, []
        theirs = None if len(audience) * BIG_AUDIENCE > len(self._last) else \
            self._chains(audience)
        if theirs is None:  # a big audience or long histories: one pass over every row
            theirs = np.flatnonzero(ours[members])
        theirs = present(theirs)
        theirs = theirs[rooms[theirs] != rid]
        if lo is None and hi is None:  # one open session per member and room: no repeats
            counts = np.bincount(rooms[theirs], minlength=len(self.room_names))
        else:
            counts = self._distinct_per_room(rooms[theirs], members[theirs])
        found = [(self.room_names[r], int(counts[r])) for r in np.flatnonzero(counts)]
        found.sort(key=lambda rc: (-rc[1], rc[0]))
        return len(audience), found

    def flow_candidates(self, source: str, target: str, lo: float | None,
                        hi: float | None) -> list[str]:
        """Every member who might have moved from `source` to `target` with the join in
        ``[lo, hi)``: a session in `target` starting then, and any in `source` (a
        superset, narrowed by the caller against the member's own migrations)."""
        if source not in self._room_ids or target not in self._room_ids:
            return []
        n = len(self.start)
        members = np.frombuffer(self.member, dtype=np.int32, count=n)
        starts = np.frombuffer(self.start, dtype=np.int64, count=n)
        into = np.frombuffer(self._room_rows[self._room_ids[target]], dtype=np.int64)
        keep = np.ones(len(into), dtype=bool)
        if lo is not None:
            keep &= starts[into] >= lo
        if hi is not None:
            keep &= starts[into] < hi
        came = np.zeros(len(self._last), dtype=bool)
        came[members[into[keep]]] = True
        was = np.zeros(len(self._last), dtype=bool)
        was[members[np.frombuffer(self._room_rows[self._room_ids[source]],
                                  dtype=np.int64)]] = True
        return [self.member_names[m] for m in np.flatnonzero(came & was)]

    def _chains(self, mids: np.ndarray) -> np.ndarray | None:
        """Every row of these members, walking their chains side by side; None when some
        chain is longer than CHAIN_STEPS."""
        prev = np.frombuffer(self.prev, dtype=np.int64, count=len(self.prev))
        frontier = np.frombuffer(self._last, dtype=np.int64, count=len(self._last))[mids]
        found: list[np.ndarray] = []
        for _ in range(CHAIN_STEPS):
            frontier = frontier[frontier >= 0]
            if len(frontier) == 0:
                return np.concatenate(found) if found else frontier
            found.append(frontier)
            frontier = prev[frontier]
        return None

    def _distinct_per_room(self, rooms: np.ndarray, members: np.ndarray) -> np.ndarray:
        """For each room id, how many distinct members these (room, member) rows hold: the
        pairs packed into one sortable key (32 bits when ids fit, as sorting is what this
        costs; np.unique is several times slower than a sort and a diff)."""
        shift = max(1, len(self._last) - 1).bit_length()
        wide = shift + max(1, len(self.room_names) - 1).bit_length() > 32
        dtype = np.uint64 if wide else np.uint32
        keys = np.sort(np.left_shift(rooms.astype(dtype), shift, dtype=dtype)
                       | members.astype(dtype))
        first = np.ones(len(keys), dtype=bool)
        first[1:] = keys[1:] != keys[:-1]
        return np.bincount(np.right_shift(keys[first], shift).astype(np.intp),
                           minlength=len(self.room_names))
