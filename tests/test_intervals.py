"""IntervalSeries against a brute-force count of present seconds, through every shape it
takes (no session, one open start, several, closed ones merged at once or pending), and
through a pickle, as checkpoints keep it."""

from __future__ import annotations

import pickle

from hypothesis import given
from hypothesis import strategies as st

from tallyboard.core.intervals import IntervalSeries

Sessions = list[tuple[int, int | None]]

sessions = st.lists(st.tuples(st.integers(0, 60), st.one_of(st.none(), st.integers(0, 40))),
                    max_size=24).map(lambda xs: [(s, None if d is None else s + d)
                                                 for s, d in xs])


def _built(found: Sessions) -> IntervalSeries:
    """Open every session, then close the closed ones (in an order that is not time's)."""
    s = IntervalSeries()
    for start, _ in found:
        s.begin(start)
    for start, end in reversed(found):
        if end is not None:
            s.end(start, end)
    return s


def _present(found: Sessions, t: int, upto: int) -> int:
    return sum(1 for s, e in found if s <= t < (upto if e is None else e))


@given(sessions, st.integers(-5, 110), st.integers(0, 60), st.integers(0, 120))
def test_every_read_matches_a_count_of_seconds(found: Sessions, lo: int, width: int,
                                               upto: int) -> None:
    for s in (_built(found), pickle.loads(pickle.dumps(_built(found)))):
        hi = lo + width
        assert s.total(lo, hi, upto) == sum(_present(found, t, upto) for t in range(lo, hi))
        assert s.total(lo, hi) == sum(_present(found, t, -1) for t in range(lo, hi))
        assert s.covering(lo) == sum(1 for a, e in found if a <= lo and (e is None or lo < e))
        changes = [x for a, e in found for x in (a, e) if x is not None and x >= lo
                   and (e is None or e > a)]
        assert s.next_change(lo) == min(changes, default=None)
        lasting = [t for t in range(lo, 200) if any(
            a <= t and (e is None or t < e) for a, e in found)]
        assert s.first_at_or_after(lo) == min(lasting, default=None)
        assert sorted(s.open) == sorted(a for a, e in found if e is None)
