"""The shared hot store: one Redis (or Redis Cluster) feed per space that every API
process appends to and follows, in front of the durable log in PostgreSQL.

A write is durable first (PostgreSQL, or the write buffer), then one `FCALL` per space
claims the batch's ids and appends it to the space's feed, atomically. Every engine
applies a space's feed in feed order before it answers about that space, so several
processes serve the same exact state, computed by the same code as the embedded
engine. Keys share the hash tag ``{space}``, so what one write or one query touches
lives on one Cluster slot; the generation key says which rebuild the feeds belong to.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from ..errors import StoreUnavailable
from ..redact import redact
from .base import Batch, Entry, EventLog, Journal, MetricKey, StateReset
from .batches import by_space, decode, encode, ids_of, wanted, without

log = logging.getLogger("tallyboard.redis")

LIBRARY = """#!lua name=tallyboard_v3

-- One batch of one space in one call: unless the space is fenced by a rebuild or the
-- batch's publication marker is set already, claim its ids and append it to the feed.
-- KEYS[1] the feed (a stream); KEYS[2] the space's fence; KEYS[3] the batch's marker;
-- KEYS[4..] one key per event id.
-- ARGV[1] the encoded batch; ARGV[2] id lifetime (s); ARGV[3] '1' when the entry must be
-- appended even if every id was held (events without ids, or configs); ARGV[4] the fence
-- this caller may pass ('' unless it is the rebuild); ARGV[5] the marker's lifetime (s),
-- '0' for no marker; ARGV[6..] the batch position of each id key.
-- Returns {'ok', entry id or '', the entry before it or '', {held positions}} (a table:
-- unpacking 10,000 of them would pass Lua's stack limit of 8,000),
-- {'dup'} (the marker was set: published before) or {'fenced'}.
local function publish(keys, args)
  local fence = redis.call('GET', keys[2])
  if fence and fence ~= args[4] then return {'fenced'} end
  if args[5] ~= '0' and not redis.call('SET', keys[3], '1', 'NX', 'EX', args[5]) then
    return {'dup'}
  end
  local held = {}
  for i = 4, #keys do
    if not redis.call('SET', keys[i], '1', 'NX', 'EX', args[2]) then
      held[#held + 1] = args[i + 2]
    end
  end
  local entry, before = '', ''
  if args[3] == '1' or #held < #keys - 3 then
    local last = redis.call('XREVRANGE', keys[1], '+', '-', 'COUNT', 1)
    if last[1] then before = last[1][1] end
    entry = redis.call('XADD', keys[1], '*', 'b', args[1], 'h', table.concat(held, ','))
  end
  return {'ok', entry, before, held}
end

-- Take a space's write lock (KEYS[1] lock, KEYS[2] dirty flag; ARGV[1] our token,
-- ARGV[2] lifetime in ms): false if another holds it, else the dirty flag a holder left
-- ('' if none): it is set for as long as a holder may leave writes unpublished.
local function lock(keys, args)
  if not redis.call('SET', keys[1], args[1], 'NX', 'PX', args[2]) then return false end
  local dirty = redis.call('GET', keys[2]) or ''
  redis.call('SET', keys[2], args[1])
  return dirty
end

-- Release a lock only if we still hold it (KEYS[1] lock, KEYS[2] dirty flag or none;
-- ARGV[1] our token): the dirty flag goes with it when named.
local function unlock(keys, args)
  if redis.call('GET', keys[1]) == args[1] then
    if keys[2] then redis.call('DEL', keys[2]) end
    return redis.call('DEL', keys[1])
  end
  return 0
end

redis.register_function('tb3_publish', publish)
redis.register_function('tb3_lock', lock)
redis.register_function('tb3_unlock', unlock)
"""
CHUNK = 2000  # feed entries read per round trip
MAX_UNPUBLISHED = 10_000  # durable batches waiting for Redis before writes are refused
RECOVER_EVERY = 5.0  # seconds between looks for batches a dead process left unpublished
RECOVER_AFTER = 2.0  # a journal row this old is no longer a write in flight
SETTLE_EVERY = 1.0  # seconds between clearing the journal rows of published batches

Client = redis.Redis | RedisCluster


class RebuildRunning(StoreUnavailable):
    """Another process is rebuilding this hot store right now."""


@dataclass(slots=True)
class Outgoing:
    """One space's part of a durable batch, to publish under its journal token."""

    space: str
    token: str | None  # None: no marker (only the rebuild publishes unjournaled parts)
    received_at: float
    part: Batch
    configs: dict[MetricKey, dict[str, Any]]


def connect(url: str) -> Client:
    """A client for `url`: a Redis Cluster when the server says it is one."""
    try:
        single = redis.Redis.from_url(url, socket_timeout=5)
        if single.info("cluster").get("cluster_enabled"):
            single.close()
            return RedisCluster.from_url(url, socket_timeout=5)
        return single
    except (redis.RedisError, RedisClusterException) as exc:
        raise StoreUnavailable(f"the hot store (Redis at {redact(url)}) is unavailable: {exc}") \
            from exc


def disconnect(client: Client) -> None:
    """Close every socket of `client`. A cluster client's `close` leaves its node pools
    connected (redis-py gives each node a pool of its own and does not close it)."""
    if isinstance(client, RedisCluster):
        client.disconnect_connection_pools()  # type: ignore[no-untyped-call]
    client.close()


class RedisFeed(EventLog):
    """The durable log `durable`, shared through Redis feeds by several engines.

    Nothing acknowledged goes missing from the answers, whatever dies when: every batch
    is journaled in its durable write (`Journal`), and a journal row is cleared only by
    the process that published its batch, after the publish. Rows a dead process left
    are published by whoever comes next (a restart, another server's periodic look, a
    retry of one of its ids, the next holder of a space's lock, /readyz); a marker per
    journaled batch makes a second publish a no-op.
    """

    shared = True

    def __init__(self, durable: EventLog, url: str, *, prefix: str = "tb",
                 id_retention: float = 7 * 86400, lock_seconds: float = 10.0,
                 fill: bool = True,
                 progress: Callable[[int, int | None], None] | None = None) -> None:
        """`fill`: an empty hot store (new, or Redis flushed) is rebuilt from `durable`
        at once, reporting `progress(batches done, batches in all)`."""
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError("the Redis key prefix must be non-empty and free of braces")
        if not isinstance(durable, Journal):
            raise ValueError("the shared hot store needs a PostgreSQL log (--log "
                             "postgresql://…): it journals what is still to publish")
        self.durable = durable
        self.journal: Journal = durable
        self.prefix = prefix
        self.id_retention = id_retention
        self.lock_seconds = lock_seconds
        self.on_redis: Callable[[float], None] | None = None  # round-trip timings sink
        self.on_durable: Callable[[float], None] | None = None  # durable-write timings
        self._redis = connect(url)
        self._cursors: dict[str, str] = {}
        # Entries this engine published, by (space, the entry before): when it follows
        # its space right after, it applies them without reading them back.
        self._mine: dict[tuple[str, str | None], tuple[str, Entry]] = {}
        self._unpublished: list[Outgoing] = []
        self._redelivering = threading.Lock()  # one thread publishes them, in order
        self._published: list[tuple[str, str]] = []  # (space, token) to settle
        self._settled_at = 0.0
        self._recovered_at = 0.0
        self._gen: bytes | None = None
        self._call(lambda r: r.function_load(LIBRARY, replace=True))  # on every primary
        self._gen = self._call(lambda r: r.get(self._key("gen")))
        if self._gen is None and fill:  # a new or emptied Redis: fill it (or wait)
            with contextlib.suppress(RebuildRunning):
                self.rebuild(progress)
            self._gen = self._wait_for_gen()
        self.recover()  # what a process killed before its publish left behind

    def _wait_for_gen(self, seconds: float = 600.0) -> bytes:
        deadline = time.monotonic() + seconds
        while (gen := self._call(lambda r: r.get(self._key("gen")))) is None:
            if time.monotonic() > deadline:
                raise StoreUnavailable("the hot store is still being rebuilt")
            time.sleep(0.05)
        return gen  # type: ignore[no-any-return]

    # ---- keys -----------------------------------------------------------------------------
    def _key(self, name: str, space: str | None = None) -> str:
        return f"{self.prefix}:{name}" if space is None \
            else f"{self.prefix}:{{{space}}}:{name}"

    def _call(self, command: Callable[..., Any], *args: Any) -> Any:
        """``command(client, *args)``: one round trip to Redis, timed; RedisError becomes
        StoreUnavailable (503)."""
        started = time.perf_counter()
        try:
            return command(self._redis, *args)
        except (redis.RedisError, RedisClusterException) as exc:
            raise StoreUnavailable(f"the hot store (Redis) is unavailable: {exc}") from exc
        finally:
            if self.on_redis is not None:
                self.on_redis(time.perf_counter() - started)

    # ---- writes ---------------------------------------------------------------------------
    def append(self, received_at: float, events: Batch,
               configs: Mapping[MetricKey, Mapping[str, Any]]) -> Collection[int]:
        """Durable (and journaled) first, then published; a batch Redis could not take
        is durable and published again before anything else (the request still
        succeeds). A space whose events the log all held (duplicates) is not published:
        it wrote nothing and created no metric."""
        if len(self._unpublished) >= MAX_UNPUBLISHED:
            self._redeliver()
        started = time.perf_counter()
        held_, token = self.journal.append_journaled(received_at, events, configs)
        held = set(held_)
        if self.on_durable is not None:
            self.on_durable(time.perf_counter() - started)
        if held:  # a retry of an id: its first batch may be durable but unpublished
            with contextlib.suppress(StoreUnavailable):
                self.recover(by_space(events))
        kept = [i for i in range(len(events)) if i not in held]
        fresh = without(events, held)
        for space, (positions, part) in by_space(fresh).items():
            own = {k: dict(v) for k, v in configs.items() if k[0] == space}
            at = [kept[p] for p in positions]
            held |= {at[p] for p in self._publish(Outgoing(space, token, received_at, part,
                                                           own))}
        self._settle()
        return held

    def put_config(self, key: MetricKey, config: Mapping[str, Any]) -> None:
        token = self.journal.put_config_journaled(key, config)
        self._publish(Outgoing(key[0], token, time.time(), [], {key: dict(config)}))

    def _publish(self, out: Outgoing) -> list[int]:
        """Publish `out` (after anything kept from before); positions whose id Redis
        held. What Redis cannot take now is kept and published again later."""
        try:
            self._redeliver()
            if not self._unpublished:
                status, held = self._send(out)
                if status != "fenced":
                    return held
        except StoreUnavailable as exc:
            log.warning("batch durable but not yet in the hot store, kept to publish "
                        "again: %s", exc)
        self._unpublished.append(out)
        return []

    def _send(self, out: Outgoing, fence: str = "") -> tuple[str, list[int]]:
        """One `tb3_publish`: 'ok' with the positions held, 'dup' or 'fenced'. A batch
        published (or found published) is queued for its journal row to be settled."""
        ttl = int(out.received_at + self.id_retention - time.time())
        ids = ids_of(out.part) if ttl > 0 else []
        space = out.space
        keys = [self._key("feed", space), self._key("fence", space),
                self._key(f"pub:{out.token}", space),
                *(self._key(f"id:{i}", space) for _, i in ids)]
        must = len(out.part) > len(ids) or bool(out.configs)
        args: list[Any] = [encode(out.received_at, out.part, out.configs), max(ttl, 1),
                           int(must), fence,
                           0 if out.token is None else int(self.id_retention),
                           *(p for p, _ in ids)]
        got = self._call(_fcall, "tb3_publish", keys, args)
        status = _text(got[0])
        if status == "fenced":
            return status, []
        if out.token is not None and not fence:
            self._published.append((space, out.token))
        if status == "dup":
            return status, []
        entry, before, held = _text(got[1]), _text(got[2]), [int(p) for p in got[3]]
        if entry and not fence:
            if len(self._mine) > 10_000:  # never followed (a writer that never reads)
                self._mine.clear()
            self._mine[(space, before or None)] = (entry, _kept(
                out.received_at, out.part, set(held), out.configs))
        return status, held

    def _redeliver(self) -> None:
        """Publish batches kept while Redis was away or a rebuild fenced their space,
        oldest first (raises if Redis is still away; stops at a fenced space)."""
        if not self._unpublished:
            return
        with self._redelivering:
            while self._unpublished:
                if self._send(self._unpublished[0])[0] == "fenced":
                    return
                self._unpublished.pop(0)

    def _settle(self, force: bool = False) -> None:
        """Clear the journal rows of batches this process published, and their markers.
        Not while a rebuild runs: it may clear what we published, and then takes these
        batches from the rows. A marker whose row is not found yet (a write buffer
        flushes it later) stays until it expires, so its row is never published twice."""
        if not self._published or (
                not force and len(self._published) < 256
                and time.monotonic() - self._settled_at < SETTLE_EVERY):
            return
        self._settled_at = time.monotonic()
        try:
            if self._call(lambda r: r.exists(self._key("rebuilding"))):
                return
            rows, self._published = self._published, []
            found = self.journal.settle(rows)
        except StoreUnavailable:
            return
        with contextlib.suppress(StoreUnavailable):
            self._unlink_markers(found)

    def _unlink_markers(self, rows: Collection[tuple[str, str]]) -> None:
        by_slot: dict[str, list[str]] = {}
        for space, token in rows:
            by_slot.setdefault(space, []).append(self._key(f"pub:{token}", space))
        for keys in by_slot.values():
            self._call(lambda r, k: r.unlink(*k), keys)

    # ---- recovery -------------------------------------------------------------------------
    def recover(self, spaces: Collection[str] | None = None,
                older_than: float = 0.0) -> int:
        """Publish the journaled batches (of `spaces`, or all) that are durable but not
        known to be published, in their durable order; how many are still left (a
        rebuild fenced their space). Their rows are cleared; their markers stay (the
        process that wrote one may still hold it to publish)."""
        self._recovered_at = time.monotonic()
        left, done = 0, []
        for row in self.journal.pending(spaces, older_than):
            out = Outgoing(row.space, row.token, row.received_at, self.journal.load(row),
                           row.configs)
            if self._send(out)[0] == "fenced":
                left += 1
            else:
                done.append((row.space, row.token))
        if done:
            self._published = [p for p in self._published if p not in set(done)]
            self.journal.settle(done)
        return left

    def _recover_now_and_then(self) -> None:
        if time.monotonic() - self._recovered_at >= RECOVER_EVERY:
            with contextlib.suppress(StoreUnavailable):
                self.recover(older_than=RECOVER_AFTER)

    # ---- following ------------------------------------------------------------------------
    def tail(self, space: str, own: bool = False) -> Iterator[Entry]:
        self._redeliver()
        if not own:
            self._settle()
            self._recover_now_and_then()
        served = False
        while (mine := self._mine.pop((space, self._cursors.get(space)), None)) is not None:
            self._cursors[space], entry = mine
            served = True
            yield entry
        if own and served:  # right after our write, and it was next: no need to read
            return
        while True:
            cursor = self._cursors.get(space)

            def read(r: Client, cursor: str | None = cursor) -> list[Any]:
                pipe = r.pipeline(transaction=False)
                pipe.get(self._key("gen"))
                pipe.xrange(self._key("feed", space),
                            "-" if cursor is None else f"({cursor}", "+", count=CHUNK)
                return pipe.execute()

            gen, raw = self._call(read)
            if gen is None:
                raise StoreUnavailable("the hot state in Redis is gone (flushed or lost) or "
                                       "being rebuilt; run `tallyboard rebuild --store …` "
                                       "to restore it from PostgreSQL", retry_after=5)
            if gen != self._gen:
                self._gen = gen
                self._cursors.clear()
                self._mine.clear()
                raise StateReset
            for entry_id, fields in raw:
                mine = self._mine.pop((space, self._cursors.get(space)), None)
                self._cursors[space] = entry_id.decode()
                yield mine[1] if mine and mine[0] == self._cursors[space] else _entry(fields)
            if len(raw) < CHUNK:
                return

    def replay(self, metric: MetricKey | None = None) -> Iterator[tuple[float, Batch]]:
        """One metric's (or presence's) batches as far as this engine followed its space;
        nothing for every metric: spaces are read lazily, on first use."""
        if metric is None:
            return
        space = metric[0]
        end = self._cursors.get(space)
        start = "-"
        while end is not None:
            raw = self._call(lambda r, s: r.xrange(self._key("feed", space), s, end,
                                                   count=CHUNK), start)
            for entry_id, fields in raw:
                received_at, batch, _ = _entry(fields)
                part = wanted(batch, metric)
                if part:
                    yield received_at, part
                start = f"({entry_id.decode()}"
            if len(raw) < CHUNK:
                return

    def configs(self) -> dict[MetricKey, dict[str, Any]]:
        return {}  # they arrive with each space's feed

    def exclusive(self, spaces: Collection[str]) -> contextlib.AbstractContextManager[None]:
        return self._locked(sorted(set(spaces)))

    @contextlib.contextmanager
    def _locked(self, spaces: list[str]) -> Iterator[None]:
        """Each space's lock, in order. A lock whose last holder left its dirty flag (it
        died, or Redis refused its publish) is first made clean: the writes it may have
        left unpublished are published before ours are validated."""
        token = uuid.uuid4().hex
        held: list[str] = []
        try:
            for space in spaces:
                deadline = time.monotonic() + self.lock_seconds
                while (dirty := self._call(_fcall, "tb3_lock", [
                        self._key("lock", space), self._key("dirty", space)],
                        [token, int(self.lock_seconds * 1000)])) is None:
                    if time.monotonic() > deadline:
                        raise StoreUnavailable(f"space {space!r} is busy (another server "
                                               "holds its write lock); retry later")
                    time.sleep(0.001)
                held.append(space)
                if _text(dirty):
                    self.recover([space])
            yield
        finally:
            with contextlib.suppress(StoreUnavailable):
                self._redeliver()
            waiting = {out.space for out in self._unpublished}
            for space in held:
                keys = [self._key("lock", space)]
                if space not in waiting:  # else the next holder publishes what we left
                    keys.append(self._key("dirty", space))
                with contextlib.suppress(StoreUnavailable):
                    self._call(_fcall, "tb3_unlock", keys, [token])

    # ---- rebuild --------------------------------------------------------------------------
    def rebuild(self, progress: Callable[[int, int | None], None] | None = None) -> int:
        """Refill the hot store from the durable log while servers keep writing; batches
        published. Readers answer 503 meanwhile and reload afterwards; a second rebuild
        started meanwhile raises RebuildRunning."""
        token = uuid.uuid4().hex
        if not self._call(lambda r: r.set(self._key("rebuilding"), token, nx=True, ex=3600)):
            raise RebuildRunning("another rebuild of this hot store is running")
        try:
            return _Rebuild(self, f"rebuild:{token}").run(progress)
        finally:
            with contextlib.suppress(StoreUnavailable):
                self._call(_fcall, "tb3_unlock", [self._key("rebuilding")], [token])

    def space_keys(self, spaces: Collection[str] | None = None) -> dict[str, list[bytes]]:
        """Every key under the prefix that belongs to a space, by space (`spaces` only,
        if given): one scan over every node."""
        found: dict[str, list[bytes]] = {}
        head = f"{self.prefix}:{{".encode()
        match = f"{self.prefix}:{{*" if spaces is None or len(spaces) != 1 else \
            f"{self.prefix}:{{{_glob(next(iter(spaces)))}}}:*"
        for key in self._call(lambda r: list(r.scan_iter(match=match, count=1000))):
            rest = key[len(head):]
            for cut in _cuts(rest):
                space = rest[:cut].decode(errors="surrogateescape")
                if spaces is None or space in spaces:
                    found.setdefault(space, []).append(key)
                    break
        return found

    def clear(self) -> None:
        """Delete every key under the prefix (on every node of a cluster) but the
        rebuild lock."""
        keys = [k for k in self._call(lambda r: list(r.scan_iter(
            match=f"{self.prefix}:*", count=1000))) if k != self._key("rebuilding").encode()]
        self.unlink(keys)

    def unlink(self, keys: list[bytes]) -> None:
        for start in range(0, len(keys), 1000):
            self._call(_unlink, keys[start:start + 1000])

    # ---- the rest of the interface ----------------------------------------------------------
    def size_bytes(self) -> int:
        return self.durable.size_bytes()

    def batch_count(self) -> int | None:
        return None

    def backlog(self) -> int:
        """Durable batches still waiting to be published (Redis was away)."""
        return len(self._unpublished)

    def ping(self) -> None:
        """The durable log answers, Redis answers with its hot state present, and no
        acknowledged batch is missing from it (a dead process's are published now)."""
        self.durable.ping()
        if self._call(lambda r: r.get(self._key("gen"))) is None:
            raise StoreUnavailable("the hot state in Redis is gone (flushed or lost); run "
                                   "`tallyboard rebuild --store …`", retry_after=5)
        self._redeliver()
        left = self.recover(older_than=RECOVER_AFTER) + len(self._unpublished)
        if left:
            raise StoreUnavailable(f"{left} durable batches are not in the hot store yet "
                                   "(a rebuild is running)", retry_after=5)

    def close(self) -> None:
        with contextlib.suppress(StoreUnavailable):
            self._redeliver()
            self._settle(force=True)
        disconnect(self._redis)
        self.durable.close()


class _Rebuild:
    """One refill of the hot store from the durable log, safe while servers write.

    Every space is fenced first (publishes to it are refused, so its keys can be cleared
    without racing a writer), then filled from one snapshot of the log, then from the
    journal rows committed after it; a space first seen meanwhile is fenced and cleared
    when first touched. Then the fences go and the new generation is set: readers
    reload, and writers publish what the fences kept from them (markers make repeats of
    anything already published no-ops).
    """

    def __init__(self, feed: RedisFeed, fence: str) -> None:
        self.feed = feed
        self.fence = fence
        self.fenced: set[str] = set()

    def run(self, progress: Callable[[int, int | None], None] | None) -> int:
        feed = self.feed
        feed._call(lambda r: r.delete(feed._key("gen")))
        known = {space for space, _ in feed.durable.configs()} | set(feed.space_keys())
        for space in known:
            self._fence(space)
        feed.unlink([k for space, keys in feed.space_keys().items() if space in known
                     for k in keys if k not in self._kept(space)])
        snap = feed.journal.snapshot()
        total = feed.durable.batch_count()
        for (space, name), config in snap.configs.items():
            self._publish(Outgoing(space, None, time.time(), [], {(space, name): config}))
        done = 0
        for token, received_at, batch in snap.batches:
            for space, (_, part) in by_space(batch).items():
                self._publish(Outgoing(space, token if (space, token) in snap.covered else None,
                                       received_at, part, {}))
            done += 1
            if progress is not None and (done % 256 == 0 or done == total):
                progress(done, total)
        later = [row for row in feed.journal.pending()
                 if (row.space, row.token) not in snap.covered]
        for row in later:
            self._publish(Outgoing(row.space, row.token, row.received_at,
                                   feed.journal.load(row), row.configs))
        for space in self.fenced:
            feed._call(lambda r, s: r.delete(feed._key("fence", s)), space)
        gen = uuid.uuid4().hex.encode()
        feed._call(lambda r: r.set(feed._key("gen"), gen))
        feed.journal.settle(snap.covered | {(row.space, row.token) for row in later})
        feed._gen = gen
        feed._cursors.clear()
        feed._mine.clear()
        return done

    def _fence(self, space: str) -> None:
        self.feed._call(lambda r: r.set(self.feed._key("fence", space), self.fence))
        self.fenced.add(space)

    def _publish(self, out: Outgoing) -> None:
        if out.space not in self.fenced:  # first seen since the rebuild began
            self._fence(out.space)
            self.feed.unlink([k for k in self.feed.space_keys({out.space}).get(out.space, [])
                              if k not in self._kept(out.space)])
        self.feed._send(out, self.fence)

    def _kept(self, space: str) -> set[bytes]:
        """A space's keys a rebuild leaves: its fence, and its lock and dirty flag (a
        writer may hold the lock right now)."""
        return {self.feed._key(name, space).encode() for name in ("fence", "lock", "dirty")}


def _entry(fields: Mapping[bytes, bytes]) -> Entry:
    """A feed entry as the engine applies it: the batch less the ids Redis held."""
    received_at, batch, configs = decode(fields[b"b"])
    held = fields.get(b"h", b"")
    return _kept(received_at, batch, set(orjson.loads(b"[" + held + b"]")) if held else set(),
                 configs)


def _kept(received_at: float, batch: Batch, held: set[int],
          configs: dict[MetricKey, dict[str, Any]]) -> Entry:
    """An entry less the positions whose id was held. A batch's configs create its
    metrics: when every event was a duplicate the batch created nothing (the engine
    creates metrics for fresh events only), so they go too — kept, they would read as
    a settings change and undo one."""
    if not held:
        return received_at, batch, configs
    kept = without(batch, held)
    return received_at, kept, configs if len(kept) else {}


def _fcall(r: Client, function: str, keys: list[str], args: list[Any]) -> Any:
    """FCALL, sent straight to the node of its keys in a cluster (redis-py would first ask
    the server, twice, which keys an FCALL names)."""
    if isinstance(r, RedisCluster):
        node = r.get_node_from_key(keys[0])  # type: ignore[no-untyped-call]
        return r.execute_command(  # type: ignore[no-untyped-call]
            "FCALL", function, len(keys), *keys, *args, target_nodes=node)
    return r.fcall(function, len(keys), *keys, *args)


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def _glob(text: str) -> str:
    """`text` with the glob characters of SCAN's MATCH escaped."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _cuts(rest: bytes) -> Iterator[int]:
    """Where a space name may end in a key's text after ``<prefix>:{`` (at a ``}:``)."""
    at = rest.find(b"}:")
    while at != -1:
        yield at
        at = rest.find(b"}:", at + 1)


def _unlink(r: Client, keys: list[bytes]) -> None:
    pipe = r.pipeline(transaction=False)
    for key in keys:
        pipe.unlink(key)
    pipe.execute()
