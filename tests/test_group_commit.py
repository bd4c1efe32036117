"""Group commit: concurrent requests share one durable commit, and stay exact — an id
raced by several requests counts once, a failed commit fails every request in it, and a
rebuild that runs among writes sees each batch exactly once."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pg_support import PgDatabase
from tallyboard import Tallyboard
from tallyboard.stores import EventLog, SQLiteLog
from tallyboard.stores.group_commit import GroupCommit

NOW = 1795430400.0


def test_waiting_writes_share_the_next_commit() -> None:
    def slow(items: Sequence[int]) -> list[int]:
        time.sleep(0.02)
        return [i * 10 for i in items]

    group = GroupCommit(slow)
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(group.submit, range(64)))
    assert results == [i * 10 for i in range(64)]
    assert group.groups < 64 and group.largest > 1


def test_a_failed_commit_fails_every_write_in_it() -> None:
    gate = threading.Event()

    def failing(items: Sequence[int]) -> list[int]:
        gate.wait(1)
        raise OSError("disk gone")

    group = GroupCommit(failing)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(group.submit, i) for i in range(8)]
        time.sleep(0.05)
        gate.set()
        for f in futures:
            with pytest.raises(OSError, match="disk gone"):
                f.result()


LOGS: dict[str, Callable[[Path, pytest.FixtureRequest], EventLog]] = {
    "sqlite": lambda tmp, _: SQLiteLog(tmp / "log.sqlite3"),
    "postgres": lambda _, request: request.getfixturevalue("postgres").log(),
}


@pytest.mark.parametrize("kind", sorted(LOGS))
def test_concurrent_requests_are_exact_and_share_commits(
        kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """16 threads send 400 small requests whose ids collide on purpose (an id always
    carries the same event): the totals are those of the distinct ids, every request's
    duplicates add up, commits were shared, and a replay of the log agrees."""
    log = LOGS[kind](tmp_path, request)
    tb = Tallyboard(log, clock=lambda: NOW)
    tb.record_many([{"metric": "m", "member": "seed", "ts": NOW - 1}])  # metric exists
    rnd = random.Random(7)
    requests = [[{"metric": "m", "member": f"u{k % 13}", "value": k - 40, "ts": NOW - k,
                  "id": f"id{k}"} for k in rnd.sample(range(300), 5)] for _ in range(400)]

    def send(batch: list[dict[str, object]]) -> tuple[int, int]:
        got = tb.record_many(batch)
        return got.accepted, got.duplicates

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(send, requests))
        pool.submit(tb.set_metric, "m", {}, rebuild=True).result()  # a replay among writes
    distinct = {e["id"]: e for batch in requests for e in batch}
    assert sum(a for a, _ in answers) == len(distinct)
    assert sum(a + d for a, d in answers) == 5 * len(requests)
    want: dict[str, int] = {}
    for e in distinct.values():
        want[str(e["member"])] = want.get(str(e["member"]), 0) + int(str(e["value"]))
    for member, total in want.items():
        assert tb.sum("m", member) == total, member
    group = log._group  # type: ignore[attr-defined]
    assert group.groups < len(requests), "concurrent requests never shared a commit"
    board = tb.leaderboard("m", n=100).to_dict()
    if kind == "postgres":
        pg: PgDatabase = request.getfixturevalue("postgres")
        replayed = Tallyboard(pg.log(empty=False), clock=lambda: NOW)
    else:
        tb.close()
        replayed = Tallyboard(SQLiteLog(tmp_path / "log.sqlite3"), clock=lambda: NOW)
    assert replayed.leaderboard("m", n=100).to_dict() == board
    replayed.close()


def test_one_refused_write_does_not_fail_the_others_in_its_group() -> None:
    gate = threading.Event()

    def picky(items: Sequence[int]) -> list[int]:
        gate.wait(1)
        if 13 in items:
            raise ValueError("13 is refused")
        return list(items)

    group = GroupCommit(picky)
    with ThreadPoolExecutor(8) as pool:
        futures = {i: pool.submit(group.submit, i) for i in (10, 11, 12, 13, 14)}
        time.sleep(0.05)
        gate.set()
        for i, f in futures.items():
            if i == 13:
                with pytest.raises(ValueError, match="refused"):
                    f.result()
            else:
                assert f.result() == i
