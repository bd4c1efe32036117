"""One member's values per second, kept as sorted seconds with running totals.

Any range sum is two binary searches, exact to the second. Appends in time order are
O(1); out-of-order seconds wait in a small buffer and are merged on the next read.
Totals live in a compact int64 array and fall back to Python ints on overflow, so a
sum is exact whatever the values.
"""

from __future__ import annotations

import itertools
from array import array
from bisect import bisect_left
from collections.abc import MutableSequence
from typing import Protocol, cast

import numpy as np


class Series(Protocol):
    """What queries need of a member's data: events (MemberSeries) or sessions
    (IntervalSeries)."""

    def total(self, lo: int | None, hi: int | None, upto: int | None = None) -> int: ...

    def first_at_or_after(self, t: int) -> int | None: ...


_SAFE = 1 << 52  # below this every partial sum is exact in int64 (and float64)
_NUMPY_FROM = 128  # smaller merges are faster in plain Python than numpy's call overhead


def _abs_sum(values: MutableSequence[int]) -> float:
    """Sum of magnitudes, as float: only compared against _SAFE, so rounding is harmless."""
    return float(np.abs(np.frombuffer(cast("array[int]", values), dtype=np.int64)
                        .astype(np.float64)).sum()) if len(values) else 0.0


def _abs_max(values: MutableSequence[int]) -> float:
    return float(np.abs(np.frombuffer(cast("array[int]", values), dtype=np.int64)
                        .astype(np.float64)).max()) if len(values) else 0.0


