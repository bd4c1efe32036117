"""The shared hot store against what people run on Redis today, on the same Redis.

Side by side, on one workload (psd: Zipf members, a dimension), in one run: (a) the seed
design (one HINCRBY per granularity and filter value per event, pipelined; Lua scans of
bucket hashes for sums and boards), (b) the `leaderboard` package (sorted sets) for
boards, (c) tallyboard with `--store redis://` over a PostgreSQL log, its queries asked
of a second engine (another server, paying the catch-up round trip). Plus 1M members on
one board, and the `redis-benchmark` HINCRBY/ZINCRBY ceiling of this machine.
"""

from __future__ import annotations

import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import psycopg
import redis

from ..engine import Tallyboard
from ..stores.postgres import PostgresLog
from ..stores.redis_feed import RedisFeed
from .measure import Progress, latencies
from .redis_baselines import (
    SeedRedis,
    clear_prefix,
    leaderboard_1m,
    redis_benchmark_ceiling,
)
from .workloads import DAY, Workload, psd

SEED_EVENTS = 100_000  # the seed design is slow: it ingests a prefix of the workload
ROW_BATCH = 1_000
COLUMN_BATCH = 100_000
MILLION = 1_000_000


def run_hot_store(redis_url: str, pg_admin: str, scale: float, queries: int,
                  progress: Progress) -> dict[str, Any]:
    """Everything above as one JSON-able dict (all keys and the database are removed)."""
    now = int(time.time()) - 1
    w = psd(scale, now)
    prefix = f"tbbench-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    name = f"tallyboard_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}".encode())
    pg_url = pg_admin.rsplit("/", 1)[0] + "/" + name
    out: dict[str, Any] = {"events": len(w), "members": len(set(w.members)),
                           "seed_events": min(len(w), SEED_EVENTS)}
    try:
        out["seed"] = _seed(client, f"{prefix}:seed", w, queries, progress)
        out["tallyboard"] = _tallyboard(redis_url, pg_url, f"{prefix}:tb", w, queries,
                                        client, progress)
        out["million"] = _million(redis_url, pg_url, f"{prefix}:tb", now, queries, progress)
        out["package_million"] = leaderboard_1m(redis_url, f"{prefix}:pkg", MILLION,
                                                queries)
        progress("hot store: redis-benchmark", 0, 1)
        kwargs = client.connection_pool.connection_kwargs
        out["ceiling"] = redis_benchmark_ceiling(
            kwargs.get("host", "127.0.0.1"), kwargs.get("port", 6379), 400_000,
            db=kwargs.get("db", 0), key_prefix=f"{prefix}:ceiling")
        progress("hot store: redis-benchmark", 1, 1)
    finally:
        clear_prefix(client, prefix)
        client.close()
        with psycopg.connect(pg_admin, autocommit=True) as db:
            db.execute(f"DROP DATABASE {name} WITH (FORCE)".encode())
    return out


def _spans(w: Workload, count: int) -> list[tuple[str, int, int]]:
    """Random members with random second-exact ranges inside the workload's span."""
    rng = random.Random(11)
    names = w.member_names
    lo = int(w.secs[0])
    spans = []
    for _ in range(count):
        a, b = rng.randrange(lo, w.now), rng.randrange(lo, w.now)
        spans.append((rng.choice(names), min(a, b), max(a, b) + 1))
    return spans


def _seed(client: redis.Redis, prefix: str, w: Workload, queries: int,
          progress: Progress) -> dict[str, Any]:
    n = min(len(w), SEED_EVENTS)
    seed = SeedRedis(client, prefix, metric=w.metric)
    events = [(w.members[i], int(w.values[i]), int(w.secs[i]),
               f"activity={w.tags['activity'][i]}") for i in range(n)]
    started = time.perf_counter()
    for lo in range(0, n, ROW_BATCH):
        seed.record(events[lo:lo + ROW_BATCH])
        progress("hot store: seed design ingest", lo + ROW_BATCH, n)
    seconds = time.perf_counter() - started
    spans = _spans(w, queries)
    found = {"ingest": {"events": n, "seconds": seconds, "events_per_s": n / seconds,
                        "hincrby_per_s": n * 12 / seconds},
             "sum": latencies(lambda i: seed.range_sum(*spans[i]), queries),
             "top10 day": latencies(lambda i: seed.top(10, w.now - DAY, w.now),
                                    min(queries, 50))}
    return found


