"""Accepted means durable: kill -9 the real server mid-stream, restart, lose nothing."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from support import ServerProcess
from tallyboard import Tallyboard
from tallyboard.stores import SQLiteLog

pytestmark = pytest.mark.slow

NOW_TS = 1763800000


def _batch(b: int) -> list[dict[str, object]]:
    return [{"metric": "points", "member": f"u{(b * 7 + i) % 50}", "value": i + 1,
             "ts": NOW_TS + b % 97, "id": f"b{b}-{i}", "tags": {"k": "v"}} for i in range(20)]


def _expected(batches: list[int]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for b in batches:
        for e in _batch(b):
            totals[str(e["member"])] = totals.get(str(e["member"]), 0) + int(e["value"])  # type: ignore[call-overload]
    return totals


def _board(url: str) -> dict[str, int]:
    got = httpx.get(url + "/v1/leaderboard", params={"metric": "points", "n": 1000}).json()
    return {e["member"]: e["score"] for e in got["entries"]}


def test_kill9_mid_stream_loses_nothing_acknowledged(server: ServerProcess) -> None:
    acked: list[int] = []
    stop = threading.Event()
    lock = threading.Lock()

    def writer(first: int) -> None:
        with httpx.Client(base_url=server.url, timeout=5) as http:
            b = first
            while not stop.is_set():
                try:
                    r = http.post("/v1/events", json=_batch(b))
                except httpx.TransportError:
                    return
                if r.status_code == 200:
                    with lock:
                        acked.append(b)
                b += 2

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    while len(acked) < 60:
        pass
    server.kill9()
    stop.set()
    for t in threads:
        t.join()

    server.start()
    board = _board(server.url)
    expected = _expected(acked)
    for member, score in expected.items():
        assert board.get(member, 0) >= score  # in-flight batches may also have landed
    # Every acknowledged batch replays as duplicates only: its ids were kept.
    for b in acked:
        r = httpx.post(server.url + "/v1/events", json=_batch(b))
        assert r.json() == {"accepted": 0, "duplicates": 20}
    attempted = range(max(acked) + 3)
    for b in attempted:
        httpx.post(server.url + "/v1/events", json=_batch(b))
    assert _board(server.url) == _expected(list(attempted))


def test_restart_answers_identically(server: ServerProcess) -> None:
    for b in range(30):
        assert httpx.post(server.url + "/v1/events", json=_batch(b)).status_code == 200
    httpx.put(server.url + "/v1/metrics/steps", json={"timezone": "Asia/Kolkata",
                                                      "dimensions": ["k"]})
    queries = [("/v1/leaderboard", {"metric": "points", "window": "range",
                                    "start": NOW_TS, "end": NOW_TS + 50, "n": 100}),
               ("/v1/rank", {"metric": "points", "member": "u3", "radius": 3,
                             "at": NOW_TS + 40}),
               ("/v1/sum", {"metric": "points", "member": "u7", "start": NOW_TS + 10}),
               ("/v1/series", {"metric": "points", "member": "u7", "step": "minute",
                               "start": NOW_TS, "end": NOW_TS + 120}),
               ("/v1/streak", {"metric": "points", "member": "u1"}),
               ("/v1/metrics", {})]
    before = [httpx.get(server.url + path, params=q).json() for path, q in queries]
    server.kill9()
    server.start()
    after = [httpx.get(server.url + path, params=q).json() for path, q in queries]
    assert after == before


def test_a_rebuild_reports_its_progress(tmp_path: Path) -> None:
    """The rebuild from the log feeds progress bars: batches done, out of how many."""
    now = time.time()
    tb = Tallyboard(SQLiteLog(tmp_path / "log.sqlite3"))
    for i in range(600):
        tb.record_many([{"metric": "m", "member": f"u{i % 7}", "ts": now - 1}])
    tb.close()
    seen: list[tuple[int, int | None]] = []
    again = Tallyboard(SQLiteLog(tmp_path / "log.sqlite3"),
                       on_replay=lambda done, total: seen.append((done, total)))
    assert seen == [(256, 600), (512, 600)]
    assert again.events_total == 600
    again.close()
