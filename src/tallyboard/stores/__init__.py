"""Durable logs behind one interface; pick one from a URL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..redact import redact
from .base import EventLog
from .memory import MemoryLog
from .sqlite import SQLiteLog

__all__ = ["EventLog", "MemoryLog", "SQLiteLog", "buffered_log", "log_from_url",
           "shared_log"]

LOG_FILE = "events.sqlite3"


def buffered_log(url: str, buffer: str, max_entries: int = 100_000) -> EventLog:
    """Buffered durability: a Redis Stream at `buffer` in front of PostgreSQL at `url`."""
    from .buffered import BufferedLog
    from .postgres import PostgresLog

    return BufferedLog(PostgresLog(url), buffer, max_entries=max_entries)


def log_from_url(url: str, *, read_only: bool = False) -> EventLog:
    """``memory://``, ``sqlite:///path/file.sqlite3``, ``postgresql://...`` (migrated on
    open), or a directory path (embedded).

    An embedded log has one writer (a second raises DataInUse); `read_only` opens it
    beside the writer, to query, taking no lock. Other logs are shared by design."""
    if url.startswith("memory://"):
        return MemoryLog()
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresLog  # psycopg loads only for PostgreSQL

        return PostgresLog(url)
    if url.startswith("sqlite://"):
        path = url.removeprefix("sqlite://")
        return SQLiteLog(path, read_only=read_only)
    if "://" in url:
        raise ValueError(f"unsupported log URL {redact(url)!r}; use memory://, sqlite:///path, "
                         "postgresql://… or a directory")
    return SQLiteLog(Path(url) / LOG_FILE, read_only=read_only)


def shared_log(durable: EventLog, store: str, prefix: str = "tb",
               id_retention: float = 7 * 86400,
               progress: Callable[[int, int | None], None] | None = None) -> EventLog:
    """`durable` shared through the hot store at `store` (Redis or Redis Cluster), so
    several servers serve the same state; an empty store is first filled from `durable`."""
    from .redis_feed import RedisFeed  # redis loads only for the hot store

    return RedisFeed(durable, store, prefix=prefix, id_retention=id_retention,
                     progress=progress)
