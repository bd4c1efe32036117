"""Query commands: top, sum, rank, streak. They only read, so on a data directory they
open it read-only and work beside a server that writes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from . import main
from .common import opened, out, parse_tag, store_options


def board_table(title: str, entries: list[Any]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("member")
    table.add_column("score", justify="right")
    for e in entries:
        table.add_row(str(e.rank), e.member, f"{e.score:,}")
    return table


@main.command()
@click.argument("metric")
@click.option("--window", default="all", show_default=True,
              help="all, day, week, month, year, rolling:24h, range (with --start/--end).")
@click.option("-n", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option("--offset", default=0, show_default=True, type=click.IntRange(0))
@click.option("--at", help="As of this instant (Unix seconds or RFC 3339); default now.")
@click.option("--start", help="Range start (window=range).")
@click.option("--end", help="Range end (window=range).")
@click.option("--tag", help="Filter on one dimension: DIMENSION=VALUE.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@store_options
def top(metric: str, window: str, n: int, offset: int, at: str | None, start: str | None,
        end: str | None, tag: str | None, as_json: bool, data: Path, url: str | None,
        key: str | None, space: str) -> None:
    """Show a leaderboard.

    \b
        tallyboard top study_seconds --window week -n 20
        tallyboard top points --window rolling:24h --tag activity=run
    """
    with opened(data, url, key, read_only=True) as tb:
        board = tb.leaderboard(metric, window=window, n=n, offset=offset, at=at, start=start,
                               end=end, space=space, tag=parse_tag(tag))
    if as_json:
        out.print_json(json.dumps(board.to_dict()))
        return
    out.print(board_table(f"{metric} · {window} · {board.total:,} members", board.entries))


@main.command(name="sum")
@click.argument("metric")
@click.argument("member")
@click.option("--start", help="From (inclusive), Unix seconds or RFC 3339; default open.")
@click.option("--end", help="To (exclusive); default open.")
@click.option("--tag", help="Filter on one dimension: DIMENSION=VALUE.")
@store_options
def sum_(metric: str, member: str, start: str | None, end: str | None, tag: str | None,
         data: Path, url: str | None, key: str | None, space: str) -> None:
    """Print a member's total over [start, end).

    \b
        tallyboard sum points alice --start 2026-11-01T00:00:00Z
    """
    with opened(data, url, key, read_only=True) as tb:
        out.print(tb.sum(metric, member, start=start, end=end, space=space, tag=parse_tag(tag)))


@main.command()
@click.argument("metric")
@click.argument("member")
@click.option("--window", default="all", show_default=True, help="As for `top`.")
@click.option("--radius", default=2, show_default=True, type=click.IntRange(0, 1000),
              help="Neighbours to show on each side.")
@click.option("--at", help="As of this instant; default now.")
@click.option("--tag", help="Filter on one dimension: DIMENSION=VALUE.")
@store_options
def rank(metric: str, member: str, window: str, radius: int, at: str | None, tag: str | None,
         data: Path, url: str | None, key: str | None, space: str) -> None:
    """Show a member's rank and the members around it.

    \b
        tallyboard rank points alice --window month --radius 3
    """
    with opened(data, url, key, read_only=True) as tb:
        got = tb.rank(metric, member, window=window, radius=radius, at=at, space=space,
                      tag=parse_tag(tag))
    if got.rank is None:
        out.print(f"{member} has no score in {window} ({got.total:,} members ranked)")
        return
    out.print(board_table(f"{member}: rank {got.rank} of {got.total:,} · score "
                           f"{got.score:,}", got.around))


@main.command()
@click.argument("metric")
@click.argument("member")
@click.option("--min", "minimum", default=1, show_default=True, type=click.IntRange(1),
              help="A day counts when its total is at least this.")
@click.option("--at", help="As of this instant; default now.")
@click.option("--timezone", help="The member's own timezone (overrides the metric's).")
@click.option("--day-start", help="The member's day start HH:MM (default 00:00 with "
              "--timezone).")
@store_options
def streak(metric: str, member: str, minimum: int, at: str | None, timezone: str | None,
           day_start: str | None, data: Path, url: str | None, key: str | None,
           space: str) -> None:
    """Show a member's current and longest streak of days.

    \b
        tallyboard streak study_seconds alice --min 1800 --timezone Asia/Kolkata
    """
    with opened(data, url, key, read_only=True) as tb:
        got = tb.streak(metric, member, min=minimum, at=at, timezone=timezone,
                        day_start=day_start, space=space)
    for name, run in (("current", got.current), ("longest", got.longest)):
        span = f" ({run.first_day} → {run.last_day})" if run.length else ""
        out.print(f"{name}: {run.length} day{'s' if run.length != 1 else ''}{span}")
