"""Faults on the scale-out paths, judged by the answers users read (issue 12): every
acknowledged event counts exactly once in sums and boards, and presence comes back as it
was acknowledged, after kill -9 between a PostgreSQL commit and the Redis publish, a
FLUSHALL and a rebuild under live writes, and kill -9s of a buffered server.

Each test runs real `tallyboard serve` processes against a redis-server of its own (so
PAUSE and FLUSHALL touch nothing else) and a database of its own on the machine's
PostgreSQL."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis

from pg_support import OwnRedis, PgDatabase
from support import ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    yield server
    server.remove()


@pytest.fixture
def pg(postgres: PgDatabase) -> str:
    """An emptied database of the run's own; its URL."""
    postgres.log().close()
    postgres.close_logs()
    return postgres.url


def _hot(tmp: Path, name: str, pg: str, store: str) -> ServerProcess:
    return ServerProcess(tmp / name, "--log", pg, "--store", store, "--store-prefix", "tbf")


def _total(server: ServerProcess, metric: str = "m") -> dict[str, int]:
    """Every member's all-time score, as the leaderboard serves it."""
    r = httpx.get(server.url + "/v1/leaderboard",
                  params={"metric": metric, "n": 1000}, timeout=30)
    assert r.status_code == 200, r.text
    return {e["member"]: e["score"] for e in r.json()["entries"]}


def _sum(server: ServerProcess, member: str) -> int:
    r = httpx.get(server.url + "/v1/sum", params={"metric": "m", "member": member}, timeout=30)
    assert r.status_code == 200, r.text
    return int(r.json()["sum"])


def _in_postgres(pg: str, event_id: str) -> bool:
    with psycopg.connect(pg) as db:
        row = db.execute("SELECT count(*) FROM tallyboard_events WHERE id = %s",
                         (event_id,)).fetchone()
    return bool(row and row[0])


