"""Reads never pay for the writes before them: boards are kept up on the writer's time
and by the server's keep-up step, so a read finds nothing left to catch up."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from api_helpers import TEST_HOSTS
from tallyboard import Tallyboard
from tallyboard.api import create_app
from tallyboard.settings import Settings
from tallyboard.stores import MemoryLog

DAY = 86400
T0 = 1_764_547_200  # 2025-12-01T00:00:00Z, a Monday
WINDOWS = ("all", "day", "week", "month", "rolling:24h", "rolling:1h")


def _backlog(tb: Tallyboard, metric: str = "m") -> dict[str, int]:
    """Changes each hot board of `metric` has not yet taken (what a read would pay for)."""
    state = tb._metrics[("default", metric)]
    return {f"{key}/{name}": state._changes[key].head - board.cursor
            for (key, name), board in state._boards.items()}


def _engine(clock: list[float]) -> Tallyboard:
    tb = Tallyboard(MemoryLog(), clock=lambda: clock[0])
    tb.set_metric("m", {"dimensions": ["channel"]})
    return tb


def test_writes_leave_no_backlog_for_reads() -> None:
    clock = [T0 + 3600.0]
    tb = _engine(clock)
    tb.record("m", "seed", tags={"channel": "a"})
    for window in WINDOWS:  # the boards exist, as on a server someone reads
        tb.leaderboard("m", window=window)
        tb.leaderboard("m", window=window, tag=("channel", "a"))
    for i in range(200):
        clock[0] += 1
        tb.record_many([{"metric": "m", "member": f"u{(i * 7 + j) % 300}", "value": j - 3,
                         "tags": {"channel": "ab"[j % 2]}} for j in range(50)])
        if i % 50 == 0:  # a columns batch takes the same path
            tb.record_columns("m", [f"u{k}" for k in range(100)], list(range(100)))
    assert set(_backlog(tb).values()) == {0}
    assert all(not c.items for c in tb._metrics[("default", "m")]._changes.values())
    # and the boards are right: the same as computing each window afresh at `at`
    for window in WINDOWS:
        for tag in (None, ("channel", "a")):
            hot = tb.leaderboard("m", window=window, n=50, tag=tag)
            assert hot == tb.leaderboard("m", window=window, n=50, tag=tag, at=clock[0])


def test_keep_up_moves_boards_with_time_alone() -> None:
    """No write and no read: the keep-up step takes a new day, a rolling window's
    expiry and future events coming due, so the next read has nothing left to do."""
    clock = [T0 + DAY - 10.0]
    tb = _engine(clock)
    tb.record_many([{"metric": "m", "member": "a", "value": 5},
                    {"metric": "m", "member": "b", "value": 3, "ts": T0 + DAY + 5}])
    for window in WINDOWS:
        tb.leaderboard("m", window=window)
    state = tb._metrics[("default", "m")]
    clock[0] = T0 + DAY + 3600  # next day; "a" left rolling:1h, "b" is due
    tb.keep_up()
    for (_, name), board in state._boards.items():
        assert board.hi == T0 + DAY + 3600, name
    day = state._boards[(None, "day")]
    assert day.lo == T0 + DAY and dict(day.scores) == {"b": 3}
    assert dict(state._boards[(None, "rolling:1h")].scores) == {"b": 3}
    for window in WINDOWS:
        assert tb.leaderboard("m", window=window) == \
            tb.leaderboard("m", window=window, at=clock[0])


def test_the_server_keeps_up_between_requests() -> None:
    """The app runs the keep-up step while it serves: a board moves to the next day
    with no request in between."""
    clock = [T0 + DAY - 1.5]
    tb = _engine(clock)
    tb.record("m", "a", 2)
    with TestClient(create_app(tb, Settings(allowed_hosts=TEST_HOSTS))) as http:
        assert http.get("/v1/leaderboard?metric=m&window=day").json()["total"] == 1
        board = tb._metrics[("default", "m")]._boards[(None, "day")]
        clock[0] = T0 + DAY + 1
        deadline = time.monotonic() + 5
        while board.lo != T0 + DAY and time.monotonic() < deadline:
            time.sleep(0.01)
        assert board.lo == T0 + DAY and board.total == 0
        assert http.get("/v1/leaderboard?metric=m&window=day").json()["total"] == 0
