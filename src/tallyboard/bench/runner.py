"""Run the workloads: ingest paths, query latencies, memory, rebuild, and the baseline."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import platform
import queue
import random
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from ..calendar import Calendar
from ..engine import Tallyboard
from ..heap import tune_gc
from ..redact import redact
from ..stores import log_from_url
from ..windows import Window
from .baseline import SeedBaseline, start_of_year
from .commits import run_commits
from .hot_store import run_hot_store
from .live import run_live
from .measure import Progress, Server, latencies, rss_bytes
from .presence import run_presence
from .report import format_markdown
from .restart import run_restart
from .workloads import DAY, SPAN_DAYS, WORKLOADS, Workload

WINDOWS = ("all", "day", "week", "month", "year", "rolling:24h", "rolling:7d")
COLUMN_BATCH = 100_000
ROW_BATCH = 1_000
HTTP_BATCH = 1_000
# workloads with results of their own shape
SPECIAL = ("presence", "commits", "hot", "discord", "restart", "live", "twitch", "queue")


def _quiet(description: str, done: int, total: int) -> None:
    """Default progress sink: say nothing."""


def run_bench(names: list[str], *, scale: float = 1.0, queries: int = 2000,
              http: bool = True, pg: str | None = None, redis: str | None = None,
              progress: Progress = _quiet) -> dict[str, Any]:
    """All requested workloads (and "presence", "commits", "hot", "discord", "restart",
    "live", "twitch") as one JSON-able result; "hot" needs both `pg` and `redis`; "live" runs its
    seed baseline only with `redis`."""
    now = int(time.time()) - 1
    results: dict[str, Any] = {
        "command": _command(names, scale, queries, http, pg, redis),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "date": datetime.now(UTC).strftime("%Y-%m-%d")},
        "scale": scale, "queries": queries, "workloads": {}}
    for name in names:
        got = _in_fresh_process(progress, name, scale, queries, http, now, pg, redis)
        if name in SPECIAL:
            results[name] = got
        else:
            results["workloads"][name] = got
    return results


def _in_fresh_process(progress: Progress, *job: Any) -> dict[str, Any]:
    """Run one workload in a fresh interpreter, relaying its progress: memory figures
    then count that workload alone, not what earlier ones left in the allocator."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ProcessPoolExecutor(1, mp_context=ctx) as pool:
        updates = manager.Queue()
        future = pool.submit(_workload_job, updates, *job)
        while not (future.done() and updates.empty()):
            with contextlib.suppress(queue.Empty):
                progress(*updates.get(timeout=0.2))
        return future.result()


def _workload_job(updates: Any, name: str, scale: float, queries: int, http: bool,
                  now: int, pg: str | None, redis: str | None) -> dict[str, Any]:
    def progress(description: str, done: int, total: int) -> None:
        updates.put((description, done, total))

    tune_gc()
    with tempfile.TemporaryDirectory(prefix=f"tallyboard-bench-{name}-") as tmp:
        if name == "presence":
            return run_presence(Path(tmp), scale, queries, progress)
        if name == "restart":
            return run_restart(Path(tmp), scale, progress)
        if name == "live":
            return run_live(Path(tmp), scale, redis, progress)
        if name == "commits":
            return run_commits(Path(tmp), pg, max(200, int(3_000 * scale)), progress)
        if name == "hot":
            assert pg and redis, "the hot store workload needs --pg and --redis"
            return run_hot_store(redis, pg, scale, queries, progress)
        if name == "queue":
            assert pg and redis, "the queue workload needs --pg and --redis"
            from .queues import run_queues

            return run_queues(Path(tmp), scale, pg, redis, progress)
        if name == "twitch":
            from .twitch import run_twitch

            return run_twitch(Path(tmp), scale, progress)
        if name == "discord":
            # imported here: discord.py is loaded only by the process that runs the bot
            from .discord_bot import run_discord

            return run_discord(Path(tmp), scale, progress)
        return _run_workload(WORKLOADS[name](scale, now), Path(tmp), queries, http, progress)


