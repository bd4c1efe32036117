"""Column batches give exactly the state the same events give one by one, and fail alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tallyboard
from tallyboard.errors import InvalidEvent

NOW = 1763800000.5
MEMBERS = st.sampled_from(["a", "b", "c", "d", "é"])
EVENTS = st.lists(st.tuples(MEMBERS, st.integers(-10, 10) | st.sampled_from([2**62, -(2**63)]),
                            st.integers(int(NOW) - 10 * 86400, int(NOW) + 60),
                            st.sampled_from(["run", "walk"])), min_size=1, max_size=60)


def _open() -> tallyboard.Tallyboard:
    tb = tallyboard.open("memory://", clock=lambda: NOW)
    assert isinstance(tb, tallyboard.Tallyboard)
    tb.set_metric("m", dimensions=["activity"])
    return tb


@settings(max_examples=150, deadline=None)
@given(batches=st.lists(EVENTS, min_size=1, max_size=4))
def test_columns_equal_rows(batches: list[list[tuple[str, int, int, str]]]) -> None:
    rows, cols = _open(), _open()
    for batch in batches:
        rows.leaderboard("m", window="rolling:1h")  # boards see both paths incrementally
        cols.leaderboard("m", window="rolling:1h")
        rows.record_many([{"metric": "m", "member": m, "value": v, "ts": t,
                           "tags": {"activity": a}} for m, v, t, a in batch])
        cols.record_columns("m", [m for m, *_ in batch], [v for _, v, _, _ in batch],
                            np.array([t for _, _, t, _ in batch]),
                            tags={"activity": [a for *_, a in batch]})
    for window in ("all", "day", "rolling:1h", "rolling:90m"):
        for tag in (None, ("activity", "run")):
            assert rows.leaderboard("m", window=window, n=100, tag=tag) == \
                cols.leaderboard("m", window=window, n=100, tag=tag)
    for m in "abcd":
        assert rows.sum("m", m, start=NOW - 86400) == cols.sum("m", m, start=NOW - 86400)
        assert rows.series("m", m, step="hour", start=NOW - 86400, end=NOW + 60) == \
            cols.series("m", m, step="hour", start=NOW - 86400, end=NOW + 60)


def test_ids_deduplicate_like_rows() -> None:
    tb = _open()
    assert tb.record_columns("m", ["a", "b", "a"], [1, 2, 3], [NOW - 5] * 3,
                             ids=["x", "y", "x"]).to_dict() == {"accepted": 2, "duplicates": 1}
    assert tb.record_many([{"metric": "m", "member": "a", "id": "y"}]).duplicates == 1
    assert tb.sum("m", "a") == 1 and tb.sum("m", "b") == 2


@pytest.mark.parametrize(("kwargs", "index", "field"), [
    ({"members": ["a", ""]}, 1, "member"),
    ({"members": ["a", 5]}, 1, "member"),
    ({"values": [1.5, 2.0]}, 0, "value"),
    ({"values": [True, False]}, 0, "value"),
    ({"values": [1, 2**64]}, 0, "value"),
    ({"ts": [NOW, 900000000]}, 1, "ts"),
    ({"ts": [NOW, NOW + 61]}, 1, "ts"),
    ({"ts": [NOW]}, 0, "ts"),
    ({"tags": {"activity": ["run", ""]}}, 1, "tags.activity"),
    ({"ids": ["x", "y" * 129]}, 1, "id"),
])
def test_invalid_columns_apply_nothing(kwargs: dict[str, object], index: int,
                                       field: str) -> None:
    tb = _open()
    args: dict[str, object] = {"members": ["a", "b"], "values": [1, 2], "ts": [NOW, NOW]}
    args.update(kwargs)
    with pytest.raises(InvalidEvent) as err:
        tb.record_columns("m", **args)  # type: ignore[arg-type]
    assert (err.value.index, err.value.field) == (index, field)
    assert tb.metric("m")["events"] == 0


def test_columns_survive_a_restart(tmp_path: Path) -> None:
    tb = tallyboard.open(str(tmp_path), clock=lambda: NOW)
    tb.record_columns("m", ["a", "b"], [5, 7], [NOW - 10, NOW - 20], ids=["p", "q"])
    tb.close()
    again = tallyboard.open(str(tmp_path), clock=lambda: NOW)
    assert [(e.member, e.score) for e in again.leaderboard("m").entries] == [("b", 7),
                                                                             ("a", 5)]
    assert again.record_columns("m", ["a"], [5], [NOW], ids=["p"]).duplicates == 1
