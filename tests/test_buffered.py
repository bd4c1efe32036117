"""Buffered durability: accepted once in a Redis Stream, flushed to PostgreSQL behind,
deleted from the stream only after the commit, exactly once whatever crashes when."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis

from pg_support import OwnPostgres, OwnRedis, PgDatabase
from support import ServerProcess
from tallyboard import Accepted, Tallyboard
from tallyboard.errors import StoreUnavailable
from tallyboard.stores.buffered import BufferedLog
from tallyboard.stores.postgres import PostgresLog

REDIS = "redis://127.0.0.1:6379/0"
NOW = 1795430400.0


@pytest.fixture
def stream() -> Iterator[str]:
    """A stream key of the test's own on the machine's Redis, deleted afterwards."""
    try:
        redis.Redis.from_url(REDIS).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis not reachable at {REDIS} ({exc})")
    key = f"tallyboard-test:{uuid.uuid4().hex}"
    yield key
    redis.Redis.from_url(REDIS).delete(key)


def buffered(pg: PgDatabase, stream: str, **options: Any) -> BufferedLog:
    return BufferedLog(PostgresLog(pg.url, auto_migrate=False), REDIS, stream=stream,
                       flush=False, **options)


def rows(pg: PgDatabase) -> int:
    with psycopg.connect(pg.url) as db:
        row = db.execute("SELECT count(*) FROM tallyboard_events").fetchone()
    return int(row[0]) if row else 0


def events(n: int, prefix: str = "e") -> list[dict[str, Any]]:
    return [{"metric": "m", "member": f"u{i % 3}", "value": i + 1, "ts": NOW - 100 + i,
             "id": f"{prefix}{i}"} for i in range(n)]


def test_accepted_before_the_flush_survives_a_restart(postgres: PgDatabase,
                                                      stream: str) -> None:
    postgres.log()  # empty the database
    postgres.close_logs()
    tb = Tallyboard(buffered(postgres, stream), clock=lambda: NOW)
    assert tb.record_many(events(10)) == Accepted(10, 0)
    tb.record_many([{"metric": "m", "member": "u9", "value": -4, "ts": NOW - 1}])
    tb.presence([{"type": "join", "room": "r", "member": "u1", "ts": NOW - 60}])
    want = tb.leaderboard("m").to_dict()
    assert rows(postgres) == 0  # nothing flushed yet: all of it only in the stream
    restarted = Tallyboard(buffered(postgres, stream), clock=lambda: NOW)
    assert restarted.leaderboard("m").to_dict() == want
    assert restarted.sum("presence_seconds", "u1") == 60
    assert restarted.record_many(events(2)) == Accepted(0, 2)  # ids remembered
    log = restarted.log
    assert isinstance(log, BufferedLog)
    assert log.flush_once() >= 3  # the batches (and any config written on its own)
    assert rows(postgres) == 11 and log.backlog() == 0
    again = Tallyboard(buffered(postgres, stream), clock=lambda: NOW)
    assert again.leaderboard("m").to_dict() == want  # now from PostgreSQL alone
    for engine in (tb, restarted, again):
        engine.close()


def test_a_settings_change_survives_the_flush_and_a_restart(postgres: PgDatabase,
                                                             stream: str) -> None:
    """A change goes through the stream as an entry without events: flushed, it replaces
    PostgreSQL's config (a metric's creation would keep it); unflushed, it still wins."""
    postgres.log()
    postgres.close_logs()
    tb = Tallyboard(buffered(postgres, stream), clock=lambda: NOW)
    tb.record("m", "u1", 5, ts=NOW - 10)
    log = tb.log
    assert isinstance(log, BufferedLog)
    log.flush_once()  # m is created in PostgreSQL with the default calendar
    tb.set_metric("m", {"timezone": "Europe/Berlin"}, rebuild=True)
    unflushed = Tallyboard(buffered(postgres, stream), clock=lambda: NOW)
    assert unflushed.metric("m")["timezone"] == "Europe/Berlin"
    log.flush_once()
    with psycopg.connect(postgres.url) as db:
        row = db.execute("SELECT config->>'timezone' FROM tallyboard_metrics "
                         "WHERE metric = 'm'").fetchone()
    assert row == ("Europe/Berlin",)
    flushed = Tallyboard(buffered(postgres, stream), clock=lambda: NOW)
    assert flushed.metric("m")["timezone"] == "Europe/Berlin"
    for engine in (tb, unflushed, flushed):
        engine.close()


def test_a_flush_repeated_after_a_crash_lands_once(postgres: PgDatabase, stream: str) -> None:
    """A flusher commits and dies before deleting; the next one takes over once its lease
    ends and flushes the entries again: PostgreSQL holds each batch once, then the stream
    is empty."""
    postgres.log()
    postgres.close_logs()
    tb = Tallyboard(buffered(postgres, stream), clock=lambda: NOW)
    tb.record_many([{"metric": "m", "member": "a", "value": 1, "ts": NOW - 5}] * 3)  # no ids
    dying = buffered(postgres, stream, lease_ms=300)
    assert dying._lead()
    client = redis.Redis.from_url(REDIS)
    for entry_id, fields in client.xrange(stream):
        from tallyboard.stores.batches import decode

        dying.durable.append_once(entry_id.decode(), *decode(fields[b"b"]))
    assert rows(postgres) == 3 and dying.backlog() == 1  # committed, not deleted
    survivor = buffered(postgres, stream)
    assert survivor.flush_once() == 0  # the dying flusher's lease still holds
    time.sleep(0.4)
    assert survivor.flush_once() == 1
    assert rows(postgres) == 3 and survivor.backlog() == 0
    rebuilt = Tallyboard(buffered(postgres, stream), clock=lambda: NOW)
    assert rebuilt.sum("m", "a") == 3
    for closable in (tb, dying, survivor, rebuilt):
        closable.close()


@pytest.mark.slow
def test_postgres_down_buffers_up_to_the_bound() -> None:
    pg = OwnPostgres()
    own_redis = OwnRedis()
    pg.start()
    own_redis.start()
    try:
        log = BufferedLog(PostgresLog(pg.url), own_redis.url, max_entries=3, flush=False)
        tb = Tallyboard(log, clock=lambda: NOW)
        pg.stop("immediate")
        for i in range(3):
            assert tb.record_many(events(1, f"x{i}")) == Accepted(1, 0)
        with pytest.raises(StoreUnavailable, match="buffer is full"):
            tb.record_many(events(1, "over"))
        with pytest.raises(StoreUnavailable):
            log.flush_once()
        assert log.backlog() == 3 and log.lag_seconds() >= 0
        pg.start()
        assert log.flush_once() == 3 and log.backlog() == 0
        assert tb.record_many(events(1, "over")) == Accepted(1, 0)
        tb.close()
    finally:
        own_redis.remove()
        pg.remove()


@pytest.mark.slow
def test_kill9_of_a_buffered_server_loses_nothing(tmp_path: Path) -> None:
    """kill -9 the API process (and so its flusher) right after a burst of writes: after
    a restart every accepted event is served and, once flushed, in PostgreSQL once."""
    pg = OwnPostgres()
    own_redis = OwnRedis()
    pg.start()
    own_redis.start()
    srv = ServerProcess(tmp_path / "data", "--log", pg.url, "--durability", "buffered",
                        "--buffer", own_redis.url)
    try:
        srv.start()
        now = time.time()
        accepted = 0
        for b in range(20):
            batch = [{"metric": "m", "member": f"u{i % 7}", "value": 1, "ts": now - i,
                      "id": f"b{b}-{i}"} for i in range(500)]
            accepted += httpx.post(srv.url + "/v1/events", json=batch).json()["accepted"]
        before = httpx.get(srv.url + "/v1/leaderboard", params={"metric": "m"}).json()
        srv.kill9()
        srv.start()
        after = httpx.get(srv.url + "/v1/leaderboard", params={"metric": "m"}).json()
        assert after["entries"] == before["entries"]
        assert sum(e["score"] for e in after["entries"]) == accepted == 10_000
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            metrics = httpx.get(srv.url + "/metrics").text
            if "tallyboard_buffer_batches 0.0" in metrics:
                break
            time.sleep(0.2)
        assert "tallyboard_buffer_batches 0.0" in metrics
        assert "tallyboard_flush_lag_seconds 0.0" in metrics
        with psycopg.connect(pg.url) as db:
            count = db.execute("SELECT count(*), count(DISTINCT id) FROM "
                               "tallyboard_events").fetchone()
        assert count == (10_000, 10_000)
    finally:
        srv.stop()
        own_redis.remove()
        pg.remove()


def test_buffered_needs_a_buffer_and_postgresql() -> None:
    from pydantic import ValidationError

    from tallyboard.settings import load_settings

    for options in ({"durability": "buffered"},
                    {"durability": "buffered", "buffer": REDIS, "log": "sqlite:///x.db"}):
        with pytest.raises(ValidationError, match="needs buffer"):
            load_settings(None, **options)
    ok = load_settings(None, durability="buffered", buffer=REDIS, log="postgresql://h/db")
    assert ok.durability == "buffered"
