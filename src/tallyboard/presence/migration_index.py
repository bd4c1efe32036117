"""Every migration of a space in time order, so counts per pair over a range need no walk
over every member's moves (1M presence changes: 1.5-3.6 s under the engine lock).

A migration is kept as its join's time and a pair id in two parallel arrays sorted by
time; a range is two bisections, and its counts per pair one `numpy.bincount` over the
slice. Re-pairing a member's moves (a late op) takes that member's migrations out again
and puts the new ones in, so the index always holds exactly what the members' lists hold.
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_left, bisect_right

import numpy as np

Pair = tuple[str, str]


class MigrationIndex:
    """Migrations as (time, pair) in time order, with the pairs numbered as first seen."""

    __slots__ = ("_from", "_ids", "_keys", "pair", "pairs", "ts")

    def __init__(self) -> None:
        self.ts = array("q")  # join times, ascending
        self.pair = array("q")  # pair id of each
        self.pairs: list[Pair] = []  # id -> (source, target); only ever appended to
        self._ids: dict[Pair, int] = {}
        self._keys: list[str] = []  # id -> "source\0target", which sorts as the pair does
        self._from: dict[str, list[int]] = {}  # source -> ids of its pairs

    def __len__(self) -> int:
        return len(self.ts)

    def add(self, source: str, target: str, ts: int) -> None:
        """One more migration from `source` to `target` joined at `ts`."""
        pid = self._id((source, target))
        if not self.ts or ts >= self.ts[-1]:
            self.ts.append(ts)
            self.pair.append(pid)
        else:  # a late op's migration, or one from a snapshot closing back in time
            i = bisect_right(self.ts, ts)
            self.ts.insert(i, ts)
            self.pair.insert(i, pid)

    def remove(self, source: str, target: str, ts: int) -> None:
        """Take out one migration `add` put in (ValueError if there is none)."""
        pid = self._ids.get((source, target))
        i = bisect_left(self.ts, ts)
        while i < len(self.ts) and self.ts[i] == ts:
            if self.pair[i] == pid:
                del self.ts[i]
                del self.pair[i]
                return
            i += 1
        raise ValueError(f"no migration {source!r} -> {target!r} at {ts}")

    def counts(self, lo: float | None, hi: float | None, source: str | None = None,
               target: str | None = None, n: int | None = None) -> list[tuple[Pair, int]]:
        """(pair, how many) of the migrations joined in ``[lo, hi)``, pairs filtered by
        `source` and `target`, those with none left out; most frequent first, ties by
        pair; the first `n` of them (all if None)."""
        a = 0 if lo is None else bisect_left(self.ts, lo)
        b = len(self.ts) if hi is None else bisect_left(self.ts, hi)
        if a >= b:
            return []
        view = np.frombuffer(self.pair, dtype=np.int64)[a:b]
        try:
            per_pair = np.bincount(view, minlength=len(self.pairs))
        finally:
            del view  # the array may grow again only once no view holds its buffer
        if source is None:
            ids = np.flatnonzero(per_pair)
        else:
            ids = np.array(self._from.get(source, ()), dtype=np.int64)
            ids = ids[per_pair[ids] > 0]
        pairs = self.pairs
        if target is not None:
            ids = np.array([i for i in ids.tolist() if pairs[i][1] == target], dtype=np.int64)
        keys = self._keys
        if n is not None and n < len(ids):  # only the n most frequent need sorting
            many = per_pair[ids]
            least = np.partition(many, len(many) - n)[len(many) - n]
            tied = heapq.nsmallest(n - int((many > least).sum()),
                                   ids[many == least].tolist(), key=keys.__getitem__)
            ids = np.concatenate([ids[many > least], np.array(tied, dtype=np.int64)])
        # by pair (one string compare per step: names hold no NUL), then stably by count
        by_pair = sorted(ids.tolist(), key=keys.__getitem__)
        found = per_pair[by_pair]
        order = np.argsort(-found, kind="stable")
        return list(zip(map(pairs.__getitem__, np.array(by_pair)[order].tolist()),
                        found[order].tolist(), strict=True))

    def _id(self, pair: Pair) -> int:
        pid = self._ids.get(pair)
        if pid is None:
            pid = self._ids[pair] = len(self.pairs)
            self.pairs.append(pair)
            self._keys.append(f"{pair[0]}\0{pair[1]}")
            self._from.setdefault(pair[0], []).append(pid)
        return pid