class MemberSeries:
    """Sorted distinct seconds ``secs`` and ``cum[i]`` = total of seconds ``<= secs[i]``."""

    __slots__ = ("_late", "cum", "secs")

    def __init__(self) -> None:
        self.secs: array[int] = array("q")
        self.cum: MutableSequence[int] = array("q")
        # out-of-order (second, value) pairs as two flat arrays: no object per event
        self._late: tuple[array[int], MutableSequence[int]] | None = None

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        """Arrays as bytes: a checkpoint pickles millions of series, and an array object
        pickles several times slower than its bytes."""
        cum = self.cum.tobytes() if type(self.cum) is array else self.cum
        return _member_series, (self.secs.tobytes(), cum, self._late)

    def add(self, sec: int, value: int) -> None:
        """Add `value` at second `sec`."""
        secs, cum = self.secs, self.cum
        if secs and sec <= secs[-1]:
            if sec == secs[-1]:
                self._set_last(cum[-1] + value)
            elif self._late is not None and type(self._late[1]) is array \
                    and -_SAFE < value < _SAFE:
                self._late[0].append(sec)
                self._late[1].append(value)
            else:
                self._defer([sec], [value])
            return
        secs.append(sec)
        try:
            cum.append((cum[-1] if cum else 0) + value)
        except OverflowError:
            self.cum = [*cum, (cum[-1] if cum else 0) + value]

    def add_many(self, secs: list[int], values: list[int]) -> None:
        """Add ``values[i]`` at ``secs[i]``; in-order runs append, the rest merge on read."""
        mine = self.secs
        if not self._late and (not mine or secs[0] >= mine[-1]) \
                and all(a <= b for a, b in itertools.pairwise(secs)):  # live: same second
            for sec, value in zip(secs, values, strict=True):
                self.add(sec, value)
        else:
            self._defer(secs, values)

    def _defer(self, secs: list[int], values: list[int]) -> None:
        if self._late is None:
            self._late = (array("q"), array("q"))
        late_secs, late_vals = self._late
        late_secs.extend(secs)
        try:
            more: MutableSequence[int] = array("q", values)
        except OverflowError:
            late_vals = list(late_vals)
            more = values
        late_vals.extend(more)
        self._late = (late_secs, late_vals)

    def _set_last(self, total: int) -> None:
        try:
            self.cum[-1] = total
        except OverflowError:
            self.cum = list(self.cum)
            self.cum[-1] = total

    def settle(self) -> None:
        """Merge out-of-order seconds into the sorted arrays (called before any read)."""
        if self._late is None:
            return
        late_secs, late_vals = self._late
        self._late = None
        if len(self.secs) + len(late_secs) >= _NUMPY_FROM and isinstance(self.cum, array) \
                and isinstance(late_vals, array) \
                and _abs_sum(late_vals) < _SAFE and _abs_max(self.cum) < _SAFE:
            self._merge_numpy(late_secs, late_vals)
        else:
            self._merge_exact(late_secs, late_vals)

    def _merge_numpy(self, late_secs: array[int], late_vals: array[int]) -> None:
        old_vals = np.diff(np.frombuffer(cast("array[int]", self.cum), dtype=np.int64),
                           prepend=0)
        secs = np.concatenate((np.frombuffer(self.secs, dtype=np.int64),
                               np.frombuffer(late_secs, dtype=np.int64)))
        vals = np.concatenate((old_vals, np.frombuffer(late_vals, dtype=np.int64)))
        order = np.argsort(secs, kind="stable")
        secs, vals = secs[order], vals[order]
        starts = np.flatnonzero(np.r_[True, secs[1:] != secs[:-1]])
        self.secs = array("q", secs[starts].tobytes())
        self.cum = array("q", np.cumsum(np.add.reduceat(vals, starts)).tobytes())

    def _merge_exact(self, late_secs: array[int], late_vals: MutableSequence[int]) -> None:
        per_sec: dict[int, int] = {}
        prev = 0
        for s, c in zip(self.secs, self.cum, strict=True):
            per_sec[s] = c - prev
            prev = c
        for s, v in zip(late_secs, late_vals, strict=True):
            per_sec[s] = per_sec.get(s, 0) + v
        secs = sorted(per_sec)
        running, cum = 0, []
        for s in secs:
            running += per_sec[s]
            cum.append(running)
        self.secs = array("q", secs)
        try:
            self.cum = array("q", cum)
        except OverflowError:
            self.cum = cum

    def before(self, t: int) -> int:
        """Total of all seconds ``< t``."""
        if self._late:
            self.settle()
        i = bisect_left(self.secs, t)
        return self.cum[i - 1] if i else 0

    def total(self, lo: int | None, hi: int | None, upto: int | None = None) -> int:
        """Total of seconds in ``[lo, hi)``; None is open on that side.

        `upto` is for series with open sessions (`IntervalSeries`); events have none."""
        if self._late:
            self.settle()
        secs, cum = self.secs, self.cum
        if not secs:
            return 0
        j = len(secs) if hi is None else bisect_left(secs, hi)
        if j == 0:
            return 0
        upper = cum[j - 1]
        if lo is None:
            return upper
        i = bisect_left(secs, lo)
        return upper - cum[i - 1] if i else upper

    def first_at_or_after(self, t: int) -> int | None:
        """The first second ``>= t`` that has a value, if any."""
        if self._late:
            self.settle()
        i = bisect_left(self.secs, t)
        return self.secs[i] if i < len(self.secs) else None

    def seconds_in(self, lo: int | None, hi: int | None) -> tuple[int, int]:
        """Index range of `secs` inside ``[lo, hi)``."""
        if self._late:
            self.settle()
        i = 0 if lo is None else bisect_left(self.secs, lo)
        j = len(self.secs) if hi is None else bisect_left(self.secs, hi)
        return i, j

    def __len__(self) -> int:
        return len(self.secs) + (len(self._late[0]) if self._late else 0)


def _member_series(secs: bytes, cum: bytes | list[int],
                   late: tuple[array[int], MutableSequence[int]] | None) -> MemberSeries:
    """A MemberSeries back from `MemberSeries.__reduce__`."""
    s = MemberSeries.__new__(MemberSeries)
    s.secs = array("q", secs)
    s.cum = array("q", cum) if isinstance(cum, bytes) else cum
    s._late = late
    return s