def _wait_until(check: Any, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _post_in_background(url: str, body: Any) -> threading.Thread:
    def post() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(url, json=body, timeout=30)

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread


def test_kill9_between_commit_and_publish_is_published_by_the_restart(
        tmp_path: Path, pg: str, own_redis: OwnRedis) -> None:
    """The issue's repro: Redis holds the publish, the batch commits, the server dies.
    The restarted server publishes it before it says ready; the client's retry is a
    duplicate and the sum includes the event exactly once."""
    srv = _hot(tmp_path, "a", pg, own_redis.url)
    srv.start()
    client = redis.Redis.from_url(own_redis.url)
    try:
        client.execute_command("CLIENT", "PAUSE", "5000", "WRITE")
        _post_in_background(srv.url + "/v1/events",
                            {"metric": "m", "member": "alice", "value": 7, "id": "evt-1"})
        _wait_until(lambda: _in_postgres(pg, "evt-1"))  # committed, publish held
        srv.kill9()
        client.execute_command("CLIENT", "UNPAUSE")
        srv.start()  # returns once /readyz is 200
        assert _sum(srv, "alice") == 7
        r = httpx.post(srv.url + "/v1/events", timeout=10,
                       json={"metric": "m", "member": "alice", "value": 7, "id": "evt-1"})
        assert r.json() == {"accepted": 0, "duplicates": 1}
        assert _sum(srv, "alice") == 7 and _total(srv) == {"alice": 7}
    finally:
        srv.stop()
        client.close()


def test_a_batch_a_dead_server_left_unpublished_reaches_the_others(
        tmp_path: Path, pg: str, own_redis: OwnRedis) -> None:
    """With no restart at all: another server finds the dead one's batch (its /readyz
    looks for it; so does its periodic check), and a retry of the id sent to it shows it
    at once."""
    a, b = _hot(tmp_path, "a", pg, own_redis.url), _hot(tmp_path, "b", pg, own_redis.url)
    a.start()
    b.start()
    client = redis.Redis.from_url(own_redis.url)
    try:
        httpx.post(b.url + "/v1/events", json={"metric": "m", "member": "bob", "value": 1},
                   timeout=10)
        client.execute_command("CLIENT", "PAUSE", "5000", "WRITE")
        _post_in_background(a.url + "/v1/events", [
            {"metric": "m", "member": "alice", "value": 5, "id": "x1"},
            {"metric": "m", "member": "carol", "value": 2}])
        _wait_until(lambda: _in_postgres(pg, "x1"))
        a.kill9()
        client.execute_command("CLIENT", "UNPAUSE")
        r = httpx.post(b.url + "/v1/events", timeout=10,
                       json={"metric": "m", "member": "alice", "value": 5, "id": "x1"})
        assert r.json() == {"accepted": 0, "duplicates": 1}
        assert _total(b) == {"alice": 5, "carol": 2, "bob": 1}
        assert httpx.get(b.url + "/readyz", timeout=10).status_code == 200
    finally:
        a.stop()
        b.stop()
        client.close()


def test_presence_a_dead_lock_holder_left_is_applied_before_the_next(
        tmp_path: Path, pg: str, own_redis: OwnRedis) -> None:
    """What a server killed mid-presence-write leaves: its join committed (with its
    journal row), its space lock still held, its dirty flag set, nothing published. The
    next presence write (on another server, once the lock expires) first publishes the
    join, so its leave closes that session: the room ends empty on every server."""
    from tallyboard.presence.ops import check_ops
    from tallyboard.stores.postgres import PostgresLog

    b = _hot(tmp_path, "b", pg, own_redis.url)
    b.start()
    ts = int(time.time()) - 100
    client = redis.Redis.from_url(own_redis.url)
    try:
        dead = PostgresLog(pg, auto_migrate=False)
        join = check_ops([{"type": "join", "room": "library", "member": "alice", "ts": ts}],
                         "default", time.time(), 60)
        dead.append_journaled(time.time(), join, {})
        dead.close()
        client.set("tbf:{default}:lock", "dead", px=1500)
        client.set("tbf:{default}:dirty", "dead")
        r = httpx.post(b.url + "/v1/presence", timeout=30, json={
            "type": "leave", "room": "library", "member": "alice", "ts": ts + 60})
        assert r.status_code == 200, r.text
        assert r.json() == {"accepted": 1, "duplicates": 0}
        assert httpx.get(b.url + "/v1/presence/rooms", timeout=10).json() == {"rooms": []}
        sessions = httpx.get(b.url + "/v1/presence/sessions", timeout=10,
                             params={"member": "alice"}).json()["sessions"]
        assert [(s["room"], s["start"], s["end"]) for s in sessions] == \
            [("library", ts, ts + 60)]
        assert not client.exists("tbf:{default}:dirty")  # clean again once published
        a = _hot(tmp_path, "a", pg, own_redis.url)
        a.start()
        assert httpx.get(a.url + "/v1/presence/rooms", timeout=10).json() == {"rooms": []}
        a.stop()
    finally:
        b.stop()
        client.close()


class Writers:
    """Threads posting batches of events with ids to servers until stopped, keeping what
    was acknowledged (a 200) per member; refused requests are retried with the same
    ids, as a client would. A retry answered with duplicates means the first attempt
    was committed before its answer was lost: it counts, once (a batch is atomic)."""

    def __init__(self, servers: list[ServerProcess], threads: int = 3) -> None:
        self.servers = servers
        self.acked: dict[str, int] = {}
        self.requests = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                         for n in range(threads)]

    def __enter__(self) -> Writers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _run(self, n: int) -> None:
        batch = 0
        with httpx.Client(timeout=30) as http:
            while not self._stop.is_set():
                body = [{"metric": "m", "member": f"u{(n + i) % 11}", "value": i + 1,
                         "id": f"w{n}-{batch}-{i}"} for i in range(5)]
                server = self.servers[batch % len(self.servers)]
                for _ in range(600):  # a client retries what was not acknowledged
                    try:
                        r = http.post(server.url + "/v1/events", json=body)
                    except httpx.HTTPError:
                        r = None
                    if r is not None and r.status_code == 200:
                        break
                    time.sleep(0.05)
                else:
                    raise AssertionError("a batch was never acknowledged")
                got = r.json()
                assert got in ({"accepted": 5, "duplicates": 0},
                               {"accepted": 0, "duplicates": 5}), got
                with self._lock:
                    self.requests += 1
                    for e in body:
                        self.acked[e["member"]] = self.acked.get(e["member"], 0) + e["value"]
                batch += 1
                time.sleep(0.005)


def _settled(servers: list[ServerProcess], expected: dict[str, int]) -> None:
    """Every server serves exactly `expected` (waiting a little for the feed to reach
    them), and every event of it is in PostgreSQL once."""
    for server in servers:
        _wait_until(lambda s=server: httpx.get(s.url + "/readyz", timeout=10)
                    .status_code == 200, 60)
        assert _total(server) == expected


def test_flushall_and_rebuild_under_live_writes_lose_and_invent_nothing(
        tmp_path: Path, pg: str, own_redis: OwnRedis) -> None:
    """Two servers take writes all along; Redis is flushed, then rebuilt from PostgreSQL
    while the writes go on. Afterwards both serve exactly what was acknowledged."""
    servers = [_hot(tmp_path, name, pg, own_redis.url) for name in ("a", "b")]
    for server in servers:
        server.start()
    client = redis.Redis.from_url(own_redis.url)
    try:
        with Writers(servers) as writers:
            _wait_until(lambda: writers.requests > 40)
            client.flushall()
            time.sleep(0.5)  # writes land while the hot state is gone
            rebuild = subprocess.run(
                [sys.executable, "-m", "tallyboard.cli", "rebuild", "--log", pg, "--store",
                 own_redis.url, "--store-prefix", "tbf"],
                capture_output=True, text=True, timeout=300)
            assert rebuild.returncode == 0, rebuild.stderr + rebuild.stdout
            started = writers.requests
            _wait_until(lambda: writers.requests > started + 40)
        _settled(servers, writers.acked)
        with psycopg.connect(pg) as db:
            rows = db.execute("SELECT member, sum(value) FROM tallyboard_events "
                              "GROUP BY member").fetchall()
        assert dict(rows) == writers.acked
    finally:
        for server in servers:
            server.stop()
        client.close()


