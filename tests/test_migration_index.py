"""The time-ordered migration index against a plain list of what was put in and taken out."""

from __future__ import annotations

import pickle
import random
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tallyboard.presence.ledger import LateOperation, PresenceLedger, PresenceOp, PresenceSettings
from tallyboard.presence.migration_index import MigrationIndex

ROOMS = ("a", "ab", "b", "a b")  # prefixes of one another: ties sort by pair
Move = tuple[str, str, int]
move_st = st.tuples(st.sampled_from(ROOMS), st.sampled_from(ROOMS), st.integers(0, 20))


def _brute(kept: list[Move], lo: float | None, hi: float | None, source: str | None,
           target: str | None) -> dict[tuple[str, str], int]:
    return dict(Counter((s, t) for s, t, ts in kept
                        if (lo is None or ts >= lo) and (hi is None or ts < hi)
                        and (source is None or s == source)
                        and (target is None or t == target)))


@given(steps=st.lists(st.tuples(st.booleans(), move_st), max_size=60),
       lo=st.none() | st.integers(-1, 21) | st.floats(-1, 21),
       hi=st.none() | st.integers(-1, 21) | st.floats(-1, 21),
       source=st.none() | st.sampled_from(ROOMS), target=st.none() | st.sampled_from(ROOMS))
def test_counts_match_a_scan_of_what_is_kept(steps: list[tuple[bool, Move]],
                                             lo: float | None, hi: float | None,
                                             source: str | None, target: str | None) -> None:
    index, kept = MigrationIndex(), []
    for take_out, move in steps:
        if take_out and kept:
            gone = kept.pop(len(kept) // 2)
            index.remove(*gone)
        else:
            kept.append(move)
            index.add(*move)
    assert len(index) == len(kept)
    assert list(index.ts) == sorted(index.ts)
    for got in (index, pickle.loads(pickle.dumps(index))):
        expected = sorted(_brute(kept, lo, hi, source, target).items(),
                          key=lambda pn: (-pn[1], pn[0]))  # most first, ties by pair
        assert got.counts(lo, hi, source, target) == expected
        for n in range(1, len(expected) + 2):  # the first n, whatever the ties at the cut
            assert got.counts(lo, hi, source, target, n) == expected[:n]


def test_taking_out_what_is_not_there_is_refused() -> None:
    index = MigrationIndex()
    index.add("a", "b", 5)
    with pytest.raises(ValueError):
        index.remove("b", "a", 5)
    with pytest.raises(ValueError):
        index.remove("a", "b", 6)
    index.add("a", "b", 3)  # grows again after a count released its view of the array
    assert index.counts(None, None) == [(("a", "b"), 2)]


def test_the_ledgers_index_holds_every_members_migrations_after_late_moves() -> None:
    ledger = PresenceLedger()

    def op(kind: str, room: str, member: str, ts: int) -> None:
        ledger.apply(PresenceOp("s", kind, room, member, None, ts))

    op("join", "a", "m", 100)
    op("leave", "a", "m", 110)
    op("join", "b", "m", 120)
    op("leave", "b", "m", 200)
    op("join", "c", "m", 205)
    op("join", "c", "n", 100)
    op("leave", "c", "n", 150)
    op("join", "a", "n", 151)
    op("join", "d", "m", 115)  # late for another room: m's moves are paired again
    kept = Counter((m.source, m.target) for m in ledger.migrations())
    assert kept == {("a", "d"): 1, ("b", "c"): 1, ("c", "a"): 1}  # a -> b was paired again
    assert dict(ledger.index.counts(None, None)) == dict(kept)
    assert sorted(ledger.index.ts) == sorted(m.ts for m in ledger.migrations())


@given(rnd=st.randoms(use_true_random=False), last_seen=st.booleans(),
       window=st.sampled_from((30, 300)))
def test_the_index_follows_every_members_migrations_whatever_arrives_late(
        rnd: random.Random, last_seen: bool, window: int) -> None:
    """Late ops and snapshots closing back in time re-pair a member's moves; the index
    takes out and puts in only what changed, and must end up holding exactly the lists."""
    ledger = PresenceLedger(PresenceSettings(migration_window=window,
                                             close_on_gap="last_seen" if last_seen
                                             else "snapshot"))
    ts = 1_000
    for _ in range(80):
        kind, room, member = rnd.choice(("join", "leave", "snapshot")), rnd.choice(ROOMS), \
            rnd.choice(("m", "n"))
        ts += rnd.randint(-20, 60)  # mostly forward; a step back is late for some rooms
        op = (PresenceOp("s", kind, room, None, tuple(m for m in "mn" if rnd.random() < 0.5),
                         ts)
              if kind == "snapshot" else PresenceOp("s", kind, room, member, None, ts))
        try:
            ledger.check([op])
        except LateOperation:
            continue
        ledger.apply(op)
        kept = Counter((m.source, m.target, m.ts) for m in ledger.migrations())
        index = ledger.index
        assert Counter((*index.pairs[p], t) for p, t in zip(index.pair, index.ts,
                                                              strict=True)) == kept
        assert list(index.ts) == sorted(index.ts)
