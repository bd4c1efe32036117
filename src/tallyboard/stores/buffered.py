"""Buffered durability: a request is accepted once its batch is in a Redis Stream; a
flusher moves stream entries into PostgreSQL and deletes them only after the commit.

Guarantees: nothing is deleted before it is safe (an entry leaves the stream only after
the PostgreSQL transaction holding it committed); a flush repeated after a crash is a
no-op (the entry id is a unique `source` of its PostgreSQL batch), so at-least-once
delivery lands exactly once; and entries reach PostgreSQL in the order they were
accepted, whichever flusher moves them (each takes the stream's oldest entries, one at a
time, and a lease keeps the others idle), so a replay applies presence operations in the
order that was acknowledged. Accepted events are as durable as Redis keeps its data: run
it with ``appendonly yes`` (and ``appendfsync always`` to survive a power cut). While
PostgreSQL is down, batches keep buffering up to `max_entries`, then writes are 503.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Collection, Iterator, Mapping
from typing import Any

import redis

from ..errors import StoreUnavailable
from .base import Batch, EventLog, Journal, MetricKey, Pending, Snapshot
from .batches import by_space, decode, decode_journaled, encode, wanted
from .postgres import PostgresLog

log = logging.getLogger("tallyboard.flusher")


def _entries(raw: Any) -> list[tuple[str, bytes]]:
    """``(entry id, payload)`` of stream entries as redis-py returns them (deleted ones,
    which come back without fields, are left out)."""
    return [(entry_id.decode(), fields[b"b"]) for entry_id, fields in raw or () if fields]


class BufferedLog(EventLog, Journal):
    """A Redis Stream in front of a PostgresLog, with a flusher thread between them."""

    def __init__(self, durable: PostgresLog, redis_url: str, *,
                 stream: str = "tallyboard:log", max_entries: int = 100_000,
                 flush_batch: int = 200, lease_ms: int = 10_000,
                 flush: bool = True) -> None:
        """`lease_ms`: how long a flusher that stopped renewing its lease keeps the others
        waiting (it renews every round)."""
        self.durable = durable
        self.stream = stream
        self.max_entries = max_entries
        self.flush_batch = flush_batch
        self.lease_ms = lease_ms
        self.consumer = f"flusher-{uuid.uuid4().hex}"
        self.stats = {"flushed_batches": 0, "flush_errors": 0, "last_flush_size": 0,
                      "last_flush_seconds": 0.0, "dropped_duplicates": 0}
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=5)
        try:
            self._redis.ping()
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
        self._add(received_at, events, configs, journal=False)
        return ()  # ids are enforced again by PostgreSQL when the batch is flushed

    def append_journaled(self, received_at: float, events: Batch,
                         configs: Mapping[MetricKey, Mapping[str, Any]]
                         ) -> tuple[Collection[int], str]:
        return (), self._add(received_at, events, configs, journal=True)

    def _add(self, received_at: float, events: Batch,
             configs: Mapping[MetricKey, Mapping[str, Any]], journal: bool) -> str:
        """XADD the batch; its entry id (the token its publication is journaled under)."""
        try:
            if self._redis.xlen(self.stream) >= self.max_entries:
                raise StoreUnavailable(f"the write buffer is full ({self.max_entries:,} "
                                       "batches waiting for PostgreSQL); retry later")
            entry = self._redis.xadd(self.stream, {"b": encode(received_at, events, configs,
                                                               journal)})
        except redis.RedisError as exc:
            raise StoreUnavailable(f"the write buffer (Redis) is unavailable: {exc}") from exc
        return entry.decode() if isinstance(entry, bytes) else str(entry)

    def put_config(self, key: MetricKey, config: Mapping[str, Any]) -> None:
        self.append(time.time(), [], {key: config})

    def put_config_journaled(self, key: MetricKey, config: Mapping[str, Any]) -> str:
        return self._add(time.time(), [], {key: config}, journal=True)

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

    def _lead(self) -> bool:
        """Hold (or renew) the flusher lease. Only order needs one flusher at a time, and
        even two would keep it: each commits the oldest entry before the next, and a
        repeated entry is a no-op."""
        key = f"{self.stream}:flusher"
        if self._redis.set(key, self.consumer, nx=True, px=self.lease_ms):
            return True
        if self._redis.get(key) == self.consumer.encode():
            self._redis.pexpire(key, self.lease_ms)
            return True
        return False

    def flush_once(self, block_ms: int = 0) -> int:
        """Move the stream's oldest entries into PostgreSQL, in order, each in a
        transaction of its own, if this flusher holds the lease; then delete them (only
        after their commits). Waits up to `block_ms` for an entry when there is none."""
        if not self._lead():
            if block_ms:
                self._stop.wait(block_ms / 1000)
            return 0
        entries = _entries(self._redis.xrange(self.stream, count=self.flush_batch))
        if not entries:
            if block_ms:
                self._redis.xread({self.stream: "$"}, count=1, block=block_ms)
            return 0
        started = time.perf_counter()
        for entry_id, payload in entries:
            received_at, batch, configs, journal = decode_journaled(payload)
            held = self.durable.append_once(entry_id, received_at, batch, configs, journal)
            if held:  # accepted here, but PostgreSQL had the id (another server, or long ago)
                self.stats["dropped_duplicates"] += len(held)
                log.warning("%d events of stream entry %s had ids PostgreSQL already held; "
                            "not written again", len(held), entry_id)
        self._redis.xdel(self.stream, *[entry_id for entry_id, _ in entries])
        self.stats["flushed_batches"] += len(entries)
        self.stats["last_flush_size"] = len(entries)
        self.stats["last_flush_seconds"] = time.perf_counter() - started
        return len(entries)

    # ---- the publication journal (the stream's entries, then PostgreSQL's rows) -------------
    def pending(self, spaces: Collection[str] | None = None,
                older_than: float = 0.0) -> list[Pending]:
        """PostgreSQL's journal rows, then the journaled entries still in the stream
        (an entry flushed meanwhile is found once: its row wins)."""
        try:
            raw = _entries(self._redis.xrange(self.stream))
        except redis.RedisError as exc:
            raise StoreUnavailable(f"the write buffer (Redis) is unavailable: {exc}") from exc
        found = self.durable.pending(spaces, older_than)
        seen = {(p.space, p.token) for p in found}
        horizon = (time.time() - older_than) * 1000
        for entry_id, payload in raw:
            if int(entry_id.split("-")[0]) > horizon:
                break
            received_at, batch, configs, journal = decode_journaled(payload)
            if not journal:
                continue
            parts = by_space(batch) if len(batch) else {s: ([], batch) for s, _ in configs}
            for space, (_, part) in parts.items():
                if (spaces is None or space in spaces) and (space, entry_id) not in seen:
                    found.append(Pending(entry_id, space, received_at, {
                        k: v for k, v in configs.items() if k[0] == space}, part))
        return found

    def load(self, pending: Pending) -> Batch:
        return self.durable.load(pending)

    def settle(self, rows: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
        return self.durable.settle(rows)  # an entry still in the stream has no row yet

    def snapshot(self) -> Snapshot:
        """PostgreSQL's snapshot, then what is still only in the stream (read first: an
        entry flushed in between is then in the snapshot, and skipped here). Journaled
        entries in the stream count as covered: their writer may still publish them."""
        try:
            raw = [(entry_id, decode_journaled(payload))
                   for entry_id, payload in _entries(self._redis.xrange(self.stream))]
        except redis.RedisError as exc:
            raise StoreUnavailable(f"the write buffer (Redis) is unavailable: {exc}") from exc
        snap = self.durable.snapshot()
        for entry_id, (_, batch, configs, journal) in raw:
            for key, config in configs.items():
                if len(batch):
                    snap.configs.setdefault(key, config)
                else:
                    snap.configs[key] = config
            if journal:
                snap.covered |= {(space, entry_id) for space in by_space(batch)}

        def batches() -> Iterator[tuple[str, float, Batch]]:
            seen = set()
            for token, received_at, batch in snap.batches:
                seen.add(token)
                yield token, received_at, batch
            for entry_id, (received_at, batch, _, _) in raw:
                if entry_id not in seen and len(batch):
                    yield entry_id, received_at, batch

        return Snapshot(snap.configs, snap.covered, batches())

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
