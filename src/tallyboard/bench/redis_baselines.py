"""Redis baselines run side by side with ours, so each of our figures has a Redis one next to it.

Three of them, each answering a different "why not just use Redis?":

* `SeedRedis`, the design the seed systems run today: a HINCRBY per granularity per event,
  a Lua script summing the covering buckets, and a leaderboard that adds up whole bucket
  hashes and sorts on every request. It is exact (the tests check it against brute force),
  so the comparison is about speed, not about a sloppy baseline.
* `PackageLeaderboard`, the PyPI ``leaderboard`` package (agoragames): one sorted set of
  final totals. Fast reads, but no time ranges; it shows what a plain sorted set gives.
* `redis_benchmark_ceiling`, ``redis-benchmark`` sending HINCRBY and ZINCRBY with no client
  work at all: no Redis-based design on this machine can ingest faster than that.

Every key lives under one prefix and is deleted afterwards (`clear_prefix`), so the
baselines can run on a shared Redis.
"""

from __future__ import annotations

import csv
import io
import random
import shutil
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, cast
from urllib.parse import urlsplit

import redis

from tallyboard.bench.baseline import UNITS, _bucket, cover
from tallyboard.bench.measure import latencies

DAY = 86_400
SPAN_DAYS = 30
SEED = 7
TARGET_TOP10_P99_MS = 5.0  # the target, with 1M members

#: (member, value, ts) or (member, value, ts, tag value or None)
Event = tuple[str, int, int] | tuple[str, int, int, str | None]

_RANGE_SUM_LUA = """
local total = 0
for i = 1, #KEYS do
  local v = redis.call('HGET', KEYS[i], ARGV[1])
  if v then total = total + tonumber(v) end
end
return total
"""

# Sorts by score only and returns every row tying with the n-th: Lua compares strings with
# the server's locale (strcoll), so the member tie-break is done in Python, by code point.
_TOP_LUA = """
local acc = {}
for i = 1, #KEYS do
  local flat = redis.call('HGETALL', KEYS[i])
  for j = 1, #flat, 2 do
    acc[flat[j]] = (acc[flat[j]] or 0) + tonumber(flat[j + 1])
  end
end
local rows = {}
for m, s in pairs(acc) do rows[#rows + 1] = {m, s} end
table.sort(rows, function(a, b) return a[2] > b[2] end)
local out = {}
if #rows == 0 then return out end
local cut = rows[math.min(tonumber(ARGV[1]), #rows)][2]
for i = 1, #rows do
  if rows[i][2] < cut then break end
  out[#out + 1] = rows[i][1]
  out[#out + 1] = rows[i][2]
end
return out
"""


def _text(x: Any) -> str:
    """A reply as str whether or not the client decodes responses."""
    return x.decode() if isinstance(x, bytes) else str(x)


