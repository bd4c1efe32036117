"""A huge snapshot is applied in slices: reads are answered while it is applied, each
sees a state some prefix of the snapshot's changes makes, and the end is exact."""

from __future__ import annotations

import threading
import time
from itertools import pairwise
from pathlib import Path

import pytest

import tallyboard
from tallyboard import Tallyboard
from tallyboard.errors import OutOfOrder
from tallyboard.presence_engine import PRESENCE_SLICE

N = 30 * PRESENCE_SLICE
NOW = 1_767_000_000


def _open(path: Path) -> Tallyboard:
    tb = tallyboard.open(str(path), clock=lambda: NOW + 10)
    assert isinstance(tb, Tallyboard)
    return tb


def _count(tb: Tallyboard, room: str) -> int:
    return next((r["members"] for r in tb.rooms() if r["room"] == room), 0)


def test_reads_are_answered_during_a_huge_snapshot_and_see_prefixes(tmp_path: Path) -> None:
    tb = _open(tmp_path)
    members = [f"v{i:06d}" for i in range(N)]
    tb.presence([{"type": "snapshot", "room": "stream", "members": members[:N // 2],
                  "ts": NOW - 100}])
    seen: list[int] = []
    started, finished = threading.Event(), threading.Event()

    def read() -> None:
        started.wait()
        while not finished.is_set():
            seen.append(_count(tb, "stream"))
            tb.leaderboard("presence_seconds", window="day", n=10)

    reader = threading.Thread(target=read)
    reader.start()
    # half the members leave, the other half arrive: N/2 leaves then N/2 joins
    started.set()
    tb.presence([{"type": "snapshot", "room": "stream", "members": members[N // 2:],
                  "ts": NOW}])
    finished.set()
    reader.join()
    during = [n for n in seen if n != N // 2]
    assert len(set(seen)) > 5, "reads were not answered between the slices"
    # leaves come first (the count falls to 0), then joins (it climbs back): a prefix
    low = seen.index(min(seen))
    assert all(a >= b for a, b in pairwise(seen[:low + 1]))
    assert all(a <= b for a, b in pairwise(seen[low:]))
    assert during and _count(tb, "stream") == N // 2
    answers = (tb.rooms(), tb.leaderboard("presence_seconds", window="day", n=50),
               tb.sessions(members[0]), tb.sessions(members[-1]))
    tb.close()
    ref = tallyboard.open(str(tmp_path), clock=lambda: NOW + 10, read_only=True)
    assert isinstance(ref, Tallyboard)
    try:  # the replay applies the snapshot whole: same answers
        assert answers == (ref.rooms(), ref.leaderboard("presence_seconds", window="day",
                                                        n=50),
                           ref.sessions(members[0]), ref.sessions(members[-1]))
    finally:
        ref.close()


def test_a_write_to_the_same_space_waits_for_the_whole_snapshot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A leave sent while the snapshot that brings the member in is still being applied
    is validated and applied after all of it: a real leave, not an orphan."""
    tb = _open(tmp_path)
    members = [f"v{i:06d}" for i in range(N)]
    last = members[-1]  # joined by the snapshot's last slice (joins go in its order)
    paused, resume = threading.Event(), threading.Event()
    turns, errors = [0], []
    real = tb._let_reads_in

    def let_reads_in() -> None:  # the snapshot stops between two slices, halfway
        turns[0] += 1
        if turns[0] == 10:
            paused.set()
            resume.wait(30)
        real()

    monkeypatch.setattr(tb, "_let_reads_in", let_reads_in)

    def write(ops: list[dict[str, object]]) -> None:
        try:
            tb.presence(ops)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    snapshot = threading.Thread(target=write, args=(
        [{"type": "snapshot", "room": "stream", "members": members, "ts": NOW}],))
    snapshot.start()
    assert paused.wait(30), "the snapshot was not applied in slices"
    assert 0 < _count(tb, "stream") < N  # a read sees it half applied
    leave = threading.Thread(target=write, args=(
        [{"type": "leave", "member": last, "room": "stream", "ts": NOW + 1}],))
    leave.start()
    leave.join(0.3)
    assert leave.is_alive(), "the leave did not wait for the snapshot"
    resume.set()
    snapshot.join()
    leave.join()
    assert not errors
    assert _count(tb, "stream") == N - 1
    assert sum(tb.presence_noops().values()) == 0
    assert tb.sessions(last) == [{"room": "stream", "start": NOW, "end": NOW + 1,
                                  "seconds": 1}]
    tb.close()


def test_the_durable_write_of_presence_holds_no_read_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A presence write's commit runs without the engine lock: a read is answered while
    it commits, and a second write to the same space waits and is validated after it."""
    tb = _open(tmp_path)
    tb.presence([{"type": "join", "member": "ann", "room": "a", "ts": NOW - 5}])
    real, committing = tb.log.append, threading.Event()

    def slow_append(*args: object) -> object:
        if not committing.is_set():
            committing.set()
            time.sleep(0.5)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(tb.log, "append", slow_append)
    first = threading.Thread(target=tb.presence, args=(
        [{"type": "join", "member": "bob", "room": "a", "ts": NOW}],))
    first.start()
    committing.wait()
    started = time.perf_counter()
    assert _count(tb, "a") == 1  # ann only: bob's join is not applied yet
    assert time.perf_counter() - started < 0.25  # answered during the commit
    # bob's leave is validated against the state with bob's join in it: a real leave
    tb.presence([{"type": "leave", "member": "bob", "room": "a", "ts": NOW + 2}])
    first.join()
    assert _count(tb, "a") == 1 and sum(tb.presence_noops().values()) == 0
    assert tb.sessions("bob") == [{"room": "a", "start": NOW, "end": NOW + 2, "seconds": 2}]
    tb.close()


def test_the_check_against_the_room_holds_no_read_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A snapshot's check against its room (100,000 names) runs without the engine lock:
    reads are answered meanwhile, and a late op found by it still refuses the write."""
    tb = _open(tmp_path)
    tb.presence([{"type": "join", "member": "ann", "room": "a", "ts": NOW - 5}])
    ledger = tb._ledger("default")
    real, checking = ledger.check, threading.Event()

    def slow_check(ops: object) -> None:
        checking.set()
        time.sleep(0.5)
        real(ops)  # type: ignore[arg-type]

    monkeypatch.setattr(ledger, "check", slow_check)
    refused: list[BaseException] = []

    def late_snapshot() -> None:
        try:
            tb.presence([{"type": "snapshot", "room": "a", "members": ["bob"],
                          "ts": NOW - 10}])
        except BaseException as exc:
            refused.append(exc)

    late = threading.Thread(target=late_snapshot)
    late.start()
    assert checking.wait(30)
    started = time.perf_counter()
    assert _count(tb, "a") == 1
    assert time.perf_counter() - started < 0.25  # answered during the check
    late.join()
    assert len(refused) == 1 and isinstance(refused[0], OutOfOrder)
    monkeypatch.setattr(ledger, "check", real)
    tb.presence([{"type": "snapshot", "room": "a", "members": ["bob"], "ts": NOW}])
    assert [r["room"] for r in tb.rooms()] == ["a"] and tb.room("a")["members"][0][
        "member"] == "bob"
    tb.close()
