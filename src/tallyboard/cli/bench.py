"""`tallyboard bench`: the benchmark behind docs/benchmarks.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from . import main
from .common import console, out


@main.command()
@click.option("--workload", "workloads", multiple=True, show_default=True, default=["all"],
              type=click.Choice(["psd", "study", "reactions", "presence", "commits", "hot",
                                 "discord", "live", "twitch", "queue", "all"]),
              help="Workload to run; repeat for several. hot: the shared Redis hot store "
                   "against the seed Redis design (needs --pg and --redis). discord: the "
                   "Discord bot against the local Discord stand-in. live: HTTP reads (top-10 "
                   "day/week/rolling:24h/all, rank, sum) from 1, 10 and 100 readers (a read "
                   "every 20 ms each) at rest "
                   "and while a writer process posts live events at 10,000 and 50,000 "
                   "events/s, beside the seed's Redis sorted sets under the same load (with "
                   "--redis; skipped without), in-process reads under 100,000 events/s, and "
                   "presence at scale: 100k-member snapshots, RSS per open session (200,000 "
                   "open at scale 1), restart after 1M presence changes (~5-8 min at scale 1; "
                   "--scale 0.05 is a smoke run of under a minute). twitch: the Twitch "
                   "tracker polling 500 streams and 2,000,000 chatters (at scale 1) from the "
                   "Helix stand-in, after a week of moves: cycle time, CPU and memory per "
                   "chatter, snapshot apply time, overlap and migration queries. queue: "
                   "tallyboard worker processes on NATS JetStream, Redis Streams and "
                   "RabbitMQ (1 worker embedded; 1, 2 and 4 on Redis + PostgreSQL) against "
                   "the broker alone, and publish -> queryable latency (needs --pg and "
                   "--redis; ~6 min at scale 1).")
@click.option("--scale", default=1.0, show_default=True, type=click.FloatRange(0.001, 10),
              help="Fraction of the full event counts (0.05 for a quick look).")
@click.option("--queries", default=2000, show_default=True, type=click.IntRange(10),
              help="Timed calls per query kind.")
@click.option("--no-http", is_flag=True, help="Skip the HTTP ingest run.")
@click.option("--pg", "pg_url", help="PostgreSQL server for the commits workload (a "
                                     "database of its own is made and dropped), e.g. "
                                     "postgresql://postgres@127.0.0.1/postgres.")
@click.option("--redis", "redis_url", help="Redis for the hot workload and the live "
                                           "workload's seed baseline (keys under a prefix "
                                           "of their own, deleted after), e.g. "
                                           "redis://127.0.0.1:6379/0.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the raw results as JSON.")
@click.option("--markdown", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the results as Markdown (e.g. docs/benchmarks.md).")
def bench(workloads: tuple[str, ...], scale: float, queries: int, no_http: bool, pg_url: str | None,
          redis_url: str | None, out_file: Path | None, markdown: Path | None) -> None:
    """Benchmark ingest and queries against targets and a naive baseline.

    \b
        tallyboard bench --workload all --markdown docs/benchmarks.md
        tallyboard bench --workload study --scale 0.05 --no-http
        tallyboard bench --workload discord
        tallyboard bench --workload twitch --scale 0.1
        tallyboard bench --workload live --redis redis://127.0.0.1:6379/0
        tallyboard bench --workload hot --pg postgresql://postgres@127.0.0.1/postgres \\
            --redis redis://127.0.0.1:6379/0
        tallyboard bench --workload queue --scale 0.05 \\
            --pg postgresql://postgres@127.0.0.1/postgres --redis redis://127.0.0.1:6379/0

    "all" includes hot and queue when --pg and --redis are given, and live (its seed
    baseline when --redis is given).
    """
    from ..bench.runner import format_markdown, run_bench

    every = ["psd", "study", "reactions", "presence", "commits", "discord", "live", "twitch"]
    every += ["hot", "queue"] if pg_url and redis_url else []
    names = every if "all" in workloads else list(dict.fromkeys(workloads))
    for needy in ("hot", "queue"):
        if needy in names and not (pg_url and redis_url):
            raise click.UsageError(f"--workload {needy} needs --pg and --redis")
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(),
                  console=console) as bar:
        tasks: dict[str, Any] = {}

        def progress(description: str, done: int, total: int) -> None:
            if description not in tasks:
                tasks[description] = bar.add_task(description, total=total)
            bar.update(tasks[description], completed=done, total=total)

        results = run_bench(names, scale=scale, queries=queries, http=not no_http,
                            pg=pg_url, redis=redis_url, progress=progress)
    text = format_markdown(results)
    if out_file:
        out_file.write_text(json.dumps(results, indent=2))
    if markdown:
        markdown.write_text(text)
    out.print(text)
