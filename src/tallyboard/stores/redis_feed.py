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
from typing import Any

import orjson
import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from ..errors import StoreUnavailable
from ..redact import redact
from .base import Batch, Entry, EventLog, MetricKey, StateReset
from .batches import by_space, decode, encode, ids_of, wanted, without

log = logging.getLogger("tallyboard.redis")

LIBRARY = """#!lua name=tallyboard_v1

-- One batch of one space in one call: claim its ids, then append it to the space's feed.
-- KEYS[1] the feed (a stream); KEYS[2..] one key per event id.
-- ARGV[1] the encoded batch; ARGV[2] id lifetime (s); ARGV[3] '1' when the entry must be
-- appended even if every id was held (events without ids, or configs);
-- ARGV[4..] the batch position of each id key.
-- Returns {entry id or '', the entry before it or '', held positions...}.
local function publish(keys, args)
  local held = {}
  for i = 2, #keys do
    if not redis.call('SET', keys[i], '1', 'NX', 'EX', args[2]) then
      held[#held + 1] = args[i + 2]
    end
  end
  local entry, before = '', ''
  if args[3] == '1' or #held < #keys - 1 then
    local last = redis.call('XREVRANGE', keys[1], '+', '-', 'COUNT', 1)
    if last[1] then before = last[1][1] end
    entry = redis.call('XADD', keys[1], '*', 'b', args[1], 'h', table.concat(held, ','))
  end
  return {entry, before, unpack(held)}
end

-- Release a space lock only if we still hold it (KEYS[1] lock, ARGV[1] our token).
local function unlock(keys, args)
  if redis.call('GET', keys[1]) == args[1] then
    return redis.call('DEL', keys[1])
  end
  return 0
end

redis.register_function('tb_publish', publish)
redis.register_function('tb_unlock', unlock)
"""
CHUNK = 2000  # feed entries read per round trip
MAX_UNPUBLISHED = 10_000  # durable batches waiting for Redis before writes are refused

Client = redis.Redis | RedisCluster


