"""Buffered durability: a request is accepted once its batch is in a Redis Stream; a
flusher moves stream entries into PostgreSQL and deletes them only after the commit.

Guarantees: nothing is deleted before it is safe (an entry leaves the stream only after
the PostgreSQL transaction holding it committed), and a flush repeated after a crash is a
no-op (the entry id is a unique `source` of its PostgreSQL batch), so at-least-once
delivery lands exactly once. Accepted events are as durable as Redis keeps its data: run
it with ``appendonly yes`` (and ``appendfsync always`` to survive a power cut). While
PostgreSQL is down, batches keep buffering up to `max_entries`, then writes are 503.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Collection, Iterator, Mapping
from typing import Any

import redis

from ..errors import StoreUnavailable
from .base import Batch, EventLog, MetricKey
from .batches import decode, encode, wanted
from .postgres import PostgresLog

log = logging.getLogger("tallyboard.flusher")


def _entries(raw: Any) -> list[tuple[str, bytes]]:
    """``(entry id, payload)`` of stream entries as redis-py returns them (deleted ones,
    which come back without fields, are left out)."""
    return [(entry_id.decode(), fields[b"b"]) for entry_id, fields in raw or () if fields]


class BufferedLog(EventLog):
    """A Redis Stream in front of a PostgresLog, with a flusher thread between them."""

    GROUP = "flusher"

    def __init__(self, durable: PostgresLog, redis_url: str, *,
                 stream: str = "tallyboard:log", max_entries: int = 100_000,
                 flush_batch: int = 200, claim_after_ms: int = 30_000,
                 flush: bool = True) -> None:
        self.durable = durable
        self.stream = stream
        self.max_entries = max_entries
        self.flush_batch = flush_batch
        self.claim_after_ms = claim_after_ms
        self.consumer = f"flusher-{time.time_ns()}"
        self.stats = {"flushed_batches": 0, "flush_errors": 0, "last_flush_size": 0,
                      "last_flush_seconds": 0.0, "dropped_duplicates": 0}
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=5)
        try:
            self._redis.xgroup_create(stream, self.GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:  # BUSYGROUP: made by another process before
            if "BUSYGROUP" not in str(exc):
                raise StoreUnavailable(f"Redis refused the stream group: {exc}") from exc
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Redis is unavailable: {exc}") from exc
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if flush:
            self._thread = threading.Thread(target=self._run, name="tallyboard-flusher",
                                            daemon=True)
            self._thread.start()

    # ---- the request path -------------------------------------------------------------------
    def append(self, received_at: float, events: Batch,
               configs: Mapping[MetricKey, Mapping[str, Any]]) -> Collection[int]:
        try:
            if self._redis.xlen(self.stream) >= self.max_entries:
                raise StoreUnavailable(f"the write buffer is full ({self.max_entries:,} "
                                       "batches waiting for PostgreSQL); retry later")
            self._redis.xadd(self.stream, {"b": encode(received_at, events, configs)})
        except redis.RedisError as exc:
            raise StoreUnavailable(f"the write buffer (Redis) is unavailable: {exc}") from exc
        return ()  # ids are enforced again by PostgreSQL when the batch is flushed

    def put_config(self, key: MetricKey, config: Mapping[str, Any]) -> None:
        self.append(time.time(), [], {key: config})

    # ---- the flusher --------------------------------------------------------------------------
    def _run(self) -> None:
        pause = 0.05
        while not self._stop.is_set():
            try:
                moved = self.flush_once(block_ms=500)
                pause = 0.05
            except Exception as exc:  # the flusher must outlive any one failure
                self.stats["flush_errors"] += 1
                log.warning("flush failed, retrying in %.1fs: %s", pause, exc)
                self._stop.wait(pause)
                pause = min(pause * 2, 5.0)
                continue
            if not moved:
                self._stop.wait(0.01)

    def flush_once(self, block_ms: int = 0) -> int:
        """Move one round of entries into PostgreSQL: this flusher's own unacknowledged
        ones first (a flush that failed), then ones a dead flusher left idle, then new
        ones. Each is acknowledged and deleted only after its commit."""
        mine: Any = self._redis.xreadgroup(self.GROUP, self.consumer, {self.stream: "0"},
                                           count=self.flush_batch)  # a failed flush's
        entries = _entries(mine[0][1] if mine else None)
        if not entries:
            claimed: Any = self._redis.xautoclaim(self.stream, self.GROUP, self.consumer,
                                                  self.claim_after_ms, "0-0",
                                                  count=self.flush_batch)
            entries = _entries(claimed[1] if claimed else None)
        if not entries:
            got: Any = self._redis.xreadgroup(self.GROUP, self.consumer, {self.stream: ">"},
                                              count=self.flush_batch, block=block_ms or None)
            entries = _entries(got[0][1] if got else None)
        if not entries:
            return 0
        started = time.perf_counter()
        for entry_id, payload in entries:
            received_at, batch, configs = decode(payload)
            held = self.durable.append_once(entry_id, received_at, batch, configs)
            if held:  # accepted here, but PostgreSQL had the id (another server, or long ago)
                self.stats["dropped_duplicates"] += len(held)
                log.warning("%d events of stream entry %s had ids PostgreSQL already held; "
                            "not written again", len(held), entry_id)
        ids = [entry_id for entry_id, _ in entries]
        pipe = self._redis.pipeline(transaction=True)
        pipe.xack(self.stream, self.GROUP, *ids)
        pipe.xdel(self.stream, *ids)
        pipe.execute()
        self.stats["flushed_batches"] += len(entries)
        self.stats["last_flush_size"] = len(entries)
        self.stats["last_flush_seconds"] = time.perf_counter() - started
        return len(entries)

    def lag_seconds(self) -> float:
        """Age of the oldest batch not yet in PostgreSQL (0 when all are flushed; NaN
        when Redis does not answer)."""
        try:
            oldest = _entries(self._redis.xrange(self.stream, count=1))
        except redis.RedisError:
            return math.nan
        if not oldest:
            return 0.0
        return max(0.0, time.time() - int(oldest[0][0].split("-")[0]) / 1000)

    def backlog(self) -> float:
        """Batches in the stream, not yet deleted after their flush (NaN: Redis is away)."""
        try:
            return float(self._redis.xlen(self.stream))
        except redis.RedisError:
            return math.nan

    # ---- reads ----------------------------------------------------------------------------
    def replay(self, metric: MetricKey | None = None) -> Iterator[tuple[float, Batch]]:
        """PostgreSQL first, then what is still only in the stream (in order); an entry
        already committed but not yet deleted is taken from PostgreSQL alone."""
        try:
            pending = _entries(self._redis.xrange(self.stream))
        except redis.RedisError as exc:
            raise StoreUnavailable(f"the write buffer (Redis) is unavailable: {exc}") from exc
        flushed: set[str] = set()
        yield from self.durable.replay_checking(
            metric, [entry_id for entry_id, _ in pending], flushed)
        for entry_id, payload in pending:
            if entry_id in flushed:
                continue
            received_at, batch, _ = decode(payload)
            part = wanted(batch, metric)
            if part is not None:
                yield received_at, part

    def batch_count(self) -> int | None:
        durable, pending = self.durable.batch_count(), self.backlog()
        return None if durable is None or math.isnan(pending) else durable + int(pending)

    def configs(self) -> dict[MetricKey, dict[str, Any]]:
        """PostgreSQL's configs, updated by the stream's settings changes (entries without
        events) and completed by its creations (a creation never overrides a stored
        config). The stream is read first: an entry flushed in between is then found in
        PostgreSQL."""
        pending = _entries(self._redis.xrange(self.stream))
        found = self.durable.configs()
        for _, payload in pending:
            _, batch, configs = decode(payload)
            for key, config in configs.items():
                if len(batch):
                    found.setdefault(key, config)
                else:
                    found[key] = config
        return found

    def size_bytes(self) -> int:
        return self.durable.size_bytes()

    def ping(self) -> None:
        try:
            self._redis.ping()
        except redis.RedisError as exc:
            raise StoreUnavailable(f"the write buffer (Redis) does not answer: {exc}") from exc

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._redis.close()
        self.durable.close()
