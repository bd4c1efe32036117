"""The shipped benchmark runs end to end, and its baseline is itself exact."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from tallyboard.bench.baseline import SeedBaseline, cover
from tallyboard.bench.report import format_markdown
from tallyboard.bench.runner import run_bench
from tallyboard.cli import main

T0 = 1_700_000_000


@settings(max_examples=200, deadline=None)
@given(st.integers(T0 - 400 * 86_400, T0), st.integers(0, 400 * 86_400))
def test_baseline_cover_partitions_the_span(lo: int, length: int) -> None:
    """The buckets are adjacent, each one whole unit, and exactly fill [lo, lo + length)."""
    t = lo
    for unit, start, end in cover(lo, lo + length):
        assert start == t < end
        assert unit in ("month", "year") or end - start in (1, 60, 3_600, 86_400)
        t = end
    assert t == lo + length


def test_baseline_sum_matches_brute_force() -> None:
    base = SeedBaseline()
    events = [(T0 + i * 7_919 % 5_000_000, i % 13 - 3) for i in range(2_000)]
    for ts, value in events:
        base.record("m", ts, value)
    for lo, hi in [(T0, T0 + 1), (T0 - 5, T0 + 4_000_000), (T0 + 86_399, T0 + 3_000_001)]:
        assert base.sum("m", lo, hi) == sum(v for ts, v in events if lo <= ts < hi)


def test_bench_runs_and_renders() -> None:
    results = run_bench(["study", "presence", "commits"], scale=0.005, queries=20, http=True)
    study = results["workloads"]["study"]
    assert study["ingest_http"]["events_per_s"] > 0
    assert study["queries"]["top10 rolling:24h"]["baseline"]["calls"] >= 3
    text = format_markdown(results)
    assert "## Targets" in text and "## presence" in text and "## Group commit" in text
    assert results["commits"]["sqlite"]["16"]["per_s"] > 0
    assert "tallyboard bench --workload all" not in text  # names what was actually run


def test_discord_workload_runs_the_bot_and_renders() -> None:
    """The real bot against the stand-in at tiny scale: every update timed, commands
    answered, the section and both target rows rendered."""
    results = run_bench(["discord"], scale=0.01, queries=10)
    d = results["discord"]
    for run in ("steady", "burst"):
        assert d[run]["own"]["count"] == d[run]["updates"] == d[run]["end_to_end"]["count"]
        assert 0 < d[run]["own"]["p50_ms"] <= d[run]["end_to_end"]["max_ms"]
    assert d["steady"]["bare_commit"]["count"] == d["steady"]["updates"]
    assert d["top"]["count"] == 5 and d["stats"]["count"] == 3
    assert 0 < d["reconcile_seconds"] < 10
    text = format_markdown(results)
    assert "## discord bot: 50 members in voice" in text
    assert "| discord: voice update overhead p99 | 50 in voice, 5 updates/s |" in text
    assert "| discord: /top answered p99 | 50 in voice |" in text
    assert "tallyboard bench --workload discord --scale 0.01 --queries 10" in text


def test_bench_cli_writes_markdown(tmp_path: Path) -> None:
    out = tmp_path / "bench.md"
    result = CliRunner().invoke(main, ["bench", "--workload", "reactions", "--scale", "0.005",
                                       "--queries", "10", "--no-http", "--markdown", str(out)])
    assert result.exit_code == 0, result.output
    assert "tallyboard bench --workload reactions --scale 0.005 --queries 10 --no-http" \
        in out.read_text()


def test_restart_of_many_small_metrics_costs_what_live_did() -> None:
    """Issue 12: a replay of 50,000 small metrics after kill -9 held 5x the live process's
    memory (every metric's hot boards built at start-up); the restart now holds what the
    live process did."""
    results = run_bench(["restart"], scale=0.1, queries=10)
    r = results["restart"]
    assert (r["metrics"], r["events"]) == (5_000, 15_000)
    assert r["peak_vs_live"] <= 1.5, r
    assert r["restart"]["first_board_ms"] < 1_000
    text = format_markdown(results)
    assert "## restart: 5,000 small metrics (15,000 events), kill -9" in text
    assert "| restart after kill -9: peak RSS / live RSS | 5,000 small metrics |" in text


def test_twitch_workload_polls_every_stream_and_renders() -> None:
    """The real tracker against the stand-in (a process of its own) at a small scale:
    every stream polled whole each cycle, snapshots timed one at a time, the section and
    its target rows rendered."""
    results = run_bench(["twitch"], scale=0.005, queries=10)
    tw = results["twitch"]
    assert tw["chatters"] == 10_000 and len(tw["cycles"]) == 3
    for cycle in tw["cycles"]:
        assert cycle["snapshots"] == 500 and cycle["members"] == 10_000
        assert cycle["stale"] == 0 and cycle["apply_s"] <= cycle["seconds"]
    assert tw["baseline"]["pages"] >= 500
    assert tw["queries"]["overlap 7d, every stream"]["calls"] == 500
    text = format_markdown(results)
    assert "## twitch: 500 streams, 10,000 chatters" in text
    assert "| twitch: full poll cycle of every stream, slowest | 500 streams" in text
    assert "| twitch: memory per tracked chatter |" in text


def test_queue_workload_counts_every_event_on_every_broker_and_renders() -> None:
    """Real workers on the machine's brokers at the smallest scale: every run's count is
    exact, every figure is there, and the targets are rendered."""
    from pg_support import ADMIN_URL, REDIS_URL

    results = run_bench(["queue"], scale=0.001, queries=10, pg=ADMIN_URL, redis=REDIS_URL)
    qu = results["queue"]
    assert sorted(qu["brokers"]) == ["amqp", "nats", "redis"]
    for got in qu["brokers"].values():
        runs = [*got["embedded"].values(), *got["shared"].values()]
        assert all(r["exact"] and r["events_per_s"] > 0 for r in runs), runs
        assert got["latency"]["seen"] == got["latency"]["messages"] > 0
        assert all(a["consume_events_per_s"] > 0 for a in got["alone"].values())
    text = format_markdown(results)
    assert "## queue: 5,000 events in 1,000-event messages" in text
    assert "| queue: one worker, one event a message | NATS JetStream, embedded store |" in text
    assert "| queue: publish → queryable p99 | Redis Streams" in text
