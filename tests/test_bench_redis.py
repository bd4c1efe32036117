"""The Redis baselines run end to end, leave no key behind, and are themselves exact, so the
figures we put next to ours compare speed against a correct baseline, not a sloppy one."""

from __future__ import annotations

import random
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
import redis

from tallyboard.bench.redis_baselines import (
    PackageLeaderboard,
    SeedRedis,
    prefix_keys,
    run_redis_baselines,
    workload,
)

REDIS = "redis://127.0.0.1:6379/0"
# 2023-03-03T00:00Z: the 30 days before it hold all of February, so month buckets are read.
NOW = 1_677_801_600
FEB, MAR = 1_675_209_600, 1_677_628_800
DAY = 86_400


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    """The machine's Redis (skips without one; CI=true turns the skip into a failure)."""
    conn = redis.Redis.from_url(REDIS, decode_responses=True)
    try:
        conn.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis not reachable at {REDIS} ({exc})")
    yield conn
    conn.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    """A key prefix of the test's own; whatever a failing test left under it is removed."""
    mine = f"tallyboard-test-bench:{uuid.uuid4().hex}"
    yield mine
    for key in client.scan_iter(match=mine + ":*"):
        client.unlink(key)


def brute_top(events: list[tuple[str, int, int]], n: int, lo: int,
              hi: int) -> list[tuple[str, int]]:
    sums: Counter[str] = Counter()
    for member, value, ts in events:
        if lo <= ts < hi:
            sums[member] += value
    return sorted(sums.items(), key=lambda r: (-r[1], r[0]))[:n]


def test_run_redis_baselines_reports_positive_numbers_and_cleans_up(client: redis.Redis,
                                                                    prefix: str) -> None:
    if shutil.which("redis-benchmark") is None:
        pytest.skip("redis-benchmark not on PATH (Debian package redis-tools)")
    got = run_redis_baselines(REDIS, events=2_000, members=200, queries=50, prefix=prefix,
                              now=NOW, ceiling_requests=20_000)
    assert got["seed_ingest_events_per_s"] > 0
    for name in ("seed_range_sum", "seed_top10_24h", "package_top10", "package_rank"):
        assert got[name]["p50_ms"] > 0 and got[name]["p99_ms"] >= got[name]["p50_ms"]
    assert got["seed_range_sum"]["calls"] == 50 and got["seed_top10_24h"]["calls"] == 50
    assert got["redis_benchmark_ceiling"]["hincrby"] > 0
    assert got["redis_benchmark_ceiling"]["zincrby"] > 0
    assert got["keys_deleted"] > 0
    assert prefix_keys(client, prefix) == 0


def test_seed_redis_range_sum_and_top_are_exact(client: redis.Redis, prefix: str) -> None:
    events = workload(2_000, 200, NOW)
    seed = SeedRedis(client, prefix)
    seed.record(events)
    rng = random.Random(3)
    start = NOW - 30 * DAY
    spans = [(start, NOW), (FEB, MAR), (FEB - 1, MAR + 1), (NOW - DAY, NOW), (NOW - 1, NOW)]
    for _ in range(30):
        a, b = rng.randrange(start, NOW), rng.randrange(start, NOW)
        spans.append((min(a, b), max(a, b) + 1))
    for lo, hi in spans:
        for member in ("m0", "m7", f"m{rng.randrange(200)}", "nobody"):
            want = sum(v for m, v, ts in events if m == member and lo <= ts < hi)
            assert seed.range_sum(member, lo, hi) == want, (member, lo, hi)
    for lo, hi in spans[:8]:
        assert seed.top(10, lo, hi) == brute_top(events, 10, lo, hi), (lo, hi)
    assert seed.top(0, start, NOW) == []
    assert seed.clear() > 0
    assert prefix_keys(client, prefix) == 0


def test_seed_redis_filters_by_tag(client: redis.Redis, prefix: str) -> None:
    seed = SeedRedis(client, prefix, metric="tagged")
    seed.record([("a", 5, NOW - 10, "eu"), ("a", 7, NOW - 5, None), ("b", 2, NOW - 3, "us"),
                 ("a", 1, NOW - 2)])
    assert seed.range_sum("a", NOW - DAY, NOW) == 13
    assert seed.range_sum("a", NOW - DAY, NOW, tag="eu") == 5
    assert seed.range_sum("b", NOW - DAY, NOW, tag="eu") == 0
    assert seed.top(5, NOW - DAY, NOW, tag="us") == [("b", 2)]
    seed.clear()
    assert prefix_keys(client, prefix) == 0


def test_package_leaderboard_top_and_rank(client: redis.Redis, prefix: str) -> None:
    board = PackageLeaderboard(client, f"{prefix}:board")
    scores = {f"m{i}": (i * 7_919) % 1_000 for i in range(500)}  # distinct: 7919 ⟂ 1000
    assert board.load(scores.items(), chunk=64, per_round_trip=3) == 500
    ranked = sorted(scores.items(), key=lambda r: (-r[1], r[0]))
    assert board.top(10) == [(m, float(s)) for m, s in ranked[:10]]
    for place, (member, _) in enumerate(ranked[:50], start=1):
        assert board.rank(member) == place
    assert board.rank("nobody") is None
    board.clear()
    assert prefix_keys(client, prefix) == 0