def _tallyboard(redis_url: str, pg_url: str, prefix: str, w: Workload, queries: int,
                client: redis.Redis, progress: Progress) -> dict[str, Any]:
    memory0 = int(client.info("memory")["used_memory"])
    writer = Tallyboard(RedisFeed(PostgresLog(pg_url), redis_url, prefix=prefix))
    writer.set_metric(w.metric, {"dimensions": w.dimensions})
    n = min(len(w), SEED_EVENTS)
    found: dict[str, Any] = {
        "ingest_rows": _rows(writer, w, 0, n, 1, progress),
        "ingest_rows_4_threads": _rows(writer, w, n, min(len(w), 2 * n), 4, progress)}
    n = min(len(w), 2 * n)
    started = time.perf_counter()
    for lo in range(n, len(w), COLUMN_BATCH):
        hi = min(lo + COLUMN_BATCH, len(w))
        writer.record_columns(w.metric, w.members[lo:hi], w.values[lo:hi], w.secs[lo:hi],
                              tags={k: v[lo:hi] for k, v in w.tags.items()})
        progress("hot store: tallyboard columns ingest", hi - n, len(w) - n)
    columns_s = time.perf_counter() - started
    memory = int(client.info("memory")["used_memory"]) - memory0
    started = time.perf_counter()
    reader = Tallyboard(RedisFeed(PostgresLog(pg_url), redis_url, prefix=prefix))
    reader.metric(w.metric)  # another server's first look: it reads the whole feed
    load_s = time.perf_counter() - started
    spans = _spans(w, queries)
    names = w.member_names
    pick = random.Random(12)
    asked = [pick.choice(names) for _ in range(queries)]
    progress("hot store: tallyboard queries", 0, 1)
    found |= {
        "ingest_columns": {"events": len(w) - n, "seconds": columns_s,
                           "events_per_s": (len(w) - n) / columns_s if columns_s else 0.0},
        "redis_bytes_per_event": memory / len(w),
        "second_server_load": {"events": len(w), "seconds": load_s},
        "sum": latencies(lambda i: reader.sum(w.metric, spans[i][0], start=spans[i][1],
                                              end=spans[i][2]), queries),
        "top10 day": latencies(lambda i: reader.leaderboard(w.metric, window="day"),
                               queries),
        "top10 all": latencies(lambda i: reader.leaderboard(w.metric), queries),
        "top10 rolling:24h": latencies(
            lambda i: reader.leaderboard(w.metric, window="rolling:24h"), queries),
        "rank all": latencies(lambda i: reader.rank(w.metric, asked[i]), queries)}
    progress("hot store: tallyboard queries", 1, 1)
    writer.close()
    reader.close()
    return found


def _rows(tb: Tallyboard, w: Workload, lo: int, hi: int, threads: int,
          progress: Progress) -> dict[str, Any]:
    """Events lo..hi as dict rows in 1,000-event requests from `threads` threads (a
    server's concurrent requests: their durable writes overlap)."""
    batches = [w.rows(a, min(a + ROW_BATCH, hi)) for a in range(lo, hi, ROW_BATCH)]
    done = [0]

    def one(batch: list[dict[str, Any]]) -> None:
        tb.record_many(batch)
        done[0] += len(batch)
        progress(f"hot store: tallyboard rows ingest, {threads} thread(s)", done[0], hi - lo)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, batches))
    seconds = time.perf_counter() - started
    return {"events": hi - lo, "seconds": seconds, "events_per_s": (hi - lo) / seconds,
            "threads": threads}


def _million(redis_url: str, pg_url: str, prefix: str, now: int, queries: int,
             progress: Progress) -> dict[str, Any]:
    """One board with a million members (one event each), asked of a second server."""
    rng = np.random.default_rng(5)
    writer = Tallyboard(RedisFeed(PostgresLog(pg_url), redis_url, prefix=prefix))
    members = [f"m{i}" for i in range(MILLION)]
    values = rng.integers(1, 10_000_000, size=MILLION)
    secs = rng.integers(now - DAY // 2, now, size=MILLION)
    started = time.perf_counter()
    for lo in range(0, MILLION, COLUMN_BATCH):
        writer.record_columns("million", members[lo:lo + COLUMN_BATCH],
                              values[lo:lo + COLUMN_BATCH], secs[lo:lo + COLUMN_BATCH],
                              space="big")
        progress("hot store: 1M members ingest", lo + COLUMN_BATCH, MILLION)
    ingest_s = time.perf_counter() - started
    writer.close()
    reader = Tallyboard(RedisFeed(PostgresLog(pg_url), redis_url, prefix=prefix))
    reader.metric("million", space="big")
    asked = [members[int(i)] for i in rng.integers(0, MILLION, size=queries)]
    found = {"ingest": {"events": MILLION, "seconds": ingest_s,
                        "events_per_s": MILLION / ingest_s},
             "top10 all": latencies(lambda i: reader.leaderboard("million", space="big"),
                                    queries),
             "top10 day": latencies(lambda i: reader.leaderboard(
                 "million", window="day", space="big"), queries),
             "rank all": latencies(lambda i: reader.rank("million", asked[i], space="big"),
                                   queries)}
    reader.close()
    return found