def test_kill9_of_hot_store_servers_under_writes_counts_each_event_once(
        tmp_path: Path, pg: str, own_redis: OwnRedis) -> None:
    """kill -9 each of two servers in turn while writes go to both (and Redis pauses
    now and then): every acknowledged event is served once by both."""
    servers = [_hot(tmp_path, name, pg, own_redis.url) for name in ("a", "b")]
    for server in servers:
        server.start()
    client = redis.Redis.from_url(own_redis.url)
    try:
        with Writers(servers) as writers:
            for round_ in range(4):
                _wait_until(lambda n=writers.requests: writers.requests > n + 20)
                if round_ % 2:
                    client.execute_command("CLIENT", "PAUSE", "300", "WRITE")
                victim = servers[round_ % 2]
                victim.kill9()
                victim.start()
        _settled(servers, writers.acked)
    finally:
        for server in servers:
            server.stop()
        client.close()


def test_buffered_presence_after_kill9s_is_what_was_acknowledged(
        tmp_path: Path, pg: str, own_redis: OwnRedis) -> None:
    """Moves of 20 members between rooms through a buffered server, killed -9 again and
    again (flushes cut short, a new flusher each time): after the buffer drained and one
    more restart (replayed from PostgreSQL alone), every member is where their last
    acknowledged move left them."""
    srv = ServerProcess(tmp_path / "data", "--log", pg, "--durability", "buffered",
                        "--buffer", own_redis.url)
    srv.start()
    rooms = ["a", "b", "c"]
    where: dict[str, str] = {}
    ts = int(time.time()) - 3000
    try:
        for round_ in range(6):
            for step in range(15):
                ts += 1
                ops = []
                for m in range(20):
                    member, room = f"m{m}", rooms[(m + step + round_) % 3]
                    if member in where:
                        ops.append({"type": "leave", "room": where[member], "member": member,
                                    "ts": ts})
                    ops.append({"type": "join", "room": room, "member": member, "ts": ts})
                    where[member] = room
                r = httpx.post(srv.url + "/v1/presence", json=ops, timeout=30)
                assert r.status_code == 200, r.text
            srv.kill9()
            srv.start()
        client = redis.Redis.from_url(own_redis.url)
        _wait_until(lambda: client.xlen("tallyboard:log") == 0, 60)
        client.close()
        srv.kill9()
        srv.start()
        for room in rooms:
            got = httpx.get(f"{srv.url}/v1/presence/rooms/{room}", timeout=10).json()
            assert sorted(m["member"] for m in got["members"]) == \
                sorted(m for m, r in where.items() if r == room)
    finally:
        srv.stop()


def test_rebuild_of_a_flushed_store_keeps_answers_identical(
        tmp_path: Path, pg: str, own_redis: OwnRedis) -> None:
    """Nothing running: FLUSHALL then rebuild gives back the same answers (and a
    second rebuild too), including presence and settings."""
    srv = _hot(tmp_path, "a", pg, own_redis.url)
    srv.start()
    try:
        now = int(time.time())
        httpx.put(srv.url + "/v1/metrics/m", json={"timezone": "Europe/Berlin"}, timeout=10)
        for i in range(30):
            httpx.post(srv.url + "/v1/events", timeout=10, json=[
                {"metric": "m", "member": f"u{i % 4}", "value": i, "ts": now - i * 60,
                 "id": uuid.uuid4().hex}])
        httpx.post(srv.url + "/v1/presence", timeout=10, json=[
            {"type": "join", "room": "r", "member": "p", "ts": now - 50}])
        before = (_total(srv), httpx.get(srv.url + "/v1/presence/rooms", timeout=10).json(),
                  httpx.get(srv.url + "/v1/metrics", timeout=10).json())
        srv.stop()
        for _ in range(2):
            redis.Redis.from_url(own_redis.url).flushall()
            subprocess.run([sys.executable, "-m", "tallyboard.cli", "rebuild", "--log", pg,
                            "--store", own_redis.url, "--store-prefix", "tbf"],
                           check=True, capture_output=True, timeout=300)
            srv.start()
            after = (_total(srv), httpx.get(srv.url + "/v1/presence/rooms", timeout=10).json(),
                     httpx.get(srv.url + "/v1/metrics", timeout=10).json())
            assert after == before
            srv.stop()
    finally:
        srv.stop()