class RebuildRunning(StoreUnavailable):
    """Another process is rebuilding this hot store right now."""


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
    """The durable log `durable`, shared through Redis feeds by several engines."""

    shared = True

    def __init__(self, durable: EventLog, url: str, *, prefix: str = "tb",
                 id_retention: float = 7 * 86400, lock_seconds: float = 10.0,
                 fill: bool = True,
                 progress: Callable[[int, int | None], None] | None = None) -> None:
        """`fill`: an empty hot store (new, or Redis flushed) is rebuilt from `durable`
        at once, reporting `progress(batches done, batches in all)`."""
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError("the Redis key prefix must be non-empty and free of braces")
        self.durable = durable
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
        self._unpublished: list[tuple[list[str], list[Any]]] = []
        self._redelivering = threading.Lock()  # one thread publishes them, in order
        self._gen: bytes | None = None
        self._call(lambda r: r.function_load(LIBRARY, replace=True))  # on every primary
        self._gen = self._call(lambda r: r.get(self._key("gen")))
        if self._gen is None and fill:  # a new or emptied Redis: fill it (or wait)
            with contextlib.suppress(RebuildRunning):
                self.rebuild(progress)
            self._gen = self._wait_for_gen()

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
        """Durable first, then published; a batch Redis could not take is durable and
        is published again before anything else (the request still succeeds). A space
        whose events PostgreSQL all held (duplicates) is not published: it wrote nothing
        and created no metric."""
        if len(self._unpublished) >= MAX_UNPUBLISHED:
            self._redeliver()
        started = time.perf_counter()
        held = set(self.durable.append(received_at, events, configs))
        if self.on_durable is not None:
            self.on_durable(time.perf_counter() - started)
        kept = [i for i in range(len(events)) if i not in held]
        fresh = without(events, held)
        for space, (positions, part) in by_space(fresh).items():
            own = {k: v for k, v in configs.items() if k[0] == space}
            at = [kept[p] for p in positions]
            held |= {at[p] for p in self._publish(space, received_at, part, own)}
        return held

    def put_config(self, key: MetricKey, config: Mapping[str, Any]) -> None:
        self.durable.put_config(key, config)
        self._publish(key[0], time.time(), [], {key: config})

    def _publish(self, space: str, received_at: float, part: Batch,
                 configs: Mapping[MetricKey, Mapping[str, Any]]) -> list[int]:
        """Claim `part`'s ids and append it to `space`'s feed; positions already held."""
        ttl = int(received_at + self.id_retention - time.time())
        ids = ids_of(part) if ttl > 0 else []
        keys = [self._key("feed", space), *(self._key(f"id:{i}", space) for _, i in ids)]
        must = len(part) > len(ids) or bool(configs)
        args: list[Any] = [encode(received_at, part, configs), max(ttl, 1), int(must),
                *(p for p, _ in ids)]
        try:
            self._redeliver()
            entry, before, held = self._fcall(keys, args)
        except StoreUnavailable as exc:
            log.warning("batch durable but not yet in the hot store, kept to publish "
                        "again: %s", exc)
            self._unpublished.append((keys, args))
            return []
        if entry:
            if len(self._mine) > 10_000:  # never followed (a writer that never reads)
                self._mine.clear()
            self._mine[(space, before or None)] = (entry, _kept(
                received_at, part, set(held), {k: dict(v) for k, v in configs.items()}))
        return held

    def _fcall(self, keys: list[str], args: list[Any]) -> tuple[str, str, list[int]]:
        got = self._call(_fcall, "tb_publish", keys, args)
        return _text(got[0]), _text(got[1]), [int(p) for p in got[2:]]

    def _redeliver(self) -> None:
        """Publish batches kept while Redis was away, oldest first (raises if it still is).
        If the hot store was rebuilt meanwhile, the rebuild took them from PostgreSQL."""
        if not self._unpublished:
            return
        with self._redelivering:
            if self._call(lambda r: r.get(self._key("gen"))) != self._gen:
                log.warning("hot store rebuilt while %d batches waited; they come from "
                            "PostgreSQL", len(self._unpublished))
                self._unpublished.clear()
            while self._unpublished:
                keys, args = self._unpublished[0]
                self._fcall(keys, args)
                self._unpublished.pop(0)

    # ---- following ------------------------------------------------------------------------
    def tail(self, space: str, own: bool = False) -> Iterator[Entry]:
        self._redeliver()
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
                raise StoreUnavailable("the hot state in Redis is gone (flushed or lost); "
                                       "run `tallyboard rebuild --store …` to restore it "
                                       "from PostgreSQL", retry_after=5)
            if gen != self._gen:
                self._gen = gen
                self._cursors.clear()
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
        token = uuid.uuid4().hex
        held: list[str] = []
        try:
            for space in spaces:
                key = self._key("lock", space)
                deadline = time.monotonic() + self.lock_seconds
                while not self._call(lambda r, k: r.set(
                        k, token, nx=True, px=int(self.lock_seconds * 1000)), key):
                    if time.monotonic() > deadline:
                        raise StoreUnavailable(f"space {space!r} is busy (another server "
                                               "holds its write lock); retry later")
                    time.sleep(0.001)
                held.append(key)
            yield
        finally:
            for key in held:
                with contextlib.suppress(StoreUnavailable):
                    self._call(_fcall, "tb_unlock", [key], [token])

    # ---- rebuild --------------------------------------------------------------------------
    def rebuild(self, progress: Callable[[int, int | None], None] | None = None) -> int:
        """Refill the hot store from the durable log (every key of the prefix is replaced);
        batches published. Servers answer 503 meanwhile and reload afterwards; a second
        rebuild started meanwhile raises RebuildRunning."""
        token = uuid.uuid4().hex
        if not self._call(lambda r: r.set(self._key("rebuilding"), token, nx=True, ex=3600)):
            raise RebuildRunning("another rebuild of this hot store is running")
        try:
            return self._rebuild(progress)
        finally:
            with contextlib.suppress(StoreUnavailable):
                self._call(_fcall, "tb_unlock", [self._key("rebuilding")], [token])

    def _rebuild(self, progress: Callable[[int, int | None], None] | None) -> int:
        self._call(lambda r: r.delete(self._key("gen")))
        self.clear()
        total = self.durable.batch_count()
        done = 0
        for (space, name), config in self.durable.configs().items():
            self._publish(space, time.time(), [], {(space, name): config})
        for received_at, batch in self.durable.replay():
            for space, (_, part) in by_space(batch).items():
                self._publish(space, received_at, part, {})
            done += 1
            if progress is not None and (done % 256 == 0 or done == total):
                progress(done, total)
        self._redeliver()
        gen = self._gen = uuid.uuid4().hex.encode()
        self._call(lambda r: r.set(self._key("gen"), gen))
        self._cursors.clear()
        return done

    def clear(self) -> None:
        """Delete every key under the prefix (on every node of a cluster) but the
        rebuild lock."""
        keys = [k for k in self._call(lambda r: list(r.scan_iter(
            match=f"{self.prefix}:*", count=1000))) if k != self._key("rebuilding").encode()]
        for start in range(0, len(keys), 1000):
            chunk = keys[start:start + 1000]
            self._call(_unlink, chunk)

    # ---- the rest of the interface ----------------------------------------------------------
    def size_bytes(self) -> int:
        return self.durable.size_bytes()

    def batch_count(self) -> int | None:
        return None

    def backlog(self) -> int:
        """Durable batches still waiting to be published (Redis was away)."""
        return len(self._unpublished)

    def ping(self) -> None:
        """The durable log answers, and Redis answers with its hot state present."""
        self.durable.ping()
        if self._call(lambda r: r.get(self._key("gen"))) is None:
            raise StoreUnavailable("the hot state in Redis is gone (flushed or lost); run "
                                   "`tallyboard rebuild --store …`", retry_after=5)

    def close(self) -> None:
        disconnect(self._redis)
        self.durable.close()


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


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _unlink(r: Client, keys: list[bytes]) -> None:
    pipe = r.pipeline(transaction=False)
    for key in keys:
        pipe.unlink(key)
    pipe.execute()