def _command(names: list[str], scale: float, queries: int, http: bool,
             pg: str | None, redis: str | None) -> str:
    every = [*WORKLOADS, *SPECIAL]
    chosen = ["all"] if sorted(names) == sorted(every) else names
    parts = ["tallyboard bench", *(f"--workload {name}" for name in chosen)]
    if scale != 1.0:
        parts.append(f"--scale {scale:g}")
    if queries != 2000:
        parts.append(f"--queries {queries}")
    if not http:
        parts.append("--no-http")
    if pg:
        parts.append(f"--pg {redact(pg)}")
    if redis:
        parts.append(f"--redis {redact(redis)}")
    return " ".join(parts)


def _run_workload(w: Workload, tmp: Path, queries: int, http: bool,
                  progress: Progress) -> dict[str, Any]:
    out: dict[str, Any] = {"events": len(w), "members": len(set(w.members))}
    rss0 = rss_bytes()
    tb = Tallyboard(log_from_url(str(tmp / "main")))
    if w.dimensions:
        tb.set_metric(w.metric, {"dimensions": w.dimensions})
    out["ingest_columns"] = _ingest_columns(tb, w, progress)
    out["rss_per_million_mb"] = (rss_bytes() - rss0) / len(w) * 1e6 / 2**20
    base = SeedBaseline()
    out["baseline_ingest"] = _ingest_baseline(base, w, progress)
    out["ingest_rows"] = _ingest_rows(tmp / "rows", w, progress)
    out["ingest_single"] = _ingest_single(tmp / "single", w)
    if http:
        out["ingest_http"] = _ingest_http(tmp / "http", w, progress)
    out["queries"] = _queries(tb, base, w, queries, progress)
    tb.close()
    del base
    started = time.perf_counter()
    Tallyboard(log_from_url(str(tmp / "main"))).close()
    seconds = time.perf_counter() - started
    out["rebuild"] = {"seconds": seconds, "seconds_per_million": seconds / len(w) * 1e6}
    return out


def _rate(events: int, seconds: float) -> dict[str, float]:
    return {"events": events, "seconds": seconds, "events_per_s": events / seconds}


def _ingest_columns(tb: Tallyboard, w: Workload, progress: Progress) -> dict[str, float]:
    """Durable Python-API batches of 100k events given as columns (`record_columns`)."""
    started = time.perf_counter()
    for lo in range(0, len(w), COLUMN_BATCH):
        hi = min(lo + COLUMN_BATCH, len(w))
        tb.record_columns(w.metric, w.members[lo:hi], w.values[lo:hi], w.secs[lo:hi],
                          tags={k: v[lo:hi] for k, v in w.tags.items()} or None)
        progress(f"{w.name}: ingest (columns)", hi, len(w))
    return _rate(len(w), time.perf_counter() - started)


def _ingest_baseline(base: SeedBaseline, w: Workload, progress: Progress) -> dict[str, float]:
    started = time.perf_counter()
    step = 100_000
    for lo in range(0, len(w), step):
        hi = min(lo + step, len(w))
        base.record_columns(w.members[lo:hi], w.secs[lo:hi], w.values[lo:hi])
        progress(f"{w.name}: baseline ingest", hi, len(w))
    return _rate(len(w), time.perf_counter() - started)


def _ingest_rows(path: Path, w: Workload, progress: Progress) -> dict[str, float]:
    """Durable `record_many` batches of 1,000 event dicts (the JSON-shaped path)."""
    count = min(len(w), 300_000)
    batches = [w.rows(lo, min(lo + ROW_BATCH, count)) for lo in range(0, count, ROW_BATCH)]
    tb = Tallyboard(log_from_url(str(path)))
    if w.dimensions:
        tb.set_metric(w.metric, {"dimensions": w.dimensions})
    started = time.perf_counter()
    for i, batch in enumerate(batches):
        tb.record_many(batch)
        progress(f"{w.name}: ingest (rows)", (i + 1) * ROW_BATCH, count)
    seconds = time.perf_counter() - started
    tb.close()
    return _rate(count, seconds)


