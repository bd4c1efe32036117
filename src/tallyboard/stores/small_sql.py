"""A small side database (SQLite next to the data, or PostgreSQL) for what an edge must
keep across restarts beside the event log: a bot's countdowns and errors, a queue worker's
rejected messages.

Every write is durable when the call returns (SQLite ``synchronous=FULL``; a PostgreSQL
commit), so a kill -9 loses nothing a call acknowledged. Calls are thread-safe: callers
run them off their event loop.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from ..errors import StoreUnavailable
from ..redact import redact


class SmallSQL:
    """One connection to SQLite or PostgreSQL, its statements written with ``?`` marks,
    and `{serial}` (an auto-increment id column) and `{blob}` (bytes) in the schema."""

    def __init__(self, connect: Callable[[], Any], placeholder: str, serial: str,
                 schema: Sequence[str], what: str) -> None:
        self._connect = connect
        self._mark = placeholder
        self._what = what
        self._lock = threading.Lock()
        self._db = connect()
        with self._transaction() as db:
            for statement in schema:
                db.execute(statement.format(serial=serial,
                                            blob="BYTEA" if placeholder == "%s" else "BLOB"))

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """One committed transaction; a database error is StoreUnavailable (retryable), and
        a connection the server dropped is opened again on the next call."""
        with self._lock:
            if self._dropped():
                self._db = self._connect()
            try:
                yield self._db
                self._db.commit()
            except (sqlite3.Error, _pg_error()) as exc:
                with suppress(sqlite3.Error, _pg_error()):
                    self._db.rollback()
                raise StoreUnavailable(f"the {self._what} could not be written: {exc}") \
                    from exc

    def _dropped(self) -> bool:
        """Whether the server closed the connection (psycopg says so; SQLite never)."""
        return bool(getattr(self._db, "closed", False) or getattr(self._db, "broken", False))

    def _run(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One statement in its own transaction; the rows it returns (or, for a write,
        one row holding the count of rows it changed). Tried again once on a fresh
        connection when the server had dropped the old one (an idle timeout, a failover):
        nothing was committed then."""
        for attempt in (1, 2):
            try:
                with self._transaction() as db:
                    cursor = db.execute(self._sql(sql), tuple(args))
                    return list(cursor.fetchall()) if cursor.description \
                        else [(cursor.rowcount,)]
            except StoreUnavailable:
                if attempt == 2 or not self._dropped():
                    raise
        raise AssertionError("unreachable")

    def _sql(self, sql: str) -> str:
        """`sql` with its ``?`` marks in the database's own style."""
        return sql.replace("?", self._mark)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _pg_error() -> type[Exception]:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return sqlite3.Error
    return psycopg.Error


def connector(url: str, file_name: str, what: str) -> tuple[Callable[[], Any], str, str]:
    """(connect, placeholder, serial column type) for ``sqlite:///path/file.sqlite3``, a
    directory (its `file_name`), ``postgresql://…`` or ``memory://`` (nothing kept)."""
    if url.startswith(("postgresql://", "postgres://")):
        import psycopg

        def pg() -> Any:
            try:
                return psycopg.connect(url, connect_timeout=5)
            except psycopg.Error as exc:
                raise StoreUnavailable(f"PostgreSQL is unavailable: {exc}") from exc

        return pg, "%s", "BIGINT GENERATED ALWAYS AS IDENTITY"
    if url == "memory://":
        path = ":memory:"
    elif url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://")
    elif "://" in url:
        raise ValueError(f"unsupported {what} URL {redact(url)!r}; use sqlite:///path, "
                         "postgresql://…, memory:// or a directory")
    else:
        path = str(Path(url) / file_name)

    def sqlite() -> sqlite3.Connection:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        return db

    return sqlite, "?", "INTEGER"
