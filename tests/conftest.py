"""Shared fixtures; in CI (CI=true) a skipped test fails the run: nothing may be left out."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import api_helpers
from pg_support import STORES, OwnRedisCluster, PgDatabase, backing, reachable, start_redis_cluster
from support import ServerProcess
from tallyboard.stores import MemoryLog

_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI") and _skipped and exitstatus == 0:
        print(f"\nCI forbids skipped tests; skipped: {_skipped}", file=sys.stderr)
        session.exitstatus = 1


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgDatabase]:
    """A database of this test run's own on the machine's PostgreSQL (skips without one)."""
    why = reachable()
    if why:
        pytest.skip(why)
    db = PgDatabase()
    yield db
    db.drop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[OwnRedisCluster]:
    """A Redis Cluster of this test run's own (3 masters on free ports)."""
    cluster = start_redis_cluster()
    yield cluster
    cluster.remove()


@pytest.fixture(params=STORES)
def log_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test on the in-memory log, an emptied PostgreSQL log, Redis + PostgreSQL and
    Redis Cluster + PostgreSQL (the test_api_* modules use it for every test:
    ``pytestmark = pytest.mark.usefixtures(...)``)."""
    found = backing(request, request.param)
    if found is not None:
        api_helpers.default_log[0] = found.log
    try:
        yield str(request.param)
    finally:
        api_helpers.default_log[0] = MemoryLog


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "data")
    srv.start()
    yield srv
    srv.stop()
