"""The live workload runs end to end at a tiny scale: every load level and reader count is
measured for tallyboard and the seed's sorted sets, presence figures come back, the Redis
keys are gone, and the section and its target rows render (also without --redis)."""

from __future__ import annotations

import copy

import pytest
import redis

from tallyboard.bench.live import KINDS, RATES, READERS
from tallyboard.bench.report import format_markdown
from tallyboard.bench.runner import run_bench

REDIS = "redis://127.0.0.1:6379/0"


def _redis_or_skip() -> str:
    """The machine's Redis (skips without one; CI=true turns the skip into a failure)."""
    try:
        redis.Redis.from_url(REDIS).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis not reachable at {REDIS} ({exc})")
    return REDIS


@pytest.mark.slow
def test_live_workload_measures_every_level_and_renders() -> None:
    results = run_bench(["live"], scale=0.01, redis=_redis_or_skip())
    lv = results["live"]
    for part in ("http", "seed"):
        levels = lv[part]["levels"]
        assert [(c["rate"], c["readers"]) for c in levels] == [
            (rate, n) for rate in (0, *RATES) for n in READERS]
        for c in levels:
            assert c["reads"] > 0 and set(c["kinds"]) == set(KINDS), (part, c)
            assert 0 < c["p50_ms"] <= c["p99_ms"]
        for rate in (0, *RATES):  # a 0.5 s cell on a busy machine may see no batch end
            written = sum(c["events_per_s"] for c in levels if c["rate"] == rate)
            assert (written > 0) == (rate > 0), (part, rate)
    assert lv["seed"]["keys_left"] == 0
    ip = lv["in_process"]
    assert ip["rest"]["reads"] > 0 and ip["busy"]["reads"] > 0
    assert ip["written"] > 0
    for key in ("snapshot_http", "snapshot_in_process"):
        assert lv[key]["members"] == 1_000 and 0 < lv[key]["first_s"] < 60
    assert lv["snapshot_http"]["during"]["rooms"]["calls"] > 0
    ses = lv["sessions"]
    assert (ses["sessions"], ses["changes"]) == (2_000, 10_000)
    assert ses["live"]["changes_made"] == 10_000
    assert ses["live"]["rss_per_session_bytes"] > 0
    assert ses["restart_after_kill"]["seconds"] > 0 < ses["restart_after_close"]["seconds"]

    text = format_markdown(results)
    assert "## live: reads under sustained ingest (5,000 members)" in text
    assert "| live: read p99, worst kind (" in text
    assert "HTTP, " in text and "of 10,000 ev/s, 10 readers |" in text
    assert "| presence: restart after kill -9 | 10,000 presence changes |" in text
    assert "tallyboard bench --workload live --scale 0.01 --redis" in text
    assert "Seed design: not measured" not in text

    alone = copy.deepcopy(results)
    alone["live"]["seed"] = None
    text = format_markdown(alone)
    assert "**Seed design: not measured** (no `--redis` given)." in text
    assert "| at rest | 0 | 10 |" in text