def _ingest_single(path: Path, w: Workload) -> dict[str, float]:
    """One durable `record` call (one fsync'd commit) per event."""
    count = min(len(w), 2_000)
    rows = w.rows(0, count)
    tb = Tallyboard(log_from_url(str(path)))
    started = time.perf_counter()
    for row in rows:
        tb.record(row["metric"], row["member"], row["value"], ts=row["ts"],
                  tags=row.get("tags"))
    seconds = time.perf_counter() - started
    tb.close()
    return _rate(count, seconds)


def _ingest_http(path: Path, w: Workload, progress: Progress) -> dict[str, float]:
    """POST /v1/events with JSON arrays of 1,000 events from 2 keep-alive clients."""
    count = min(len(w), 400_000)
    bodies = [orjson.dumps(w.rows(lo, min(lo + HTTP_BATCH, count)))
              for lo in range(0, count, HTTP_BATCH)]
    server = Server(path)
    try:
        if w.dimensions:
            httpx.put(f"{server.url}/v1/metrics/{w.metric}",
                      json={"dimensions": w.dimensions}).raise_for_status()
        done = [0]

        def post(part: list[bytes]) -> None:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                for body in part:
                    client.post("/v1/events", content=body,
                                headers={"content-type": "application/json"}
                                ).raise_for_status()
                    done[0] += HTTP_BATCH
                    progress(f"{w.name}: ingest (HTTP)", min(done[0], count), count)

        started = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(post, [bodies[0::2], bodies[1::2]]))
        seconds = time.perf_counter() - started
    finally:
        server.stop()
    return _rate(count, seconds)


def _queries(tb: Tallyboard, base: SeedBaseline, w: Workload, count: int,
             progress: Progress) -> dict[str, Any]:
    """Latency of each query kind, ours and the baseline's, cross-checked for equality."""
    rnd = random.Random(7)
    names = w.member_names
    cal = Calendar("UTC")
    sums = []
    for _ in range(count):
        lo = rnd.randrange(w.now - SPAN_DAYS * DAY, w.now)
        sums.append((rnd.choice(names), lo, min(w.now, lo + rnd.randrange(1, SPAN_DAYS * DAY))))
    picks = [rnd.choice(names) for _ in range(count)]
    base_reps = max(3, count // 200)
    out: dict[str, Any] = {}

    def both(kind: str, ours: Any, theirs: Any, reps: int) -> None:
        out[kind] = {"ours": latencies(ours, count), "baseline": latencies(theirs, reps)}
        progress(f"{w.name}: queries", len(out), len(WINDOWS) + 4)

    for member, lo, hi in sums[:50]:
        assert tb.sum(w.metric, member, start=lo, end=hi) == base.sum(member, lo, hi), \
            "sum disagrees with the baseline"
    both("sum", lambda i: tb.sum(w.metric, sums[i][0], start=sums[i][1], end=sums[i][2]),
         lambda i: base.sum(*sums[i]), count)
    first = start_of_year(int(w.secs.min()))
    for window in WINDOWS:
        start, end = Window.parse(window).span(w.now, cal)
        lo, hi = int(first if start is None else start), int(end)
        ours = [(e.member, e.score) for e in tb.leaderboard(w.metric, window=window,
                                                            at=w.now).entries]
        assert ours == [e for e in base.leaderboard(lo, hi) if e[1]][:len(ours)], window
        both(f"top10 {window}", lambda i, win=window: tb.leaderboard(w.metric, window=win),
             lambda i, a=lo, b=hi: base.leaderboard(a, b), base_reps)
    both("rank all", lambda i: tb.rank(w.metric, picks[i]),
         lambda i: base.rank(picks[i], first, w.now), base_reps)
    out["streak"] = {"ours": latencies(lambda i: tb.streak(w.metric, picks[i]), count)}
    if w.tags:
        dim, values = next(iter(w.tags.items()))
        tag_values = sorted(set(values))
        out[f"top10 all, tag.{dim}"] = {"ours": latencies(
            lambda i: tb.leaderboard(w.metric, tag=(dim, tag_values[i % len(tag_values)])),
            count)}
    progress(f"{w.name}: queries", len(WINDOWS) + 4, len(WINDOWS) + 4)
    return out


__all__ = ["format_markdown", "run_bench"]
