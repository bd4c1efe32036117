"""tallyboard: exact, real-time, durable counters, leaderboards, streaks and presence.

>>> import tallyboard
>>> tb = tallyboard.open("memory://")
>>> tb.record("points", "alice", 10)
Accepted(accepted=1, duplicates=0)
>>> tb.leaderboard("points").entries
[Entry(rank=1, member='alice', score=10)]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .calendar import Calendar
from .client import RemoteTallyboard
from .core.config import MetricConfig
from .core.events import Event
from .core.results import Accepted, Entry, Leaderboard, Point, Rank, Run, Streak
from .engine import Tallyboard
from .errors import (
    BadQuery,
    BadRequest,
    Conflict,
    DataInUse,
    Forbidden,
    InvalidEvent,
    NotFound,
    RateLimited,
    StoreUnavailable,
    TallyboardError,
    TooLarge,
    Unauthorized,
)
from .heap import tune_gc
from .queue import publish
from .stores import log_from_url, shared_log
from .windows import Window

__all__ = [
    "Accepted", "BadQuery", "BadRequest", "Calendar", "Conflict", "DataInUse", "Entry", "Event",
    "Forbidden", "InvalidEvent", "Leaderboard", "MetricConfig", "NotFound", "Point", "Rank",
    "RateLimited", "RemoteTallyboard", "Run", "StoreUnavailable", "Streak", "Tallyboard",
    "TallyboardError", "TooLarge", "Unauthorized", "Window", "open", "publish", "tune_gc",
]


def open(url_or_path: str = "./tallyboard-data", *, clock: Callable[[], float] = time.time,
         key: str | None = None, store: str | None = None, store_prefix: str = "tb",
         read_only: bool = False, **options: Any) -> Tallyboard | RemoteTallyboard:
    """Open a tallyboard: embedded from a path or URL, or a client of a running server.

    `url_or_path` is a data directory (``./tallyboard-data``), ``sqlite:///file``,
    ``postgresql://user@host/db`` (the durable log in PostgreSQL), ``memory://``
    (nothing kept) or ``http(s)://host:port`` (a server; `key` is its API key). An
    embedded store rebuilds its state from the durable log on open (from its newest
    checkpoint on); `options` go to `Tallyboard` (``default_config``, ``skew``,
    ``id_retention``, ``checkpoint_every``).

    One process at a time writes an embedded store: opening a second raises DataInUse
    naming the first. `read_only` opens it beside that writer to query what it has
    committed (writes are refused); to write, go through the writer's server by URL.

    `store` (``redis://host:port/db``, a Redis or Redis Cluster) shares a PostgreSQL
    log's state with every other server and process opened on the same store and
    `store_prefix`: each sees all the others' writes before it answers.
    """
    if url_or_path.startswith(("http://", "https://")):
        return RemoteTallyboard(url_or_path, key=key)
    log = log_from_url(url_or_path, read_only=read_only)
    if store is not None:
        log = shared_log(log, store, store_prefix,
                         options.get("id_retention", 7 * 86400))
    return Tallyboard(log, clock=clock, **options)
