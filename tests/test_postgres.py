"""The PostgreSQL durable log: schema migrations, ids enforced by the database across
processes, month partitions, kill -9 of the API process, and PostgreSQL itself going down
(a server process of the test's own, really stopped) without anything half-applied."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import psycopg
import pytest
from click.testing import CliRunner

from pg_support import OwnPostgres, PgDatabase
from support import ServerProcess
from tallyboard import Accepted, Tallyboard
from tallyboard.cli import main
from tallyboard.errors import StoreUnavailable
from tallyboard.stores.postgres import PostgresLog

NOW = 1795430400.0  # 2026-11-23T08:00:00Z


def test_migrate_is_idempotent(postgres: PgDatabase) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["migrate", "--log", postgres.url])
    assert first.exit_code == 0, first.output
    assert "up to date" in first.output  # the fixture migrated it already
    with psycopg.connect(postgres.url) as db:
        assert db.execute("SELECT max(version) FROM tallyboard_schema").fetchone() == (3,)


def test_ids_are_enforced_by_the_database_across_processes(postgres: PgDatabase) -> None:
    """Two engines sharing one log (two API processes): an id counts once, whichever
    engine sees it, even though neither has it in memory."""
    one = Tallyboard(postgres.log(), clock=lambda: NOW)
    two = Tallyboard(PostgresLog(postgres.url, auto_migrate=False), clock=lambda: NOW)
    try:
        event = {"metric": "m", "member": "a", "value": 5, "ts": NOW - 10, "id": "e1"}
        assert one.record_many([event]) == Accepted(1, 0)
        assert two.record_many([event, {**event, "id": "e2"}]) == Accepted(1, 1)
        assert two.record_columns("m", ["a", "b"], [1, 1], [NOW - 5] * 2,
                                  ids=["e1", "e3"]) == Accepted(1, 1)
        op = {"type": "join", "room": "r", "member": "a", "ts": NOW - 3, "id": "p1"}
        assert one.presence([op]) == Accepted(1, 0)
        assert two.presence([op]) == Accepted(0, 1)
        # Each process applied what it accepted (hot state is per process until Redis)...
        assert (one.sum("m", "a"), two.sum("m", "a"), two.sum("m", "b")) == (5, 5, 1)
        # ...and a rebuild from the shared log has every accepted id exactly once.
        again = Tallyboard(PostgresLog(postgres.url, auto_migrate=False), clock=lambda: NOW)
        assert (again.sum("m", "a"), again.sum("m", "b")) == (10, 1)
        assert again.sum("presence_seconds", "a") == 3
        again.close()
    finally:
        two.close()


def test_events_land_in_month_partitions(postgres: PgDatabase) -> None:
    tb = Tallyboard(postgres.log(), clock=lambda: NOW)
    tb.record_many([{"metric": "m", "member": "a", "ts": "2026-10-31T23:59:59Z"},
                    {"metric": "m", "member": "a", "ts": "2026-11-01T00:00:00Z"},
                    {"metric": "m", "member": "b", "ts": "2026-11-20T00:00:00Z"}])
    with psycopg.connect(postgres.url) as db:
        counts = dict(db.execute(
            "SELECT tableoid::regclass::text, count(*) FROM tallyboard_events "
            "GROUP BY 1").fetchall())
    assert counts == {"tallyboard_events_y2026m10": 1, "tallyboard_events_y2026m11": 2}
    assert tb.stats()["log_bytes"] > 0


@pytest.mark.slow
def test_kill9_of_the_api_process_loses_nothing(tmp_path: Path, postgres: PgDatabase) -> None:
    postgres.log()  # empty
    postgres.close_logs()
    srv = ServerProcess(tmp_path / "data", "--log", postgres.url)
    srv.start()
    try:
        now = time.time()
        batch = [{"metric": "pts", "member": f"u{i % 50}", "value": i, "ts": now - i,
                  "id": f"k{i}"} for i in range(1000)]
        r = httpx.post(srv.url + "/v1/events", json=batch)
        assert r.json() == {"accepted": 1000, "duplicates": 0}
        before = httpx.get(srv.url + "/v1/leaderboard", params={"metric": "pts", "n": 50})
        srv.kill9()
        srv.start()
        after = httpx.get(srv.url + "/v1/leaderboard", params={"metric": "pts", "n": 50})
        assert after.json()["entries"] == before.json()["entries"]
        again = httpx.post(srv.url + "/v1/events", json=batch[:10])
        assert again.json() == {"accepted": 0, "duplicates": 10}
    finally:
        srv.stop()


@pytest.mark.slow
def test_postgres_down_is_503_and_nothing_half_applied() -> None:
    """Stop PostgreSQL under a live engine: writes are 503 with Retry-After and change
    nothing; reads still answer from hot state; once it is back, writes succeed again,
    and a crash of PostgreSQL (immediate stop) keeps every committed batch."""
    from fastapi.testclient import TestClient

    from api_helpers import TEST_HOSTS
    from tallyboard.api import create_app
    from tallyboard.settings import Settings

    pg = OwnPostgres()
    pg.start()
    try:
        clock = [NOW]
        tb = Tallyboard(PostgresLog(pg.url), clock=lambda: clock[0])
        client = TestClient(create_app(tb, Settings(allowed_hosts=TEST_HOSTS)),
                            raise_server_exceptions=False)
        ok = client.post("/v1/events", json=[{"metric": "m", "member": "a", "value": 2,
                                              "ts": NOW - 5, "id": "first"}])
        assert ok.status_code == 200, ok.text
        pg.stop("fast")
        down = client.post("/v1/events", json=[
            {"metric": "m", "member": "a", "value": 7, "ts": NOW - 4},
            {"metric": "m", "member": "b", "value": 1, "ts": NOW - 4, "id": "second"}])
        assert down.status_code == 503, down.text
        assert down.json()["error"]["code"] == "store_unavailable"
        assert int(down.headers["retry-after"]) >= 1
        assert client.get("/readyz").status_code == 503
        sums = client.get("/v1/leaderboard", params={"metric": "m"}).json()["entries"]
        assert sums == [{"rank": 1, "member": "a", "score": 2}]  # nothing half-applied
        pg.start()
        assert client.get("/readyz").status_code == 200
        back = client.post("/v1/events", json=[
            {"metric": "m", "member": "b", "value": 1, "ts": NOW - 3, "id": "second"}])
        assert back.json() == {"accepted": 1, "duplicates": 0}
        pg.stop("immediate")  # a crash: committed batches must survive it
        pg.start()
        rebuilt = Tallyboard(PostgresLog(pg.url), clock=lambda: clock[0])
        assert rebuilt.leaderboard("m").to_dict()["entries"] == [
            {"rank": 1, "member": "a", "score": 2}, {"rank": 2, "member": "b", "score": 1}]
        rebuilt.close()
        tb.close()
    finally:
        pg.remove()


def test_unreachable_postgres_is_store_unavailable() -> None:
    from support import free_port

    with pytest.raises(StoreUnavailable):
        PostgresLog(f"postgresql://postgres@127.0.0.1:{free_port()}/none")
