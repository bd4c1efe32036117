"""`tallyboard simulate`: live load against a store, checked end to end."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
from rich.live import Live
from rich.table import Table

from ..client import RemoteTallyboard
from ..engine import Tallyboard
from . import main
from .common import console, opened, out


@main.group()
def simulate() -> None:
    """Generate live load against a store and check every event arrived."""


@simulate.command()
@click.option("--matches", default=5, show_default=True, type=click.IntRange(1, 1000))
@click.option("--users", default=1000, show_default=True, type=click.IntRange(1))
@click.option("--rate", default=1000.0, show_default=True, type=click.FloatRange(1),
              help="Reactions per second.")
@click.option("--duration", default=30.0, show_default=True, type=click.FloatRange(0.5),
              help="Seconds to send for.")
@click.option("--every", default=2.0, show_default=True, help="Seconds between table updates.")
@click.option("--url", help="Send to a running server instead of --data.")
@click.option("--key", help="API key for --url (write and admin scopes).")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path),
              default=Path("tallyboard-data"), show_default=True)
@click.option("--log", "log_url", help="With --url: the server's durable log, to count "
                                       "what reached it (postgresql://…, sqlite:///…).")
@click.option("--space", help="Space for the run (default: sim-<unix time>, a fresh one).")
@click.option("--seed", default=0, show_default=True)
def reactions(matches: int, users: int, rate: float, duration: float, every: float,
              url: str | None, key: str | None, data: Path, log_url: str | None,
              space: str | None, seed: int) -> None:
    """Emoji reactions during live matches: random users react at --rate.

    Shows a live table of counts per match and emoji (and each emoji's rate over the last
    10 s), read back from the store; at the end prints how many reactions were sent,
    accepted and found in the durable log, and fails unless the three are equal.

    \b
        tallyboard simulate reactions --matches 3 --users 500 --rate 2000 --duration 10
        tallyboard simulate reactions --url http://127.0.0.1:8080 --rate 20000 \\
            --log postgresql://postgres@127.0.0.1/tallyboard
    """
    from ..simulate import METRIC, ReactionLoad

    space = space or f"sim-{int(time.time())}"
    load = ReactionLoad(matches, users, rate, space, seed)
    with opened(data, url, key) as tb:
        tb.set_metric(METRIC, dimensions=["match"], space=space)
        with Live(console=out, auto_refresh=False) as live:
            def show(elapsed: float, counts: Any) -> None:
                live.update(_reactions_table(load.table(tb, elapsed), elapsed, counts),
                            refresh=True)

            counts = load.run(tb, duration, every, show)
        out.print()
        if url and not log_url:
            found, where = _events_in(tb, space), "the server (hot state; --log counts the log)"
    if not url:
        with opened(data, None, None, read_only=True) as again:  # a fresh replay from disk
            found, where = _events_in(again, space), f"the durable log in {data}"
    elif log_url:
        found, where = _count_in_log(log_url, space, counts.accepted), "the durable log"
    for error in counts.errors[:5]:
        console.print(f"[red]error[/] {error}")
    out.print(f"sent {counts.sent:,} · accepted {counts.accepted:,} · duplicates "
              f"{counts.duplicates:,} · found {found:,} in {where}")
    if not counts.sent == counts.accepted == found:
        raise click.ClickException("sent, accepted and found differ")


def _events_in(tb: Tallyboard | RemoteTallyboard, space: str) -> int:
    from ..simulate import METRIC

    return sum(int(m["events"]) for m in tb.metrics(space=space) if m["metric"] == METRIC)


def _count_in_log(log_url: str, space: str, want: int, patience: float = 30.0) -> int:
    """Events of the run in the durable log, waiting for a buffered flush to catch up."""
    from ..stores import log_from_url

    deadline = time.monotonic() + patience
    while True:
        with Tallyboard(log_from_url(log_url)) as replayed:
            found = _events_in(replayed, space)
        if found >= want or time.monotonic() > deadline:
            return found
        time.sleep(1)


def _reactions_table(rows: list[dict[str, Any]], elapsed: float, counts: Any) -> Table:
    from ..simulate import EMOJI

    table = Table(title=f"{elapsed:5.1f}s · sent {counts.sent:,} · accepted "
                        f"{counts.accepted:,}", title_justify="left")
    table.add_column("match")
    for emoji in EMOJI:
        table.add_column(f"{emoji} (/s)", justify="right")
    for row in rows:
        table.add_row(row["match"], *(f"{row['counts'].get(e, 0):,} "
                                      f"({row['rate'].get(e, 0):,.0f})" for e in EMOJI))
    return table
