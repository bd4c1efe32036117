"""The embedded durable log: SQLite in WAL mode, one row per accepted batch.

A batch is one compact JSON row, so a durable write costs one insert and one fsync
whatever its size. ``synchronous=FULL``: a commit survives kill -9 and power loss.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from ..core.columns import Columns
from ..core.events import Event
from ..errors import StoreUnavailable
from ..presence.ledger import PresenceOp
from ..presence.ops import PresenceBatch
from .base import PRESENCE_KEY, Appended, Batch, EventLog, MetricKey
from .group_commit import GroupCommit

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    metrics TEXT NOT NULL,      -- JSON list of "space\\tmetric" in this batch, for replays
    events BLOB NOT NULL        -- JSON list of [space, metric, member, ts, value, tags, id],
                                -- or a JSON object of columns (one metric)
);
CREATE TABLE IF NOT EXISTS metrics (
    space TEXT NOT NULL,
    metric TEXT NOT NULL,
    config TEXT NOT NULL,
    PRIMARY KEY (space, metric)
);
"""


class SQLiteLog(EventLog):
    """Durable log in one SQLite file; safe to share between threads (one writer lock)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._group: GroupCommit[Appended, Collection[int]] = GroupCommit(self._write_group)

    def append(self, received_at: float, events: Batch,
               configs: Mapping[MetricKey, Mapping[str, Any]]) -> Collection[int]:
        # One process owns the file: the engine's id memory is the whole truth.
        return self._group.submit((received_at, events, configs))

    @staticmethod
    def _row(received_at: float, events: Batch) -> tuple[float, str, bytes]:
        """One batch as its row: arrival, the metrics it touches, its compact JSON."""
        if isinstance(events, PresenceBatch):
            payload = orjson.dumps({"presence": [tuple(op) for op in events]})
            keys = sorted({f"{op.space}\t{PRESENCE_KEY}" for op in events})
        elif isinstance(events, Columns):
            payload = events.to_json()
            keys = [f"{events.space}\t{events.metric}"]
        else:
            payload = orjson.dumps([tuple(e) for e in events])
            keys = sorted({f"{e.space}\t{e.metric}" for e in events})
        return received_at, orjson.dumps(keys).decode(), payload

    def _write_group(self, group: Sequence[Appended]) -> list[Collection[int]]:
        """Concurrent appends in one transaction: one fsync makes them all durable."""
        rows = [self._row(received_at, events) for received_at, events, _ in group if events]
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany(
                        "INSERT INTO batches (received_at, metrics, events) VALUES (?,?,?)", rows)
                    for _, _, configs in group:
                        self._put_configs(configs)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"the event log could not be written: {exc}") from exc
        return [() for _ in group]

    def _put_configs(self, configs: Mapping[MetricKey, Mapping[str, Any]]) -> None:
        for (space, metric), cfg in configs.items():
            self._db.execute("INSERT OR REPLACE INTO metrics VALUES (?,?,?)",
                             (space, metric, orjson.dumps(dict(cfg)).decode()))

    def replay(self, metric: MetricKey | None = None) -> Iterator[tuple[float, Batch]]:
        reader = sqlite3.connect(self.path, isolation_level=None)
        try:
            sql = "SELECT received_at, events FROM batches"
            args: tuple[str, ...] = ()
            if metric is not None:
                sql += " WHERE instr(metrics, ?) > 0"
                args = (orjson.dumps(f"{metric[0]}\t{metric[1]}").decode(),)
            for received_at, blob in reader.execute(sql + " ORDER BY seq", args):
                data = orjson.loads(blob)
                if isinstance(data, dict) and "presence" in data:
                    ops = (PresenceOp(row[0], row[1], row[2], row[3],
                                      None if row[4] is None else tuple(row[4]), row[5], row[6])
                           for row in data["presence"])
                    yield received_at, PresenceBatch(
                        op for op in ops if metric is None or op.space == metric[0])
                    continue
                if isinstance(data, dict):
                    yield received_at, Columns.from_json(data)
                    continue
                events = [Event(*row) for row in data]
                if metric is not None:
                    events = [e for e in events if (e.space, e.metric) == metric]
                yield received_at, events
        finally:
            reader.close()

    def put_config(self, key: MetricKey, config: Mapping[str, Any]) -> None:
        with self._lock:
            try:
                self._put_configs({key: config})
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"the config could not be written: {exc}") from exc

    def configs(self) -> dict[MetricKey, dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT space, metric, config FROM metrics").fetchall()
        return {(s, m): orjson.loads(c) for s, m, c in rows}

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*")
                   if p.is_file())

    def batch_count(self) -> int | None:
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM batches").fetchone()
        return int(row[0]) if row else None

    def ping(self) -> None:
        with self._lock:
            try:
                self._db.execute("SELECT count(*) FROM metrics").fetchone()
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"the event log does not answer: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()
