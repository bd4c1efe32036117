"""Group commit: single-event requests per second from 1 thread and from 16, per log.

The 1-thread run is the baseline (every request pays its own commit); with 16 threads
the log funnels concurrent requests into shared commits. Both run in the same process on
the same kind of log, so the ratio is the gain of group commit alone.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..engine import Tallyboard
from ..stores import EventLog, SQLiteLog
from .measure import Progress

THREADS = (1, 16)


def run_commits(tmp: Path, pg_admin: str | None, requests: int,
                progress: Progress) -> dict[str, Any]:
    """Requests/s and events per commit for SQLite (and PostgreSQL, given a server)."""
    out: dict[str, Any] = {"requests": requests,
                           "sqlite": _measure(SQLiteLog(tmp / "commits.sqlite3"), requests,
                                              "SQLite", progress)}
    if pg_admin:
        import psycopg

        from ..stores.postgres import PostgresLog

        name = f"tallyboard_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(pg_admin, autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}".encode())
        try:
            url = pg_admin.rsplit("/", 1)[0] + "/" + name
            out["postgresql"] = _measure(PostgresLog(url), requests, "PostgreSQL", progress)
        finally:
            with psycopg.connect(pg_admin, autocommit=True) as db:
                db.execute(f"DROP DATABASE {name} WITH (FORCE)".encode())
    return out


def _measure(log: EventLog, requests: int, label: str, progress: Progress) -> dict[str, Any]:
    now = time.time()
    tb = Tallyboard(log)
    tb.record_many([{"metric": "m", "member": "first", "ts": now - 1}])
    group = getattr(log, "_group", None)
    found: dict[str, Any] = {}
    for threads in THREADS:
        first = threads * 10_000_000
        commits_before = group.groups if group else 0

        def one(i: int) -> None:
            tb.record_many([{"metric": "m", "member": f"u{i % 1000}", "ts": now - 1,
                             "id": f"c{i}"}])

        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(first, first + requests)))
        seconds = time.perf_counter() - started
        commits = (group.groups if group else 0) - commits_before
        found[str(threads)] = {"per_s": requests / seconds,
                               "per_commit": requests / commits if commits else 1.0}
        progress(f"commits: {label}", THREADS.index(threads) + 1, len(THREADS))
    tb.close()
    return found