def _glob_escape(s: str) -> str:
    """`s` matched literally by SCAN MATCH: a prefix must not act as a pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in s)


def clear_prefix(client: redis.Redis, prefix: str) -> int:
    """Delete every key under `prefix:` (SCAN + UNLINK, never KEYS: the Redis may be shared)."""
    gone = 0
    batch: list[str] = []
    for key in client.scan_iter(match=_glob_escape(prefix) + ":*", count=1_000):
        batch.append(_text(key))
        if len(batch) >= 1_000:
            gone += int(client.unlink(*batch))
            batch.clear()
    if batch:
        gone += int(client.unlink(*batch))
    return gone


def prefix_keys(client: redis.Redis, prefix: str) -> int:
    """How many keys are left under `prefix:` (tests check it is none)."""
    return sum(1 for _ in client.scan_iter(match=_glob_escape(prefix) + ":*", count=1_000))


class SeedRedis:
    """The seed design: six HINCRBY per event and filter, Lua over the covering buckets.

    Hash ``<prefix>:<metric>:<filter>:<unit>:<bucket start>`` holds member -> sum, with
    filter ``all`` (every event) or ``tag=<value>``; buckets are UTC, as in baseline.py.
    """

    BATCH = 1_000

    def __init__(self, client: redis.Redis, prefix: str, metric: str = "events") -> None:
        self.client = client
        self.prefix = prefix
        self.metric = metric
        self._sum = client.register_script(_RANGE_SUM_LUA)
        self._top = client.register_script(_TOP_LUA)
        self._calendar: dict[int, tuple[int, int]] = {}  # day -> (month, year) bucket

    def _key(self, tag: str | None, unit: str, start: int) -> str:
        flt = "all" if tag is None else f"tag={tag}"
        return f"{self.prefix}:{self.metric}:{flt}:{unit}:{start}"

    def _buckets(self, ts: int) -> list[tuple[str, int]]:
        """(unit, start) of the six buckets holding `ts`; month/year cached per day because
        datetime arithmetic would otherwise dominate the measured ingest, not Redis."""
        day = ts - ts % DAY
        cal = self._calendar.get(day)
        if cal is None:
            cal = self._calendar[day] = (_bucket("month", day), _bucket("year", day))
        return [("second", ts), ("minute", ts - ts % 60), ("hour", ts - ts % 3_600),
                ("day", day), ("month", cal[0]), ("year", cal[1])]

    def record(self, events: Sequence[Event]) -> None:
        """HINCRBY per granularity and filter, pipelined (no MULTI) in batches of 1,000 events."""
        for lo in range(0, len(events), self.BATCH):
            pipe = self.client.pipeline(transaction=False)
            for member, value, ts, *rest in events[lo:lo + self.BATCH]:
                tags: list[str | None] = [None]
                if rest and rest[0] is not None:
                    tags.append(rest[0])
                for unit, start in self._buckets(ts):
                    for tag in tags:
                        pipe.hincrby(self._key(tag, unit, start), member, value)
            pipe.execute()

    def range_sum(self, member: str, lo: int, hi: int, tag: str | None = None) -> int:
        """`member`'s sum over [lo, hi): one script call reading each covering bucket."""
        keys = [self._key(tag, unit, start) for unit, start, _ in cover(lo, hi)]
        return int(cast(Any, self._sum(keys=keys, args=[member])))

    def top(self, n: int, lo: int, hi: int, tag: str | None = None) -> list[tuple[str, int]]:
        """The n highest sums over [lo, hi), score desc then member asc (the SPEC's order),
        by adding up whole bucket hashes in one script, as the seed's leaderboard did."""
        if n <= 0:
            return []
        keys = [self._key(tag, unit, start) for unit, start, _ in cover(lo, hi)]
        flat = cast(list[Any], self._top(keys=keys, args=[n]))
        rows = [(_text(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]
        rows.sort(key=lambda r: (-r[1], r[0]))
        return rows[:n]

    def clear(self) -> int:
        """Delete every key under the prefix; returns how many."""
        return clear_prefix(self.client, self.prefix)


class PackageLeaderboard:
    """agoragames' ``leaderboard`` package (PyPI ``leaderboard`` 3.x) on the same Redis.

    Reads go through the package (`leaders`, `rank_for`). Writes cannot: its
    ``rank_member``/``rank_members`` call ``zadd(name, member, score)`` and its
    ``change_score_for`` calls ``zincrby(name, member, delta)``, the redis-py 2 signatures,
    which fail (AttributeError) or mis-send under redis-py >= 3. `load` therefore sends
    pipelined ``ZADD key score member ...`` through the package's own connection.
    Ties come back in Redis' ZREVRANGE order (member descending), not the SPEC's order.
    """

    def __init__(self, client: redis.Redis, name: str) -> None:
        from leaderboard.leaderboard import Leaderboard

        self.name = name
        self.board: Any = Leaderboard(name, redis_connection=client)
        self.conn: redis.Redis = self.board.redis_connection

    def load(self, pairs: Iterable[tuple[str, float]], chunk: int = 1_000,
             per_round_trip: int = 20) -> int:
        """(member, score) pairs as ZADDs of `chunk` members, `per_round_trip` per pipeline."""
        pipe = self.conn.pipeline(transaction=False)
        mapping: dict[str, float] = {}
        queued = loaded = 0
        for member, score in pairs:
            mapping[member] = score
            if len(mapping) >= chunk:
                pipe.zadd(self.name, mapping)
                loaded += len(mapping)
                mapping, queued = {}, queued + 1
                if queued >= per_round_trip:
                    pipe.execute()
                    queued = 0
        if mapping:
            pipe.zadd(self.name, mapping)
            loaded += len(mapping)
        pipe.execute()
        return loaded

    def top(self, n: int) -> list[tuple[str, float]]:
        """Page 1 of `n` leaders: the package's cheapest call (ZREVRANGE, then one pipeline
        of ZREVRANK + ZSCORE per leader; its `top` adds two ZCARDs)."""
        rows = self.board.leaders(1, page_size=n)
        return [(_text(r["member"]), float(r["score"])) for r in rows]

    def rank(self, member: str) -> int | None:
        """1-based rank (ZREVRANK + 1), None for an unknown member."""
        got = self.board.rank_for(member)
        return None if got is None else int(got)

    def clear(self) -> None:
        self.board.delete_leaderboard()


def redis_benchmark_ceiling(host: str, port: int, requests: int = 200_000, pipeline: int = 64,
                            *, db: int = 0, keyspace: int = 10_000,
                            key_prefix: str | None = None) -> dict[str, float]:
    """HINCRBY and ZINCRBY requests/s from ``redis-benchmark`` (50 clients, `pipeline` deep,
    `keyspace` random fields): the server's own ceiling, no client-side work included."""
    exe = shutil.which("redis-benchmark")
    if exe is None:
        raise FileNotFoundError("redis-benchmark is not on PATH")
    prefix = key_prefix or f"tallyboard-ceiling:{uuid.uuid4().hex}"
    commands = {"hincrby": ["hincrby", f"{prefix}:h", "f:__rand_int__", "1"],
                "zincrby": ["zincrby", f"{prefix}:z", "1", "m:__rand_int__"]}
    out: dict[str, float] = {}
    try:
        for name, command in commands.items():
            run = subprocess.run(
                [exe, "-h", host, "-p", str(port), "--dbnum", str(db), "-n", str(requests),
                 "-P", str(pipeline), "-r", str(keyspace), "--csv", *command],
                capture_output=True, text=True, timeout=600, check=True)
            rows = [r for r in csv.DictReader(io.StringIO(run.stdout)) if r.get("rps")]
            if not rows:
                raise RuntimeError(f"no rps in redis-benchmark output: {run.stdout!r}")
            out[name] = float(rows[-1]["rps"])
    finally:
        client = redis.Redis(host=host, port=port, db=db)
        try:
            client.unlink(f"{prefix}:h", f"{prefix}:z")
        finally:
            client.close()
    return out


def workload(events: int, members: int, now: int) -> list[tuple[str, int, int]]:
    """`events` (member, value 1..100, ts) over the 30 days before `now`, from Random(7)."""
    rng = random.Random(SEED)
    names = [f"m{i}" for i in range(members)]
    start = now - SPAN_DAYS * DAY
    return [(names[rng.randrange(members)], rng.randint(1, 100), rng.randrange(start, now))
            for _ in range(events)]


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


def _host_port_db(url: str) -> tuple[str, int, int]:
    parts = urlsplit(url)
    db = parts.path.strip("/")
    return parts.hostname or "127.0.0.1", parts.port or 6379, int(db) if db else 0


def run_redis_baselines(url: str, *, events: int, members: int, queries: int, prefix: str,
                        now: int | None = None,
                        ceiling_requests: int = 200_000) -> dict[str, Any]:
    """Every Redis baseline on one deterministic workload, as a JSON-able dict; each step's
    wall time is in ``seconds``. Every key made (all under `prefix:`) is deleted afterwards."""
    now = int(time.time()) if now is None else now
    client = _client(url)
    seconds: dict[str, float] = {}
    result: dict[str, Any] = {"url": url, "events": events, "members": members,
                              "queries": queries, "now": now, "seconds": seconds}
    seed = SeedRedis(client, prefix)
    package: PackageLeaderboard | None = None
    try:
        t0 = time.perf_counter()
        data = workload(events, members, now)
        rng = random.Random(SEED + 1)
        start = now - SPAN_DAYS * DAY
        spans = []
        for _ in range(queries):
            a, b = rng.randrange(start, now), rng.randrange(start, now)
            spans.append((f"m{rng.randrange(members)}", min(a, b), max(a, b) + 1))
        seconds["generate"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        seed.record(data)
        ingest = time.perf_counter() - t0
        seconds["seed_ingest"] = ingest
        result["seed_ingest_events_per_s"] = events / ingest if ingest else 0.0
        result["seed_hincrby_per_s"] = events * len(UNITS) / ingest if ingest else 0.0

        t0 = time.perf_counter()
        result["seed_range_sum"] = latencies(lambda i: seed.range_sum(*spans[i]), queries)
        seconds["seed_range_sum"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        tops = min(queries, 50)
        result["seed_top10_24h"] = latencies(lambda i: seed.top(10, now - DAY, now), tops)
        seconds["seed_top10_24h"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        totals: Counter[str] = Counter({f"m{i}": 0 for i in range(members)})
        for member, value, _ in data:
            totals[member] += value
        board = package = PackageLeaderboard(client, f"{prefix}:package:board")
        board.load(totals.items())
        seconds["package_load"] = time.perf_counter() - t0
        names = list(totals)
        pick = random.Random(SEED + 2)
        asked = [names[pick.randrange(members)] for _ in range(queries)]
        t0 = time.perf_counter()
        result["package_top10"] = latencies(lambda i: board.top(10), queries)
        result["package_rank"] = latencies(lambda i: board.rank(asked[i]), queries)
        seconds["package_queries"] = time.perf_counter() - t0
        result["package_load_method"] = ("pipelined ZADD through the package's connection "
                                         "(its rank_members uses the redis-py 2 zadd signature)")

        t0 = time.perf_counter()
        host, port, db = _host_port_db(url)
        result["redis_benchmark_ceiling"] = redis_benchmark_ceiling(
            host, port, ceiling_requests, db=db, key_prefix=f"{prefix}:ceiling")
        seconds["redis_benchmark_ceiling"] = time.perf_counter() - t0
    finally:
        t0 = time.perf_counter()
        if package is not None:
            package.clear()
        result["keys_deleted"] = seed.clear()
        seconds["cleanup"] = time.perf_counter() - t0
        client.close()
    return result


def leaderboard_1m(url: str, prefix: str, members: int = 1_000_000,
                   queries: int = 1_000) -> dict[str, Any]:
    """The package's top-10 latency with `members` members, next to the issue's target
    (top-10 p99 <= 5 ms with 1M members); the board is deleted afterwards."""
    client = _client(url)
    board = PackageLeaderboard(client, f"{prefix}:package:1m")
    rng = random.Random(SEED)
    try:
        t0 = time.perf_counter()
        loaded = board.load(((f"m{i}", rng.randint(1, 10_000_000)) for i in range(members)),
                            chunk=10_000, per_round_trip=10)
        load_s = time.perf_counter() - t0
        asked = [f"m{rng.randrange(members)}" for _ in range(queries)]
        top10 = latencies(lambda i: board.top(10), queries)
        rank = latencies(lambda i: board.rank(asked[i]), queries)
    finally:
        board.clear()
        client.close()
    return {"members": loaded, "load_s": load_s, "load_members_per_s": loaded / load_s,
            "top10": top10, "rank": rank, "target_top10_p99_ms": TARGET_TOP10_P99_MS,
            "meets_target": top10["p99_ms"] <= TARGET_TOP10_P99_MS}
