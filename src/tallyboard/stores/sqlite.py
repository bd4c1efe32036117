"""The embedded durable log: SQLite in WAL mode, one row per accepted batch.

A batch is one compact JSON row, so a durable write costs one insert and one fsync
whatever its size. ``synchronous=FULL``: a commit survives kill -9 and power loss.
One process writes a log (it holds the WriterLock beside it); any number may open it
`read_only` beside the writer, to replay and query what was committed.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from ..core.columns import Columns
from ..core.events import Event
from ..errors import Conflict, StoreUnavailable
from ..presence.ledger import PresenceOp
from ..presence.ops import PresenceBatch
from .base import PRESENCE_KEY, Appended, Batch, EventLog, MetricKey, Position
from .group_commit import GroupCommit
from .writer_lock import WriterLock

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    metrics TEXT NOT NULL,      -- JSON list of "space\\tmetric" in this batch, for replays
    events BLOB NOT NULL        -- JSON list of [space, metric, member, ts, value, tags, id],
                                -- or a JSON object of columns (one metric)
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL         -- log_id: a checkpoint names the log it was taken of
);
CREATE TABLE IF NOT EXISTS metrics (
    space TEXT NOT NULL,
    metric TEXT NOT NULL,
    config TEXT NOT NULL,
    PRIMARY KEY (space, metric)
);
"""


class SQLiteLog(EventLog):
    """Durable log in one SQLite file; safe to share between threads (one writer lock).

    The writer holds `writer` (``<file>.lock``) until `close`: opening a second writer
    raises DataInUse naming the first. A `read_only` log takes no lock and refuses
    writes; a file that does not exist yet reads as empty (and is not created)."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.writer: WriterLock | None = None
        self._lock = threading.Lock()
        self._group: GroupCommit[Appended, Collection[int]] = GroupCommit(self._write_group)
        if read_only:
            self._db = self._reader(check_same_thread=False)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = WriterLock(self.path.with_name(self.path.name + ".lock"), self.path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('log_id', ?)",
                             (uuid.uuid4().hex,))
            self.checkpoint_path = self.path.with_name(self.path.name + ".checkpoint")
        except BaseException:
            self.writer.release()
            raise

    def _reader(self, check_same_thread: bool = True) -> sqlite3.Connection:
        """A connection for reads: the file itself (read-only unless this is the writer),
        or an empty schema in memory when a read-only log's file does not exist yet."""
        if not self.read_only:
            return sqlite3.connect(self.path, isolation_level=None)
        if not self.path.exists():
            empty = sqlite3.connect(":memory:", check_same_thread=check_same_thread)
            empty.executescript(SCHEMA)
            return empty
        return sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True,
                               isolation_level=None, check_same_thread=check_same_thread)

    def _writable(self) -> None:
        if self.read_only:
            raise Conflict(f"{self.path} was opened read-only (to query beside its writer); "
                           "write through the process that writes it")

    def append(self, received_at: float, events: Batch,
               configs: Mapping[MetricKey, Mapping[str, Any]]) -> Collection[int]:
        self._writable()
        # One process owns the file (the writer lock): the engine's id memory is the
        # whole truth.
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
        sql = "SELECT received_at, events FROM batches"
        args: tuple[str, ...] = ()
        if metric is not None:
            sql += " WHERE instr(metrics, ?) > 0"
            args = (orjson.dumps(f"{metric[0]}\t{metric[1]}").decode(),)
        return self._batches(sql + " ORDER BY seq", args, metric)

    def replay_after(self, position: Position) -> Iterator[tuple[float, Batch]]:
        return self._batches("SELECT received_at, events FROM batches WHERE seq > ? "
                             "ORDER BY seq", (position.seq,), None)

    def _batches(self, sql: str, args: tuple[Any, ...],
                 metric: MetricKey | None) -> Iterator[tuple[float, Batch]]:
        reader = self._reader()
        try:
            for received_at, blob in reader.execute(sql, args):
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

    def position(self) -> Position | None:
        with self._lock:
            try:
                row = self._db.execute("SELECT seq, received_at FROM batches "
                                       "ORDER BY seq DESC LIMIT 1").fetchone()
                return None if row is None else \
                    Position(self._log_id(), int(row[0]), float(row[1]))
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"the event log does not answer: {exc}") from exc

    def holds(self, position: Position) -> bool:
        with self._lock:
            try:
                row = self._db.execute("SELECT received_at FROM batches WHERE seq = ?",
                                       (position.seq,)).fetchone()
                return (row is not None and float(row[0]) == position.received_at
                        and self._log_id() == position.log_id)
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"the event log does not answer: {exc}") from exc

    def _log_id(self) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'log_id'").fetchone()
        return "" if row is None else str(row[0])

    def release_in_child(self) -> None:
        if self.writer is not None:  # the parent's lock stays: its descriptor holds it
            self.writer.release()

    def put_config(self, key: MetricKey, config: Mapping[str, Any]) -> None:
        self._writable()
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
            if self.writer is not None:
                self.writer.release()
